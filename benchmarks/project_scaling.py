"""Projection of large models onto Theta and Theta_gamma: the size-chosen path against the
interior-point reference.

Random non-contracting Elman ReLU RNNs (n = q, m = p = 1, spectral radius of W 1.5) are
projected with :func:`rrnn_convex.project.project`:

* ``auto``: ``solver=None``, the package default: Clarabel below n + q = 32, SCS (first order)
  from there on (``project.projection_solvers``); the projected model is re-certified by
  ``certify`` (the KYP path from n + q = 32: contraction only for Theta, the given gamma for
  Theta_gamma);
* ``interior``: ``solver="CLARABEL"``, the interior-point solve of the same SDP (its cost grows
  like n^6: 22 s at n = 32, over 10 minutes at n = 64), run up to ``--reference-max``.

Each run is a fresh subprocess. Columns: wall and CPU time of the ``project`` call (the SDP and
the re-certification; median of ``--repeats`` runs), the child's peak resident memory, the
solver that produced the model, the distance moved (normalised Frobenius norm) and its relative
gap to the interior-point distance, the certified gamma (Theta: "-", only contraction is
certified), and an independent ``Certificate.verify`` of the result.

    python benchmarks/project_scaling.py [--sizes 16 32 64 128] [--gammas theta 5] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from _subproc import repeated_runs, set_blas_threads

METHODS = ("interior", "auto")


def unstable_elman(n: int, seed: int = 0, radius: float = 1.5):
    from rrnn_convex import ImplicitRNN

    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, n))
    W *= radius / np.max(np.abs(np.linalg.eigvals(W)))
    return ImplicitRNN.from_elman(W, rng.standard_normal((n, 1)), 0.1 * rng.standard_normal(n),
                                  rng.standard_normal((1, n)) / np.sqrt(n), activation="relu")


def _gamma(text: str) -> float | None:
    return None if text.lower() == "theta" else float(text)


def worker(method: str, n: int, target: str, seed: int) -> None:
    """One projection in this process; prints one JSON line."""
    from rrnn_convex.project import project

    model = unstable_elman(n, seed)
    gamma = _gamma(target)
    w0, c0 = time.perf_counter(), time.process_time()
    pr = project(model, gamma=gamma, solver="CLARABEL" if method == "interior" else None)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    t0 = time.perf_counter()
    ok = bool(pr.certificate.verify(pr.model).ok)
    scale = float(np.sqrt(sum(np.sum(getattr(model.explicit(), k) ** 2)
                              for k in ("E", "F", "B1", "B2", "C2", "D21", "D22"))))
    print(json.dumps({"wall": wall, "cpu": cpu, "solver": pr.solver, "margin": pr.margin,
                      "distance": pr.distance, "rel": pr.distance / scale, "gamma": pr.certificate.gamma,
                      "contracting": pr.certificate.contracting, "verified": ok,
                      "verify_s": time.perf_counter() - t0}), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=4, metavar=("METHOD", "N", "TARGET", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--gammas", nargs="+", default=["theta", "5"], help="\"theta\" or a gamma value")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repeat-max", type=int, default=64, help="repeat (median) only up to this n")
    ap.add_argument("--reference-max", type=int, default=32, help="run the interior-point reference up to this n")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="OPENBLAS/OMP/MKL_NUM_THREADS for the runs (default: inherited)")
    args = ap.parse_args(argv)
    if args.worker:
        method, n, target, seed = args.worker
        return worker(method, int(n), target, int(seed))
    for g in args.gammas:
        _gamma(g)  # fail early on a bad value
    set_blas_threads(args.blas_threads)
    print(f"# project_scaling: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start")
    print("# random non-contracting Elman ReLU RNNs (spectral radius 1.5), m = p = 1, n = q; each run in a "
          f"fresh subprocess; time = project call (SDP + re-certification), median of {args.repeats} runs "
          f"for n <= {args.repeat_max}")
    header = (f"{'n=q':>4} {'set':>8} {'method':>8} {'solver':>8} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} "
              f"{'distance':>9} {'rel dist':>9} {'gap ref':>9} {'gamma':>8} {'verified':>8}")
    print(header)
    print("-" * len(header), flush=True)
    rows = []
    for n in args.sizes:
        for g in args.gammas:
            name = "Theta" if _gamma(g) is None else f"Theta_{g}"
            ref = None
            for method in METHODS:
                if method == "interior" and n > args.reference_max:
                    print(f"{n:>4} {name:>8} {method:>8} (not run: n > --reference-max)", flush=True)
                    continue
                r = repeated_runs(__file__, [method, n, g, args.seed], args.repeats if n <= args.repeat_max else 1,
                                  args.timeout, stop_after=120)
                if "error" in r:
                    print(f"{n:>4} {name:>8} {method:>8} ERROR {r['error']}", flush=True)
                    continue
                r.update(n=n, set=name, method=method)
                if method == "interior":
                    ref = r
                gap = f"{(r['distance'] - ref['distance']) / ref['distance']:+.1e}" if ref else "-"
                gs = f"{r['gamma']:.4g}" if r["gamma"] is not None else "-"
                print(f"{n:>4} {name:>8} {method:>8} {str(r['solver']):>8} {r['wall']:>8.2f} {r['cpu']:>8.2f} "
                      f"{r['peak_mb']:>8.0f} {r['distance']:>9.4f} {r['rel']:>9.4f} {gap:>9} {gs:>8} "
                      f"{str(r['verified']):>8}", flush=True)
                if ref and method == "auto":
                    print(f"{'':>4} {'':>8} {'ratio':>8} {'':>8} {ref['wall'] / r['wall']:>7.1f}x "
                          "(interior wall / auto wall)", flush=True)
                rows.append(r)
    return rows


if __name__ == "__main__":
    main()
