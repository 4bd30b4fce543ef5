"""Certification of given weights: contraction and the smallest certifiable incremental l2 gain.

``certify(model)`` solves the exact fixed-weight LMI of DESIGN.md section 3 (no relaxation),
then re-checks the solver's point rigorously in float64 (:mod:`rrnn_convex.rigorous`) from the
model's actual weights. Only a point that passes that check becomes a certificate; otherwise the
answer is "not certified" with the reason.

What a verified certificate proves (for the activation's slope bounds [alpha, beta]):

* contraction: with ``V(dx) = (E dx)' Q (E dx)``, Q > 0 and E'QE > 0, every pair of
  trajectories driven by the same input satisfies ``V(dx[t+1]) < V(dx[t])`` for dx != 0,
  strictly and uniformly (the LMI holds with a positive margin);
* gain: ``sum |y1 - y2|^2 <= gamma^2 sum |u1 - u2|^2`` for any two inputs from the same initial
  state (incremental l2 gain / Lipschitz bound gamma).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace

import cvxpy as cp
import numpy as np

from . import __version__
from . import solvers as _solvers
from ._io import write_text_atomic
from ._validation import check_scalar
from .lmi import dissipation_lmi, equation_exponent, lifted_lmi, model_operands
from .model import ImplicitRNN
from .rigorous import TINY, prove_pd

CERT_SCHEMA = "rrnn_convex.certificate"
CERT_SCHEMA_VERSION = 1
VERIFICATION_METHOD = ("float64 LMI with a-priori rounding bounds + Cholesky of M - cI "
                       "(Demmel 1989 / Rump 2006 bound)")
FORMULATIONS = ("auto", "lifted", "dense", "kyp")
# A contraction margin below this (with trace(Q) = n, so t <= 1) is within the solvers' tolerances:
# such a model is at best marginally contracting and is reported as "not certifiable".
MARGINAL_T = 1e-7
# Above this condition number of E, a failed certification names E as the likely cause.
ILL_CONDITIONED_E = 1e7
#: certify()'s default overall time budget, seconds (each solver call also stops at the budget left)
DEFAULT_TIME_LIMIT = 600.0
#: weights beyond 2^500 / sqrt(N) (E scaled to unit size, N the LMI's size) make the LMI's quadratic
#: terms (F'QF, C1'Lam C1, C2'C2 / gamma) leave float64's range (1.8e308): refused up front
SCALE_LIMIT_LOG2 = 500


def _subnormal_entries(Q, lam, gamma) -> str:
    """Which of (Q, lam, gamma) has nonzero entries below float64's normal range ('' if none)."""
    names = []
    for name, x in (("Q", Q), ("lam", lam), ("gamma", 0.0 if gamma is None else gamma)):
        a = np.abs(np.asarray(x, dtype=np.float64))
        if np.any((a > 0) & (a < TINY)):
            names.append(f"{name} has entries (smallest nonzero {a[a > 0].min():.3e})")
    return "; ".join(names)


@dataclass(frozen=True)
class Verification:
    """Result of :meth:`Certificate.verify`: ``ok`` iff every condition was proven."""

    ok: bool
    reason: str
    proven_margin: float = float("nan")  # proven lower bound on the LMI's smallest eigenvalue
    method: str = VERIFICATION_METHOD
    estimate: float = float("nan")  # float estimate of the LMI's smallest eigenvalue
    allowance: float = float("nan")  # rounding allowance the proof had to beat

    def __bool__(self):
        return self.ok


@dataclass(frozen=True)
class Certificate:
    """A contraction / incremental-gain certificate of one model (identified by its weights hash).

    ``contracting`` and ``gamma`` are claims; they are only set by :func:`certify` after the
    rigorous check passed, and :meth:`verify` re-checks them independently of any solver.
    ``Q`` is the metric (``V(dx) = (E dx)' Q (E dx)``, i.e. Q = P^-1 of DESIGN.md), ``lam`` the
    diagonal of Lambda, ``margin`` the LMI's smallest eigenvalue (float estimate) and
    ``proven_margin`` a proven lower bound on it.
    """

    model_hash: str
    contracting: bool
    gamma: float | None
    Q: np.ndarray | None
    lam: np.ndarray | None
    alpha: float
    beta: float
    margin: float = float("nan")
    proven_margin: float = float("nan")
    solver: str | None = None
    status: str = ""
    solve_seconds: float = 0.0
    formulation: str = "dense"
    sdp_margin: float = float("nan")
    reason: str = ""
    attempts: tuple = field(default_factory=tuple)
    verification: str = VERIFICATION_METHOD

    @property
    def certified(self) -> bool:
        """True when the certificate claims (and was verified for) at least contraction."""
        return bool(self.contracting)

    # ------------------------------------------------------------------ checking
    def verify(self, model: ImplicitRNN) -> Verification:
        """Rigorous float64 re-check of this certificate against ``model``; no solver involved.

        Checks, each proven with rounding errors accounted for: the weights hash matches; the
        certificate's slope bounds contain the activation's; lambda >= 0; Q symmetric and
        Q > 0; E'QE > 0 (so E is invertible); and the dissipation LMI (gain form when gamma is
        claimed, contraction form otherwise) is positive definite.
        """
        if not isinstance(model, ImplicitRNN):
            raise TypeError(f"model: expected an ImplicitRNN, got {type(model).__name__}")
        if not self.contracting:
            return Verification(False, "the certificate claims nothing (not certified)")
        if model.weights_hash() != self.model_hash:
            return Verification(False, "model hash mismatch: the certificate is for different weights")
        act = model.activation
        if not (self.alpha <= act.alpha and act.beta <= self.beta):
            return Verification(False, f"slope bounds [{self.alpha}, {self.beta}] do not contain the "
                                       f"activation's [{act.alpha}, {act.beta}]")
        n, q = model.n, model.q
        Q = np.asarray(self.Q, dtype=np.float64) if self.Q is not None else None
        lam = np.asarray(self.lam, dtype=np.float64) if self.lam is not None else None
        if Q is None or Q.shape != (n, n):
            return Verification(False, f"Q: expected shape {(n, n)}, got {None if Q is None else Q.shape}")
        if lam is None or lam.shape != (q,):
            return Verification(False, f"lam: expected shape {(q,)}, got {None if lam is None else lam.shape}")
        if not (np.all(np.isfinite(Q)) and np.all(np.isfinite(lam))):
            return Verification(False, "Q or lam has non-finite entries")
        if np.any(lam < 0):
            return Verification(False, f"lam has negative entries (min {lam.min():.3e})")
        if not np.array_equal(Q, Q.T):
            return Verification(False, "Q is not symmetric")
        gamma = self.gamma
        if gamma is not None and not (np.isfinite(gamma) and gamma > 0):
            return Verification(False, f"gamma must be positive and finite, got {gamma}")
        # the state equations in their own units (2^k (E, F, B1, B2), metric 2^-2k Q): the same
        # LMI, evaluated away from overflow and underflow whatever the representation's scale
        k = equation_exponent(model)
        ops = model_operands(model, Q, lam, bounded=True, equation_exponent=k)
        tiny = _subnormal_entries(ops["Q"].val, lam, gamma)
        if tiny:
            return Verification(False, f"{tiny} in float64's subnormal range (below {TINY:.3e}; Q in units "
                                       f"where max|E| ~ 1): rounding there is absolute, not relative, so "
                                       f"float64 cannot prove such a certificate; scale it up")
        pq = prove_pd(ops["Q"])
        if not pq:
            return Verification(False, f"Q > 0 not proven: {pq.reason}")
        pe = prove_pd(ops["E"].T @ (ops["Q"] @ ops["E"]))
        if not pe:
            return Verification(False, f"E'QE > 0 not proven: {pe.reason}")
        proof = prove_pd(dissipation_lmi(**ops, gamma=gamma))
        what = f"gain LMI (gamma={gamma:.8g})" if gamma is not None else "contraction LMI"
        if not proof:
            return Verification(False, f"{what} > 0 not proven: {proof.reason}", proof.lower_bound,
                                estimate=proof.estimate, allowance=proof.error_bound)
        return Verification(True, f"{what}, Q > 0 and E'QE > 0 proven", proof.lower_bound,
                            estimate=proof.estimate, allowance=proof.error_bound)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        """JSON-ready dict (docs/certificate_schema.md, rrnn_convex/certificate.schema.json).

        Besides the dataclass fields: ``certified``, ``schema``, ``schema_version``,
        ``package_version`` and ``set`` ("Theta_gamma" when a gain is claimed, "Theta" for
        contraction alone, None when nothing is certified). NaN margins become null.
        """
        d = asdict(self)
        d["Q"] = None if self.Q is None else np.asarray(self.Q).tolist()
        d["lam"] = None if self.lam is None else np.asarray(self.lam).tolist()
        d["attempts"] = [dict(a) for a in self.attempts]
        d["certified"] = self.certified
        d["schema"] = CERT_SCHEMA
        d["schema_version"] = CERT_SCHEMA_VERSION
        d["package_version"] = __version__
        d["set"] = None if not self.contracting else ("Theta" if self.gamma is None else "Theta_gamma")
        for k in ("margin", "proven_margin", "sdp_margin"):
            if d[k] is not None and not np.isfinite(d[k]):
                d[k] = None  # JSON has no NaN
        return d

    def to_json(self, path=None, indent: int = 2) -> str:
        """The certificate as JSON (numbers and the model hash only); written atomically if ``path``."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            write_text_atomic(path, text)
        return text

    @classmethod
    def from_dict(cls, d: dict) -> "Certificate":
        """Inverse of :meth:`to_dict`; accepts schema-version-1 files with or without ``set``.

        ``set`` is derived data: when present it must agree with ``contracting`` and ``gamma``
        (ValueError otherwise). Other keys that are not fields (``certified``...) are ignored.
        """
        if not isinstance(d, dict):
            raise ValueError(f"certificate: expected a JSON object, got {type(d).__name__}")
        if d.get("schema") != CERT_SCHEMA:
            raise ValueError(f"certificate: expected schema {CERT_SCHEMA!r}, got {d.get('schema')!r}")
        version = d.get("schema_version", 1)  # the field's absence means the first version
        if type(version) is not int or version < 1:
            raise ValueError(f"certificate: schema_version must be a positive integer, got {version!r}")
        if version > CERT_SCHEMA_VERSION:
            raise ValueError(f"certificate: schema version {version} is newer than "
                             f"this package supports ({CERT_SCHEMA_VERSION})")
        if "set" in d:
            expect = None if not d.get("contracting") else ("Theta" if d.get("gamma") is None else "Theta_gamma")
            if d["set"] != expect:
                raise ValueError(f"certificate: field 'set' is {d['set']!r} but contracting={d.get('contracting')!r} "
                                 f"and gamma={d.get('gamma')!r} mean {expect!r}")
        needed = [f for f in ("model_hash", "contracting", "gamma", "alpha", "beta") if f not in d]
        if needed:
            raise ValueError(f"certificate: missing required fields {needed}")
        if not isinstance(d["contracting"], bool):
            raise ValueError(f"certificate: 'contracting' must be true or false, got {d['contracting']!r}")
        from ._io import reject_booleans

        optional = ("gamma", "margin", "proven_margin", "sdp_margin", "solve_seconds")
        for k in ("gamma", "alpha", "beta") + optional[1:]:
            v = d.get(k)
            if (v is None and k in optional) or (isinstance(v, (int, float)) and not isinstance(v, bool)):
                continue
            raise ValueError(f"certificate: {k!r} must be a number{' or null' if k in optional else ''}, got {v!r}")
        for k in ("Q", "lam"):
            reject_booleans(d.get(k), f"certificate: {k!r}")
        kw = {f: d[f] for f in cls.__dataclass_fields__ if f in d}
        kw["Q"] = None if d.get("Q") is None else np.array(d["Q"], dtype=np.float64)
        kw["lam"] = None if d.get("lam") is None else np.array(d["lam"], dtype=np.float64)
        kw["attempts"] = tuple(d.get("attempts", ()))
        for k in ("margin", "proven_margin", "sdp_margin"):
            kw[k] = float("nan") if d.get(k) is None else float(d[k])
        return cls(**kw)

    @classmethod
    def from_json(cls, text_or_path) -> "Certificate":
        """Read a certificate from a JSON string or a file path."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            with open(text_or_path) as fh:
                text = fh.read()
        from ._io import strict_json

        try:
            d = strict_json(text)
        except ValueError as exc:  # JSONDecodeError is one, and a duplicate key
            raise ValueError(f"certificate: not valid JSON ({exc})") from None
        return cls.from_dict(d)


# ---------------------------------------------------------------------- the SDPs
class _FixedWeightSDP:
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
    ``"lifted"`` is DESIGN.md's block with E -> Qx, F -> Qx A, ..., P -> Qx, size
    2n + q + m + p, whose blocks are products with Qx. Interior-point solvers pay for the LMI's
    size (their Newton system has (N(N+1)/2)^2 entries for an N x N LMI), so dense is faster
    here (see benchmarks/certify_scaling.py).
    """

    def __init__(self, model: ImplicitRNN, mode: str, gamma: float | None, formulation: str):
        self.model, self.mode, self.formulation = model, mode, formulation
        n, q = model.n, model.q
        self.Qv = cp.Variable((n, n), symmetric=True, name="Q")
        self.lam = cp.Variable(q, nonneg=True, name="lam")
        self.margin = cp.Parameter(nonneg=True, name="margin", value=0.0)
        if mode == "min_gamma":
            self.g = cp.Variable(name="gamma")
            g, objective, shift = self.g, None, self.margin
        elif mode == "fixed_gamma":
            self.t = cp.Variable(name="t")
            g, shift = gamma, self.t
        else:
            self.t = cp.Variable(name="t")
            g, shift = None, self.t
        Lam = cp.diag(self.lam)
        common = dict(C1=model.C1, D12=model.D12, C2=model.C2, D21=model.D21, D22=model.D22,
                      alpha=model.activation.alpha, beta=model.activation.beta,
                      Lam=Lam, LC1=Lam @ model.C1, LD12=Lam @ model.D12, gamma=g)
        A, B1h, B2h, _ = model._explicit_matrices()
        Qx = self.Qv  # the metric on x of the explicit form (E'QE for the certificate's Q)
        if formulation == "lifted":
            M = lifted_lmi(E=Qx, F=Qx @ A, B1=Qx @ B1h, B2=Qx @ B2h, P=Qx, **common)
        else:
            M = dissipation_lmi(E=np.eye(n), F=A, B1=B1h, B2=B2h, Q=Qx, **common)
        N = M.shape[0]
        M = 0.5 * (M + M.T)
        cons = [M - shift * np.eye(N) >> 0]
        if formulation != "lifted":
            # the dense LMI does not imply Qx > 0 (an unstable A admits an indefinite Qx with
            # Qx - A'QxA > 0); the lifted one does through its P = Qx block
            cons.append(self.Qv - shift * np.eye(n) >> 0)
        if mode == "min_gamma":
            objective = cp.Minimize(self.g)
        else:
            objective = cp.Maximize(self.t)
            if mode == "contraction":
                cons.append(cp.trace(self.Qv) == n)
        self.problem = cp.Problem(objective, cons)

    def solve(self, solver: str, margin: float = 0.0, time_limit: float | None = None) -> _solvers.Attempt:
        self.margin.value = margin
        return _solvers.run(self.problem, solver, time_limit=time_limit)

    def point(self) -> tuple[np.ndarray, np.ndarray, float | None]:
        """(Q, lam, gamma-or-t) of the last solve, Q as the certificate's metric (exactly symmetric)."""
        Qv = np.asarray(self.Qv.value, dtype=np.float64)
        if not np.array_equal(self.model.E, np.eye(self.model.n)):
            Einv = np.linalg.inv(self.model.E)
            Qv = Einv.T @ Qv @ Einv
        Q = _flush_subnormal(0.5 * (Qv + Qv.T))
        lam = _flush_subnormal(np.maximum(np.asarray(self.lam.value, dtype=np.float64).reshape(-1), 0.0))
        val = float(self.g.value) if self.mode == "min_gamma" else float(self.t.value)
        return Q, lam, val


_OK_STATUSES = ("optimal", "optimal_inaccurate")


def _flush_subnormal(x: np.ndarray) -> np.ndarray:
    """x with entries below float64's normal range set to 0: a candidate that verify() would refuse
    for them otherwise (it is re-checked either way)."""
    return np.where(np.abs(x) < TINY, 0.0, x)


def linearised_radius(model: ImplicitRNN) -> tuple[float, float]:
    """(largest spectral radius, slope) of the model's linearisations with every neuron at the
    slope ``alpha`` or at ``beta`` (float64 eigenvalues: evidence, not a proof).

    A model in Theta contracts for every activation slope-restricted to [alpha, beta], the linear
    ones ``phi(v) = delta v`` included, so a linearisation with spectral radius above 1 shows a
    model that is outside Theta, not just one the solver could not certify.
    """
    try:
        Einv = np.linalg.inv(model.E)
    except np.linalg.LinAlgError:
        return float("nan"), float("nan")
    worst, at = -np.inf, float("nan")
    for delta in {model.activation.alpha, model.activation.beta}:
        A = Einv @ (model.F + delta * model.B1 @ model.C1)
        rho = float(np.max(np.abs(np.linalg.eigvals(A)))) if model.n else 0.0
        if rho > worst:
            worst, at = rho, float(delta)
    return worst, at


def infeasible_contraction_reason(t: float, how: str = "with trace(Q) normalised",
                                  model: ImplicitRNN | None = None) -> str:
    """The answer for a contraction SDP whose best margin t is <= 0: "not contracting" when t is
    clearly negative, or when ``model`` has a linearisation (every slope alpha, or every slope
    beta) with spectral radius above 1 (:func:`linearised_radius`); otherwise, with |t| at the
    solvers' tolerance (``MARGINAL_T``, t <= 1 by the normalisation), "not certifiable (within
    solver accuracy)": such a model may contract marginally. (A t near 0 alone proves nothing:
    a metric concentrated on the stable modes also gives t -> 0-.)"""
    if t > -MARGINAL_T:
        rho, delta = linearised_radius(model) if model is not None else (np.nan, np.nan)
        if rho > 1.0 + 1e-9:
            return (f"not contracting: the contraction LMI is infeasible (best margin t = {t:.3e} {how}) and "
                    f"the linearisation with every neuron at slope {delta:g} has spectral radius {rho:.6g} > 1")
        return (f"not certifiable (within solver accuracy): the contraction LMI's best margin t = {t:.3e} "
                f"({how}) is at the solvers' tolerance ({MARGINAL_T:g}), so the model is at best marginally "
                f"contracting and float64 cannot decide it")
    return f"not contracting: the contraction LMI is infeasible (best margin t = {t:.3e} <= 0 {how})"


def scale_refusal(model: ImplicitRNN) -> str:
    """Why float64 certification of ``model`` is meaningless at its scale ('' if it is not).

    With the state equations scaled to max|E| ~ 1 (:func:`~rrnn_convex.lmi.equation_exponent`,
    which certify applies anyway), the LMI contains products of two weights (F'QF, B2'QB2,
    C1'Lam C1, and C2'C2 / gamma in its Schur complement): weights beyond 2^500 / sqrt(N) put
    them beyond float64's range (1.8e308) for any certificate of unit scale, and no solver
    handles such data (issue 15: C = [[1e308, 1e308]] kept SCS busy for minutes).
    """
    k = equation_exponent(model)
    N = model.n + model.q + model.m + model.p
    tops = {}
    for name in ("E", "F", "B1", "B2", "C1", "D12", "C2", "D21", "D22"):
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


def _feasible_gamma_for(model: ImplicitRNN, Q, lam, hint: float) -> float | None:
    """A gamma for which the gain LMI at fixed (Q, lam) is proven > 0 (doubling search), or None."""
    g = max(float(hint), 1.0)
    for _ in range(60):
        ops = model_operands(model, Q, lam, bounded=True)
        if prove_pd(dissipation_lmi(**ops, gamma=g)):
            return g
        g *= 4.0
    return None


def _verified_on_segment(model, base: dict, P0, P1, rel_tol: float = 1e-10):
    """Certified rounding: the point closest to P0 on the segment [P1, P0] that passes the check.

    The LMI is affine in (Q, lam, gamma), so its smallest eigenvalue is concave along the
    segment: with P1 strictly feasible (verified) and P0 the solver's nearly feasible optimum,
    the verified points form an interval [P1, P_theta*). Bisection on theta finds it; the result
    is re-verified by the caller like every other certificate.
    """
    (Q0, l0, g0), (Q1, l1, g1) = P0, P1
    lo, hi = 0.0, 1.0
    best = None
    for it in range(60):
        th = 1.0 - 1e-9 if it == 0 else 0.5 * (lo + hi)
        Q = th * Q0 + (1.0 - th) * Q1
        Q = 0.5 * (Q + Q.T)
        lam = np.maximum(th * l0 + (1.0 - th) * l1, 0.0)
        g = th * g0 + (1.0 - th) * g1
        cert = Certificate(**base, Q=Q, lam=lam, gamma=g)
        if cert.verify(model).ok:
            lo, best = th, cert
            if abs(g - g0) <= rel_tol * abs(g0):
                break
        else:
            hi = th
        if hi - lo < 1e-14:
            break
    return best


def certify(model: ImplicitRNN, gamma: float | None = None, solver: str | None = None, *,
            formulation: str = "auto", margin: float = 1e-9, fallback: bool = True,
            contraction_only: bool = False, time_limit: float | None = DEFAULT_TIME_LIMIT) -> Certificate:
    """Certify contraction and an incremental l2-gain bound of ``model`` (DESIGN.md section 3).

    ``gamma=None``: find the smallest certifiable gamma (and contraction). ``gamma=G``: decide
    whether G is certified. ``solver``: ``"CLARABEL"`` (default), ``"SCS"`` or ``"MOSEK"``; on
    failure the other available solvers are tried when ``fallback`` (all attempts are recorded in
    ``Certificate.attempts``). ``formulation``: ``"auto"`` (default: ``"kyp"`` when
    ``n + q >= 32``, else ``"dense"``), ``"dense"`` or ``"lifted"`` (the exact SDPs of
    :class:`_FixedWeightSDP`), or ``"kyp"`` (:func:`rrnn_convex.scalable.certify_scalable`: the
    multipliers from a frequency-gridded KYP relaxation, the metric from a Riccati equation, no
    metric variable in any SDP; gamma within ~1e-3 of the exact optimum, certified rigorously in
    the same way, scaling to hundreds of neurons). ``margin``: the small margin imposed on the
    LMI when minimising gamma (exact SDPs only; the KYP path uses its own relative margin).
    ``time_limit``: overall budget in seconds (default ``DEFAULT_TIME_LIMIT`` = 600; None: no
    overall budget). Every solver call is limited to the budget left (and to
    ``solvers.DEFAULT_TIME_LIMIT`` without one); once it is spent no further solver runs and,
    unless a certificate was already verified, the answer is "not certified: time limit ..."
    with every attempt recorded in ``Certificate.attempts``.

    Scale: the answer does not depend on the units of the state equations: the model is
    certified as ``transform(2^k I)`` with max|E| ~ 1 and the metric mapped back
    (``Q = 2^2k Q_unit``), and :meth:`Certificate.verify` evaluates the LMI the same way. Weights
    whose LMI overflows float64 in those units are refused up front (:func:`scale_refusal`).

    ``gamma=G``: a G above the smallest certifiable gamma is always certified (the LMI is
    monotone in gamma: ``M(Q, lam, G) = M(Q, lam, g) + (G - g) diag(0, 0, I, I)``, so the
    minimal certificate's (Q, lam) is re-verified at G when the fixed-gamma SDP gives no
    verified point).

    Procedure for ``gamma=None``:

    1. minimise gamma (primary solver); a point that passes the rigorous check with status
       "optimal" is the answer;
    2. otherwise re-solve in preconditioned coordinates (:func:`_preconditioned`: the optimum's
       metric becomes ~I and gamma ~1, so the margin is relative), raising the margin up to the
       rigorous check's rounding allowance when the point misses it; a verified optimal point
       is the answer;
    3. the contraction SDP (maximise the margin t with trace-normalised metric) decides
       contraction (t <= 0: "not contracting") and gives a strictly feasible anchor with a gamma
       proven for it;
    4. certified rounding: every candidate that failed the check is moved along the segment
       towards the best verified point as far as the check allows; the lowest verified gamma
       is the answer.

    The answer is never a certificate that fails :meth:`Certificate.verify`; an infeasible LMI
    comes back as ``certified == False`` with the reason, never as an exception.
    """
    if not isinstance(model, ImplicitRNN):
        raise TypeError(f"model: expected an ImplicitRNN, got {type(model).__name__}")
    if gamma is not None:
        gamma = check_scalar(gamma, "gamma", low=0.0)
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation: expected one of {FORMULATIONS}, got {formulation!r}")
    margin = check_scalar(margin, "margin", low=0.0, low_inclusive=True)
    if contraction_only and gamma is not None:
        raise ValueError("contraction_only: give either gamma or contraction_only, not both")
    if time_limit is not None:
        time_limit = check_scalar(time_limit, "time_limit", low=0.0)
    t_start = time.perf_counter()
    sequence = _solvers.solver_sequence(solver, fallback=fallback)
    refusal = scale_refusal(model)
    if refusal:
        return Certificate(model_hash=model.weights_hash(), contracting=False, gamma=None, Q=None, lam=None,
                           alpha=model.activation.alpha, beta=model.activation.beta, reason=refusal,
                           formulation=formulation)
    kw = dict(formulation=formulation, margin=margin, fallback=fallback, contraction_only=contraction_only)
    k = equation_exponent(model)
    if k != 0:  # certify in units where max|E| ~ 1 (exact: powers of two), map the metric back
        unit = replace(model, **{w: np.ldexp(getattr(model, w), k) for w in ("E", "F", "B1", "B2", "bx")})
        cert = certify(unit, gamma, solver, **kw, time_limit=time_limit)
        return _in_original_units(cert, model, k, time.perf_counter() - t_start)
    if formulation == "auto":
        from .scalable import AUTO_MIN_SIZE
        formulation = "kyp" if model.n + model.q >= AUTO_MIN_SIZE else "dense"
    if formulation == "kyp":
        from .scalable import certify_scalable  # its exact fallback calls certify(formulation="dense")
        return certify_scalable(model, gamma, solver=solver, contraction_only=contraction_only,
                                fallback=fallback, time_limit=time_limit)
    attempts: list[dict] = []
    base = dict(model_hash=model.weights_hash(), alpha=model.activation.alpha,
                beta=model.activation.beta, formulation=formulation, contracting=True)
    deadline = None if time_limit is None else t_start + time_limit
    timed_out = []

    def time_left() -> float | None:
        return None if deadline is None else deadline - time.perf_counter()

    def solve(mode: str, g_fixed=None, sdp_model=None, names=None, margin_value=None):
        """Run ``mode`` with each solver until one returns a point; (point, solver, status) or None
        (also when the time limit is spent: the attempt is recorded as not run)."""
        sdp = None
        m_used = margin if margin_value is None else margin_value
        for name in (names or sequence):
            left = time_left()
            if left is not None and left <= 0:
                attempts.append({"solver": name, "status": "not run", "seconds": 0.0, "mode": mode,
                                 "detail": f"time limit of {time_limit:g} s reached"})
                timed_out.append(True)
                return None
            sdp = sdp or _FixedWeightSDP(sdp_model or model, mode, g_fixed, formulation)
            att = sdp.solve(name, m_used if mode == "min_gamma" else 0.0, time_limit=left)
            entry = att.to_dict() | {"mode": mode}
            if mode == "min_gamma":
                entry["margin"] = m_used
            attempts.append(entry)
            if att.status in _OK_STATUSES:
                try:
                    return sdp.point(), name, att.status
                except (TypeError, ValueError) as exc:  # solver returned no values
                    entry["detail"] = f"no usable point: {exc}"
        return None

    def finish(cert: Certificate | None, reason: str = "") -> Certificate:
        elapsed = time.perf_counter() - t_start
        if cert is None and timed_out and not reason.startswith("not certified: time limit"):
            reason = (f"not certified: time limit of {time_limit:g} s reached after {len(attempts)} solver "
                      f"attempt(s) (see attempts; raise time_limit to try longer); last: {reason}")
        if cert is None:
            kappa = float(np.linalg.cond(model.E))
            if kappa > ILL_CONDITIONED_E and "ill-conditioned" not in reason:
                reason += (f" (E is ill-conditioned: cond(E) = {kappa:.1e}; the certificate's metric "
                           f"Q = E^-T Qx E^-1 loses about cond(E)^2 of float64 accuracy - an explicit "
                           f"form with E = I, model.explicit(), may certify)")
            return Certificate(**(base | {"contracting": False}), gamma=None, Q=None, lam=None,
                               reason=reason, attempts=tuple(attempts), solve_seconds=elapsed)
        check = cert.verify(model)
        if not check.ok:  # cannot happen by construction; never hand out an unverified claim
            return finish(None, f"internal: final certificate failed verification ({check.reason})")
        # the verification's own estimate: built with the accurate (error-free) products, so it
        # stays right for an ill-conditioned E where a plain float64 rebuild does not
        return replace(cert, margin=check.estimate, proven_margin=check.proven_margin,
                       reason=check.reason + (f"; {reason}" if reason else ""),
                       attempts=tuple(attempts), solve_seconds=elapsed)

    last_check = {}

    def check_point(point, name, status, g_claim, entry=None) -> Certificate | None:
        """The certificate at ``point`` if it passes the check; notes the result in the attempt
        that produced the point (``entry``, by default the last one)."""
        entry = attempts[-1] if entry is None else entry
        Q, lam, _ = point
        cert = Certificate(**base, Q=Q, lam=lam, gamma=g_claim, solver=name, status=status,
                           sdp_margin=entry.get("margin", float("nan")))
        ok = cert.verify(model)
        last_check["v"] = ok
        entry["verified"] = ok.ok
        if not ok.ok:
            entry["detail"] = (entry.get("detail", "") + " " + ok.reason).strip()
        return cert if ok.ok else None

    memo = {}

    def contraction_point():
        """(point, solver, status, t) of the max-margin contraction SDP, or None (solved once)."""
        if "c" not in memo:
            res = solve("contraction")
            memo["c"] = None if res is None else (*res, res[0][2])
            memo["c_entry"] = attempts[-1] if res is not None else None
        return memo["c"]

    if gamma is not None:
        def fixed(names):
            """(verified certificate or None, the SDP's result) of the fixed-gamma SDP."""
            res_ = solve("fixed_gamma", gamma, names=names)
            if res_ is not None and res_[0][2] > 0:
                cert_ = check_point(*res_, gamma)
                if cert_ is not None:
                    return finish(replace(cert_, sdp_margin=res_[0][2])), res_
            return None, res_

        # the primary solver only: at a large gamma the SDP is badly scaled (an unbounded-looking
        # t), and the smallest certifiable gamma below decides faster than a first-order fallback
        done, res = fixed(sequence[:1])
        if done is not None:
            return done
        # no verified point at gamma: the smallest certifiable gamma decides (monotonicity)
        left = time_left()
        if left is not None and left <= 0:
            timed_out.append(True)
            return finish(None, f"gamma={gamma:.6g}: no verified point before the time limit")
        low = certify(model, None, solver, formulation=formulation, margin=margin, fallback=fallback,
                      time_limit=left)
        attempts.extend(low.attempts)
        if low.reason.startswith("not certified: time limit"):
            timed_out.append(True)
        if low.gamma is not None and low.gamma <= gamma:
            attempts.append({"solver": low.solver, "status": "monotone in gamma", "seconds": 0.0,
                             "mode": "fixed_gamma", "detail": f"smallest certified gamma {low.gamma:.8g}"})
            cert = check_point((low.Q, low.lam, gamma), low.solver, low.status, gamma)
            if cert is not None:
                return finish(cert, f"from the certificate of the smallest certifiable gamma {low.gamma:.8g} "
                                    f"(the LMI is monotone in gamma)")
        if low.gamma is None and res is None and len(sequence) > 1:
            done, res = fixed(sequence[1:])  # neither SDP gave anything yet: the fallback solvers
            if done is not None:
                return done
        t = None if res is None else res[0][2]
        if res is None:
            why = "no solver returned a point for the fixed-gamma LMI"
        elif t <= 0:
            why = f"gamma={gamma:.6g} is not certifiable (best LMI margin t = {t:.3e} <= 0)"
        else:
            why = (f"gamma={gamma:.6g}: the solver's point (margin t = {t:.3e}) did not pass the "
                   f"rigorous check")
        why += (f"; the smallest certifiable gamma is {low.gamma:.8g}" if low.gamma is not None
                else f"; {low.reason}")
        return finish(None, why)

    def contraction_certificate() -> tuple[Certificate | None, str]:
        """The verified max-margin contraction certificate, or (None, why not)."""
        res1 = contraction_point()
        if res1 is None:
            return None, "no solver returned a point for the contraction LMI"
        point1, name1, status1, t1 = res1
        if t1 <= 0:
            return None, infeasible_contraction_reason(t1, model=model)
        c1 = check_point(point1, name1, status1, None, entry=memo["c_entry"])
        if c1 is None:
            if t1 < MARGINAL_T:
                return None, (f"not certifiable: the contraction LMI's best margin t = {t1:.3e} (trace(Q) "
                              f"normalised) is at the solver's tolerance, so the model is at best marginally "
                              f"contracting, and that point did not pass the rigorous check")
            return None, f"the contraction LMI's optimum (margin t = {t1:.3e}) did not pass the rigorous check"
        return replace(c1, sdp_margin=t1), ""

    if contraction_only:
        c1, why = contraction_certificate()
        return finish(c1, why) if c1 is not None else finish(None, why)

    # the primary solver first: an infeasible gamma SDP (a non-contracting model) often ends in a
    # solver error, and the contraction SDP below decides that case cheaply
    res0 = solve("min_gamma", names=sequence[:1])
    if res0 is None and len(sequence) > 1:
        res1 = contraction_point()
        if res1 is not None and res1[3] <= 0:
            return finish(None, infeasible_contraction_reason(res1[3], model=model))
        res0 = solve("min_gamma", names=sequence[1:])
    direct = None
    if res0 is not None:
        direct = check_point(*res0, res0[0][2])
        # an absolute margin is negligible unless gamma is tiny: then the scale-free
        # preconditioned solve below is tried as well and the lower verified gamma wins
        if direct is not None and res0[2] == "optimal" and margin <= 1e-6 * direct.gamma:
            return finish(direct)
    candidates = []

    def preconditioned_solve(Qpre, gpre) -> Certificate | None:
        """(3): re-solve where the metric Qpre is ~I and gamma ~1; a verified optimal point wins.

        If the point misses the rigorous check, the margin (relative, in the scaled problem) is
        raised above the check's rounding allowance (at least tenfold) and the SDP re-solved,
        up to four solves and a margin of 1e-4.
        """
        try:
            scaled, s = _preconditioned(model, Qpre, gpre)
        except np.linalg.LinAlgError:  # E'QE not numerically positive definite: no coordinates to use
            return None
        sdp_margin = margin
        for _ in range(4):
            res_p = solve("min_gamma", sdp_model=scaled, margin_value=sdp_margin)
            if res_p is None:
                return None
            (Qz, lz, gz), name_p, status_p = res_p
            attempts[-1]["detail"] = f"preconditioned (output scale {s:.4g}, margin {sdp_margin:.2g})"
            P = (s * Qz, s * lz, s * gz)
            cert = check_point(P, name_p, status_p, P[2])
            candidates.append((cert, P, name_p, status_p))
            if cert is not None:
                return cert if status_p == "optimal" else None
            v = last_check["v"]
            need = 4.0 * (np.nan_to_num(v.allowance) + max(0.0, -np.nan_to_num(v.estimate))) / s
            sdp_margin = max(need, 10.0 * sdp_margin) if np.isfinite(need) else 10.0 * sdp_margin
            if sdp_margin > 1e-4:
                return None
        return None

    def nearly_feasible(point) -> bool:
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

    usable0 = res0 is not None and nearly_feasible(res0[0])
    if usable0:
        v0 = last_check.get("v")
        cert = preconditioned_solve(res0[0][0], res0[0][2])
        if cert is not None:
            return finish(cert if direct is None or cert.gamma <= direct.gamma else direct)
        # the margin the rigorous check needs, in the LMI's own units: a margin d on the SDP
        # gives at least d on the dissipation matrix that verify() rebuilds (for the lifted form
        # through the Schur complement)
        if v0 is not None and not v0.ok:
            need = 4.0 * (np.nan_to_num(v0.allowance) + max(0.0, -np.nan_to_num(v0.estimate)))
            if np.isfinite(need) and margin < need:
                res_m = solve("min_gamma", margin_value=need)
                if res_m is not None:
                    attempts[-1]["detail"] = f"margin raised to {need:.2g} (rounding allowance)"
                    cert = check_point(*res_m, res_m[0][2])
                    candidates.append((cert, *res_m))
    if res0 is not None:
        candidates.append((direct, *res0))
    # (2) the contraction SDP: decides contraction and gives the interior anchor P1
    c1, why = contraction_certificate()
    if c1 is None:
        return finish(None, why)
    Q1, l1, name1, status1 = c1.Q, c1.lam, c1.solver, c1.status
    hint = res0[0][2] if res0 is not None else 1.0
    g1 = _feasible_gamma_for(model, Q1, l1, 2.0 * hint)
    if g1 is None:
        return finish(c1, "no finite gamma could be certified")
    P1 = (Q1, l1, g1)
    if not usable0:
        # preconditioned from the contraction anchor, whose gamma may be far from optimal: the
        # answer is then near-optimal, so precondition once more from it
        cert = preconditioned_solve(Q1, g1)
        if cert is not None:
            again = preconditioned_solve(cert.Q, cert.gamma)
            return finish(again if again is not None and again.gamma < cert.gamma else cert)
    # (4) certified rounding of the candidates that did not verify, towards the verified point
    # with the lowest gamma (a nearby strictly feasible point makes the rounding cheap), else P1
    verified = sorted((c for c, *_ in candidates if c is not None), key=lambda c: c.gamma)
    anchor = (verified[0].Q, verified[0].lam, verified[0].gamma) if verified else P1
    best = None
    for cert, P0, name0, status0 in candidates:
        if cert is None and P0[2] < anchor[2]:
            cert = _verified_on_segment(model, base | {"solver": name0, "status": status0}, P0, anchor)
            attempts.append({"solver": name0, "status": "certified rounding", "seconds": 0.0,
                             "mode": "rounding", "verified": cert is not None})
        if cert is not None and (best is None or cert.gamma < best.gamma):
            best = cert
    if best is None:
        best = Certificate(**base, Q=Q1, lam=l1, gamma=g1, solver=name1, status=status1)
        return finish(best, "gamma from the contraction metric (the gamma SDP gave no usable point)")
    return finish(best)


def _in_original_units(cert: Certificate, model: ImplicitRNN, k: int, seconds: float) -> Certificate:
    """The certificate of ``model.transform(2^k I)`` for ``model``: metric ``2^2k Q`` (V is the
    same function of dx), re-verified against ``model`` itself."""
    base = replace(cert, model_hash=model.weights_hash(), solve_seconds=seconds)
    if not cert.contracting:
        return base
    with np.errstate(over="ignore", under="ignore"):
        mapped = replace(base, Q=np.ldexp(cert.Q, 2 * k))
    check = mapped.verify(model)
    if check.ok:
        return replace(mapped, margin=check.estimate, proven_margin=check.proven_margin)
    return replace(base, contracting=False, gamma=None, Q=None, lam=None,
                   reason=f"the certificate found with E scaled by 2^{k} does not verify in the model's own "
                          f"units (its metric 2^{2 * k} Q leaves float64's range): {check.reason}")


def _preconditioned(model: ImplicitRNN, Q: np.ndarray, gamma_hint: float) -> tuple[ImplicitRNN, float]:
    """The model in coordinates z = R x with R'R = E'QE / s, outputs divided by s = gamma_hint.

    A certificate (Qz, lam_z, g_z) of the returned model gives (s Qz, s lam_z, s g_z) for the
    original: the storage (E dx)'Q(E dx) is coordinate-free (E_z dz = E dx) and dividing y by s
    divides the dissipation inequality by s.
    """
    s = float(gamma_hint)
    Qx = model.E.T @ Q @ model.E / s  # the scaled problem's metric at the hint
    R = np.linalg.cholesky(0.5 * (Qx + Qx.T)).T  # Qx / s = R'R, so the scaled metric is ~ I
    Rinv = np.linalg.inv(R)
    return replace(model, E=model.E @ Rinv, F=model.F @ Rinv, C1=model.C1 @ Rinv,
                   C2=model.C2 @ Rinv / s, D21=model.D21 / s, D22=model.D22 / s), s


__all__ = ["Certificate", "Verification", "certify", "certificate_from", "DEFAULT_TIME_LIMIT"]


def certificate_from(model: ImplicitRNN, Q, lam, gamma: float | None = None, *, how: str = "") -> Certificate:
    """A certificate from a given (constructive) metric Q and multipliers lam, after the rigorous
    check; when the check fails the returned certificate is "not certified" with the reason.

    Q is the metric on ``E x`` (``V(dx) = (E dx)' Q (E dx)``); it is symmetrised first.
    """
    Q = np.asarray(Q, dtype=np.float64)
    Q = _flush_subnormal(0.5 * (Q + Q.T))
    lam = _flush_subnormal(np.maximum(np.asarray(lam, dtype=np.float64).reshape(-1), 0.0))
    base = dict(model_hash=model.weights_hash(), alpha=model.activation.alpha, beta=model.activation.beta,
                formulation="constructive", solver=None, status=how or "constructive")
    cert = Certificate(**base, contracting=True, gamma=gamma, Q=Q, lam=lam)
    check = cert.verify(model)
    if not check.ok:
        return Certificate(**base, contracting=False, gamma=None, Q=None, lam=None,
                           reason=f"constructive certificate ({how}) did not pass the rigorous check: {check.reason}")
    return replace(cert, margin=check.estimate, proven_margin=check.proven_margin,
                   reason=check.reason + (f"; {how}" if how else ""))
