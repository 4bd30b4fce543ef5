"""Minibatch growth at plateaus (``RobustRNNRegressor(batch_growth=...)``) against a fixed
minibatch, on data the option was not designed on.

Each case is fitted twice in one run, with the same seed, start and time budget: ``batch_growth=1``
(the fixed minibatch: the fit stops at the first plateau of the validation NSE) and the default
``batch_growth=2`` (at a plateau, back to the best iterate with twice the windows per step, until
every window is used). Printed per fit: iterations, stop reason, the windows per step at the
end, the best validation NSE and when it was reached, the test score, seconds, and whether the
certificate verifies.

Cases (``--cases``):

``msd-generated``
    The package's own mass-spring-damper data (``make_datasets``: 100 training sequences of
    1000 samples, a new noise and input realisation, not the authors' files), Theta_10 with
    n = q = 10; test score: mean NSE over test_u1..u4.
``silverbox``
    The Silverbox training record (``../shared/data/sysid``) in windows of 1024 with 16 per
    step (the sysid recipe's model, 4 states, 12 neurons, Theta); its last 20 % held out as
    validation data; test score: RMSE in mV on the multisine test record from zero state,
    the first 50 samples excluded.
``msd-paper``
    The authors' files (``../shared/data/msd_dataset``), Theta_10 as in ``fit_msd.py``.

    python benchmarks/batch_growth.py                          # msd-generated and silverbox, 180 s per fit
    python benchmarks/batch_growth.py --cases silverbox --time-budget 300
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from rrnn_convex.datasets.benchmarks import load_benchmark
from rrnn_convex.experiments.msd import TESTS, Settings, load_data
from rrnn_convex.fit import RobustRNNRegressor
from rrnn_convex.metrics import nse

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CASES = ("msd-generated", "silverbox", "msd-paper")


def msd_case(source: str):
    """(estimator keywords, training data, validation data, test score, score name) of an MSD case."""
    data, _ = load_data(Settings(data=source))
    tr, val = data["train_u3"], data["val"]

    def score(est):
        return float(np.mean([np.mean(nse(est.simulate(data[k].u), data[k].y)) for k in TESTS]))

    kw = dict(n_states=10, n_neurons=10, model_set="theta_gamma", gamma=10.0)
    return kw, (tr.u, tr.y), (val.u, val.y), score, "test NSE (mean u1..u4)"


def silverbox_case():
    """The Silverbox case: training record split 80 / 20 into training and validation."""
    bench = load_benchmark("silverbox", SHARED_DATA / "sysid")
    u, y = bench.train.u, bench.train.y
    cut = int(0.8 * u.shape[1])
    test = bench.tests["multisine"]

    def score(est):
        e = est.simulate(test.u)[0, 50:, 0] - test.y[0, 50:, 0]
        return 1000.0 * float(np.sqrt(np.mean(e ** 2)))

    kw = dict(n_states=4, n_neurons=12, model_set="theta", window=1024, window_stride=1024, batch_size=16)
    return kw, (u[:, :cut], y[:, :cut]), (u[:, cut:], y[:, cut:]), score, "test RMSE, mV (multisine)"


def load_case(name: str):
    if name == "silverbox":
        return silverbox_case()
    return msd_case("generated" if name == "msd-generated" else "paper")


def loaded_cases(names, load):
    """``(name, n_states, n_neurons, other estimator keywords, rest of the case)`` for each case
    of ``names`` that ``load`` can load; a case whose data is missing is printed as skipped."""
    for name in names:
        try:
            kw, *rest = load(name)
        except FileNotFoundError as exc:
            print(f"{name:>13}: skipped, {exc}", flush=True)
            continue
        kw = dict(kw)
        yield name, kw.pop("n_states"), kw.pop("n_neurons"), kw, rest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", choices=CASES, default=["msd-generated", "silverbox"])
    ap.add_argument("--time-budget", type=float, default=180.0, help="seconds per fit (default 180)")
    ap.add_argument("--growths", nargs="+", type=float, default=[1.0, 2.0], help="batch_growth values (default 1 2)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if SHARED_DATA.is_dir():
        os.environ.setdefault("RRNN_DATA", str(SHARED_DATA))
    print(f"# batch_growth: {platform.machine()}, {os.cpu_count()} cores; {args.time_budget:g} s per fit", flush=True)
    head = (f"{'case':>13} {'growth':>6} | {'iters':>5} {'stop':>11} {'batch end':>9} | {'best val':>8} "
            f"{'at s':>6} | {'test':>8} | {'seconds':>7} {'verified':>8}")
    print(head)
    print("-" * len(head))
    rows = []
    for name, n, q, kw, (train, val, score, score_name) in loaded_cases(args.cases, load_case):
        for g in args.growths:
            t0 = time.perf_counter()
            est = RobustRNNRegressor(n, q, **kw, batch_growth=g, max_iter=100000, time_budget=args.time_budget,
                                     seed=args.seed, progress=False)
            est.fit(*train, validation=val)
            secs = time.perf_counter() - t0
            vals = [h["val_nse"] for h in est.history_]
            best = int(np.argmin(vals))
            at = float(np.sum([h["seconds"] for h in est.history_[:best + 1]]))
            batch_end = "all" if est.batch_size_ is None else str(est.batch_size_)
            ok = est.certificate_.verify(est.model_).ok
            sc = score(est)
            print(f"{name:>13} {g:6g} | {est.n_iter_:>5} {est.stop_reason_:>11} {batch_end:>9} | {vals[best]:8.4f} "
                  f"{at:6.0f} | {sc:8.4f} | {secs:7.1f} {str(ok):>8}", flush=True)
            rows.append({"case": name, "batch_growth": g, "iterations": est.n_iter_, "stop": est.stop_reason_,
                         "batch_end": est.batch_size_, "best_val_nse": vals[best], "best_at_seconds": at,
                         "test": sc, "test_name": score_name, "seconds": secs, "verified": bool(ok)})
    print("test: " + "; ".join(sorted({f"{r['case']}: {r['test_name']}" for r in rows})))
    return rows


if __name__ == "__main__":
    main()
