"""Time to target: the SCP trainer against the paper's barrier-SGD method, Theta_8, same start.

Both trainers start from the same certified model (the N4SID model of train_u1 embedded in
Theta_8, random neurons), train on train_u3 with validation on val, and every iterate of both
stays in Theta_8. Printed: validation NSE against wall time for both, the time each needs to
reach the paper's validation NSE for gamma = 8 (0.0839), and the ratio (target: SCP >= 5x
faster). The barrier method gets ``--barrier-budget`` seconds (default: 10x what SCP needed,
at least 600 s); if it does not reach the target, the ratio is reported as a lower bound.

    python benchmarks/time_to_target.py                 # paper data when present
    python benchmarks/time_to_target.py --json ttt.json --plot ttt.png
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from rrnn_convex._io import write_text_atomic
from rrnn_convex.baselines.barrier import BarrierSGD
from rrnn_convex.experiments.msd import Settings, load_data
from rrnn_convex.fit import RobustRNNRegressor

#: ``../shared/data`` beside the repository (msd_dataset/, sysid/): named as RRNN_DATA unless already set
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

PAPER_VAL_NSE_GAMMA8 = 0.0839


def first_time(curve, target):
    """First wall time at which the best-so-far validation NSE is <= target (None if never)."""
    for t, v in curve:
        if v <= target:
            return t
    return None


def best_so_far(curve):
    out, best = [], np.inf
    for t, v in curve:
        best = min(best, v)
        out.append((t, best))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gamma", type=float, default=8.0)
    ap.add_argument("--target", type=float, default=PAPER_VAL_NSE_GAMMA8)
    ap.add_argument("--scp-iter", type=int, default=40)
    ap.add_argument("--scp-budget", type=float, default=900.0)
    ap.add_argument("--barrier-budget", type=float, default=None)
    ap.add_argument("--data", choices=("auto", "paper", "generated"), default="auto")
    ap.add_argument("--n-train", type=int, default=100)
    ap.add_argument("--json", default=None, help="write both curves and the figures here")
    ap.add_argument("--plot", default=None, help="PNG of validation NSE against wall time")
    args = ap.parse_args(argv)
    if SHARED_DATA.is_dir():
        os.environ.setdefault("RRNN_DATA", str(SHARED_DATA))

    data, source = load_data(Settings(data=args.data, n_train=args.n_train))
    tr, val = data["train_u3"], data["val"]
    print(f"# time to target: {platform.machine()}, {os.cpu_count()} cores; data: {source}; "
          f"Theta_{args.gamma:g}, target validation NSE {args.target}", flush=True)
    scp = RobustRNNRegressor(10, 10, model_set="theta_gamma", gamma=args.gamma, max_iter=args.scp_iter,
                             time_budget=args.scp_budget, progress=False, patience=args.scp_iter)
    init = scp.initial_model(data["train_u1"].u, data["train_u1"].y)

    t0 = time.perf_counter()
    scp.fit(tr.u, tr.y, validation=(val.u, val.y), init_model=init)
    total = time.perf_counter() - t0
    setup = total - sum(h["seconds"] for h in scp.history_)  # before the first iteration and the final certificate
    t, scp_curve = 0.0, []
    for h in scp.history_:
        t += h["seconds"]
        scp_curve.append((t, h["val_nse"]))
    # charge the whole set-up (re-representation, first certificate, final certificate) up front
    scp_curve = [(ti + setup, v) for ti, v in scp_curve]
    t_scp = first_time(best_so_far(scp_curve), args.target)
    budget = args.barrier_budget or max(600.0, 10.0 * (t_scp or total))
    print(f"SCP: {len(scp.history_)} iterations, {total:.1f} s, best validation NSE "
          f"{min(v for _, v in scp_curve):.4f}; barrier budget {budget:.0f} s", flush=True)

    bar = BarrierSGD(10, 10, model_set="theta_gamma", gamma=args.gamma, time_budget=budget, eval_every=25)
    t1 = time.perf_counter()
    bar.fit(tr.u, tr.y, validation=(val.u, val.y), init_model=init)
    bar_total = time.perf_counter() - t1
    bar_curve = [(h["seconds_since_start"], h["val_nse"]) for h in bar.history_ if np.isfinite(h.get("val_nse", np.nan))]
    t_bar = first_time(best_so_far(bar_curve), args.target)

    print(f"\n{'method':>12} | {'time to target (s)':>18} | {'best val NSE':>12} | {'wall (s)':>8} | certified")
    print("-" * 72)
    for name, tt, curve, wall, cert in (("SCP", t_scp, scp_curve, total, scp.certificate_),
                                         ("barrier-SGD", t_bar, bar_curve, bar_total, bar.certificate_)):
        best = min(v for _, v in curve)
        ok = cert is not None and cert.verify(scp.model_ if name == "SCP" else bar.model_).ok
        print(f"{name:>12} | {('%.1f' % tt) if tt is not None else 'not reached':>18} | {best:12.4f} | "
              f"{wall:8.1f} | {ok}")
    if t_scp is not None and t_bar is not None:
        ratio = f"{t_bar / t_scp:.1f}x"
    elif t_scp is not None and bar.stop_reason_ == "time budget":
        ratio = f">= {bar_total / t_scp:.1f}x (barrier-SGD did not reach the target in its {bar_total:.0f} s budget)"
    elif t_scp is not None:
        ratio = (f"unbounded: barrier-SGD never reached the target (its schedule stopped it after "
                 f"{bar_total:.0f} s: {bar.stop_reason_}, best {min(v for _, v in bar_curve):.4f})")
    else:
        ratio = "undefined (SCP did not reach the target)"
    print(f"\nspeed-up of SCP to validation NSE {args.target}: {ratio}")
    print("\nvalidation NSE (best so far) against wall time:")
    for name, curve in (("SCP", scp_curve), ("barrier-SGD", bar_curve)):
        pts = best_so_far(curve)
        marks = [p for p in pts if p[0] >= 0]
        step = max(1, len(marks) // 8)
        print(f"  {name:>12}: " + ", ".join(f"{ti:.0f}s {v:.4f}" for ti, v in marks[::step] + [marks[-1]]))
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "data": source, "gamma": args.gamma,
              "target": args.target, "scp": {"curve": scp_curve, "time_to_target": t_scp, "wall": total},
              "barrier": {"curve": bar_curve, "time_to_target": t_bar, "wall": bar_total,
                          "stop_reason": bar.stop_reason_}, "ratio": ratio}
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=1))
    if args.plot:
        plot(result, Path(args.plot))
    return result


def plot(result: dict, path: Path) -> None:
    """The best validation NSE so far against wall time, both methods, from ``main``'s result
    (or its ``--json`` file: ``plot(json.load(open(f)), Path("ttt.png"))``)."""
    from rrnn_convex.plots import figure, save_figure

    fig = figure(7, 4.2)
    ax = fig.subplots()
    for name, key in (("SCP (this package)", "scp"), ("barrier + Adam (the paper's method)", "barrier")):
        pts = np.array(best_so_far(result[key]["curve"]))
        ax.step(pts[:, 0], pts[:, 1], where="post", label=name)
    ax.axhline(result["target"], color="k", ls="--", lw=1, label=f"paper's validation NSE ({result['target']})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall time (s, log)")
    ax.set_ylabel("best validation NSE so far (log)")
    ax.set_title(rf"Time to target, $\Theta_{{{result['gamma']:g}}}$, same start")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
