"""Certification of large models: the scalable KYP path against the exact dense SDP.

Random contracting Elman ReLU RNNs (examples.example_elman, ||W||_2 = 0.9), m = p = 1, n = q.
For each size, ``certify_scalable`` (rrnn_convex.scalable: frequency-gridded multiplier SDP +
Riccati metric + rigorous verification) and the reference ``certify(formulation="dense",
solver="CLARABEL")`` (the exact SDP in the full metric Q) are run, each in its own subprocess,
and the table shows: wall and CPU time of the call (median over --repeats runs for sizes up to
--repeat-max; SDP solves + rigorous verification included), the child's peak resident memory
(``os.wait4`` rusage, ru_maxrss), the certified gamma, its relative gap to the reference gamma,
the time of one independent ``Certificate.verify`` and its result. The reference is run only up
to --reference-max (its cost grows like (n(n+1)/2)^3: ~2 min at n = 64).

    python benchmarks/certify_scaling_large.py [--sizes 16 32 64 128 256] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

METHODS = ("scalable", "reference")


def worker(method: str, n: int, seed: int) -> None:
    """Run one certification in this process and print one JSON line."""
    from rrnn_convex import certify
    from rrnn_convex.examples import example_elman
    from rrnn_convex.scalable import certify_scalable

    model = example_elman(n=n, seed=seed)
    w0, c0 = time.perf_counter(), time.process_time()
    if method == "scalable":
        cert = certify_scalable(model)
    else:
        cert = certify(model, solver="CLARABEL", formulation="dense", fallback=False)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    t0 = time.perf_counter()
    check = cert.verify(model)
    tv = time.perf_counter() - t0
    detail = ""
    if method == "scalable":
        kyp = [a for a in cert.attempts if a.get("solver") == "KYP-IPM" and "iterations" in a]
        if kyp:
            detail = f"K={kyp[-1].get('frequencies')} rounds={len(kyp)} it={sum(a.get('iterations', 0) for a in kyp)}"
        if "lower bound" in cert.reason:
            detail += " lb=" + cert.reason.split("lower bound")[-1].strip().split()[0].rstrip(";,")
    print(json.dumps({"wall": wall, "cpu": cpu, "gamma": cert.gamma, "certified": cert.certified,
                      "verified": bool(check.ok), "verify_s": tv, "detail": detail,
                      "reason": cert.reason[:300]}), flush=True)


_child_env = dict(os.environ)


def run_child_wait4(worker_args: list, timeout: float, script: str = __file__) -> dict:
    """``python script --worker *worker_args`` in a fresh interpreter, reaped with os.wait4 to
    read the child's own peak RSS; returns the last JSON line it printed (or {"error": ...})."""
    cmd = [sys.executable, os.path.abspath(script), "--worker", *map(str, worker_args)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env)
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            return {"error": f"timeout after {timeout:.0f} s"}
        time.sleep(0.05)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"error": (err.strip().splitlines() or ["?"])[-1][:200]}
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_mb"] = ru.ru_maxrss / 1024.0  # Linux: kilobytes
    res["elapsed"] = time.perf_counter() - t0
    return res


def repeated_runs(worker_args: list, repeats: int, timeout: float, script: str = __file__,
                  stop_after: float = 60.0) -> dict:
    """Up to ``repeats`` child runs (stopping early after an error or a run longer than
    ``stop_after`` seconds): the last good run's fields with the median wall and CPU time and the
    largest peak memory, or {"error": ...} when no run succeeded."""
    runs = []
    for _ in range(repeats):
        runs.append(run_child_wait4(worker_args, timeout, script))
        if "error" in runs[-1] or runs[-1]["wall"] > stop_after:
            break
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    return dict(ok[-1], wall=statistics.median(r["wall"] for r in ok), cpu=statistics.median(r["cpu"] for r in ok),
                peak_mb=max(r["peak_mb"] for r in ok))


def set_blas_threads(threads: int | None) -> None:
    """OPENBLAS/OMP/MKL_NUM_THREADS of the child processes (None: inherited)."""
    if threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            _child_env[var] = str(threads)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=3, metavar=("METHOD", "N", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repeat-max", type=int, default=64, help="repeat (median) only up to this n")
    ap.add_argument("--reference-max", type=int, default=64, help="run the exact reference up to this n")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="OPENBLAS/OMP/MKL_NUM_THREADS for the runs (default: inherited). On a machine "
                         "where another process is busy, 1 avoids BLAS threads spinning on a core "
                         "they do not get (seen: 10x slower)")
    args = ap.parse_args(argv)
    if args.worker:
        method, n, seed = args.worker
        return worker(method, int(n), int(seed))

    set_blas_threads(args.blas_threads)
    print(f"# certify_scaling_large: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start, "
          f"BLAS threads {_child_env.get('OPENBLAS_NUM_THREADS', 'default')}")
    print("# random contracting Elman ReLU RNNs (||W||_2 = 0.9), m = p = 1, n = q; each run in a fresh "
          "subprocess; time = certify call (solves + rigorous verification), median of "
          f"{args.repeats} runs for n <= {args.repeat_max}")
    header = (f"{'n=q':>4} {'method':>9} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'gamma':>11} "
              f"{'gap ref':>9} {'verify s':>8} {'verified':>8}  detail")
    print(header)
    print("-" * (len(header) + 20), flush=True)
    for n in args.sizes:
        ref_gamma = None
        for method in ("reference", "scalable"):
            if method == "reference" and n > args.reference_max:
                print(f"{n:>4} {method:>9} {'(not run: n > --reference-max)':>40}", flush=True)
                continue
            r = repeated_runs([method, n, args.seed], args.repeats if n <= args.repeat_max else 1,
                              args.timeout, stop_after=60)
            if "error" in r:
                print(f"{n:>4} {method:>9} ERROR {r['error']}", flush=True)
                continue
            wall, cpu, peak = r["wall"], r["cpu"], r["peak_mb"]
            g = r["gamma"]
            if method == "reference":
                ref_gamma = g
            gap = (f"{(g - ref_gamma) / ref_gamma:+.2e}" if (g is not None and ref_gamma is not None)
                   else "-")
            gs = f"{g:.7g}" if g is not None else "none"
            print(f"{n:>4} {method:>9} {wall:>8.2f} {cpu:>8.2f} {peak:>8.0f} {gs:>11} {gap:>9} "
                  f"{r['verify_s']:>8.3f} {str(r['verified']):>8}  {r['detail']}"
                  + ("" if r["certified"] else f" NOT CERTIFIED: {r['reason'][:120]}"), flush=True)


if __name__ == "__main__":
    main()
