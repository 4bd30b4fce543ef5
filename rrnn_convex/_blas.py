"""BLAS thread limits for numerically heavy blocks.

On a 2-core machine shared with another process, OpenBLAS's second thread spins for a core it
does not get: measured 20-200x slower interior-point iterations on the KYP path and 1.7x slower
linearisations (issue 16) with numpy's default two threads. The blocks that make many mid-sized
BLAS calls therefore run with one thread by default (threadpoolctl, a core dependency).
"""
from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_limits


def blas_threads(limit: int | None):
    """Context manager: at most ``limit`` BLAS threads inside the block (None: no change)."""
    if limit is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(limit), user_api="blas")
