"""Certify the minimal gamma of random contracting Elman ReLU RNNs (m = p = 1, n = q).

For each size, solver (Clarabel, SCS) and formulation, prints the wall time of certify()
(median over --repeats runs; SDP solves + rigorous verification), the time of one independent
verify(), the certified gamma, the LMI margin and the verification result.

Formulations (both on the explicit form, variable Qx = E'QE): "dense" (the package default:
DESIGN.md's LMI with the P block eliminated, dense A'QxA blocks, size n + q + m + p) and
"lifted" (DESIGN.md's block matrix with E -> Qx, F -> Qx A, P -> Qx: every block a product with
the variable, size 2n + q + m + p). For these Elman models E = I and A = 0, so "dense" is also
the naive implicit-weights formulation of the issue. A (solver, formulation) pair is not run at
larger sizes once one run took longer than --max-seconds.

    python benchmarks/certify_scaling.py [--sizes 8 16 32 48 64] [--repeats 3] [--max-seconds 120]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time


from rrnn_convex import certify
from rrnn_convex.examples import example_elman


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 48, 64])
    ap.add_argument("--solvers", nargs="+", default=["CLARABEL", "SCS"])
    ap.add_argument("--formulations", nargs="+", default=["lifted", "dense"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    print(f"# certify_scaling: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    print(f"# random contracting Elman ReLU RNNs (||W||_2 = 0.9), m = p = 1, n = q; median of "
          f"{args.repeats} runs (1 run when a run exceeds 20 s)")
    header = (f"{'n=q':>4} {'solver':>9} {'form':>7} {'certify s':>10} {'verify s':>9} "
              f"{'gamma':>12} {'margin':>10} {'verified':>8} {'path':>22}")
    print(header)
    print("-" * len(header))
    too_slow = set()
    ref_gamma = {}
    for n in args.sizes:
        model = example_elman(n=n, seed=args.seed)
        for solver in args.solvers:
            for form in args.formulations:
                key = (solver, form)
                if key in too_slow:
                    print(f"{n:>4} {solver:>9} {form:>7} {'skipped (previous size > max-seconds)':>40}")
                    continue
                times, cert = [], None
                for r in range(args.repeats):
                    t0 = time.perf_counter()
                    cert = certify(model, solver=solver, formulation=form, fallback=False)
                    times.append(time.perf_counter() - t0)
                    if times[-1] > 20:
                        break
                t0 = time.perf_counter()
                ok = cert.verify(model).ok if cert.certified else False
                tv = time.perf_counter() - t0
                t = statistics.median(times)
                if t > args.max_seconds:
                    too_slow.add(key)
                g = cert.gamma if cert.gamma is not None else float("nan")
                ref_gamma.setdefault(n, g)
                modes = "+".join(a.get("mode", "?")[:4] for a in cert.attempts)
                print(f"{n:>4} {solver:>9} {form:>7} {t:>10.2f} {tv:>9.3f} {g:>12.6f} "
                      f"{cert.margin:>10.2e} {str(ok):>8} {modes:>22}", flush=True)


if __name__ == "__main__":
    main()
