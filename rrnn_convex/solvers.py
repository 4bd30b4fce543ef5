"""Solver choice: Clarabel by default, SCS, MOSEK when a licence is found; fallbacks recorded.

A solver's "optimal" is never taken as a proof: callers re-check every point rigorously
(:mod:`rrnn_convex.rigorous`). This module only runs solvers and records what happened.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from .errors import SolverUnavailable

#: solvers this package knows how to drive, in default preference order
KNOWN_SOLVERS = ("CLARABEL", "MOSEK", "SCS")

#: accuracy settings: tight enough that a small SDP margin survives the rigorous re-check
SOLVER_OPTIONS = {
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9, "max_iter": 500},
    "SCS": {"eps_abs": 1e-8, "eps_rel": 1e-8, "max_iters": 100_000},
    "MOSEK": {},
}

#: the SCP step's settings (:meth:`rrnn_convex.fit._StepProblem.solve`), on top of
#: SOLVER_OPTIONS: Clarabel on one thread. Clarabel (0.11) factorises with faer on every core by
#: default; on the paper's step problems (a dense 462-weight quadratic form and a 30 x 30 LMI)
#: one thread took 5-20% less time per interior-point iteration than two on a 2-core machine, in
#: the same iterations. Looser gaps (1e-8, 1e-7) saved a few iterations more but moved the step's
#: solution by 1e-3 relative where its objective is small, so the accuracy settings stay.
STEP_OPTIONS = {"CLARABEL": {"max_threads": 1}}


def step_options(solver: str) -> dict:
    """Solver options of the SCP step for ``solver`` (:data:`STEP_OPTIONS`).

    Parameters
    ----------
    solver : str
        A cvxpy solver name.

    Returns
    -------
    dict
        Options to pass to :func:`run` (empty for solvers without step settings).
    """
    return dict(STEP_OPTIONS.get(solver, {}))


#: time limit of one solver call when the caller gives none, seconds. Every call gets one: SCS on
#: badly scaled data otherwise iterates for minutes (issue 15: > 2 min at 1e308 weights).
DEFAULT_TIME_LIMIT = 600.0


def time_limit_options(solver: str, seconds: float | None) -> dict:
    """The solver's own time-limit option for ``seconds``.

    Parameters
    ----------
    solver : str
        "CLARABEL", "SCS" or "MOSEK" (others: no option).
    seconds : float or None
        The limit (``DEFAULT_TIME_LIMIT`` when None; at least 1 ms).

    Returns
    -------
    dict
        Clarabel ``time_limit``, SCS ``time_limit_secs``, MOSEK
        ``mosek_params={"MSK_DPAR_OPTIMIZER_MAX_TIME": ...}``; empty for another solver.
    """
    t = DEFAULT_TIME_LIMIT if seconds is None else max(float(seconds), 1e-3)
    if solver == "CLARABEL":
        return {"time_limit": t}
    if solver == "SCS":
        return {"time_limit_secs": t}
    if solver == "MOSEK":
        return {"mosek_params": {"MSK_DPAR_OPTIMIZER_MAX_TIME": t}}
    return {}


def _flush_c_stdio() -> None:
    """``fflush(NULL)`` of the C library (solvers print through its buffered stdout)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _captured_stdout():
    """Capture the block's standard output, at both levels, and yield a one-element list that
    receives the text.

    Solvers print whatever ``verbose`` says: SCS's Python module through ``sys.stdout``, its C
    code and other solvers' through the C library's stdout (SCS: "ERROR: could not determine
    problem status"). The status is recorded in the Attempt, so the text goes to its ``detail``
    instead of the user's terminal. Without a usable file descriptor 1 only ``sys.stdout`` is
    redirected.
    """
    out = [""]
    py = io.StringIO()
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):
        with contextlib.redirect_stdout(py):
            yield out
        out[0] = py.getvalue()
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        for stream in (sys.stdout, sys.__stdout__):
            with contextlib.suppress(Exception):
                stream.flush()
        _flush_c_stdio()
        os.dup2(tmp.fileno(), fd)
        try:
            with contextlib.redirect_stdout(py):
                yield out
        finally:
            _flush_c_stdio()  # printf output still in the C library's buffer belongs to the file
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            out[0] = py.getvalue() + tmp.read().decode("utf-8", "replace")


@functools.lru_cache(maxsize=None)
def mosek_status() -> tuple[bool, str]:
    """Whether MOSEK can be used here: installed and licensed (cached).

    Returns
    -------
    usable : bool
        True when MOSEK is installed and a licence can be checked out.
    explanation : str
        Why not, or "MOSEK licensed".
    """
    if "MOSEK" not in cp.installed_solvers():
        return False, "MOSEK is not installed (pip install 'rrnn_convex[mosek]')"
    try:
        import mosek

        with mosek.Env() as env:
            env.checkoutlicense(mosek.feature.pts)
    except Exception as exc:  # mosek.Error without a licence file
        return False, f"MOSEK is installed but no licence was found ({str(exc).splitlines()[0][:200]})"
    return True, "MOSEK licensed"


def available_solvers() -> list[str]:
    """The known solvers that can run here, in default preference order.

    Returns
    -------
    list of str
        A subset of ``KNOWN_SOLVERS`` (MOSEK only when licensed).
    """
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

    Parameters
    ----------
    solver : str, optional
        The solver to try first (case-insensitive); Clarabel by default.
    fallback : bool
        Append the other available solvers.

    Returns
    -------
    list of str
        Upper-case names of ``KNOWN_SOLVERS``: the first solver, then (with ``fallback``) the
        other available ones in preference order.

    Raises
    ------
    ValueError
        An unknown solver name.
    rrnn_convex.errors.SolverUnavailable
        A known solver that cannot run here, e.g. MOSEK without a licence, or no solver at all
        (a RuntimeError, saying why and how to fix it).
    """
    avail = available_solvers()
    if solver is None:
        first = "CLARABEL" if "CLARABEL" in avail else (avail[0] if avail else None)
        if first is None:
            raise SolverUnavailable("solver: no SDP solver is available; reinstall cvxpy (it ships Clarabel and SCS)")
    else:
        if not isinstance(solver, str) or solver.upper() not in KNOWN_SOLVERS:
            raise ValueError(f"solver: expected one of {list(KNOWN_SOLVERS)} or None, got {solver!r}")
        first = solver.upper()
        if first not in avail:
            if first == "MOSEK":
                raise SolverUnavailable(f"solver: MOSEK was requested but cannot be used: {mosek_status()[1]}")
            raise SolverUnavailable(f"solver: {first} is not installed (installed: {cp.installed_solvers()})")
    rest = [s for s in avail if s != first] if fallback else []
    return [first] + rest


@dataclass(frozen=True)
class Attempt:
    """One solver run: what was asked, what came back, how long it took.

    Parameters
    ----------
    solver : str
        The solver's name.
    status : str
        cvxpy's status ("optimal", "optimal_inaccurate", "infeasible", "user_limit", ...) or
        "solver_error".
    seconds : float
        Wall time of the call.
    detail : str
        The error message, and anything the solver printed.
    """

    solver: str
    status: str
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (as stored in ``Certificate.attempts``).

        Returns
        -------
        dict
            ``solver``, ``status``, ``seconds`` and ``detail``.
        """
        return {"solver": self.solver, "status": self.status, "seconds": self.seconds, "detail": self.detail}


def solve_with_quadratic(problem: cp.Problem, solver: str, x: cp.Variable, H: np.ndarray, **opts) -> None:
    """Solve ``problem`` with ``x' H x`` added to its (minimised) objective.

    Why not ``cp.quad_form(x, H_parameter)``: cvxpy (1.9) does not treat a quadratic form with a
    Parameter matrix as DPP, so every solve would canonicalise the whole problem again (seconds
    for an LMI problem). The residual form ``sum_squares(R x + c)`` with a Parameter R is DPP,
    but it puts the dense R into the constraint matrix (the SCP step with 462 weights: 214,756
    nonzeros, and 32 Clarabel iterations of 0.3 s each). Here the problem is canonicalised by
    cvxpy as usual (cached, DPP) and ``2 H`` is added to the solver's quadratic-objective matrix
    (cvxpy's convention: 1/2 z' P z) in the rows and columns of ``x``; the solution is unpacked
    by cvxpy as usual.

    Parameters
    ----------
    problem : cvxpy.Problem
        A minimisation whose objective has a quadratic term (so that the solver data has a
        quadratic-objective matrix).
    solver : str
        A cvxpy solver name.
    x : cvxpy.Variable
        The variable of the added quadratic form.
    H : numpy.ndarray
        Symmetric positive semidefinite, of x's size.
    **opts
        Solver options, and ``verbose`` and ``warm_start`` of ``Problem.solve``.

    Raises
    ------
    cvxpy.error.SolverError
        The solver takes no quadratic objective, or ``x`` is not in the solver's data.
    """
    verbose = bool(opts.pop("verbose", False))
    warm_start = bool(opts.pop("warm_start", False))  # options of Problem.solve, not of the solver
    data, chain, inverse = problem.get_problem_data(solver, solver_opts=opts)
    if "P" not in data:
        raise cp.error.SolverError(f"{solver} takes no quadratic objective through cvxpy")
    offset = next((inv.var_offsets[x.id] for inv in inverse if x.id in getattr(inv, "var_offsets", {})), None)
    if offset is None:
        raise cp.error.SolverError(f"the variable {x.name()!r} is not in the solver's data")
    N = data["c"].size
    Hc = sp.coo_matrix(2.0 * np.asarray(H, dtype=np.float64))
    data["P"] = (sp.csc_matrix(data["P"]) + sp.csc_matrix((Hc.data, (Hc.row + offset, Hc.col + offset)),
                                                         shape=(N, N))).tocsc()
    solution = chain.solve_via_data(problem, data, warm_start, verbose, opts)
    problem.unpack_results(solution, chain, inverse)


def run(problem: cp.Problem, solver: str, *, time_limit: float | None = None, quadratic=None,
        **options) -> Attempt:
    """Solve ``problem`` with ``solver``; never raises for solver failures, returns an Attempt.

    ``quadratic``: ``(x, H)``, a cvxpy Variable and a symmetric PSD matrix: ``x' H x`` is added to
    the objective (see :func:`solve_with_quadratic`; the solver must take a quadratic objective).

    ``time_limit``: seconds for this call (the solver's own option, :func:`time_limit_options`;
    ``DEFAULT_TIME_LIMIT`` when None); a solver stopped by it reports the status "user_limit"
    (or an inaccurate one). Anything the solver prints to stdout is kept out of the terminal and
    recorded in the Attempt's ``detail``.

    Parameters
    ----------
    problem : cvxpy.Problem
        The problem; its variables receive the solution.
    solver : str
        A cvxpy solver name (``KNOWN_SOLVERS`` get ``SOLVER_OPTIONS``).
    time_limit : float, optional
        Seconds for this call.
    quadratic : tuple, optional
        ``(x, H)`` as described above.
    **options
        Solver options, overriding ``SOLVER_OPTIONS``.

    Returns
    -------
    Attempt
        The status ("solver_error" with the message when the solver raised), the time and the
        detail. The solution, if any, is in the problem's variables.
    """
    opts = dict(SOLVER_OPTIONS.get(solver, {}))
    opts.update(options)
    for key, limit in time_limit_options(solver, time_limit).items():  # the tighter limit wins
        if key == "mosek_params":
            params = dict(opts.get(key, {}))
            mine = params.get("MSK_DPAR_OPTIMIZER_MAX_TIME")
            params["MSK_DPAR_OPTIMIZER_MAX_TIME"] = min(mine, limit["MSK_DPAR_OPTIMIZER_MAX_TIME"]) \
                if mine is not None else limit["MSK_DPAR_OPTIMIZER_MAX_TIME"]
            opts[key] = params
        else:
            opts[key] = min(opts[key], limit) if key in opts else limit
    t0 = time.perf_counter()
    detail = ""
    with _captured_stdout() as printed:
        try:
            with warnings.catch_warnings():
                # "Solution may be inaccurate": the status is recorded and every point is re-checked
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                if quadratic is None:
                    problem.solve(solver=solver, **opts)
                else:
                    solve_with_quadratic(problem, solver, *quadratic, **opts)
            status = str(problem.status)
        except cp.error.SolverError as exc:
            status, detail = "solver_error", str(exc).splitlines()[0][:300] if str(exc) else "SolverError"
        except Exception as exc:  # a solver crashing must not take the caller down
            status, detail = "solver_error", f"{type(exc).__name__}: {str(exc)[:300]}"
        except BaseException as exc:  # a Rust panic inside Clarabel reaches Python as pyo3's PanicException,
            if type(exc).__name__ != "PanicException":  # a BaseException; KeyboardInterrupt etc. go on
                raise
            status, detail = "solver_error", f"the solver panicked: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    noise = " ".join(printed[0].split())
    if noise and not opts.get("verbose"):
        detail = (detail + f" (solver printed: {noise[:300]})").strip()
    elif noise:  # the caller asked for the solver's log: pass it on
        sys.stdout.write(printed[0])
    return Attempt(solver, status, time.perf_counter() - t0, detail)
