"""Certification at scale: the KYP path against the exact SDPs, n = q from 16 to 256.

Random contracting Elman ReLU RNNs (``examples.example_elman``, ||W||_2 = 0.9), m = p = 1, n = q.
Methods (``--methods``), each run in a fresh subprocess:

* ``kyp``: ``certify(formulation="kyp")`` (rrnn_convex.scalable: frequency-gridded multiplier
  SDP + Riccati metric + rigorous verification; the default of ``certify`` from n + q = 32);
* ``SOLVER:FORM`` with SOLVER CLARABEL or SCS and FORM ``dense`` or ``lifted``: the exact SDPs
  in the full metric (``certify(solver=..., formulation=..., fallback=False)``). "dense" is
  DESIGN.md's LMI with the P block eliminated (size n + q + m + p; for these Elman models, E = I
  and A = 0, it is also the naive implicit-weights formulation); "lifted" keeps the P block
  (size 2n + q + m + p, every block a product with the variable). ``CLARABEL:dense`` is the
  reference for the gap column.

Columns: wall and CPU time of the certify call (minimal gamma: SDP solves + rigorous
verification; median of ``--repeats`` runs up to ``--repeat-max``), the child's peak resident
memory, the certified gamma, its relative gap to the reference, one independent
``Certificate.verify`` (time, result), and the ratio reference wall / method wall. A method is
not run at larger sizes once a run took longer than ``--max-seconds``.

    python benchmarks/certify_scaling.py [--sizes 16 32 64 128 256] [--methods kyp CLARABEL:dense]
    python benchmarks/certify_scaling.py --sizes 8 16 32 48 64 --methods CLARABEL:dense \\
        CLARABEL:lifted SCS:dense SCS:lifted        # the exact formulations against each other
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

from _subproc import blas_threads, repeated_runs, set_blas_threads

REFERENCE = "CLARABEL:dense"


def _parse_method(text: str) -> tuple[str | None, str]:
    if text == "kyp":
        return None, "kyp"
    solver, _, form = text.partition(":")
    if solver not in ("CLARABEL", "SCS", "MOSEK") or form not in ("dense", "lifted"):
        raise argparse.ArgumentTypeError(f"method: expected 'kyp' or SOLVER:FORM (CLARABEL|SCS|MOSEK : "
                                         f"dense|lifted), got {text!r}")
    return solver, form


def worker(method: str, n: int, seed: int) -> None:
    """One certification in this process; prints one JSON line."""
    from rrnn_convex import certify
    from rrnn_convex.examples import example_elman

    solver, form = _parse_method(method)
    model = example_elman(n=n, seed=seed)
    w0, c0 = time.perf_counter(), time.process_time()
    cert = certify(model, solver=solver, formulation=form, fallback=False)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    t0 = time.perf_counter()
    ok = bool(cert.verify(model).ok) if cert.certified else False
    tv = time.perf_counter() - t0
    detail = ""
    kyp = [a for a in cert.attempts if a.get("solver") == "KYP-IPM" and "iterations" in a]
    if kyp:
        detail = f"K={kyp[-1].get('frequencies')} rounds={len(kyp)} it={sum(a.get('iterations', 0) for a in kyp)}"
    if "lower bound" in cert.reason:
        detail += " lb=" + cert.reason.split("lower bound")[-1].strip().split()[0].rstrip(";,")
    print(json.dumps({"wall": wall, "cpu": cpu, "gamma": cert.gamma, "certified": cert.certified,
                      "verified": ok, "verify_s": tv, "detail": detail, "reason": cert.reason[:300]}), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=3, metavar=("METHOD", "N", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--methods", nargs="+", default=[REFERENCE, "kyp"],
                    help=f"'kyp' and/or SOLVER:FORM (default: {REFERENCE} kyp)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repeat-max", type=int, default=64, help="repeat (median) only up to this n")
    ap.add_argument("--max-seconds", type=float, default=300.0,
                    help="do not run a method at larger sizes once a run took longer than this")
    ap.add_argument("--exact-max", type=int, default=64,
                    help="run the exact SDPs (SOLVER:FORM) only up to this n (n = 64: 2 min, 4.6 GB; n = 128 "
                         "needs ~16x the memory)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="OPENBLAS/OMP/MKL_NUM_THREADS for the runs (default: inherited). On a busy machine "
                         "1 avoids BLAS threads spinning on a core they do not get (seen: 10x slower)")
    args = ap.parse_args(argv)
    if args.worker:
        method, n, seed = args.worker
        return worker(method, int(n), int(seed))
    for m in args.methods:
        _parse_method(m)
    set_blas_threads(args.blas_threads)
    print(f"# certify_scaling: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start, "
          f"BLAS threads {blas_threads()}")
    print("# random contracting Elman ReLU RNNs (||W||_2 = 0.9), m = p = 1, n = q; each run in a fresh "
          "subprocess; time = certify call (solves + rigorous verification), median of "
          f"{args.repeats} runs for n <= {args.repeat_max}")
    header = (f"{'n=q':>4} {'method':>15} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'gamma':>11} "
              f"{'gap ref':>9} {'verify s':>8} {'verified':>8} {'ratio':>7}  detail")
    print(header)
    print("-" * (len(header) + 20), flush=True)
    too_slow, rows = set(), []
    methods = sorted(args.methods, key=lambda m: m != REFERENCE)  # the reference first in each size
    for n in args.sizes:
        ref = None
        for method in methods:
            if method != "kyp" and n > args.exact_max:
                print(f"{n:>4} {method:>15} (not run: n > --exact-max)", flush=True)
                continue
            if method in too_slow:
                print(f"{n:>4} {method:>15} (not run: a smaller size took > --max-seconds)", flush=True)
                continue
            r = repeated_runs(__file__, [method, n, args.seed], args.repeats if n <= args.repeat_max else 1,
                              args.timeout, stop_after=60)
            if "error" in r:
                print(f"{n:>4} {method:>15} ERROR {r['error']}", flush=True)
                too_slow.add(method)
                continue
            if r["wall"] > args.max_seconds:
                too_slow.add(method)
            if method == REFERENCE:
                ref = r
            g = r["gamma"]
            gap = f"{(g - ref['gamma']) / ref['gamma']:+.2e}" if (g is not None and ref and ref["gamma"]) else "-"
            ratio = f"{ref['wall'] / r['wall']:.1f}x" if ref else "-"
            gs = f"{g:.7g}" if g is not None else "none"
            print(f"{n:>4} {method:>15} {r['wall']:>8.2f} {r['cpu']:>8.2f} {r['peak_mb']:>8.0f} {gs:>11} {gap:>9} "
                  f"{r['verify_s']:>8.3f} {str(r['verified']):>8} {ratio:>7}  {r['detail']}"
                  + ("" if r["certified"] else f" NOT CERTIFIED: {r['reason'][:120]}"), flush=True)
            rows.append(dict(r, n=n, method=method))
    return rows


if __name__ == "__main__":
    main()
