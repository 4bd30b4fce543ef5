"""Benchmark runs in fresh subprocesses: wall/CPU time medians and the child's peak memory.

A benchmark script calls itself as ``python script --worker ARGS...``; the worker prints one
JSON line with at least "wall" (seconds). The parent reaps it with ``os.wait4`` to read the
child's own peak resident memory (ru_maxrss), so one run's allocations never count for another.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

_child_env = dict(os.environ)


def set_blas_threads(threads: int | None) -> None:
    """OPENBLAS/OMP/MKL_NUM_THREADS of the child processes (None: inherited). On a machine
    where another process is busy, 1 avoids BLAS threads spinning on a core they do not get."""
    if threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            _child_env[var] = str(threads)


def blas_threads() -> str:
    return _child_env.get("OPENBLAS_NUM_THREADS", "default")


def run_child(script: str, worker_args: list, timeout: float) -> dict:
    """``python script --worker *worker_args`` in a fresh interpreter; the last JSON line it
    printed plus "peak_mb" and "elapsed", or {"error": ...} (non-zero exit or timeout)."""
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
    if proc.returncode < 0:
        sig = -proc.returncode
        return {"error": f"killed by signal {sig}" + (" (out of memory?)" if sig == 9 else "")}
    if proc.returncode != 0:
        return {"error": (err.strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:200]}
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_mb"] = ru.ru_maxrss / 1024.0  # Linux: kilobytes
    res["elapsed"] = time.perf_counter() - t0
    return res


def repeated_runs(script: str, worker_args: list, repeats: int, timeout: float, stop_after: float = 60.0) -> dict:
    """Up to ``repeats`` child runs (stopping early after an error or a run longer than
    ``stop_after`` seconds): the last good run's fields with the median wall and CPU time, the
    largest peak memory and "runs", or the last {"error": ...} when no run succeeded."""
    runs = []
    for _ in range(repeats):
        runs.append(run_child(script, worker_args, timeout))
        if "error" in runs[-1] or runs[-1]["wall"] > stop_after:
            break
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    return dict(ok[-1], wall=statistics.median(r["wall"] for r in ok),
                cpu=statistics.median(r.get("cpu", r["wall"]) for r in ok),
                peak_mb=max(r["peak_mb"] for r in ok), runs=len(ok))


#: a one-thread matrix-product loop: keeps one core busy, as another user's job would
BUSY = ("import numpy as np\na = np.random.default_rng(0).random((400, 400))\n"
        "while True:\n    a = a @ a; a /= np.abs(a).max()\n")


def busy_core():
    """Start the :data:`BUSY` loop in a subprocess (one BLAS thread); kill it when done."""
    return subprocess.Popen([sys.executable, "-c", BUSY], env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))


def run_version(script: str, worker_args: list, path: str | None, timeout: float, env: dict | None = None) -> dict:
    """``python script --worker *worker_args`` with the package at ``path`` first on PYTHONPATH
    (None: the installed one); the last JSON line it printed, or {"error": ...}. The worker's
    JSON must carry "package" (where rrnn_convex was imported from), checked against ``path``."""
    env = dict(os.environ if env is None else env)
    if path is not None:
        env["PYTHONPATH"] = path + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, os.path.abspath(script), "--worker", *map(str, worker_args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=os.path.dirname(os.path.abspath(script)))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    out = json.loads(lines[-1])
    if path is not None and not out["package"].startswith(path):
        return {"error": f"imported {out['package']}, not the baseline in {path}"}
    return out


def checkout(rev: str, root: str) -> str:
    """The package ``rrnn_convex/`` at git revision ``rev`` of the repository ``root``, extracted
    into a temporary folder (put it first on PYTHONPATH to import that version)."""
    import tempfile
    folder = tempfile.mkdtemp(prefix="rrnn_baseline_")
    archive = subprocess.run(["git", "-C", root, "archive", rev, "rrnn_convex"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
    return folder
