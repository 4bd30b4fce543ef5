"""Several starts, each fitted whole, the best by validation NSE
(``RobustRNNRegressor(restarts=k, restart_iter=None)``), against one start and against short
restarts (``restart_iter=20``, the best continued), on the paper's data and on data the option
was not designed on.

The fit is non-convex: its end depends on the random neurons of its start (the seed). This
script fits ``k`` starts (seeds 0 .. k-1) whole in one estimator and prints, for every start,
its iterations, stop reason, validation NSE and test scores, and which one the validation NSE
chose. The test scores are not used to choose: they show whether the validation set's choice
was a good one. Seed 0 alone is the plain fit (a start fitted whole is the fit of its seed
alone, tests/test_fit_measured.py). A last row per case: ``k`` short restarts of 20 iterations,
the best continued, within the same total budget.

Cases (``--cases``):

``msd-paper``
    The authors' files (``../shared/data/msd_dataset``), Theta, n = q = 10 (the contracting row
    of ``fit_msd.py``). Tests: NSE on test_u1..u4.
``msd-generated``
    The package's own mass-spring-damper data (``make_datasets``: a new noise and input
    realisation, not the authors' files), Theta, n = q = 10.
``silverbox``
    The Silverbox training record, its last 20 % held out for validation, Theta 4 x 12 in
    windows of 1024 (see ``batch_growth.py``). Test: RMSE in mV on the multisine record.

    python benchmarks/restarts.py                               # all cases, 5 starts, 300 s each
    python benchmarks/restarts.py --cases msd-generated --starts 3 --time-budget 120 --no-short
    python benchmarks/restarts.py --cases msd-paper --patience 15 --no-short   # fit_msd.py's patience
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from _subproc import busy_core
from batch_growth import SHARED_DATA, loaded_cases, silverbox_case
from rrnn_convex.datasets.benchmarks import load_benchmark
from rrnn_convex.experiments.msd import TESTS, Settings, load_data
from rrnn_convex.fit import RobustRNNRegressor
from rrnn_convex.metrics import nse

CASES = ("msd-paper", "msd-generated", "silverbox")


def load_case(name: str):
    """(estimator keywords, training data, validation data, test scores of a model, their names)."""
    if name == "silverbox":
        kw, train, val, _, _ = silverbox_case()
        test = load_benchmark("silverbox", SHARED_DATA / "sysid").tests["multisine"]

        def scores(model):
            e = model.simulate(test.u)[0, 50:, 0] - test.y[0, 50:, 0]
            return [1000.0 * float(np.sqrt(np.mean(e ** 2)))]

        return kw, train, val, scores, ["mV"]
    data, _ = load_data(Settings(data="paper" if name == "msd-paper" else "generated"))

    def scores(model):
        return [float(np.mean(nse(model.simulate(data[k].u), data[k].y))) for k in TESTS]

    kw = dict(n_states=10, n_neurons=10, model_set="theta")
    return (kw, (data["train_u3"].u, data["train_u3"].y), (data["val"].u, data["val"].y), scores,
            [k.replace("test_", "") for k in TESTS])


def _fmt(xs) -> str:
    return " ".join(f"{x:7.4f}" for x in xs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    ap.add_argument("--starts", type=int, default=5, help="starts per case (seeds 0 .. starts-1; default 5)")
    ap.add_argument("--time-budget", type=float, default=300.0,
                    help="seconds per start (default 300); the estimator's budget is starts x this")
    ap.add_argument("--patience", type=int, default=10,
                    help="early-stopping patience of every fit (default 10, the estimator's; fit_msd.py uses 15)")
    ap.add_argument("--busy", action="store_true",
                    help="keep the other core busy (a one-thread matrix-product loop) during the fits")
    ap.add_argument("--no-short", dest="short", action="store_false",
                    help="skip the short restarts (restart_iter=20, the best continued)")
    args = ap.parse_args(argv)
    if args.starts < 2:
        ap.error(f"--starts: expected at least 2, got {args.starts}")
    if SHARED_DATA.is_dir():
        os.environ.setdefault("RRNN_DATA", str(SHARED_DATA))
    budget = args.starts * args.time_budget
    print(f"# restarts: {platform.machine()}, {os.cpu_count()} cores; {args.starts} starts, "
          f"{budget:g} s per estimator, patience {args.patience}"
          f"{'; the other core busy' if args.busy else ''}", flush=True)
    busy = busy_core() if args.busy else None
    try:
        return run_cases(args, budget)
    finally:
        if busy is not None:
            busy.kill()


def run_cases(args, budget: float) -> list:
    """Fit and print every case of ``args.cases``; returns one row per start and per estimator."""
    rows = []
    for name, n, q, kw, (train, val, scores, names) in loaded_cases(args.cases, load_case):
        head = (f"{'case':>13} {'start':>14} | {'iters':>5} {'stop':>11} {'seconds':>7} | {'val NSE':>8} | "
                + " ".join(f"{k:>7}" for k in names) + " | chosen")
        print(head)
        print("-" * len(head))
        variants = [("whole", None)] + ([("short", 20)] if args.short else [])
        for label, it in variants:
            t0 = time.perf_counter()
            est = RobustRNNRegressor(n, q, **kw, max_iter=100000, time_budget=budget, restarts=args.starts,
                                     restart_iter=it, patience=args.patience, progress=False)
            est.fit(*train, validation=val)
            secs = time.perf_counter() - t0
            ok = est.certificate_.verify(est.model_).ok
            if label == "whole":
                for e in est.restarts_:
                    sc = scores(e["model"])
                    print(f"{name:>13} {'seed ' + str(e['seed']):>14} | {e['iterations']:>5} {e['stop_reason']:>11} "
                          f"{e['seconds']:7.0f} | {e['score']:8.5f} | {_fmt(sc)} | "
                          f"{'yes' if e['chosen'] else ''}", flush=True)
                    rows.append({"case": name, "variant": f"seed {e['seed']}", "val": e["score"], "tests": sc,
                                 "chosen": e["chosen"], "iterations": e["iterations"], "seconds": e["seconds"]})
            sc = scores(est.model_)
            vals = [h["val_nse"] for h in est.history_]
            variant = f"{label} {args.starts}" + ("" if it is None else f"x{it}")
            print(f"{name:>13} {variant:>14} | {est.n_iter_:>5} {est.stop_reason_:>11} {secs:7.0f} | "
                  f"{min(vals):8.5f} | {_fmt(sc)} | seed {est.start_['seed']}, verified {ok}", flush=True)
            rows.append({"case": name, "variant": variant, "val": min(vals), "tests": sc, "chosen": True,
                         "iterations": est.n_iter_, "seconds": secs, "verified": bool(ok)})
        print(flush=True)
    return rows


if __name__ == "__main__":
    main()
