"""Certificates: what a certification claims, its rigorous re-check and its JSON form.

The bottom of the certification stack: the exact SDP search (:mod:`rrnn_convex.exact`), the KYP
path (:mod:`rrnn_convex.kyp`) and the dispatcher :func:`rrnn_convex.certify.certify` build on
this module, which imports none of them.

What a verified certificate proves (for the activation's slope bounds [alpha, beta]):

* contraction: with ``V(dx) = (E dx)' Q (E dx)``, Q > 0 and E'QE > 0, every pair of
  trajectories driven by the same input satisfies ``V(dx[t+1]) < V(dx[t])`` for dx != 0,
  strictly and uniformly (the LMI holds with a positive margin);
* gain: ``sum |y1 - y2|^2 <= gamma^2 sum |u1 - u2|^2`` for any two inputs from the same initial
  state (incremental l2 gain / Lipschitz bound gamma).

:meth:`Certificate.verify` re-checks a claim in float64 with rounding errors accounted for
(:mod:`rrnn_convex.rigorous`), from the model's actual weights and without any solver.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ._io import reject_booleans, strict_json, write_text_atomic
from ._version import __version__
from .lmi import dissipation_lmi, equation_exponent, model_D11, model_operands
from .model import ImplicitRNN
from .rigorous import TINY, prove_pd

CERT_SCHEMA = "rrnn_convex.certificate"
CERT_SCHEMA_VERSION = 1
VERIFICATION_METHOD = ("float64 LMI with a-priori rounding bounds + Cholesky of M - cI "
                       "(Demmel 1989 / Rump 2006 bound)")
# A contraction margin below this (with trace(Q) = n, so t <= 1) is within the solvers' tolerances:
# such a model is at best marginally contracting and is reported as "not certifiable".
MARGINAL_T = 1e-7
#: the certificate fields that may be NaN, which JSON stores as null
_MARGIN_FIELDS = ("margin", "proven_margin", "sdp_margin")


def _subnormal_entries(Q, lam, gamma) -> str:
    """Which of (Q, lam, gamma) has nonzero entries below float64's normal range ('' if none)."""
    names = []
    for name, x in (("Q", Q), ("lam", lam), ("gamma", 0.0 if gamma is None else gamma)):
        a = np.abs(np.asarray(x, dtype=np.float64))
        if np.any((a > 0) & (a < TINY)):
            names.append(f"{name} has entries (smallest nonzero {a[a > 0].min():.3e})")
    return "; ".join(names)


def flush_subnormal(x: np.ndarray) -> np.ndarray:
    """``x`` with its entries below float64's normal range set to 0.

    :meth:`Certificate.verify` refuses a candidate with such entries; the flushed candidate is
    re-checked like any other.

    Parameters
    ----------
    x : numpy.ndarray
        A candidate's metric or multipliers.

    Returns
    -------
    numpy.ndarray
        A new array; ``x`` itself is not changed.
    """
    return np.where(np.abs(x) < TINY, 0.0, x)


def _set_name(contracting, gamma) -> str | None:
    """The certified set: "Theta_gamma" with a gain, "Theta" for contraction alone, else None."""
    return None if not contracting else ("Theta" if gamma is None else "Theta_gamma")


@dataclass(frozen=True)
class Verification:
    """Result of :meth:`Certificate.verify`: ``ok`` iff every condition was proven.

    True in a boolean context exactly when ``ok``.

    Parameters
    ----------
    ok : bool
        Every condition was proven.
    reason : str
        What was proven, or the first condition that failed.
    proven_margin : float
        A proven lower bound on the LMI's smallest eigenvalue (NaN when the LMI was not reached).
    method : str
        How the proof is done (``VERIFICATION_METHOD``).
    estimate : float
        The float estimate of the LMI's smallest eigenvalue (NaN when the LMI was not reached).
    allowance : float
        The rounding allowance the proof had to beat (NaN when the LMI was not reached).
    """

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
    ``Q`` is the metric (``V(dx) = (E dx)' Q (E dx)``, i.e. Q = P^-1 of the lifted LMI,
    docs/design.md section 3.5), ``lam`` the diagonal of Lambda, ``margin`` the LMI's smallest
    eigenvalue (float estimate) and ``proven_margin`` a proven lower bound on it.

    Parameters
    ----------
    model_hash : str
        :meth:`ImplicitRNN.weights_hash <rrnn_convex.model.ImplicitRNN.weights_hash>` of the
        certified model.
    contracting : bool
        The claim of contraction (False: "not certified").
    gamma : float or None
        The claimed incremental l2 gain bound; None for contraction alone or nothing.
    Q : numpy.ndarray or None
        The metric on ``E dx``, shape (n, n), symmetric; None when nothing is certified.
    lam : numpy.ndarray or None
        The multipliers, shape (q,), >= 0; None when nothing is certified.
    alpha, beta : float
        The slope bounds the certificate assumes.
    margin : float
        The LMI's smallest eigenvalue (float estimate); NaN when unknown.
    proven_margin : float
        A proven lower bound on it; NaN when unknown.
    solver : str or None
        The solver whose point this is (``"KYP-IPM"`` for the KYP path).
    status : str
        The solver's status, or where a constructive point came from.
    solve_seconds : float
        Wall time of the certification.
    formulation : str
        ``"dense"``, ``"lifted"``, ``"kyp"`` or ``"constructive"``.
    sdp_margin : float
        The margin imposed in the SDP (or, for the contraction and fixed-gamma SDPs, the margin
        t it reached); NaN when unknown.
    reason : str
        What was proven, or why nothing was.
    attempts : tuple of dict
        Every solver attempt (solver, status, seconds, mode, ...).
    verification : str
        How the claim was checked (``VERIFICATION_METHOD``).
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
        claimed, contraction form otherwise) is positive definite. The LMI is built from the
        model's actual weights, its equilibrium term D11 included. Its dw block, which dominates
        the S-procedure's ``2L - (a+b)(L D11 + D11'L) + 2ab D11'L D11``, then proves that
        ``w = sigma(C1 x + D11 w + ...)`` has at most one solution (two solutions would make that
        form <= 0 on their difference).

        Parameters
        ----------
        model : ImplicitRNN
            The model the certificate is claimed for.

        Returns
        -------
        Verification
            ``ok`` only when every condition was proven; otherwise the first that failed.

        Raises
        ------
        TypeError
            If ``model`` is not an :class:`~rrnn_convex.model.ImplicitRNN`.
        """
        if not isinstance(model, ImplicitRNN):
            raise TypeError(f"model: expected an ImplicitRNN, got {type(model).__name__}")
        problem = self._claim_problem(model)
        if problem:
            return Verification(False, problem)
        return self._prove(model)

    def _claim_problem(self, model: ImplicitRNN) -> str:
        """Why the claim cannot hold for ``model`` before any proof is tried ('' if none)."""
        if not self.contracting:
            return "the certificate claims nothing (not certified)"
        if model.weights_hash() != self.model_hash:
            return "model hash mismatch: the certificate is for different weights"
        act = model.activation
        if not (self.alpha <= act.alpha and act.beta <= self.beta):
            return (f"slope bounds [{self.alpha}, {self.beta}] do not contain the "
                    f"activation's [{act.alpha}, {act.beta}]")
        n, q = model.n, model.q
        Q = np.asarray(self.Q, dtype=np.float64) if self.Q is not None else None
        lam = np.asarray(self.lam, dtype=np.float64) if self.lam is not None else None
        if Q is None or Q.shape != (n, n):
            return f"Q: expected shape {(n, n)}, got {None if Q is None else Q.shape}"
        if lam is None or lam.shape != (q,):
            return f"lam: expected shape {(q,)}, got {None if lam is None else lam.shape}"
        if not (np.all(np.isfinite(Q)) and np.all(np.isfinite(lam))):
            return "Q or lam has non-finite entries"
        if np.any(lam < 0):
            return f"lam has negative entries (min {lam.min():.3e})"
        if not np.array_equal(Q, Q.T):
            return "Q is not symmetric"
        gamma = self.gamma
        if gamma is not None and not (np.isfinite(gamma) and gamma > 0):
            return f"gamma must be positive and finite, got {gamma}"
        return ""

    def _prove(self, model: ImplicitRNN) -> Verification:
        """The proofs of Q > 0, E'QE > 0 and the LMI > 0 for a well-formed claim."""
        Q = np.asarray(self.Q, dtype=np.float64)
        lam = np.asarray(self.lam, dtype=np.float64)
        gamma = self.gamma
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

        Returns
        -------
        dict
            Plain Python numbers, lists, strings and None only.
        """
        d = asdict(self)
        d["Q"] = None if self.Q is None else np.asarray(self.Q).tolist()
        d["lam"] = None if self.lam is None else np.asarray(self.lam).tolist()
        d["attempts"] = [dict(a) for a in self.attempts]
        d["certified"] = self.certified
        d["schema"] = CERT_SCHEMA
        d["schema_version"] = CERT_SCHEMA_VERSION
        d["package_version"] = __version__
        d["set"] = _set_name(self.contracting, self.gamma)
        for k in _MARGIN_FIELDS:
            if d[k] is not None and not np.isfinite(d[k]):
                d[k] = None  # JSON has no NaN
        return d

    def to_json(self, path=None, indent: int = 2) -> str:
        """The certificate as JSON (numbers and the model hash only).

        Parameters
        ----------
        path : str or os.PathLike, optional
            When given, the text is also written there (atomically).
        indent : int
            JSON indentation.

        Returns
        -------
        str
            The JSON text of :meth:`to_dict`.
        """
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            write_text_atomic(path, text)
        return text

    @classmethod
    def from_dict(cls, d: dict) -> "Certificate":
        """Inverse of :meth:`to_dict`; accepts schema-version-1 files with or without ``set``.

        ``set`` is derived data: when present it must agree with ``contracting`` and ``gamma``.
        Other keys that are not fields (``certified``...) are ignored.

        Parameters
        ----------
        d : dict
            A decoded certificate file.

        Returns
        -------
        Certificate
            ``Q`` and ``lam`` as float64 arrays, null margins as NaN.

        Raises
        ------
        ValueError
            If ``d`` is not a certificate of a supported schema version, misses a required field,
            has a field of the wrong type or a ``set`` that disagrees with its claims.
        """
        _check_header(d)
        _check_fields(d)
        kw = {f: d[f] for f in cls.__dataclass_fields__ if f in d}
        kw["Q"] = None if d.get("Q") is None else np.array(d["Q"], dtype=np.float64)
        kw["lam"] = None if d.get("lam") is None else np.array(d["lam"], dtype=np.float64)
        kw["attempts"] = tuple(d.get("attempts", ()))
        for k in _MARGIN_FIELDS:
            kw[k] = float("nan") if d.get(k) is None else float(d[k])
        return cls(**kw)

    @classmethod
    def from_json(cls, text_or_path) -> "Certificate":
        """Read a certificate from a JSON string or a file path.

        Parameters
        ----------
        text_or_path : str or os.PathLike
            JSON text (starting with ``{``) or the path of a file holding it.

        Returns
        -------
        Certificate
            As from :meth:`from_dict`.

        Raises
        ------
        ValueError
            If the text is not valid JSON (duplicate keys included) or not a certificate
            (:meth:`from_dict`).
        """
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            with open(text_or_path) as fh:
                text = fh.read()
        try:
            d = strict_json(text)
        except ValueError as exc:  # JSONDecodeError is one, and a duplicate key
            raise ValueError(f"certificate: not valid JSON ({exc})") from None
        return cls.from_dict(d)


def _check_header(d) -> None:
    """ValueError unless ``d`` is a certificate object of a supported schema with a consistent ``set``."""
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
        expect = _set_name(d.get("contracting"), d.get("gamma"))
        if d["set"] != expect:
            raise ValueError(f"certificate: field 'set' is {d['set']!r} but "
                             f"contracting={d.get('contracting')!r} and gamma={d.get('gamma')!r} "
                             f"mean {expect!r}")


def _check_fields(d: dict) -> None:
    """ValueError unless the required fields are there and every field has its type."""
    needed = [f for f in ("model_hash", "contracting", "gamma", "alpha", "beta") if f not in d]
    if needed:
        raise ValueError(f"certificate: missing required fields {needed}")
    if not isinstance(d["contracting"], bool):
        raise ValueError(f"certificate: 'contracting' must be true or false, got {d['contracting']!r}")
    optional = ("gamma", "margin", "proven_margin", "sdp_margin", "solve_seconds")
    for k in ("gamma", "alpha", "beta") + optional[1:]:
        v = d.get(k)
        if (v is None and k in optional) or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            continue
        or_null = " or null" if k in optional else ""
        raise ValueError(f"certificate: {k!r} must be a number{or_null}, got {v!r}")
    for k in ("Q", "lam"):
        reject_booleans(d.get(k), f"certificate: {k!r}")


def certificate_from(model: ImplicitRNN, Q, lam, gamma: float | None = None, *, how: str = "") -> Certificate:
    """A certificate from a given (constructive) metric and multipliers, after the rigorous check.

    Parameters
    ----------
    model : ImplicitRNN
        The model to certify.
    Q : array_like, shape (n, n)
        The metric on ``E x`` (``V(dx) = (E dx)' Q (E dx)``); it is symmetrised first.
    lam : array_like, shape (q,)
        The multipliers (negative entries are set to 0).
    gamma : float, optional
        The gain to claim; None claims contraction only.
    how : str
        Where the point comes from: the certificate's ``status`` and the end of its ``reason``.

    Returns
    -------
    Certificate
        Verified, or "not certified" with the reason when the check fails.
    """
    Q = np.asarray(Q, dtype=np.float64)
    Q = flush_subnormal(0.5 * (Q + Q.T))
    lam = flush_subnormal(np.maximum(np.asarray(lam, dtype=np.float64).reshape(-1), 0.0))
    base = dict(model_hash=model.weights_hash(), alpha=model.activation.alpha, beta=model.activation.beta,
                formulation="constructive", solver=None, status=how or "constructive")
    cert = Certificate(**base, contracting=True, gamma=gamma, Q=Q, lam=lam)
    check = cert.verify(model)
    if not check.ok:
        return Certificate(**base, contracting=False, gamma=None, Q=None, lam=None,
                           reason=f"constructive certificate ({how}) did not pass the rigorous check: "
                                  f"{check.reason}")
    return replace(cert, margin=check.estimate, proven_margin=check.proven_margin,
                   reason=check.reason + (f"; {how}" if how else ""))


# ---------------------------------------------------------------------- the reasons of a "no"
def linearised_radius(model: ImplicitRNN) -> tuple[float, float]:
    """The largest spectral radius of the model's linearisations at the activation's slope bounds.

    Every neuron is put at the slope ``alpha``, or every neuron at ``beta`` (float64 eigenvalues:
    evidence, not a proof). A model in Theta contracts for every activation slope-restricted to
    [alpha, beta], the linear ones ``phi(v) = delta v`` included, so a linearisation with spectral
    radius above 1 shows a model that is outside Theta, not just one the solver could not certify.

    Parameters
    ----------
    model : ImplicitRNN
        The model.

    Returns
    -------
    tuple of float
        (largest spectral radius, the slope where it occurs); (nan, nan) for a singular E.
    """
    try:
        Einv = np.linalg.inv(model.E)
    except np.linalg.LinAlgError:
        return float("nan"), float("nan")
    worst, at = -np.inf, float("nan")
    D11 = model_D11(model)
    for delta in {model.activation.alpha, model.activation.beta}:
        K = delta * model.C1  # w = delta v = delta (C1 x + D11 w): w = (I - delta D11)^-1 delta C1 x
        if D11 is not None:
            try:
                K = np.linalg.solve(np.eye(model.q) - delta * D11, K)
            except np.linalg.LinAlgError:
                continue  # no linearisation at this slope (the model is not well-posed there)
        A = Einv @ (model.F + model.B1 @ K)
        rho = float(np.max(np.abs(np.linalg.eigvals(A)))) if model.n else 0.0
        if rho > worst:
            worst, at = rho, float(delta)
    return worst, at


def infeasible_contraction_reason(t: float, how: str = "with trace(Q) normalised",
                                  model: ImplicitRNN | None = None) -> str:
    """The answer for a contraction SDP whose best margin t is <= 0.

    "not contracting" when t is clearly negative, or when ``model`` has a linearisation (every
    slope alpha, or every slope beta) with spectral radius above 1 (:func:`linearised_radius`);
    otherwise, with ``|t|`` at the solvers' tolerance (``MARGINAL_T``, t <= 1 by the normalisation),
    "not certifiable (within solver accuracy)": such a model may contract marginally. (A t near 0
    alone proves nothing: a metric concentrated on the stable modes also gives t -> 0-.)

    Parameters
    ----------
    t : float
        The contraction SDP's best margin.
    how : str
        How t was obtained (said in the reason).
    model : ImplicitRNN, optional
        The model, for the linearisation evidence.

    Returns
    -------
    str
        The reason, starting with "not contracting" or "not certifiable".
    """
    if t > -MARGINAL_T:
        rho, delta = linearised_radius(model) if model is not None else (np.nan, np.nan)
        if rho > 1.0 + 1e-9:
            return (f"not contracting: the contraction LMI is infeasible (best margin t = {t:.3e} {how}) "
                    f"and the linearisation with every neuron at slope {delta:g} has spectral radius "
                    f"{rho:.6g} > 1")
        return (f"not certifiable (within solver accuracy): the contraction LMI's best margin t = {t:.3e} "
                f"({how}) is at the solvers' tolerance ({MARGINAL_T:g}), so the model is at best marginally "
                f"contracting and float64 cannot decide it")
    return f"not contracting: the contraction LMI is infeasible (best margin t = {t:.3e} <= 0 {how})"


__all__ = ["Certificate", "Verification", "certificate_from", "infeasible_contraction_reason",
           "linearised_radius", "flush_subnormal", "CERT_SCHEMA", "CERT_SCHEMA_VERSION",
           "VERIFICATION_METHOD", "MARGINAL_T"]
