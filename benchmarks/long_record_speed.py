"""Cost of one SCP iteration on a long record: the whole Silverbox training record against the
benchmark recipe's training windows, measured in the same run.

Silverbox's training record has 65,062 samples. Linearised whole, the simulation loops over
65,062 time steps for one sequence; cut into windows of 1024 samples (each with its own learned
initial state) it loops over 1024 steps for all windows at once, and the recipe's minibatch
takes 16 of the 63 windows per step. Printed: one ``linearize`` call for each layout (median of
``--repeats``), and the median iteration of a short fit (linearise + step SDP + certificate)
for the whole record and for the recipe.

    python benchmarks/long_record_speed.py [--data DIR] [--iterations 4]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from rrnn_convex.datasets.benchmarks import load_benchmark
from rrnn_convex.experiments.sysid import RECIPES, default_data_folder
from rrnn_convex.fit import RobustRNNRegressor, Windows
from rrnn_convex.linearize import ParamLayout, linearize


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="folder with the benchmark files (default: $RRNN_DATA/sysid, else ../shared/data/sysid beside the repository)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=4, help="iterations of each short fit")
    args = ap.parse_args(argv)
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "sysid"
    folder = args.data or default_data_folder() or (shared if shared.is_dir() else None)
    if folder is None:
        raise SystemExit("long_record_speed: no data folder (pass --data DIR)")
    bench = load_benchmark("silverbox", folder)
    rec = RECIPES["silverbox"]
    U, Y = bench.train.u, bench.train.y
    est = RobustRNNRegressor(rec.n_states, rec.n_neurons, progress=False, seed=0)
    sc = est._scaling(U, Y)
    Un, Yn = sc.normalize_inputs(U), sc.normalize_outputs(Y)
    model, x0, _ = est._start(Un, Yn, est._set(sc), sc)
    layout = ParamLayout.for_model(model)
    W = Windows.cut(1, U.shape[1], rec.window, rec.window_stride)
    UW, YW, XW = W.take(Un), W.take(Yn), W.states(model, Un, x0)
    pick = np.sort(np.random.default_rng(0).choice(W.count, size=rec.batch_size, replace=False))
    print(f"# long_record_speed: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"Silverbox train {U.shape[1]} samples, n = {model.n}, q = {model.q}, {layout.size} weights")
    rows = [("linearize, whole record (1 x %d)" % U.shape[1],
             timed(lambda: linearize(model, Un, Yn, x0, layout), 1)),
            ("linearize, all %d windows (%d x %d)" % (W.count, W.count, W.length),
             timed(lambda: linearize(model, UW, YW, XW, layout), args.repeats)),
            ("linearize, recipe minibatch (%d x %d)" % (rec.batch_size, W.length),
             timed(lambda: linearize(model, UW[pick], YW[pick], XW[pick], layout), args.repeats))]
    for label, kw in (("fit iteration, whole record", dict(window=None)),
                      ("fit iteration, recipe (windows + minibatch)",
                       dict(window=rec.window, window_stride=rec.window_stride, batch_size=rec.batch_size))):
        fit = RobustRNNRegressor(rec.n_states, rec.n_neurons, progress=False, seed=0, max_iter=args.iterations, **kw)
        fit.fit(U, Y)
        rows.append((label, statistics.median(h["seconds"] for h in fit.history_)))
    print(f"{'what':<52} {'seconds':>9}")
    for label, secs in rows:
        print(f"{label:<52} {secs:>9.2f}")
    print(f"whole-record / recipe iteration: {rows[3][1] / rows[4][1]:.1f}x")


if __name__ == "__main__":
    main()
