"""Solver choice: Clarabel by default, SCS, MOSEK when a licence is found; fallbacks recorded.

A solver's "optimal" is never taken as a proof: callers re-check every point rigorously
(:mod:`rrnn_convex.rigorous`). This module only runs solvers and records what happened.
"""
from __future__ import annotations

import functools
import time
import warnings
from dataclasses import dataclass

import cvxpy as cp

#: solvers this package knows how to drive, in default preference order
KNOWN_SOLVERS = ("CLARABEL", "MOSEK", "SCS")

#: accuracy settings: tight enough that a small SDP margin survives the rigorous re-check
SOLVER_OPTIONS = {
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 500},
    "SCS": {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 100_000},
    "MOSEK": {},
}


@functools.lru_cache(maxsize=None)
def mosek_status() -> tuple[bool, str]:
    """(usable, explanation) for MOSEK: installed and licensed."""
    if "MOSEK" not in cp.installed_solvers():
        return False, "MOSEK is not installed (pip install 'rrnn_convex[mosek]') "
    try:
        import mosek

        with mosek.Env() as env:
            env.checkoutlicense(mosek.feature.pts)
    except Exception as exc:  # mosek.Error without a licence file
        return False, f"MOSEK is installed but no licence was found ({str(exc).splitlines()[0][:200]})"
    return True, "MOSEK licensed"


def available_solvers() -> list[str]:
    """The known solvers that can run here, in default preference order."""
    installed = set(cp.installed_solvers())
    out = []
    for name in KNOWN_SOLVERS:
        if name not in installed:
            continue
        if name == "MOSEK" and not mosek_status()[0]:
            continue
        out.append(name)
    return out


def solver_sequence(solver: str | None = None, fallback: bool = True) -> list[str]:
    """Solvers to try in order: the requested one (or Clarabel), then the other available ones.

    Raises ValueError for an unknown name and RuntimeError (saying why and how to fix it) for a
    known solver that cannot run here, e.g. MOSEK without a licence.
    """
    avail = available_solvers()
    if solver is None:
        first = "CLARABEL" if "CLARABEL" in avail else (avail[0] if avail else None)
        if first is None:
            raise RuntimeError("solver: no SDP solver is available; reinstall cvxpy (it ships Clarabel and SCS)")
    else:
        if not isinstance(solver, str) or solver.upper() not in KNOWN_SOLVERS:
            raise ValueError(f"solver: expected one of {list(KNOWN_SOLVERS)} or None, got {solver!r}")
        first = solver.upper()
        if first not in avail:
            if first == "MOSEK":
                raise RuntimeError(f"solver: MOSEK was requested but cannot be used: {mosek_status()[1]}")
            raise RuntimeError(f"solver: {first} is not installed (installed: {cp.installed_solvers()})")
    rest = [s for s in avail if s != first] if fallback else []
    return [first] + rest


@dataclass(frozen=True)
class Attempt:
    """One solver run: what was asked, what came back, how long it took."""

    solver: str
    status: str
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict:
        return {"solver": self.solver, "status": self.status, "seconds": self.seconds, "detail": self.detail}


def run(problem: cp.Problem, solver: str, **options) -> Attempt:
    """Solve ``problem`` with ``solver``; never raises for solver failures, returns an Attempt."""
    opts = dict(SOLVER_OPTIONS.get(solver, {}))
    opts.update(options)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # "Solution may be inaccurate": the status is recorded and every point is re-checked
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            problem.solve(solver=solver, **opts)
        status = str(problem.status)
        detail = ""
    except cp.error.SolverError as exc:
        status, detail = "solver_error", str(exc).splitlines()[0][:300] if str(exc) else "SolverError"
    except Exception as exc:  # a solver crashing must not take the caller down
        status, detail = "solver_error", f"{type(exc).__name__}: {str(exc)[:300]}"
    return Attempt(solver, status, time.perf_counter() - t0, detail)
