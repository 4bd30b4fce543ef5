"""Where an SCP iteration's time goes: the package now against a baseline commit, in one run.

The paper's Theta fit (n = q = 10 ReLU, train_u3 with validation on val: 100 x 1000 samples)
is run for a few iterations by each version in a fresh subprocess, once on an otherwise idle
machine and once with a second process keeping another core busy (a one-thread matrix-product
loop), as on any shared machine. Each worker times the same entry points of ``rrnn_convex.fit``
in both versions:

* ``linearize``: the Gauss-Newton blocks (r, J'J, J'r);
* ``certificate``: the iterate's certificate (``certify`` / ``certificate_from`` as called by
  the fit);
* ``step``: every other solver call (the step SDP, the interior check's small SDP);
* ``other``: the rest (losses, validation, bookkeeping).

Each worker also times one simulation of the training set (100 x 1000 samples, the fitted
model, median of 5) in the same process and under the same load: the issue states its target
both in seconds and as a multiple of that simulation, which drifts less between machines.

The baseline is checked out from git (``--baseline``, default: the commit before issue 16's
work) into a temporary folder and imported from there; the current version is the installed
package. Both read the same files (the authors' ``msd_dataset``, ``--data``; default
``../shared/data/msd_dataset`` beside the repository, an error if absent) with the same start
and settings. The current version is run once per ``--batch-sizes`` entry: ``all`` (every
training sequence linearised at each step, as the baseline does) and minibatches of k random
sequences per step.

    python benchmarks/fit_speed.py [--iterations 10] [--baseline 060a28c] [--no-busy] [--batch-sizes all 25 15 10]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

from _subproc import busy_core, checkout, run_version

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_BASELINE = "060a28c"


# ---------------------------------------------------------------------- worker
def worker(iterations: int, folder: str, batch_size: int | None) -> None:
    import rrnn_convex.fit as fit
    from rrnn_convex import solvers
    from rrnn_convex.datasets import load_paper_msd

    spent = {"linearize": 0.0, "certificate": 0.0, "step": 0.0}
    depth = {"certificate": 0}

    def timed(fn, phase):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            if phase == "certificate":
                depth["certificate"] += 1
            try:
                return fn(*a, **k)
            finally:
                if phase == "certificate":
                    depth["certificate"] -= 1
                if phase != "step" or depth["certificate"] == 0:
                    spent[phase] += time.perf_counter() - t0
        return wrapper

    fit.linearize = timed(fit.linearize, "linearize")
    fit.certify = timed(fit.certify, "certificate")
    if hasattr(fit, "certificate_from"):
        fit.certificate_from = timed(fit.certificate_from, "certificate")
    solvers.run = timed(solvers.run, "step")

    data = load_paper_msd(folder).as_dict()
    tr, val = data["train_u3"], data["val"]
    est = fit.RobustRNNRegressor(10, 10, model_set="theta", max_iter=iterations, progress=False, seed=0,
                                 batch_size=batch_size)
    marks = []

    def snapshot():
        marks.append((time.perf_counter(), dict(spent)))

    # time each iteration: wrap the run's iterate method
    run_cls = fit._Run
    orig = run_cls.iterate

    def iterate(self):
        snapshot()
        out = orig(self)
        snapshot()
        return out

    run_cls.iterate = iterate
    t0 = time.perf_counter()
    est.fit(tr.u, tr.y, validation=(val.u, val.y))
    total = time.perf_counter() - t0
    rows = []
    for (ta, sa), (tb, sb) in zip(marks[::2], marks[1::2]):
        row = {k: sb[k] - sa[k] for k in spent}
        row["wall"] = tb - ta
        row["other"] = row["wall"] - sum(row[k] for k in spent)
        rows.append(row)
    h = est.history_
    sims = []
    for _ in range(5):  # one simulation of the training set (100 x 1000 samples), the unit of the target
        t0 = time.perf_counter()
        est.model_.simulate(tr.u)
        sims.append(time.perf_counter() - t0)
    print(json.dumps({"package": os.path.dirname(fit.__file__), "iterations": rows, "fit_seconds": total,
                      "simulation": statistics.median(sims), "val_nse": [x["val_nse"] for x in h],
                      "accepted": sum(x["accepted"] for x in h),
                      "step_sdps": sum(x.get("step_sdps", 0) for x in h)}))


# ---------------------------------------------------------------------- parent
def summary(res: dict) -> dict:
    rows = res["iterations"][1:] or res["iterations"]  # the first iteration also pays the set-up
    med = {k: statistics.median(r[k] for r in rows) for k in ("wall", "linearize", "step", "certificate", "other")}
    return med | {"val": res["val_nse"][-1] if res["val_nse"] else float("nan"), "sdps": res["step_sdps"],
                  "simulation": res.get("simulation", float("nan"))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare with")
    ap.add_argument("--no-busy", dest="busy", action="store_false", help="skip the busy-machine runs")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "msd_dataset"),
                    help="the authors' msd_dataset folder (default: ../shared/data/msd_dataset beside the repository)")
    ap.add_argument("--batch-sizes", nargs="+", default=["all", "25", "15", "10"],
                    help="training sequences per step for the current version: 'all' or a count (default: all 25 15 10)")
    ap.add_argument("--batch-size", default="all", help=argparse.SUPPRESS)  # the worker's own
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.iterations, args.data, None if args.batch_size == "all" else int(args.batch_size))
    if not os.path.isdir(args.data):
        raise SystemExit(f"fit_speed: --data: expected the authors' msd_dataset folder, got {args.data!r} "
                         "(not a directory)")
    base = checkout(args.baseline, ROOT)
    print(f"# fit_speed: Theta, n = q = 10, paper data, {args.iterations} iterations; medians over iterations "
          f"2..{args.iterations}; {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| version | machine | sequences per step | iteration [s] | in simulations of the training set | "
          "linearize | step | certificate | other | step SDPs | val NSE |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    loads = ["idle"] + (["other core busy"] if args.busy else [])
    for load in loads:
        busy = busy_core() if load != "idle" else None
        try:
            runs = [(f"baseline {args.baseline}", base, "all")] + [("current", None, b) for b in args.batch_sizes]
            for label, path, batch in runs:
                worker_args = ["--iterations", args.iterations, "--data", args.data, "--batch-size", batch]
                res = run_version(__file__, worker_args, path, args.timeout)
                if "error" in res:
                    print(f"| {label} | {load} | {batch} | error: {res['error']} | | | | | | | |")
                    continue
                s = summary(res)
                print(f"| {label} | {load} | {batch} | {s['wall']:.2f} | {s['wall'] / s['simulation']:.0f}x "
                      f"({s['simulation']:.3f} s) | {s['linearize']:.2f} | {s['step']:.2f} | "
                      f"{s['certificate']:.2f} | {s['other']:.2f} | {s['sdps']} | {s['val']:.4f} |", flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()


if __name__ == "__main__":
    main()
