"""Time one linearisation (r, J'J, J'r and the initial-state blocks) on the paper's training-set
size: 100 sequences x 1000 samples, n = q = 10, m = p = 1, all 462 weights trainable plus one
initial state per sequence.

Compared in the same run with the same algorithm called one sequence at a time (the batched
matrix products are what this module adds), on a subset of sequences and scaled to 100.

    python benchmarks/linearize_speed.py [--sequences 100] [--steps 1000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from rrnn_convex import ImplicitRNN
from rrnn_convex.linearize import ParamLayout, linearize


def paper_sized_model(seed=0, n=10, q=10):
    rng = np.random.default_rng(seed)
    return ImplicitRNN(E=np.eye(n) + 0.1 * rng.standard_normal((n, n)),
                       F=0.3 * rng.standard_normal((n, n)) / np.sqrt(n),
                       B1=0.3 * rng.standard_normal((n, q)) / np.sqrt(q), B2=rng.standard_normal((n, 1)),
                       C1=rng.standard_normal((q, n)) / np.sqrt(n), D12=rng.standard_normal((q, 1)),
                       C2=rng.standard_normal((1, n)), D21=rng.standard_normal((1, q)), activation="relu")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sequences", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-sequences", type=int, default=10)
    args = ap.parse_args(argv)
    model = paper_sized_model()
    rng = np.random.default_rng(1)
    u = rng.uniform(-1.5, 1.5, (args.sequences, args.steps, 1))
    y = rng.standard_normal((args.sequences, args.steps, 1))
    x0 = rng.standard_normal((args.sequences, model.n))
    layout = ParamLayout.for_model(model)
    print(f"# linearize_speed: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"{args.sequences} x {args.steps} samples, n = q = {model.n}, {layout.size} weights + "
          f"{args.sequences} x {model.n} initial states; median of {args.repeats}")
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        lin = linearize(model, u, y, x0, layout)
        times.append(time.perf_counter() - t0)
    batched = statistics.median(times)
    k = min(args.baseline_sequences, args.sequences)
    t0 = time.perf_counter()
    H = np.zeros_like(lin.H)
    for b in range(k):
        H += linearize(model, u[b:b + 1], y[b:b + 1], x0[b:b + 1], layout).H
    per_seq = (time.perf_counter() - t0) * args.sequences / k
    check = linearize(model, u[:k], y[:k], x0[:k], layout).H
    agree = np.abs(check - H).max() / np.abs(H).max()
    print(f"{'method':<44} {'seconds':>9}")
    print(f"{'batched forward sensitivities (package)':<44} {batched:>9.2f}")
    print(f"{'one sequence at a time (scaled from ' + str(k) + ')':<44} {per_seq:>9.2f}")
    print(f"speed-up {per_seq / batched:.1f}x; J'J of the two agree to {agree:.1e} (relative, on {k} sequences)")


if __name__ == "__main__":
    main()
