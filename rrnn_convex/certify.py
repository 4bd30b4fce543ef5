"""Certification of given weights: contraction and the smallest certifiable incremental l2 gain.

``certify(model)`` solves the exact fixed-weight LMI of docs/design.md section 3.5 (no relaxation),
then re-checks the solver's point rigorously in float64 (:mod:`rrnn_convex.rigorous`) from the
model's actual weights. Only a point that passes that check becomes a certificate; otherwise the
answer is "not certified" with the reason.

This module is the dispatcher: it checks the arguments, refuses weights float64 cannot handle,
puts the state equations in their own units (:class:`EquationUnits`) and chooses the method -- the
exact SDP search (:class:`~rrnn_convex.exact.ExactSearch`) or, from ``AUTO_MIN_SIZE`` states +
neurons on, the KYP path (:class:`~rrnn_convex.kyp.KYPSearch`, :func:`certify_scalable`) with the
exact search as its fallback. What a certificate proves is said in :mod:`rrnn_convex.certificate`.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from . import _blas
from . import solvers as _solvers
from ._validation import check_scalar
from .certificate import (  # noqa: F401 (re-exported: modules and tests import them from here)
    CERT_SCHEMA, CERT_SCHEMA_VERSION, MARGINAL_T, VERIFICATION_METHOD, Certificate, Verification,
    certificate_from, infeasible_contraction_reason, linearised_radius)
from .exact import ILL_CONDITIONED_E, ExactSearch  # noqa: F401 (ILL_CONDITIONED_E re-exported)
from .kyp import KYPSearch
from .lmi import equation_exponent
from .model import ImplicitRNN

FORMULATIONS = ("auto", "lifted", "dense", "kyp")
#: certify()'s default overall time budget, seconds (each solver call also stops at the budget left)
DEFAULT_TIME_LIMIT = 600.0
#: weights beyond 2^500 / sqrt(N) (E scaled to unit size, N the LMI's size) make the LMI's quadratic
#: terms (F'QF, C1'Lam C1, C2'C2 / gamma) leave float64's range (1.8e308): refused up front
SCALE_LIMIT_LOG2 = 500
#: the dispatch rule of formulation="auto": the KYP path from this many states + neurons on
#: (benchmarks/certify_scaling.py: at n = q = 16 the exact dense SDP takes 0.28 s and the KYP
#: path 0.13 s; at n = q = 32, 9.4 s and 1.7 s)
AUTO_MIN_SIZE = 32


def scale_refusal(model: ImplicitRNN) -> str:
    """Why float64 certification of ``model`` is meaningless at its scale ('' if it is not).

    With the state equations scaled to max|E| ~ 1 (:func:`~rrnn_convex.lmi.equation_exponent`,
    which certify applies anyway), the LMI contains products of two weights (F'QF, B2'QB2,
    C1'Lam C1, and C2'C2 / gamma in its Schur complement): weights beyond 2^500 / sqrt(N) put
    them beyond float64's range (1.8e308) for any certificate of unit scale, and no solver
    handles such data (issue 15: C = [[1e308, 1e308]] kept SCS busy for minutes).

    Parameters
    ----------
    model : ImplicitRNN
        The model.

    Returns
    -------
    str
        The reason, starting with "not certified", or ''.
    """
    k = equation_exponent(model)
    N = model.n + model.q + model.m + model.p
    tops = {}
    for name in ("E", "F", "B1", "B2", "C1", "D11", "D12", "C2", "D21", "D22"):
        X = np.abs(np.asarray(getattr(model, name), dtype=np.float64))
        if X.size:
            tops[name] = float(np.ldexp(X.max(), k)) if name in ("E", "F", "B1", "B2") else float(X.max())
    name = max(tops, key=tops.get)
    top = tops[name]
    if top <= 2.0 ** SCALE_LIMIT_LOG2 / np.sqrt(N):
        return ""
    where = f"{name}, with E scaled to max|E| ~ 1" if name in ("F", "B1", "B2") else name
    return (f"not certified: weights up to {top:.3g} ({where}) make float64 certification meaningless: the "
            f"LMI's quadratic terms reach ~1e{2 * np.log10(top):.0f}, beyond float64's range (1.8e308); "
            f"rescale the model's inputs, outputs or states (the certified gain scales with them)")


class EquationUnits:
    """The state equations in their own units: ``model.transform(2^k I)`` with max|E| ~ 1.

    :meth:`apply` scales (E, F, B1, B2, bx) by 2^k (exact: a power of two); :meth:`invert` maps a
    certificate of the scaled model back: the metric ``2^2k Q`` (V is the same function of dx),
    re-verified against the model itself.

    Parameters
    ----------
    model : ImplicitRNN
        The model as given.
    """

    def __init__(self, model: ImplicitRNN):
        self.model = model
        self.k = equation_exponent(model)

    def apply(self) -> ImplicitRNN:
        """The model in its own units (the model itself when k = 0).

        Returns
        -------
        ImplicitRNN
            E, F, B1, B2 and bx multiplied by ``2^k``; the other weights unchanged.
        """
        if self.k == 0:
            return self.model
        return replace(self.model, **{w: np.ldexp(getattr(self.model, w), self.k)
                                      for w in ("E", "F", "B1", "B2", "bx")})

    def invert(self, cert: Certificate, seconds: float) -> Certificate:
        """The certificate of the scaled model as one of the model (unchanged when k = 0).

        Parameters
        ----------
        cert : Certificate
            The answer for :meth:`apply`'s model.
        seconds : float
            The whole call's time, recorded as ``solve_seconds``.

        Returns
        -------
        Certificate
            Verified against the model, or "not certified" when the mapped metric leaves
            float64's range.
        """
        if self.k == 0:
            return cert
        k, model = self.k, self.model
        base = replace(cert, model_hash=model.weights_hash(), solve_seconds=seconds)
        if not cert.contracting:
            return base
        with np.errstate(over="ignore", under="ignore"):
            mapped = replace(base, Q=np.ldexp(cert.Q, 2 * k))
        check = mapped.verify(model)
        if check.ok:
            return replace(mapped, margin=check.estimate, proven_margin=check.proven_margin)
        return replace(base, contracting=False, gamma=None, Q=None, lam=None,
                       reason=f"the certificate found with E scaled by 2^{k} does not verify in the model's "
                              f"own units (its metric 2^{2 * k} Q leaves float64's range): {check.reason}")


def _checked_gamma(model, gamma):
    """``gamma`` as a positive float (None stays None); TypeError for a model that is not one."""
    if not isinstance(model, ImplicitRNN):
        raise TypeError(f"model: expected an ImplicitRNN, got {type(model).__name__}")
    return None if gamma is None else check_scalar(gamma, "gamma", low=0.0)


def certify(model: ImplicitRNN, gamma: float | None = None, solver: str | None = None, *,
            formulation: str = "auto", margin: float = 1e-9, fallback: bool = True,
            contraction_only: bool = False, time_limit: float | None = DEFAULT_TIME_LIMIT) -> Certificate:
    """Certify contraction and an incremental l2-gain bound of ``model`` (docs/design.md section 3.5).

    Scale: the answer does not depend on the units of the state equations: the model is
    certified as ``transform(2^k I)`` with max|E| ~ 1 and the metric mapped back
    (``Q = 2^2k Q_unit``, :class:`EquationUnits`), and :meth:`Certificate.verify` evaluates the
    LMI the same way. Weights whose LMI overflows float64 in those units are refused up front
    (:func:`scale_refusal`).

    ``gamma=G``: a G above the smallest certifiable gamma is always certified (the LMI is
    monotone in gamma: ``M(Q, lam, G) = M(Q, lam, g) + (G - g) diag(0, 0, I, I)``, so the
    minimal certificate's (Q, lam) is re-verified at G when the fixed-gamma SDP gives no
    verified point).

    Procedure of the exact SDPs for ``gamma=None`` (:class:`~rrnn_convex.exact.ExactSearch`):

    1. minimise gamma (primary solver); a point that passes the rigorous check with status
       "optimal" is the answer;
    2. otherwise re-solve in preconditioned coordinates
       (:class:`~rrnn_convex.exact.Preconditioning`: the optimum's metric becomes ~I and gamma ~1,
       so the margin is relative), raising the margin up to the rigorous check's rounding
       allowance when the point misses it; a verified optimal point is the answer;
    3. the contraction SDP (maximise the margin t with trace-normalised metric) decides
       contraction (t <= 0: "not contracting") and gives a strictly feasible anchor with a gamma
       proven for it;
    4. certified rounding: every candidate that failed the check is moved along the segment
       towards the best verified point as far as the check allows; the lowest verified gamma
       is the answer.

    Parameters
    ----------
    model : ImplicitRNN
        The model to certify.
    gamma : float, optional
        None: find the smallest certifiable gamma (and contraction). G: decide whether G is
        certified.
    solver : str, optional
        ``"CLARABEL"`` (default), ``"SCS"`` or ``"MOSEK"``.
    formulation : {"auto", "dense", "lifted", "kyp"}
        ``"auto"`` (default: ``"kyp"`` when ``n + q >= AUTO_MIN_SIZE`` = 32, else ``"dense"``),
        ``"dense"`` or ``"lifted"`` (the exact SDPs of :class:`~rrnn_convex.exact.FixedWeightSDP`),
        or ``"kyp"`` (:func:`certify_scalable`: the multipliers from a frequency-gridded KYP
        relaxation, the metric from a Riccati equation, no metric variable in any SDP; gamma
        within ~1e-3 of the exact optimum, certified rigorously in the same way, scaling to
        hundreds of neurons).
    margin : float
        The small margin imposed on the LMI when minimising gamma (exact SDPs only; the KYP path
        uses its own relative margin).
    fallback : bool
        On a solver's failure try the other available solvers (all attempts are recorded in
        ``Certificate.attempts``); for the KYP path also the exact SDP for small models.
    contraction_only : bool
        Certify contraction alone (one SDP).
    time_limit : float, optional
        Overall budget in seconds (default ``DEFAULT_TIME_LIMIT`` = 600; None: no overall
        budget). Every solver call is limited to the budget left (and to
        ``solvers.DEFAULT_TIME_LIMIT`` without one); once it is spent no further solver runs and,
        unless a certificate was already verified, the answer is "not certified: time limit ..."
        with every attempt recorded in ``Certificate.attempts``.

    Returns
    -------
    Certificate
        Never one that fails :meth:`Certificate.verify`; an infeasible LMI comes back as
        ``certified == False`` with the reason, never as an exception.

    Raises
    ------
    TypeError
        If ``model`` is not an :class:`~rrnn_convex.model.ImplicitRNN`.
    ValueError
        For a bad ``gamma``, ``formulation``, ``margin``, ``time_limit`` or solver name, or both
        ``gamma`` and ``contraction_only``.
    SolverUnavailable
        The requested solver cannot run here (e.g. MOSEK without a licence), or no SDP solver
        is installed.
    """
    gamma = _checked_gamma(model, gamma)
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation: expected one of {FORMULATIONS}, got {formulation!r}")
    margin = check_scalar(margin, "margin", low=0.0, low_inclusive=True)
    if contraction_only and gamma is not None:
        raise ValueError("contraction_only: give either gamma or contraction_only, not both")
    if time_limit is not None:
        time_limit = check_scalar(time_limit, "time_limit", low=0.0)
    t_start = time.perf_counter()
    sequence = _solvers.solver_sequence(solver, fallback=fallback)
    if formulation == "auto":  # resolved first, so that a refusal records the formulation too
        formulation = "kyp" if model.n + model.q >= AUTO_MIN_SIZE else "dense"
    refusal = scale_refusal(model)
    if refusal:
        return Certificate(model_hash=model.weights_hash(), contracting=False, gamma=None, Q=None, lam=None,
                           alpha=model.activation.alpha, beta=model.activation.beta, reason=refusal,
                           formulation=formulation)
    units = EquationUnits(model)
    unit = units.apply()
    if formulation == "kyp":
        cert = certify_scalable(unit, gamma, solver=solver, contraction_only=contraction_only,
                                fallback=fallback, time_limit=time_limit)
    else:
        search = ExactSearch(unit, sequence, formulation=formulation, margin=margin, time_limit=time_limit,
                             t_start=t_start)
        cert = search.run(gamma, contraction_only)
    return units.invert(cert, time.perf_counter() - t_start)


def certify_scalable(model: ImplicitRNN, gamma: float | None = None, *, solver: str | None = None,
                     contraction_only: bool = False, margin: float = 1e-7, frequencies: int = 12,
                     max_rounds: int = 12, rtol: float = 1e-3, bisections: int = 4, fallback: bool = True,
                     tol: float = 1e-9, blas_threads: int | None = 1,
                     time_limit: float | None = None) -> Certificate:
    """Certify contraction and the smallest incremental l2 gain of a large model (the KYP path).

    Same contract as :func:`certify`: ``gamma=None`` finds the smallest certifiable gamma,
    ``gamma=G`` decides whether G is certified, ``contraction_only`` only contraction. Every
    certified answer has passed :meth:`Certificate.verify`; otherwise the answer is
    ``certified == False`` with the reason. The method is :class:`~rrnn_convex.kyp.KYPSearch`
    (see :mod:`rrnn_convex.kyp`); this function decides its fallback to the exact SDP.

    Parameters
    ----------
    model : ImplicitRNN
        The model to certify.
    gamma : float, optional
        None: the smallest certifiable gamma; G: decide G.
    solver : str, optional
        The exact fallback's solver.
    contraction_only : bool
        Contraction alone.
    margin : float
        The LMI margin eps (relative to the size of the model's LMI data) imposed in the
        frequency relaxation; the Riccati metric is computed with eps/2.
    frequencies : int
        Initial number of equispaced frequencies in [0, pi]; more are added where the Riccati
        pencil shows the frequency inequality failing (at most ``max_rounds`` rounds).
    max_rounds : int
        Rounds of relaxation, Riccati solve and verification at the most.
    rtol : float
        When the relaxation's multipliers certify a gamma within ``(1 + rtol)`` of its optimum (a
        lower bound), that gamma (tightened by ``bisections`` Riccati solves) is accepted instead
        of adding frequencies; ``rtol=0`` refines the frequencies until the lower bound itself is
        certified.
    bisections : int
        Riccati solves of the bisection on gamma.
    fallback : bool
        When this path cannot produce a verified certificate (e.g. leaky-ReLU slopes whose Riccati
        metric is indefinite), run the exact :func:`certify` with ``solver`` instead of answering
        "not certified" -- only for models small enough for it (n + q <= 2 * AUTO_MIN_SIZE).
    tol : float
        Tolerance of the interior-point method.
    blas_threads : int, optional
        BLAS threads during the call (needs ``threadpoolctl``; ``None`` leaves the process
        setting alone). The default 1 is deliberate: the interior-point method makes many
        mid-sized BLAS calls, and with a second busy process on a 2-core machine OpenBLAS's
        threads spin for a core they do not get (measured: n = 64 in 240 s with 2 threads vs
        1.3 s with 1).
    time_limit : float, optional
        Overall budget in seconds (None: none), checked before every round and passed on to the
        exact fallback; when it is spent the answer is "not certified: time limit ...".

    Returns
    -------
    Certificate
        Verified, or "not certified" with the reason (and, after the exact fallback, the
        attempts of both paths).

    Raises
    ------
    TypeError
        If ``model`` is not an :class:`~rrnn_convex.model.ImplicitRNN`.
    ValueError
        For a bad ``gamma``, ``margin``, ``time_limit`` or solver name, or both ``gamma`` and
        ``contraction_only``.
    SolverUnavailable
        A ``solver`` that cannot run here.
    """
    with _blas.blas_threads(blas_threads):
        gamma = _checked_gamma(model, gamma)
        if contraction_only and gamma is not None:
            raise ValueError("contraction_only: give either gamma or contraction_only, not both")
        margin = check_scalar(margin, "margin", low=0.0)
        if solver is not None:
            _solvers.solver_sequence(solver)  # validate the fallback solver's name early
        if time_limit is not None:
            time_limit = check_scalar(time_limit, "time_limit", low=0.0)
        search = KYPSearch(model, gamma, contraction_only=contraction_only, margin=margin,
                           frequencies=frequencies, max_rounds=max_rounds, rtol=rtol, bisections=bisections,
                           tol=tol, time_limit=time_limit)
        cert = search.run()
        if search.fallback_reason and fallback and model.n + model.q <= 2 * AUTO_MIN_SIZE:
            return _exact_fallback(search, solver)
        return cert


def _exact_fallback(search: KYPSearch, solver: str | None) -> Certificate:
    """The exact SDP's answer after the KYP ``search`` gave up, with both attempts recorded."""
    left = search.time_left()
    if left is not None and left <= 0:
        return search.out_of_time()
    why = search.fallback_reason
    cert = certify(search.model, search.gamma, solver, formulation="dense",
                   contraction_only=search.mode == "contraction", time_limit=left)
    search.attempts.append({"solver": "certify", "status": "fallback", "seconds": cert.solve_seconds,
                            "mode": search.mode, "detail": why, "verified": cert.certified})
    return replace(cert, attempts=tuple(search.attempts) + tuple(cert.attempts),
                   reason=cert.reason + f"; exact fallback after: {why}",
                   solve_seconds=time.perf_counter() - search.t_start)


__all__ = ["Certificate", "Verification", "certify", "certificate_from", "DEFAULT_TIME_LIMIT"]
