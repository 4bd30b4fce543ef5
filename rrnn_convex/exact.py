"""The exact fixed-weight certification SDP and its search for a verified certificate.

:class:`FixedWeightSDP` is the LMI of docs/design.md section 3.5 for given weights, with the full metric
as a variable (no relaxation). :class:`ExactSearch` runs it, re-checks each point the solvers
return with :meth:`~rrnn_convex.certificate.Certificate.verify`, and when a point misses the
check tries, in order: a re-solve in preconditioned coordinates (:class:`Preconditioning`), a
larger margin, the contraction SDP and certified rounding along a segment
(:func:`_verified_on_segment`). :func:`rrnn_convex.certify.certify` chooses this search for models
below ``AUTO_MIN_SIZE`` states + neurons (``formulation="dense"`` or ``"lifted"``).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import NamedTuple

import cvxpy as cp
import numpy as np

from . import solvers as _solvers
from .certificate import (MARGINAL_T, Certificate, Verification, flush_subnormal,
                          infeasible_contraction_reason)
from .lmi import dissipation_lmi, lifted_lmi, model_D11, model_operands
from .model import ImplicitRNN
from .rigorous import prove_pd

# Above this condition number of E, a failed certification names E as the likely cause.
ILL_CONDITIONED_E = 1e7
_OK_STATUSES = ("optimal", "optimal_inaccurate")


class Point(NamedTuple):
    """A candidate (Q, lam, value): the certificate's metric, the multipliers and gamma (or the
    contraction margin t, for the contraction SDP).

    Parameters
    ----------
    Q : numpy.ndarray, shape (n, n)
        The metric on ``E x`` (symmetric).
    lam : numpy.ndarray, shape (q,)
        The multipliers (>= 0).
    value : float
        gamma, or the contraction margin t.
    """

    Q: np.ndarray
    lam: np.ndarray
    value: float


class Solved(NamedTuple):
    """A point as one solver returned it, with the solver's name and status.

    Parameters
    ----------
    point : Point
        The point, in the original model's terms.
    solver : str
        The solver's name.
    status : str
        Its status (``"optimal"`` or ``"optimal_inaccurate"``).
    """

    point: Point
    solver: str
    status: str


# ---------------------------------------------------------------------- the SDP
class FixedWeightSDP:
    """The fixed-weight certification SDP of one model, built once and re-solved.

    mode ``"min_gamma"``: minimise gamma s.t. LMI(Q, lam, gamma) >= margin I.
    mode ``"fixed_gamma"``: maximise t s.t. LMI(Q, lam, gamma) >= t I (t <= gamma by the y-block).
    mode ``"contraction"``: maximise t s.t. contraction LMI(Q, lam) >= t I, trace(Q) = n (the
    LMI is homogeneous in (Q, lam); the trace normalisation makes t < 0 exactly when the strict
    LMI is infeasible, and t <= 1).

    Both formulations work on the explicit form (A = E^-1 F, B1h = E^-1 B1, B2h = E^-1 B2) with
    the metric Qx = E'QE on x as the variable (the solver needs no rigour; the certificate's
    Q = E^-T Qx E^-1 is re-checked against the actual weights). ``"dense"`` (default) is
    :func:`~rrnn_convex.lmi.dissipation_lmi`, size n + q + m + p, with dense A'QxA blocks;
    ``"lifted"`` is the lifted block of docs/design.md section 3.3 with E -> Qx, F -> Qx A, ..., P -> Qx, size
    2n + q + m + p, whose blocks are products with Qx. Interior-point solvers pay for the LMI's
    size (their Newton system has (N(N+1)/2)^2 entries for an N x N LMI), so dense is faster
    here (see benchmarks/certify_scaling.py).

    Parameters
    ----------
    model : ImplicitRNN
        The model, with fixed weights.
    mode : {"min_gamma", "fixed_gamma", "contraction"}
        The problem, as above.
    gamma : float or None
        The gain for ``"fixed_gamma"``; ignored otherwise.
    formulation : {"dense", "lifted"}
        The LMI's form, as above (any other value builds the dense form).

    Attributes
    ----------
    problem : cvxpy.Problem
        The SDP.
    Qv : cvxpy.Variable, shape (n, n)
        The metric Qx on x of the explicit form.
    lam : cvxpy.Variable, shape (q,)
        The multipliers (nonnegative).
    margin : cvxpy.Parameter
        The margin of ``"min_gamma"`` (set by :meth:`solve`).
    g : cvxpy.Variable
        gamma (mode ``"min_gamma"`` only).
    t : cvxpy.Variable
        The margin t (the other modes only).
    """

    def __init__(self, model: ImplicitRNN, mode: str, gamma: float | None, formulation: str):
        self.model, self.mode, self.formulation = model, mode, formulation
        n, q = model.n, model.q
        self.Qv = cp.Variable((n, n), symmetric=True, name="Q")
        self.lam = cp.Variable(q, nonneg=True, name="lam")
        self.margin = cp.Parameter(nonneg=True, name="margin", value=0.0)
        if mode == "min_gamma":
            self.g = cp.Variable(name="gamma")
            g, shift = self.g, self.margin
            objective = cp.Minimize(self.g)
        else:
            self.t = cp.Variable(name="t")
            g, shift = (gamma if mode == "fixed_gamma" else None), self.t
            objective = cp.Maximize(self.t)
        cons = self._constraints(g, shift)
        if mode == "contraction":
            cons.append(cp.trace(self.Qv) == n)
        self.problem = cp.Problem(objective, cons)

    def _constraints(self, g, shift) -> list:
        """``LMI(Qx, lam, g) >= shift I`` (and ``Qx >= shift I`` for the dense form)."""
        model, n = self.model, self.model.n
        Lam = cp.diag(self.lam)
        common = dict(C1=model.C1, D12=model.D12, C2=model.C2, D21=model.D21, D22=model.D22,
                      alpha=model.activation.alpha, beta=model.activation.beta,
                      Lam=Lam, LC1=Lam @ model.C1, LD12=Lam @ model.D12, gamma=g)
        D11 = model_D11(model)
        if D11 is not None:  # the equilibrium term: E does not touch it, so it is the same in explicit form
            common.update(D11=D11, LD11=Lam @ D11)
        A, B1h, B2h, _ = model._explicit_matrices()
        Qx = self.Qv  # the metric on x of the explicit form (E'QE for the certificate's Q)
        if self.formulation == "lifted":
            M = lifted_lmi(E=Qx, F=Qx @ A, B1=Qx @ B1h, B2=Qx @ B2h, P=Qx, **common)
        else:
            M = dissipation_lmi(E=np.eye(n), F=A, B1=B1h, B2=B2h, Q=Qx, **common)
        N = M.shape[0]
        M = 0.5 * (M + M.T)
        cons = [M - shift * np.eye(N) >> 0]
        if self.formulation != "lifted":
            # the dense LMI does not imply Qx > 0 (an unstable A admits an indefinite Qx with
            # Qx - A'QxA > 0); the lifted one does through its P = Qx block
            cons.append(self.Qv - shift * np.eye(n) >> 0)
        return cons

    def solve(self, solver: str, margin: float = 0.0, time_limit: float | None = None) -> _solvers.Attempt:
        """One solver run with the given margin (used by mode ``"min_gamma"`` only).

        Parameters
        ----------
        solver : str
            A name of :mod:`rrnn_convex.solvers`.
        margin : float
            The margin of ``"min_gamma"``.
        time_limit : float, optional
            Seconds for this run.

        Returns
        -------
        rrnn_convex.solvers.Attempt
            The run's status, time and detail; the point is in the variables (:meth:`point`).
        """
        self.margin.value = margin
        return _solvers.run(self.problem, solver, time_limit=time_limit)

    def point(self) -> Point:
        """(Q, lam, gamma-or-t) of the last solve, Q as the certificate's metric (exactly symmetric).

        Returns
        -------
        Point
            ``Q = E^-T Qx E^-1`` symmetrised, ``lam`` clipped at 0, subnormal entries of both
            flushed to 0 (:func:`~rrnn_convex.certificate.flush_subnormal`).

        Raises
        ------
        TypeError, ValueError
            When the solver left no values.
        """
        Qv = np.asarray(self.Qv.value, dtype=np.float64)
        if not np.array_equal(self.model.E, np.eye(self.model.n)):
            Einv = np.linalg.inv(self.model.E)
            Qv = Einv.T @ Qv @ Einv
        Q = flush_subnormal(0.5 * (Qv + Qv.T))
        lam = flush_subnormal(np.maximum(np.asarray(self.lam.value, dtype=np.float64).reshape(-1), 0.0))
        val = float(self.g.value) if self.mode == "min_gamma" else float(self.t.value)
        return Point(Q, lam, val)


# ---------------------------------------------------------------------- preconditioning
class Preconditioning:
    """Coordinates z = R x with R'R = E'QE / s and outputs divided by s = gamma_hint.

    At a good (Q, gamma_hint) the scaled problem's metric is ~I and its gamma ~1, so an absolute
    SDP margin there is a relative one. :meth:`apply` maps the model, :meth:`invert` maps a point
    of the mapped model back: a certificate (Qz, lam_z, g_z) of the mapped model gives
    (s Qz, s lam_z, s g_z) for the original, since the storage (E dx)'Q(E dx) is coordinate-free
    (E_z dz = E dx) and dividing y by s divides the dissipation inequality by s.

    Parameters
    ----------
    Q : numpy.ndarray
        The metric to precondition with (the certificate's Q, on ``E x``).
    gamma_hint : float
        The gain to scale the outputs by.
    """

    def __init__(self, Q: np.ndarray, gamma_hint: float):
        self.Q = Q
        self.scale = float(gamma_hint)

    def apply(self, model: ImplicitRNN) -> ImplicitRNN:
        """The model in the preconditioned coordinates.

        Parameters
        ----------
        model : ImplicitRNN
            The model whose metric ``Q`` is.

        Returns
        -------
        ImplicitRNN
            The same model in z = R x, its outputs divided by ``scale``.

        Raises
        ------
        numpy.linalg.LinAlgError
            When E'QE is not numerically positive definite.
        """
        s = self.scale
        Qx = model.E.T @ self.Q @ model.E / s  # the scaled problem's metric at the hint
        R = np.linalg.cholesky(0.5 * (Qx + Qx.T)).T  # Qx / s = R'R, so the scaled metric is ~ I
        Rinv = np.linalg.inv(R)
        return replace(model, E=model.E @ Rinv, F=model.F @ Rinv, C1=model.C1 @ Rinv,
                       C2=model.C2 @ Rinv / s, D21=model.D21 / s, D22=model.D22 / s)

    def invert(self, point: Point) -> Point:
        """A point of the preconditioned model as a point of the original one.

        Parameters
        ----------
        point : Point
            (Qz, lam_z, g_z) of :meth:`apply`'s model.

        Returns
        -------
        Point
            (s Qz, s lam_z, s g_z).
        """
        s = self.scale
        return Point(s * point.Q, s * point.lam, s * point.value)


def _nearly_feasible(model: ImplicitRNN, point: Point) -> bool:
    """A solver point worth preconditioning from: gamma > 0, Q > 0 and the LMI violated by
    at most 1e-6 of its scale (a failed solver can return a far-off point)."""
    Q, lam, g = point
    if not (g > 0 and np.all(np.isfinite(Q)) and np.linalg.eigvalsh(Q)[0] > 0):
        return False
    EQE = model.E.T @ Q @ model.E
    if not np.linalg.eigvalsh(0.5 * (EQE + EQE.T))[0] > 0:  # preconditioning needs E'QE > 0
        return False
    M = dissipation_lmi(**model_operands(model, Q, lam), gamma=g)
    return float(np.linalg.eigvalsh(0.5 * (M + M.T))[0]) >= -1e-6 * max(1.0, float(np.abs(M).max()))


def _margin_needed(check: Verification) -> float:
    """The SDP margin that should clear ``check``'s rounding allowance (and its negative estimate)."""
    return 4.0 * (np.nan_to_num(check.allowance) + max(0.0, -np.nan_to_num(check.estimate)))


# ---------------------------------------------------------------------- certified rounding
def _feasible_gamma_for(model: ImplicitRNN, Q, lam, hint: float) -> float | None:
    """A gamma for which the gain LMI at fixed (Q, lam) is proven > 0 (doubling search), or None."""
    g = max(float(hint), 1.0)
    for _ in range(60):
        ops = model_operands(model, Q, lam, bounded=True)
        if prove_pd(dissipation_lmi(**ops, gamma=g)):
            return g
        g *= 4.0
    return None


def _verified_on_segment(model: ImplicitRNN, base: dict, target: Point, anchor: Point,
                         rel_tol: float = 1e-10) -> Certificate | None:
    """Certified rounding: the point closest to ``target`` on the segment [anchor, target] that
    passes the check.

    The LMI is affine in (Q, lam, gamma), so its smallest eigenvalue is concave along the
    segment: with the anchor strictly feasible (verified) and the target the solver's nearly
    feasible optimum, the verified points form an interval [anchor, P_theta*). Bisection on theta
    finds it; the result is re-verified by the caller like every other certificate.
    """
    lo, hi = 0.0, 1.0
    best = None
    for it in range(60):
        th = 1.0 - 1e-9 if it == 0 else 0.5 * (lo + hi)
        Q = th * target.Q + (1.0 - th) * anchor.Q
        Q = 0.5 * (Q + Q.T)
        lam = np.maximum(th * target.lam + (1.0 - th) * anchor.lam, 0.0)
        g = th * target.value + (1.0 - th) * anchor.value
        cert = Certificate(**base, Q=Q, lam=lam, gamma=g)
        if cert.verify(model).ok:
            lo, best = th, cert
            if abs(g - target.value) <= rel_tol * abs(target.value):
                break
        else:
            hi = th
        if hi - lo < 1e-14:
            break
    return best


# ---------------------------------------------------------------------- the search
class ExactSearch:
    """The search for a verified certificate with the exact SDPs, for one model.

    Everything the steps share lives on the object: the attempts so far, the last rigorous
    check, the candidates that missed it and the contraction SDP's point (solved at most once).

    Procedure of :meth:`minimise_gamma` (each step is a method):

    1. :meth:`direct_step`: minimise gamma (primary solver); a point that passes the rigorous
       check with status "optimal" is the answer;
    2. :meth:`preconditioned_step`: otherwise re-solve in preconditioned coordinates
       (:class:`Preconditioning`: the optimum's metric becomes ~I and gamma ~1, so the margin is
       relative), raising the margin up to the rigorous check's rounding allowance when the point
       misses it; a verified optimal point is the answer;
    3. :meth:`contraction_step`: the contraction SDP (maximise the margin t with trace-normalised
       metric) decides contraction (t <= 0: "not contracting") and gives a strictly feasible
       anchor with a gamma proven for it (and :meth:`anchor_step` preconditions from it when
       step 2 had no point to start from);
    4. :meth:`rounding_step`: certified rounding: every candidate that failed the check is moved
       along the segment towards the best verified point as far as the check allows; the lowest
       verified gamma is the answer.

    Parameters
    ----------
    model : ImplicitRNN
        The model (in the units certify works in, max|E| ~ 1).
    sequence : sequence of str
        The solvers to try, primary first.
    formulation : {"dense", "lifted"}
    margin : float
        The LMI margin when minimising gamma.
    time_limit : float, optional
        Overall budget in seconds from ``t_start``; None: none.
    t_start : float, optional
        ``time.perf_counter()`` at the start of the budget (default: now).
    """

    def __init__(self, model: ImplicitRNN, sequence, *, formulation: str = "dense", margin: float = 1e-9,
                 time_limit: float | None = None, t_start: float | None = None):
        self.model = model
        self.sequence = tuple(sequence)
        self.formulation = formulation
        self.margin = margin
        self.time_limit = time_limit
        self.t_start = time.perf_counter() if t_start is None else t_start
        self.deadline = None if time_limit is None else self.t_start + time_limit
        self.base = dict(model_hash=model.weights_hash(), alpha=model.activation.alpha,
                         beta=model.activation.beta, formulation=formulation, contracting=True)
        self.attempts: list[dict] = []
        self.timed_out = False
        self.last_check: Verification | None = None
        #: (certificate or None, the solved point) of every gamma SDP point, for certified rounding
        self.candidates: list[tuple[Certificate | None, Solved]] = []
        self.direct: Certificate | None = None
        self.direct_solved: Solved | None = None
        self.usable = False
        self.anchor: Point | None = None
        self.contraction: Certificate | None = None
        self._contraction_solved: Solved | None = None
        self._contraction_entry: dict | None = None
        self._contraction_done = False

    # ------------------------------------------------------------------ entry points
    def run(self, gamma: float | None = None, contraction_only: bool = False) -> Certificate:
        """The answer of :func:`~rrnn_convex.certify.certify` for this model.

        Parameters
        ----------
        gamma : float, optional
            Decide this gain (:meth:`decide_gamma`); None: the smallest one (:meth:`minimise_gamma`).
        contraction_only : bool
            Contraction alone (one SDP).

        Returns
        -------
        Certificate
            Verified, or "not certified" with the reason.
        """
        if contraction_only:
            return self.finish(*self.contraction_certificate())
        if gamma is not None:
            return self.decide_gamma(gamma)
        return self.minimise_gamma()

    def minimise_gamma(self) -> Certificate:
        """The smallest verified gamma: the steps of the class's procedure, in order.

        Returns
        -------
        Certificate
            Verified, or "not certified" with the reason.
        """
        for step in (self.direct_step, self.preconditioned_step, self.contraction_step, self.anchor_step):
            answer = step()
            if answer is not None:
                return answer
        return self.rounding_step()

    def decide_gamma(self, gamma: float) -> Certificate:
        """Whether ``gamma`` is certified: the fixed-gamma SDP, else the smallest certifiable gamma
        decides (the LMI is monotone in gamma).

        Parameters
        ----------
        gamma : float
            The gain bound to decide.

        Returns
        -------
        Certificate
            Verified for ``gamma``, or "not certified" with the reason (naming the smallest
            certifiable gamma when one was found).
        """
        # the primary solver only: at a large gamma the SDP is badly scaled (an unbounded-looking
        # t), and the smallest certifiable gamma below decides faster than a first-order fallback
        done, solved = self._fixed_gamma(gamma, self.sequence[:1])
        if done is not None:
            return done
        left = self.time_left()
        if left is not None and left <= 0:
            self.timed_out = True
            return self.finish(None, f"gamma={gamma:.6g}: no verified point before the time limit")
        low = self._smallest_gamma(left)
        done = self._monotone(low, gamma)
        if done is not None:
            return done
        if low.gamma is None and solved is None and len(self.sequence) > 1:
            done, solved = self._fixed_gamma(gamma, self.sequence[1:])  # the fallback solvers
            if done is not None:
                return done
        return self.finish(None, _fixed_gamma_failure(gamma, solved, low))

    # ------------------------------------------------------------------ solving and checking
    def time_left(self) -> float | None:
        """Seconds left of the budget (None: no budget).

        Returns
        -------
        float or None
            Negative once the budget is spent.
        """
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def solve(self, mode: str, gamma: float | None = None, *, sdp_model: ImplicitRNN | None = None,
              names=None, margin_value: float | None = None) -> Solved | None:
        """Run ``mode`` with each solver until one returns a point.

        Every run is recorded in ``attempts``; once the budget is spent the attempt is recorded
        as "not run" and nothing more is tried.

        Parameters
        ----------
        mode : {"min_gamma", "fixed_gamma", "contraction"}
            The SDP (:class:`FixedWeightSDP`).
        gamma : float, optional
            The gain of ``"fixed_gamma"``.
        sdp_model : ImplicitRNN, optional
            The model to build the SDP of (default: the search's model).
        names : sequence of str, optional
            The solvers (default: the whole sequence).
        margin_value : float, optional
            The margin of ``"min_gamma"`` (default: the search's margin).

        Returns
        -------
        Solved or None
            The first point returned with an "optimal" or "optimal_inaccurate" status; None
            when no solver gave one or the budget ran out.
        """
        sdp = None
        m_used = self.margin if margin_value is None else margin_value
        for name in (names or self.sequence):
            left = self.time_left()
            if left is not None and left <= 0:
                self.attempts.append({"solver": name, "status": "not run", "seconds": 0.0, "mode": mode,
                                      "detail": f"time limit of {self.time_limit:g} s reached"})
                self.timed_out = True
                return None
            sdp = sdp or FixedWeightSDP(sdp_model or self.model, mode, gamma, self.formulation)
            att = sdp.solve(name, m_used if mode == "min_gamma" else 0.0, time_limit=left)
            entry = att.to_dict() | {"mode": mode}
            if mode == "min_gamma":
                entry["margin"] = m_used
            self.attempts.append(entry)
            if att.status in _OK_STATUSES:
                try:
                    return Solved(sdp.point(), name, att.status)
                except (TypeError, ValueError) as exc:  # solver returned no values
                    entry["detail"] = f"no usable point: {exc}"
        return None

    def check(self, solved: Solved, gamma_claim: float | None,
              entry: dict | None = None) -> Certificate | None:
        """The certificate at ``solved``'s point if it passes the rigorous check, else None.

        The result is noted in the attempt that produced the point (``entry``, by default the
        last one) and kept as ``last_check``.

        Parameters
        ----------
        solved : Solved
            The point to check.
        gamma_claim : float or None
            The gain to claim (None: contraction).
        entry : dict, optional
            The attempt to annotate.

        Returns
        -------
        Certificate or None
            The certificate (not yet with the final margins, see :meth:`finish`), or None.
        """
        entry = self.attempts[-1] if entry is None else entry
        cert = Certificate(**self.base, Q=solved.point.Q, lam=solved.point.lam, gamma=gamma_claim,
                           solver=solved.solver, status=solved.status,
                           sdp_margin=entry.get("margin", float("nan")))
        verification = cert.verify(self.model)
        self.last_check = verification
        entry["verified"] = verification.ok
        if not verification.ok:
            entry["detail"] = (entry.get("detail", "") + " " + verification.reason).strip()
        return cert if verification.ok else None

    def finish(self, cert: Certificate | None, reason: str = "") -> Certificate:
        """The answer: ``cert`` re-verified, with the attempts, or "not certified" with ``reason``.

        Parameters
        ----------
        cert : Certificate or None
            A certificate that passed :meth:`check`, or None.
        reason : str
            Why not (for None), or a note appended to the verification's reason.

        Returns
        -------
        Certificate
            With the verification's margin and reason, the attempts and the elapsed time; "not
            certified" (mentioning the time limit or an ill-conditioned E where they apply) for
            None.
        """
        if cert is None:
            return self._not_certified(reason)
        elapsed = time.perf_counter() - self.t_start
        check = cert.verify(self.model)
        if not check.ok:  # cannot happen by construction; never hand out an unverified claim
            return self._not_certified(f"internal: final certificate failed verification ({check.reason})")
        # the verification's own estimate: built with the accurate (error-free) products, so it
        # stays right for an ill-conditioned E where a plain float64 rebuild does not
        return replace(cert, margin=check.estimate, proven_margin=check.proven_margin,
                       reason=check.reason + (f"; {reason}" if reason else ""),
                       attempts=tuple(self.attempts), solve_seconds=elapsed)

    def _not_certified(self, reason: str) -> Certificate:
        """"Not certified" with ``reason``, said to be the time limit's when the budget ran out."""
        elapsed = time.perf_counter() - self.t_start
        if self.timed_out and not reason.startswith("not certified: time limit"):
            reason = (f"not certified: time limit of {self.time_limit:g} s reached after "
                      f"{len(self.attempts)} solver attempt(s) (see attempts; raise time_limit to try "
                      f"longer); last: {reason}")
        kappa = float(np.linalg.cond(self.model.E))
        if kappa > ILL_CONDITIONED_E and "ill-conditioned" not in reason:
            reason += (f" (E is ill-conditioned: cond(E) = {kappa:.1e}; the certificate's metric "
                       f"Q = E^-T Qx E^-1 loses about cond(E)^2 of float64 accuracy - an explicit "
                       f"form with E = I, model.explicit(), may certify)")
        return Certificate(**(self.base | {"contracting": False}), gamma=None, Q=None, lam=None,
                           reason=reason, attempts=tuple(self.attempts), solve_seconds=elapsed)

    # ------------------------------------------------------------------ contraction
    def contraction_point(self) -> Solved | None:
        """The max-margin contraction SDP's point (its value is the margin t), or None; solved once.

        Returns
        -------
        Solved or None
            None when no solver returned a point (or the budget was spent); later calls return
            the first call's result.
        """
        if not self._contraction_done:
            self._contraction_done = True
            self._contraction_solved = self.solve("contraction")
            self._contraction_entry = self.attempts[-1] if self._contraction_solved is not None else None
        return self._contraction_solved

    def contraction_certificate(self) -> tuple[Certificate | None, str]:
        """The verified max-margin contraction certificate, or (None, why not).

        Returns
        -------
        tuple
            (Certificate, "") or (None, the reason).
        """
        solved = self.contraction_point()
        if solved is None:
            return None, "no solver returned a point for the contraction LMI"
        t = solved.point.value
        if t <= 0:
            return None, infeasible_contraction_reason(t, model=self.model)
        cert = self.check(solved, None, entry=self._contraction_entry)
        if cert is None:
            if t < MARGINAL_T:
                return None, (f"not certifiable: the contraction LMI's best margin t = {t:.3e} (trace(Q) "
                              f"normalised) is at the solver's tolerance, so the model is at best marginally "
                              f"contracting, and that point did not pass the rigorous check")
            return None, f"the contraction LMI's optimum (margin t = {t:.3e}) did not pass the rigorous check"
        return replace(cert, sdp_margin=t), ""

    # ------------------------------------------------------------------ the steps of minimise_gamma
    def direct_step(self) -> Certificate | None:
        """Step 1: minimise gamma; the answer when its point verifies with status "optimal".

        The primary solver first: an infeasible gamma SDP (a non-contracting model) often ends in
        a solver error, and the contraction SDP decides that case cheaply before the other
        solvers are tried.

        Returns
        -------
        Certificate or None
            The answer: verified, or "not certified" when the contraction SDP shows that the
            model does not contract; None to go on with the next step.
        """
        solved = self.solve("min_gamma", names=self.sequence[:1])
        if solved is None and len(self.sequence) > 1:
            contraction = self.contraction_point()
            if contraction is not None and contraction.point.value <= 0:
                why = infeasible_contraction_reason(contraction.point.value, model=self.model)
                return self.finish(None, why)
            solved = self.solve("min_gamma", names=self.sequence[1:])
        self.direct_solved = solved
        if solved is None:
            return None
        self.direct = self.check(solved, solved.point.value)
        # an absolute margin is negligible unless gamma is tiny: then the scale-free
        # preconditioned solve is tried as well and the lower verified gamma wins
        if self.direct is not None and solved.status == "optimal" and self.margin <= 1e-6 * self.direct.gamma:
            return self.finish(self.direct)
        return None

    def preconditioned_step(self) -> Certificate | None:
        """Step 2: from a nearly feasible direct point, the preconditioned re-solve; else a margin
        raised to the rounding allowance. Points that miss the check become candidates.

        Returns
        -------
        Certificate or None
            The answer (the lower verified gamma of this step and step 1) when the preconditioned
            re-solve verifies; None to go on.
        """
        solved, direct = self.direct_solved, self.direct
        self.usable = solved is not None and _nearly_feasible(self.model, solved.point)
        if self.usable:
            direct_check = self.last_check
            cert = self.preconditioned_solve(solved.point.Q, solved.point.value)
            if cert is not None:
                return self.finish(cert if direct is None or cert.gamma <= direct.gamma else direct)
            self._raise_margin(direct_check)
        if solved is not None:
            self.candidates.append((direct, solved))
        return None

    def contraction_step(self) -> Certificate | None:
        """Step 3: the contraction certificate and a gamma proven for its (Q, lam): the anchor.

        Returns
        -------
        Certificate or None
            "Not certified" when contraction is not certified; the contraction certificate
            alone (gamma None) when no finite gamma can be proven for its (Q, lam); None (the
            anchor is set) to go on.
        """
        cert, why = self.contraction_certificate()
        if cert is None:
            return self.finish(None, why)
        hint = self.direct_solved.point.value if self.direct_solved is not None else 1.0
        gamma = _feasible_gamma_for(self.model, cert.Q, cert.lam, 2.0 * hint)
        if gamma is None:
            return self.finish(cert, "no finite gamma could be certified")
        self.contraction = cert
        self.anchor = Point(cert.Q, cert.lam, gamma)
        return None

    def anchor_step(self) -> Certificate | None:
        """Step 3b: without a usable direct point, precondition from the contraction anchor.

        The anchor's gamma may be far from optimal: the answer is then near-optimal, so it is
        preconditioned once more from that answer.

        Returns
        -------
        Certificate or None
            The lower verified gamma of the two preconditioned solves; None when step 2 had a
            usable point or the solve from the anchor does not verify.
        """
        if self.usable:
            return None
        cert = self.preconditioned_solve(self.anchor.Q, self.anchor.value)
        if cert is None:
            return None
        again = self.preconditioned_solve(cert.Q, cert.gamma)
        return self.finish(again if again is not None and again.gamma < cert.gamma else cert)

    def rounding_step(self) -> Certificate:
        """Step 4: certified rounding of the candidates that did not verify, towards the verified
        point with the lowest gamma (a nearby strictly feasible point makes the rounding cheap),
        else the contraction anchor; the lowest verified gamma is the answer.

        Returns
        -------
        Certificate
            The lowest verified gamma among the candidates, else the anchor's gamma (from the
            contraction metric).
        """
        verified = sorted((c for c, _ in self.candidates if c is not None), key=lambda c: c.gamma)
        anchor = Point(verified[0].Q, verified[0].lam, verified[0].gamma) if verified else self.anchor
        best = None
        for cert, solved in self.candidates:
            if cert is None and solved.point.value < anchor.value:
                base = self.base | {"solver": solved.solver, "status": solved.status}
                cert = _verified_on_segment(self.model, base, solved.point, anchor)
                self.attempts.append({"solver": solved.solver, "status": "certified rounding", "seconds": 0.0,
                                      "mode": "rounding", "verified": cert is not None})
            if cert is not None and (best is None or cert.gamma < best.gamma):
                best = cert
        if best is None:
            best = Certificate(**self.base, Q=self.anchor.Q, lam=self.anchor.lam, gamma=self.anchor.value,
                               solver=self.contraction.solver, status=self.contraction.status)
            return self.finish(best, "gamma from the contraction metric (the gamma SDP gave no usable point)")
        return self.finish(best)

    # ------------------------------------------------------------------ helpers of the steps
    def preconditioned_solve(self, Q: np.ndarray, gamma_hint: float) -> Certificate | None:
        """Re-solve where the metric Q is ~I and gamma ~1; a verified optimal point wins.

        If the point misses the rigorous check, the margin (relative, in the scaled problem) is
        raised above the check's rounding allowance (at least tenfold) and the SDP re-solved,
        up to four solves and a margin of 1e-4. Every point becomes a candidate.

        Parameters
        ----------
        Q : numpy.ndarray
            The metric to precondition with.
        gamma_hint : float
            The gain to scale the outputs by.

        Returns
        -------
        Certificate or None
            The first verified point with status "optimal"; None when a point verifies with
            another status, no point verifies, E'QE is not numerically positive definite or no
            solver returns a point.
        """
        preconditioning = Preconditioning(Q, gamma_hint)
        try:
            scaled = preconditioning.apply(self.model)
        except np.linalg.LinAlgError:  # E'QE not numerically positive definite: no coordinates to use
            return None
        s = preconditioning.scale
        sdp_margin = self.margin
        for _ in range(4):
            solved = self.solve("min_gamma", sdp_model=scaled, margin_value=sdp_margin)
            if solved is None:
                return None
            self.attempts[-1]["detail"] = f"preconditioned (output scale {s:.4g}, margin {sdp_margin:.2g})"
            solved = solved._replace(point=preconditioning.invert(solved.point))
            cert = self.check(solved, solved.point.value)
            self.candidates.append((cert, solved))
            if cert is not None:
                return cert if solved.status == "optimal" else None
            need = _margin_needed(self.last_check) / s
            sdp_margin = max(need, 10.0 * sdp_margin) if np.isfinite(need) else 10.0 * sdp_margin
            if sdp_margin > 1e-4:
                return None
        return None

    def _raise_margin(self, direct_check: Verification | None) -> None:
        """Re-solve with the margin the rigorous check of the direct point needed, in the LMI's own
        units (a margin d on the SDP gives at least d on the dissipation matrix that verify()
        rebuilds; for the lifted form through the Schur complement); the point is a candidate."""
        if direct_check is None or direct_check.ok:
            return
        need = _margin_needed(direct_check)
        if not (np.isfinite(need) and self.margin < need):
            return
        solved = self.solve("min_gamma", margin_value=need)
        if solved is not None:
            self.attempts[-1]["detail"] = f"margin raised to {need:.2g} (rounding allowance)"
            self.candidates.append((self.check(solved, solved.point.value), solved))

    def _fixed_gamma(self, gamma: float, names) -> tuple[Certificate | None, Solved | None]:
        """(the answer if the fixed-gamma SDP's point verifies, else None; that SDP's point)."""
        solved = self.solve("fixed_gamma", gamma, names=names)
        if solved is not None and solved.point.value > 0:
            cert = self.check(solved, gamma)
            if cert is not None:
                return self.finish(replace(cert, sdp_margin=solved.point.value)), solved
        return None, solved

    def _smallest_gamma(self, time_limit: float | None) -> Certificate:
        """The smallest certifiable gamma, by a new search within ``time_limit``; its attempts
        are added to this search's."""
        search = ExactSearch(self.model, self.sequence, formulation=self.formulation, margin=self.margin,
                             time_limit=time_limit)
        low = search.minimise_gamma()
        self.attempts.extend(low.attempts)
        if low.reason.startswith("not certified: time limit"):
            self.timed_out = True
        return low

    def _monotone(self, low: Certificate, gamma: float) -> Certificate | None:
        """The answer from the smallest certifiable gamma's (Q, lam) when it is <= ``gamma``."""
        if low.gamma is None or low.gamma > gamma:
            return None
        self.attempts.append({"solver": low.solver, "status": "monotone in gamma", "seconds": 0.0,
                              "mode": "fixed_gamma", "detail": f"smallest certified gamma {low.gamma:.8g}"})
        cert = self.check(Solved(Point(low.Q, low.lam, gamma), low.solver, low.status), gamma)
        if cert is None:
            return None
        return self.finish(cert, f"from the certificate of the smallest certifiable gamma {low.gamma:.8g} "
                                 f"(the LMI is monotone in gamma)")


def _fixed_gamma_failure(gamma: float, solved: Solved | None, low: Certificate) -> str:
    """Why ``gamma`` is not certified, given the fixed-gamma SDP's point and the smallest gamma."""
    if solved is None:
        why = "no solver returned a point for the fixed-gamma LMI"
    elif solved.point.value <= 0:
        why = f"gamma={gamma:.6g} is not certifiable (best LMI margin t = {solved.point.value:.3e} <= 0)"
    else:
        why = (f"gamma={gamma:.6g}: the solver's point (margin t = {solved.point.value:.3e}) did not pass "
               f"the rigorous check")
    return why + (f"; the smallest certifiable gamma is {low.gamma:.8g}" if low.gamma is not None
                  else f"; {low.reason}")


__all__ = ["ExactSearch", "FixedWeightSDP", "Preconditioning", "Point", "Solved", "ILL_CONDITIONED_E"]
