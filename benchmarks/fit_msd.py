"""Fit the paper's mass-spring-damper example (n = 10 states, q = 10 ReLU neurons) in Theta and
Theta_gamma and print the table of issue 5 next to the paper's published NSE.

Data: ../shared/data/msd_dataset (the authors' files) when present, else the package's own
generated splits (rrnn_convex.datasets.make_datasets). Per model: NSE on test_u1..u4 (zero
initial state, no washout), validation NSE, certified gamma, Lipschitz lower bound, iterations,
wall time, and whether the certificate verifies.

    python benchmarks/fit_msd.py                 # all sets, 100 iterations / 15 min each
    python benchmarks/fit_msd.py --quick         # Theta and Theta_10, 5 iterations each
    python benchmarks/fit_msd.py --d11 both      # each set without and with a trainable D11

With ``--d11`` the model also trains an equilibrium weight D11 (``v = C1 x + D11 w + D12 u + bv``,
``RobustRNNRegressor(equilibrium=True)``, through Dt11 = Lambda D11); its rows are named
``<set>+D11``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from dataclasses import replace

import numpy as np

from rrnn_convex.analysis import lipschitz_lower_bound
from rrnn_convex.experiments.msd import PAPER_NSE, TESTS, ModelSpec, Settings, default_specs, fit_spec, load_data
from rrnn_convex.fit import RobustRNNRegressor
from rrnn_convex.metrics import nse

#: ``../shared/data`` beside the repository (msd_dataset/, sysid/): named as RRNN_DATA unless already set
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

def fit_with_d11(spec: ModelSpec, data: dict, s: Settings) -> RobustRNNRegressor:
    """The fit of ``fit_spec`` for a Theta / Theta_gamma spec (the estimator's own start, trained
    on ``train_u3`` with ``val`` for early stopping), with a trainable D11 (``equilibrium=True``)."""
    tr, val = data["train_u3"], data["val"]
    est = RobustRNNRegressor(s.n, s.n, model_set=spec.model_set, gamma=spec.gamma, activation=spec.activation,
                             max_iter=s.max_iter, time_budget=s.time_budget, patience=s.patience, seed=s.seed,
                             solver=s.solver, progress=False, gamma_path=spec.gamma_path, path_iter=s.path_iter,
                             equilibrium=True)
    return est.fit(tr.u, tr.y, validation=(val.u, val.y))


def write_history(path: str, name: str, history: list) -> None:
    """Append one JSON line per iteration: when (seconds of fitting so far), how good, and the
    windows of its step (``batch``)."""
    import json
    elapsed = 0.0
    with open(path, "a") as fh:
        for h in history:
            elapsed += float(h["seconds"])
            fh.write(json.dumps({"set": name, "iteration": h["iteration"], "seconds": round(elapsed, 2),
                                 "val_nse": h["val_nse"], "loss": h["loss"],
                                 "batch": h.get("batch")}) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--gammas", nargs="+", default=None, help='"theta" or values, default theta 3 5 8 10 15')
    ap.add_argument("--max-iter", type=int, default=None)
    ap.add_argument("--time-budget", type=float, default=840.0,
                    help="per fit, all stages (default 840 s: with the N4SID start, final certificate and "
                         "evaluation a whole fit stays under 15 minutes)")
    ap.add_argument("--lipschitz-horizon", type=int, default=500)
    ap.add_argument("--no-path", dest="path", action="store_false",
                    help="fit small gammas directly from the N4SID start (no continuation through larger gammas)")
    ap.add_argument("--path-iter", type=int, default=15, help="iterations of each gamma_path stage")
    ap.add_argument("--data", choices=("auto", "paper", "generated"), default="auto")
    ap.add_argument("--n-train", type=int, default=100, help="training sequences of generated data")
    ap.add_argument("--history", default=None,
                    help="write each fit's per-iteration history (JSON lines: set, iteration, seconds since the "
                         "fit started, validation NSE, loss, windows per step) to this file")
    ap.add_argument("--d11", nargs="?", const="yes", choices=("no", "yes", "both"), default="no",
                    help="train an equilibrium weight D11 too (rows <set>+D11); 'both': each set without, then "
                         "with it")
    args = ap.parse_args(argv)
    if SHARED_DATA.is_dir():
        os.environ.setdefault("RRNN_DATA", str(SHARED_DATA))
    gammas = args.gammas or (["theta", "10"] if args.quick else ["theta", "3", "5", "8", "10", "15"])
    max_iter = args.max_iter or (5 if args.quick else 100)
    try:
        data, source = load_data(Settings(data=args.data, n_train=args.n_train))
    except FileNotFoundError as exc:
        raise SystemExit(f"fit_msd: {exc}") from None
    print(f"# fit_msd: {platform.machine()}, {os.cpu_count()} cores; data: {source}; max_iter {max_iter}, "
          f"time budget {args.time_budget:g} s", flush=True)
    head = (f"{'set':>13} | {'u1':>7} {'u2':>7} {'u3':>7} {'u4':>7} | {'val':>7} | {'gamma':>8} {'lip lb':>8} "
            f"| {'iters':>5} {'seconds':>8} {'verified':>8} | paper u1..u4")
    print(head)
    print("-" * len(head))
    rows = []
    variants = {"no": (False,), "yes": (True,), "both": (False, True)}[args.d11]
    for gs, d11 in ((gs, d11) for gs in gammas for d11 in variants):
        g = None if gs == "theta" else float(gs)
        t0 = time.perf_counter()
        name = "Theta" if g is None else f"Theta_{g:g}"
        spec = next((sp for sp in default_specs() if sp.name == name),
                    ModelSpec(name, "scp", "theta" if g is None else "theta_gamma", g))
        if not args.path:
            spec = replace(spec, gamma_path=())
        settings = Settings(max_iter=max_iter, path_iter=args.path_iter, time_budget=args.time_budget)
        if d11:
            est = fit_with_d11(spec, data, settings)
        else:
            # the runner's fit: the estimator's start on the training data (embedded in the first set of the path)
            _, est = fit_spec(spec, data, settings, progress=False)
        secs = time.perf_counter() - t0
        res = [float(np.mean(nse(est.simulate(data[k].u), data[k].y))) for k in TESTS]
        v = float(np.mean(nse(est.simulate(data["val"].u), data["val"].y)))
        cert = est.certificate_
        ok = cert.verify(est.model_).ok
        lb = lipschitz_lower_bound(est.model_, horizon=args.lipschitz_horizon, starts=3, steps=150, seed=0).value
        paper = PAPER_NSE.get(name) if source.startswith("authors'") and not d11 else None
        name += "+D11" if d11 else ""
        ptxt = "/".join(f"{x:.4f}" for x in paper) if paper else "-"
        print(f"{name:>13} | " + " ".join(f"{x:7.4f}" for x in res) + f" | {v:7.4f} | {cert.gamma:8.3f} {lb:8.3f} "
              f"| {est.n_iter_:>5} {secs:8.1f} {str(ok):>8} | {ptxt}", flush=True)
        if args.history:
            write_history(args.history, name, est.history_)
        rows.append({"set": name, "d11": d11, "max_abs_d11": float(np.max(np.abs(est.model_.D11))),
                     "gamma_set": g, "test_nse": res, "val_nse": v, "certified_gamma": cert.gamma,
                     "lipschitz_lb": lb, "iterations": est.n_iter_, "seconds": secs, "verified": bool(ok)})
    return rows


if __name__ == "__main__":
    main()
