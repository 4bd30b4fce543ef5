"""Time one linearisation (r, J'J, J'r and the initial-state blocks) on the paper's training-set
size, with every engine the package has, in one run: 100 sequences x 1000 samples,
n = q = 10 ReLU, m = p = 1, all 462 weights trainable plus one initial state per sequence.

Engines (each in a fresh subprocess, one BLAS thread, median of ``--repeats``):

* ``numpy``: the package's :func:`rrnn_convex.linearize.linearize` (closed-form sensitivities
  of zeta = E dx, propagated in blocks of time steps by batched matrix products, J'J by syrk);
* ``numpy, 2 workers``: the same, the sequences shared between two threads (``workers=2``);
* ``numpy, overlap`` and ``numpy, 2 workers, overlap``: the same with each chunk of rows folded
  into J'J in a helper thread while the next is computed (``overlap=True``; the fit picks one of
  these with :func:`rrnn_convex.linearize.thread_plan`);
* ``numpy, baseline``: the same function at the git revision ``--baseline`` (checked out into a
  temporary folder), the previous version of the algorithm;
* ``casadi``: :func:`rrnn_convex.baselines.casadi_linearize` on
  :func:`rrnn_convex.linearize.casadi_step`: casadi's automatic differentiation gives each
  step's local Jacobians (a mapped Function over the batch), numpy propagates them, the same
  accumulator folds the rows into J'J (the LSTM baseline's engine);
* ``casadi, compiled``: the same with the mapped Jacobian Function generated as C and
  compiled (``cc -O2``); its one-off compile time is reported separately.

The casadi engines run ``--casadi-steps`` samples per sequence (their cost per sample is
constant) and are scaled to the full length; this is said in the table. Every engine's J'J is
compared with the package's on the same data. Then again with a second process keeping
another core busy.

    python benchmarks/linearize_speed.py [--repeats 3] [--baseline 060a28c] [--casadi-steps 200] [--no-busy]
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
ENGINES = ("numpy", "numpy, 2 workers", "numpy, overlap", "numpy, 2 workers, overlap", "numpy, baseline", "casadi",
           "casadi, compiled")


def paper_sized_model(seed=0, n=10, q=10):
    import numpy as np

    from rrnn_convex import ImplicitRNN
    rng = np.random.default_rng(seed)
    return ImplicitRNN(E=np.eye(n) + 0.1 * rng.standard_normal((n, n)),
                       F=0.3 * rng.standard_normal((n, n)) / np.sqrt(n),
                       B1=0.3 * rng.standard_normal((n, q)) / np.sqrt(q), B2=rng.standard_normal((n, 1)),
                       C1=rng.standard_normal((q, n)) / np.sqrt(n), D12=rng.standard_normal((q, 1)),
                       C2=rng.standard_normal((1, n)), D21=rng.standard_normal((1, q)), activation="relu")


def data(sequences: int, steps: int):
    import numpy as np
    rng = np.random.default_rng(1)
    return (rng.uniform(-1.5, 1.5, (sequences, steps, 1)), rng.standard_normal((sequences, steps, 1)),
            rng.standard_normal((sequences, 10)))


# ---------------------------------------------------------------------- worker
def worker(engine: str, sequences: int, steps: int, repeats: int, reference: str | None) -> None:
    import numpy as np

    from rrnn_convex.linearize import ParamLayout, linearize
    model = paper_sized_model()
    layout = ParamLayout.for_model(model)
    u, y, x0 = data(sequences, steps)
    setup = 0.0
    if engine.startswith("casadi"):
        from rrnn_convex.baselines import casadi_linearize
        from rrnn_convex.linearize import casadi_step
        step, theta, compiled = casadi_step(model, layout), layout.flatten(model), engine.endswith("compiled")
        t0 = time.perf_counter()
        casadi_linearize(step, theta, u[:, :1], y[:, :1], x0, compiled=compiled)  # builds (and compiles)
        setup = time.perf_counter() - t0

        def run():
            return casadi_linearize(step, theta, u, y, x0, compiled=compiled)
    else:
        workers = 2 if "2 workers" in engine else 1
        opts = ({"workers": workers} if workers > 1 else {}) | ({"overlap": True} if "overlap" in engine else {})

        def run():
            return linearize(model, u, y, x0, layout, **opts)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        lin = run()
        times.append(time.perf_counter() - t0)
    agree = float("nan")
    if reference:
        H = np.load(reference)
        agree = float(np.abs(lin.H - H).max() / np.abs(H).max())
    else:
        np.save(os.path.join(os.environ["RRNN_BENCH_TMP"], f"H_{steps}.npy"), lin.H)
    import rrnn_convex
    print(json.dumps({"seconds": statistics.median(times), "setup": setup, "agree": agree,
                      "package": os.path.dirname(rrnn_convex.__file__)}))


# ---------------------------------------------------------------------- parent
def run_worker(engine, sequences, steps, repeats, reference, path, tmp, timeout=3600.0) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               RRNN_BENCH_TMP=tmp)
    args = [engine, "--sequences", sequences, "--steps", steps, "--repeats", repeats] + \
        (["--reference", reference] if reference else [])
    return run_version(__file__, args, path, timeout, env)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--reference", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--sequences", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--casadi-steps", type=int, default=200, help="samples per sequence for the casadi engines")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision of the baseline numpy engine")
    ap.add_argument("--no-busy", dest="busy", action="store_false", help="skip the busy-machine runs")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.sequences, args.steps, args.repeats, args.reference)
    import tempfile
    tmp = tempfile.mkdtemp(prefix="rrnn_linspeed_")
    base = checkout(args.baseline, ROOT)
    cs = min(args.casadi_steps, args.steps)
    print(f"# linearize_speed: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.sequences} x {args.steps} samples, n = q = 10 ReLU, 462 weights + {args.sequences} x 10 initial "
          f"states; one BLAS thread; median of {args.repeats}")
    # reference J'J (the package's engine) at both lengths, before any timing
    for steps in sorted({args.steps, cs}):
        run_worker("numpy", args.sequences, steps, 1, None, None, tmp)
    print("| engine | machine | seconds (full length) | vs numpy | one-off set-up [s] | J'J vs numpy (rel.) |")
    print("|---|---|---|---|---|---|")
    for load in ["idle"] + (["other core busy"] if args.busy else []):
        busy = busy_core() if load != "idle" else None
        try:
            first = None
            for engine in ENGINES:
                steps = cs if engine.startswith("casadi") else args.steps
                ref = os.path.join(tmp, f"H_{steps}.npy")
                res = run_worker(engine, args.sequences, steps, args.repeats if steps == args.steps else 1,
                                 ref, base if engine.endswith("baseline") else None, tmp)
                label = engine + (f" (measured on {steps} samples, scaled)" if steps != args.steps else "") + \
                    (f" at {args.baseline}" if engine.endswith("baseline") else "")
                if "error" in res:
                    print(f"| {label} | {load} | error: {res['error']} | | | |", flush=True)
                    continue
                sec = res["seconds"] * args.steps / steps
                first = first or sec
                print(f"| {label} | {load} | {sec:.2f} | {sec / first:.2f}x | {res['setup']:.1f} | "
                      f"{res['agree']:.1e} |", flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()


if __name__ == "__main__":
    main()
