"""Property-based fuzzing of certify / verify / project over random models (issue 9, item 1).

The claim under test: a certificate that passes :meth:`Certificate.verify` is TRUE. Three
independent oracles judge every verified certificate, none of them using the package's LMI code:

* an exact rational check (``fractions.Fraction``): the dissipation inequality's quadratic form
  is rebuilt from the float64 weights, Q, lambda and gamma, with the activation's TRUE slope
  bounds (from its name, not from the Activation object), and proven positive definite by
  exact Gaussian elimination (Sylvester); Q > 0 likewise;
* simulation: in the certificate's metric V(dx) = (E dx)' Q (E dx), along pairs of trajectories
  (different initial states, same or different inputs) every step must satisfy
  ``V(dx+) - V(dx) <= g|du|^2 - |dy|^2/g - c(|dx|^2 + |du|^2)`` (c = proven margin; with
  du = 0 that is a strict decrease of V), up to a bound on float64 simulation noise only;
* the sampled incremental gain over many input pairs and the gradient-ascent
  :func:`~rrnn_convex.analysis.lipschitz_lower_bound` are <= gamma (float-noise tolerance only).

Tampered certificates (weights changed by one ulp, Q / lambda perturbed, gamma lowered) must be
rejected, or, if still accepted, pass the same oracles.

Extreme scales (issue 15): true certificates multiplied by 10^-330 .. 10^305 (towards underflow
and overflow) and models rewritten as ``transform(s I)``, s in 1e-150 .. 1e150, are judged by the
exact oracle, and verify must not depend on s; hand-made subnormal certificates of models at the
contraction boundary (issue 15's false certificate and its neighbours) must never verify falsely.

Equilibrium term (issue 18): ``Spec.d11`` "lower" / "general" adds a D11 (:func:`make_D11`);
the exact oracle always reads ``dv = C1 dx + D11 dw + D12 du`` and the simulation oracles'
noise bound propagates the neurons' error through the equilibrium (:func:`_noise_terms_d11`).
The D11 properties are run by tests/test_fuzz_d11.py.

Profiles: the default ``fast`` profile (derandomized, reproducible, < 60 s) runs in the normal
suite; ``RRNN_FUZZ=campaign`` selects a large randomized campaign (``RRNN_FUZZ_EXAMPLES``
examples per property, default 500). ``benchmarks/fuzz_campaign.py`` runs :func:`fuzz_case`
over many seeds and prints a table.
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rrnn_convex import ImplicitRNN, certify, leaky_relu

U64 = 2.0 ** -53
ETA = 2.0 ** -1074  # smallest subnormal

# ----------------------------------------------------------------------------- profiles
# hypothesis caches constants under ./.hypothesis even without an example database; keep the
# working tree clean (the examples are derandomized, nothing there is needed)
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    import tempfile

    from hypothesis.configuration import set_hypothesis_home_dir
    set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "rrnn_convex_hypothesis"))

settings.register_profile("rrnn_fast", deadline=None, derandomize=True, database=None, max_examples=20,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                          print_blob=True)
settings.register_profile("rrnn_campaign", deadline=None, derandomize=False, database=None,
                          max_examples=int(os.environ.get("RRNN_FUZZ_EXAMPLES", "500")),
                          suppress_health_check=list(HealthCheck), print_blob=True)
CAMPAIGN = os.environ.get("RRNN_FUZZ", "").lower() == "campaign"
PROFILE = settings.get_profile("rrnn_campaign" if CAMPAIGN else "rrnn_fast")


def fuzz_settings(fast_examples: int):
    """The active profile; in the fast profile ``fast_examples`` examples."""
    if CAMPAIGN:
        return settings(PROFILE)
    return settings(PROFILE, max_examples=fast_examples)


# ----------------------------------------------------------------------------- model generator
ACTIVATIONS = ("relu", "tanh", "leaky_relu", "sigmoid")
E_KINDS = ("identity", "well", "ill", "permuted")


@dataclass(frozen=True)
class Spec:
    """Everything that determines one random model (reproducible from these numbers)."""

    n: int
    q: int
    m: int
    p: int
    activation: str
    slope: float  # leaky relu negative slope
    log_contraction: float  # log10 of ||A|| + beta ||B1h|| ||C1|| (the small-gain bound)
    log_io: float  # log10 of the input/output weights' scale
    e_kind: str
    e_log_cond: float  # log10 cond(E) for e_kind "ill"
    linear: bool  # B1 = 0 and D21 = 0 (an LTI system with idle neurons)
    seed: int
    # the equilibrium term (issue 18), drawn from its own stream [seed, 18] so that "none" builds
    # exactly the models of the D11-free fuzzing
    d11: str = "none"  # "none", "lower" (strictly lower triangular after a permutation) or "general"
    d11_log_scale: float = 0.0  # log10 of the D11 entries' scale (general: of its symmetric part)
    d11_log_margin: float = -1.0  # general: log10 mu, mu = 1 - lambda_max(sym(Lam^1/2 D11 Lam^-1/2))
    d11_multiplier: bool = True  # general: pass the Lambda of the construction as well_posed_multiplier


def true_slope_bounds(spec_or_activation) -> tuple[float, float]:
    """The activation's true slope bounds, from the function it computes (not from Activation)."""
    name = getattr(spec_or_activation, "activation", spec_or_activation)
    name = getattr(name, "name", name)
    if name in ("relu", "tanh"):
        return 0.0, 1.0
    if name == "sigmoid":
        return 0.0, 0.25
    if name == "leaky_relu":
        s = spec_or_activation.slope
        return min(s, 1.0), max(s, 1.0)
    raise ValueError(name)


def _orth(rng, n):
    Qm, R = np.linalg.qr(rng.standard_normal((n, n)))
    return Qm * np.sign(np.diag(R))


def make_E(rng, n, kind, log_cond):
    if kind == "identity":
        return np.eye(n)
    scale = 10.0 ** rng.uniform(-2, 2)
    if kind == "well":
        return scale * _orth(rng, n) @ np.diag(10.0 ** rng.uniform(-0.5, 0.5, n)) @ _orth(rng, n)
    if kind == "ill":
        sv = 10.0 ** (-np.linspace(0.0, log_cond, n))
        return scale * _orth(rng, n) @ np.diag(sv) @ _orth(rng, n)
    # permuted: a signed permutation times a strongly non-normal triangular factor
    P = np.eye(n)[rng.permutation(n)] * rng.choice([-1.0, 1.0], size=n)
    T = np.eye(n) + np.triu(rng.standard_normal((n, n)) * 3.0, 1)
    return scale * P @ T


def build_model(spec: Spec) -> ImplicitRNN:
    rng = np.random.default_rng(spec.seed)
    n, q, m, p = spec.n, spec.q, spec.m, spec.p
    act = leaky_relu(spec.slope) if spec.activation == "leaky_relu" else spec.activation
    _, beta = true_slope_bounds(spec)
    s = 10.0 ** spec.log_contraction
    share = 1.0 if spec.linear else rng.uniform(0.05, 0.95)  # part of the bound taken by A
    A = rng.standard_normal((n, n))
    A *= s * share / np.linalg.norm(A, 2)
    B1h = rng.standard_normal((n, q))
    C1 = rng.standard_normal((q, n))
    if spec.linear:
        B1h[:] = 0.0
    else:
        k = np.sqrt(s * (1.0 - share) / beta)
        B1h *= k / np.linalg.norm(B1h, 2)
        C1 *= k / np.linalg.norm(C1, 2)
    if spec.d11 != "none":
        D11, lam_wp = make_D11(spec)
        gain = equilibrium_gain(D11, beta, lam_wp)  # |dw| <= gain |dv0|: B1h and C1 share it
        B1h /= np.sqrt(gain / beta)
        C1 /= np.sqrt(gain / beta)
    io = 10.0 ** spec.log_io
    B2h = io * rng.standard_normal((n, m))
    D12 = io * rng.standard_normal((q, m))
    C2 = io * rng.standard_normal((p, n))
    D21 = np.zeros((p, q)) if spec.linear else io * rng.standard_normal((p, q))
    D22 = io * rng.standard_normal((p, m))
    E = make_E(rng, n, spec.e_kind, spec.e_log_cond)
    extra = {}
    if spec.d11 != "none":
        extra["D11"] = D11
        if lam_wp is not None and spec.d11_multiplier:
            extra["well_posed_multiplier"] = lam_wp
    return ImplicitRNN(E=E, F=E @ A, B1=E @ B1h, B2=E @ B2h, C1=C1, D12=D12, C2=C2, D21=D21, D22=D22,
                       bx=E @ rng.standard_normal(n), bv=rng.standard_normal(q), by=rng.standard_normal(p),
                       activation=act, **extra)


# ----------------------------------------------------------------------------- the equilibrium term D11
D11_KINDS = ("lower", "general")


def make_D11(spec: Spec):
    """(D11, Lambda) for ``spec``: Lambda (diagonal, shape (q,)) proves a "general" D11 well posed by
    construction; None for a "lower" one.

    * "lower": strictly lower triangular, either dense with a random density or in layers
      (block lower triangular with zero diagonal blocks, like stacked RNNs), entries of scale
      10^d11_log_scale, then the neurons relabelled by a random permutation (so that only a
      reordering makes it triangular).
    * "general": with a random positive diagonal Lambda (10^-1.5 .. 10^1.5) and
      K = Lambda^1/2 D11 Lambda^-1/2 = G - shift I, G a random symmetric part of spread
      10^d11_log_scale plus a random skew part; the shift makes lambda_max(sym K) = 1 - mu,
      mu = 10^d11_log_margin, i.e. ``2 Lambda - Lambda D11 - D11' Lambda = 2 Lambda^1/2 (I - sym K)
      Lambda^1/2 >= 2 mu Lambda``: well posed, by mu from the edge.
    """
    rng = np.random.default_rng([spec.seed, 18])
    q = spec.q
    if spec.d11 == "lower":
        if q < 2:
            raise ValueError("make_D11: a strictly lower-triangular D11 needs q >= 2")
        if rng.random() < 0.5:  # layers
            cuts = np.sort(rng.choice(np.arange(1, q), size=int(rng.integers(1, q)), replace=False))
            layer = np.searchsorted(cuts, np.arange(q), side="right")
            mask = layer[:, None] > layer[None, :]
        else:
            mask = np.tril(rng.random((q, q)) < rng.choice([0.3, 0.6, 1.0]), -1)
            mask[int(rng.integers(1, q)), 0] = True  # at least one entry
        D = np.where(mask, rng.standard_normal((q, q)), 0.0) * 10.0 ** spec.d11_log_scale
        perm = rng.permutation(q)
        return D[np.ix_(perm, perm)], None
    if spec.d11 == "general":
        lam = 10.0 ** rng.uniform(-1.5, 1.5, q)
        X = rng.standard_normal((q, q))
        S = 0.5 * (X + X.T)
        S *= 10.0 ** spec.d11_log_scale / max(np.linalg.norm(S, 2), 1e-300)
        Y = rng.standard_normal((q, q))
        W = 0.5 * (Y - Y.T)
        if q > 1:
            W *= 10.0 ** rng.uniform(-2.0, 1.0) / max(np.linalg.norm(W, 2), 1e-300)
        K = S + W
        K -= (np.linalg.eigvalsh(S)[-1] - 1.0 + 10.0 ** spec.d11_log_margin) * np.eye(q)
        r = np.sqrt(lam)
        return K * r[None, :] / r[:, None], lam
    raise ValueError(f"make_D11: unknown kind {spec.d11!r}")


def equilibrium_gain(D11, beta: float, lam=None) -> float:
    """A bound on |dw| / |dv0| for ``w = sigma(v0 + D11 w)``, slopes in [0, beta] (Euclidean norms).

    Acyclic D11 (``lam`` None): ``|dw| <= beta |dv0| + beta |D11| |dw|`` entrywise, and
    ``(beta |D11|)^q = 0``, so ``|dw| <= beta (I + beta|D11| + ... + (beta|D11|)^(q-1)) |dv0|``.
    General D11 with ``2 Lam - Lam D11 - D11' Lam > 0`` (beta <= 1): ``dw_i dv_i >= dw_i^2 / beta``
    gives ``dw' (Lam / beta - sym(Lam D11)) dw <= dw' Lam dv0``, so
    ``|dw| <= max(Lam) / lambda_min(Lam / beta - sym(Lam D11)) |dv0|``.
    """
    D = np.asarray(D11, dtype=np.float64)
    if not D.any():
        return float(beta)
    if lam is None:
        A = beta * np.abs(D)
        P, T = np.eye(len(D)), np.eye(len(D))
        for _ in range(len(D) - 1):
            T = T @ A
            P = P + T
        if T.any() and np.any(T @ A):
            raise ValueError("equilibrium_gain: D11 is not acyclic; pass its multiplier")
        return float(beta * np.linalg.norm(P, 2))
    lam = np.asarray(lam, dtype=np.float64)
    M = np.diag(lam) / beta - 0.5 * (lam[:, None] * D + (lam[:, None] * D).T)
    mmin = float(np.linalg.eigvalsh(M)[0])
    if not mmin > 0:
        raise ValueError(f"equilibrium_gain: the multiplier does not prove D11 well posed (min eig {mmin:.3g})")
    return float(np.max(lam) / mmin)


@st.composite
def specs(draw, max_log_contraction=0.15, e_kinds=E_KINDS, max_log_cond=8.0, d11="none"):
    """Random :class:`Spec`; ``d11`` "lower" or "general" adds an equilibrium term (drawn after the
    D11-free fields, so "none" draws exactly what it always drew)."""
    n = draw(st.integers(1, 6))
    q = draw(st.integers(1, 6))
    m = draw(st.integers(1, 2))
    p = draw(st.integers(1, 2))
    act = draw(st.sampled_from(ACTIVATIONS))
    slope = draw(st.sampled_from([0.01, 0.1, 0.5, 0.9])) if act == "leaky_relu" else 0.0
    # half the models near the stability boundary (small-gain bound 0.7 .. 10^max), half anywhere
    near = draw(st.booleans())
    lc = draw(st.floats(-0.15, max_log_contraction) if near else st.floats(-4.0, max_log_contraction))
    spec = Spec(n=n, q=q, m=m, p=p, activation=act, slope=slope, log_contraction=lc,
                log_io=draw(st.floats(-3.0, 2.0)),
                e_kind=draw(st.sampled_from(e_kinds)),
                e_log_cond=draw(st.floats(1.0, max_log_cond)),
                linear=draw(st.integers(0, 5)) == 0,
                seed=draw(st.integers(0, 2 ** 32 - 1)))
    if d11 == "none":
        return spec
    edge = draw(st.booleans())  # half the general ones within 1e-7 .. 1e-4 of ill-posedness
    return replace(spec, q=max(q, 2) if d11 == "lower" else q, d11=d11,
                   d11_log_scale=draw(st.floats(-2.0, 1.0) if d11 == "lower" else st.floats(-2.0, 1.5)),
                   d11_log_margin=draw(st.floats(-7.0, -4.0) if edge else st.floats(-4.0, 0.0)),
                   d11_multiplier=draw(st.integers(0, 3)) > 0)


def random_spec(rng: np.random.Generator, max_log_contraction=0.15, max_log_cond=8.0, d11="none") -> Spec:
    """The same distribution as :func:`specs`, from a numpy generator (for the campaign script)."""
    act = ACTIVATIONS[rng.integers(len(ACTIVATIONS))]
    near = rng.random() < 0.5
    spec = Spec(n=int(rng.integers(1, 7)), q=int(rng.integers(1, 7)), m=int(rng.integers(1, 3)),
                p=int(rng.integers(1, 3)), activation=act,
                slope=float(rng.choice([0.01, 0.1, 0.5, 0.9])) if act == "leaky_relu" else 0.0,
                log_contraction=float(rng.uniform(-0.15 if near else -4.0, max_log_contraction)),
                log_io=float(rng.uniform(-3.0, 2.0)), e_kind=E_KINDS[rng.integers(len(E_KINDS))],
                e_log_cond=float(rng.uniform(1.0, max_log_cond)), linear=bool(rng.integers(0, 6) == 0),
                seed=int(rng.integers(0, 2 ** 32)))
    if d11 == "none":
        return spec
    edge = rng.random() < 0.5
    return replace(spec, q=max(spec.q, 2) if d11 == "lower" else spec.q, d11=d11,
                   d11_log_scale=float(rng.uniform(-2.0, 1.0 if d11 == "lower" else 1.5)),
                   d11_log_margin=float(rng.uniform(-7.0, -4.0) if edge else rng.uniform(-4.0, 0.0)),
                   d11_multiplier=bool(rng.integers(0, 4) > 0))


# ----------------------------------------------------------------------------- exact oracle
def _fr(A):
    A = np.atleast_2d(np.asarray(A, dtype=np.float64))
    return [[Fraction(float(x)) for x in row] for row in A]


def _mm(A, B):
    Bt = list(zip(*B))
    return [[sum((a * b for a, b in zip(row, col) if a and b), Fraction(0)) for col in Bt] for row in A]


def _tr(A):
    return [list(r) for r in zip(*A)]


def _lincomb(terms, N):
    out = [[Fraction(0)] * N for _ in range(N)]
    for coef, Mx in terms:
        if coef == 0:
            continue
        for i in range(N):
            row, orow = Mx[i], out[i]
            for j in range(N):
                if row[j]:
                    orow[j] += coef * row[j]
    return out


def _quad(L, W):
    """L' W L for exact matrices (W square)."""
    return _mm(_tr(L), _mm(W, L))


def exact_pd(M) -> bool:
    """Exact positive definiteness of a symmetric rational matrix (pivots of Gaussian elimination)."""
    A = [list(r) for r in M]
    N = len(A)
    for k in range(N):
        piv = A[k][k]
        if piv <= 0:
            return False
        rowk = A[k]
        for i in range(k + 1, N):
            f = A[i][k] / piv
            if f:
                rowi = A[i]
                for j in range(k + 1, N):
                    if rowk[j]:
                        rowi[j] -= f * rowk[j]
    return True


def exact_certificate_holds(model: ImplicitRNN, Q, lam, gamma, bounds) -> bool:
    """Independent exact check that (Q, lam, gamma) certify ``model`` for slopes in ``bounds``.

    z = (dx, dw, du) (du only with a gain); the quadratic form
    V(dx) - V(dx+) + g|du|^2 - |dy|^2/g - 2 (dw - a dv)' Lam (b dv - dw) must be > 0 for z != 0,
    with V(dx) = (E dx)' Q (E dx), E dx+ = F dx + B1 dw + B2 du, dv = C1 dx + D11 dw + D12 du,
    dy = C2 dx + D21 dw + D22 du; and Q > 0. Exact rational arithmetic on the float64 data.
    """
    n, q, m = model.n, model.q, model.m
    gain = gamma is not None
    N = n + q + (m if gain else 0)
    Qf = _fr(Q)
    Qf = [[(Qf[i][j] + Qf[j][i]) / 2 for j in range(n)] for i in range(n)]  # verify symmetry-checks Q
    if not exact_pd(Qf):
        return False
    Z = lambda r, c: [[Fraction(0)] * c for _ in range(r)]  # noqa: E731
    I = lambda k: [[Fraction(int(i == j)) for j in range(k)] for i in range(k)]  # noqa: E731

    def row(*blocks):
        rows = len(blocks[0])
        return [sum((b[i] for b in blocks), []) for i in range(rows)]

    du = [row(Z(m, n), Z(m, q), I(m))] if gain else None
    Lx = row(_fr(model.E), Z(n, q), *([Z(n, m)] if gain else []))
    Lp = row(_fr(model.F), _fr(model.B1), *([_fr(model.B2)] if gain else []))
    # dv = C1 dx + D11 dw + D12 du (D11 = 0 without the equilibrium term)
    Lv = row(_fr(model.C1), _fr(model.D11), *([_fr(model.D12)] if gain else []))
    Lw = row(Z(q, n), I(q), *([Z(q, m)] if gain else []))
    Lam = [[Fraction(float(lam[i])) if i == j else Fraction(0) for j in range(q)] for i in range(q)]
    a, b = Fraction(float(bounds[0])), Fraction(float(bounds[1]))
    LvLw = _mm(_tr(Lv), _mm(Lam, Lw))
    terms = [(1, _quad(Lx, Qf)), (-1, _quad(Lp, Qf)), (2 * a * b, _quad(Lv, Lam)),
             (-(a + b), LvLw), (-(a + b), _tr(LvLw)), (2, _quad(Lw, Lam))]
    if gain:
        g = Fraction(float(gamma))
        if g <= 0:
            return False
        Ly = row(_fr(model.C2), _fr(model.D21), _fr(model.D22))
        terms += [(g, _quad(du[0], I(m))), (-1 / g, _quad(Ly, I(model.p)))]
    return exact_pd(_lincomb(terms, N))


# ----------------------------------------------------------------------------- simulation oracles
def _noise_terms(model, X, Ub):
    """Per-step float64 noise bound on x[t+1] and y[t] of :meth:`ImplicitRNN.simulate` (each
    trajectory), taking x[t] as exact: evaluation error plus the explicit form's solve error."""
    if model.d11_kind != "zero":
        return _noise_terms_d11(model, X, Ub)
    A, B1h, B2h, bxh = model._explicit_matrices()
    n, q, m = model.n, model.q, model.m
    K = 16.0 * (n + q + m + 4) * U64
    kappa = float(np.linalg.cond(model.E))
    x = X[:, :-1]
    v = x @ model.C1.T + Ub @ model.D12.T + model.bv
    w = model.activation(v)
    _, beta = model.activation.alpha, model.activation.beta
    verr = np.abs(x) @ np.abs(model.C1).T + np.abs(Ub) @ np.abs(model.D12).T + np.abs(model.bv)
    sx = (np.abs(x) @ np.abs(A).T + (np.abs(w) + max(beta, 1.0) * verr) @ np.abs(B1h).T
          + np.abs(Ub) @ np.abs(B2h).T + np.abs(bxh))
    sy = (np.abs(x) @ np.abs(model.C2).T + (np.abs(w) + max(beta, 1.0) * verr) @ np.abs(model.D21).T
          + np.abs(Ub) @ np.abs(model.D22).T + np.abs(model.by))
    ex = K * (1.0 + n * kappa) * np.linalg.norm(sx, axis=-1)
    ey = K * np.linalg.norm(sy, axis=-1)
    return ex, ey


#: the fixed-point residual a general D11's equilibrium is accepted with, in float64 roundings of
#: v (the model's documented solver tolerance is 64; twice that is allowed here)
EQUILIBRIUM_RESIDUAL_ULPS = 128


def _noise_terms_d11(model, X, Ub):
    """:func:`_noise_terms` with an equilibrium term: the neurons' float64 error is propagated
    through ``w = sigma(v0 + D11 w)``.

    The computed w satisfies ``w = sigma(v0 + D11 w + e1) + e2`` with |e1| the rounding of v and
    |e2| that of sigma plus, for a general D11, the solver's residual. The error dw = w - w_true
    then obeys ``dw - e2 = S (D11 (dw - e2) + D11 e2 + e1)`` (S diagonal, slopes in [0, beta]),
    so ``|dw| <= |e2| + g (|e1| + |D11| |e2|)`` with g = :func:`equilibrium_gain`.
    """
    A, B1h, B2h, bxh = model._explicit_matrices()
    n, q, m = model.n, model.q, model.m
    K = 16.0 * (n + 2 * q + m + 4) * U64
    kappa = float(np.linalg.cond(model.E))
    D = model.D11
    x = X[:, :-1]
    v0 = x @ model.C1.T + Ub @ model.D12.T + model.bv
    w = model.neurons(v0.reshape(-1, q)).reshape(v0.shape)
    beta = float(model.activation.beta)
    lam = model.well_posed_multiplier if model.d11_kind == "general" else None
    g = equilibrium_gain(D, beta, lam)
    dnorm = float(np.linalg.norm(D, 2))
    ev = K * np.linalg.norm(np.abs(x) @ np.abs(model.C1).T + np.abs(Ub) @ np.abs(model.D12).T + np.abs(model.bv)
                            + np.abs(w) @ np.abs(D).T, axis=-1)
    e2 = K * max(beta, 1.0) * np.linalg.norm(w, axis=-1)
    if model.d11_kind == "general":
        e2 = e2 + np.sqrt(q) * EQUILIBRIUM_RESIDUAL_ULPS * U64 * 2.0 * (
            1.0 + np.max(np.abs(v0) + np.abs(w) @ np.abs(D).T, axis=-1))
    ew = e2 + g * (ev + dnorm * e2)
    sx = (np.abs(x) @ np.abs(A).T + np.abs(w) @ np.abs(B1h).T + np.abs(Ub) @ np.abs(B2h).T + np.abs(bxh))
    sy = (np.abs(x) @ np.abs(model.C2).T + np.abs(w) @ np.abs(model.D21).T + np.abs(Ub) @ np.abs(model.D22).T
          + np.abs(model.by))
    ex = (1.0 + n * kappa) * (K * np.linalg.norm(sx, axis=-1) + np.linalg.norm(B1h, 2) * ew)
    ey = K * np.linalg.norm(sy, axis=-1) + np.linalg.norm(model.D21, 2) * ew
    return ex, ey


def stepwise_violation(model, Q, c, gamma, x01, x02, u1, u2):
    """Largest violation (normalised, > 0 means violated) of the certified one-step inequality

        V(dx+) - V(dx) <= g |du|^2 - |dy|^2 / g - c (|dx|^2 + |du|^2)     (gain form)
        V(dx+) - V(dx) <= - c |dx|^2                                      (contraction, du = 0)

    along simulated trajectories, beyond a bound on float64 simulation noise. Also returns the
    number of steps at which V strictly decreased although the noise could not explain it.
    """
    y1, X1 = model.simulate(u1, x01, return_states=True)
    y2, X2 = model.simulate(u2, x02, return_states=True)
    # V(dx) = dx' G dx with G = E'QE computed exactly (rounded once): evaluating (E dx)' Q (E dx)
    # in floats loses ~cond(E)^2 u relative accuracy, far more than the margin
    Gf = _mm(_tr(_fr(model.E)), _mm(_fr(Q), _fr(model.E)))
    G = np.array([[float(x) for x in r] for r in Gf])
    G = 0.5 * (G + G.T)
    gn = float(np.linalg.norm(G, 2))
    dX = X1 - X2
    V = np.einsum("bti,ij,btj->bt", dX, G, dX)
    dx2 = np.sum(dX ** 2, axis=-1)
    du2 = np.sum((u1 - u2) ** 2, axis=-1)
    dy = y1 - y2
    dy2 = np.sum(dy ** 2, axis=-1)
    ex1, ey1 = _noise_terms(model, X1, u1)
    ex2, ey2 = _noise_terms(model, X2, u2)
    ex = ex1 + ex2 + U64 * np.sqrt(dx2[:, 1:])
    ey = ey1 + ey2
    Vn, Vo = V[:, 1:], V[:, :-1]
    evalV = 8 * (model.n + 2) * U64 * np.einsum("bti,ij,btj->bt", np.abs(dX), np.abs(G), np.abs(dX))
    tolV = 2.0 * np.sqrt(gn * np.maximum(Vn, 0.0)) * ex + 3.0 * gn * ex ** 2 + evalV[:, 1:] + evalV[:, :-1]
    lhs = Vn - Vo
    if gamma is None:
        rhs = -c * dx2[:, :-1]
        tol = tolV
    else:
        rhs = gamma * du2 - dy2 / gamma - c * (dx2[:, :-1] + du2)
        tol = tolV + (2.0 * np.sqrt(dy2) * ey + ey ** 2) / gamma + 4 * U64 * (gamma * du2 + dy2 / gamma)
    excess = lhs - rhs - tol
    scale = np.maximum(np.abs(Vo) + np.abs(rhs) + tol, 1e-300)
    return float(np.max(excess / scale)), int(np.sum((rhs + tol < 0) & (lhs < 0)))


def sampled_gain_violation(model, gamma, rng, pairs=48, T=80, x0=None):
    """max over random input pairs of (ratio - gamma) / gamma beyond float noise (> 0 = violated)."""
    m = model.m
    u1 = rng.standard_normal((pairs, T, m)) * 10.0 ** rng.uniform(-2, 1, size=(pairs, 1, 1))
    du = rng.standard_normal((pairs, T, m)) * 10.0 ** rng.uniform(-2, 0.5, size=(pairs, 1, 1))
    k = pairs // 3
    t = np.arange(T)[None, :, None]
    du[:k] = np.sin(rng.uniform(0, np.pi, size=(k, 1, m)) * t + rng.uniform(0, 6, size=(k, 1, m))) * \
        10.0 ** rng.uniform(-2, 0.5, size=(k, 1, 1))
    y1, X1 = model.simulate(u1, x0, return_states=True)
    y2, X2 = model.simulate(u1 + du, x0, return_states=True)
    num = np.sqrt(np.sum((y1 - y2) ** 2, axis=(1, 2)))
    den = np.sqrt(np.sum(du ** 2, axis=(1, 2)))
    # noise: per-step errors propagate through a contracting system; bound them generously
    ex1, ey1 = _noise_terms(model, X1, u1)
    ex2, ey2 = _noise_terms(model, X2, u1 + du)
    noise = 1e3 * (np.sqrt(np.sum((ex1 + ex2) ** 2, axis=1)) * (1 + np.linalg.norm(model.C2, 2))
                   + np.sqrt(np.sum((ey1 + ey2) ** 2, axis=1)))
    ratio = num / den
    return float(np.max((ratio - gamma * (1 + 1e-9) - noise / den) / gamma)), float(np.max(ratio))


# ----------------------------------------------------------------------------- one certificate
def judge(model: ImplicitRNN, cert, rng, bounds, *, lipschitz: bool = True, exact: bool = True,
          tag: str = "") -> list[str]:
    """Violations of the certificate's claims (empty = all oracles agree it is true)."""
    out = []
    check = cert.verify(model)
    if not check.ok:
        return [f"{tag}judge called on a certificate that does not verify: {check.reason}"]
    Q, lam, g = np.asarray(cert.Q), np.asarray(cert.lam), cert.gamma
    if not (cert.alpha <= bounds[0] and bounds[1] <= cert.beta):
        out.append(f"{tag}certificate slope bounds [{cert.alpha}, {cert.beta}] do not contain the "
                   f"activation's true bounds {bounds}")
    if exact and not exact_certificate_holds(model, Q, lam, g, bounds):
        out.append(f"{tag}FALSE CERTIFICATE: exact rational LMI check fails (gamma={g})")
    c = max(float(check.proven_margin), 0.0)
    n, m, B, T = model.n, model.m, 6, 50
    xs = 10.0 ** rng.uniform(-1, 2)
    x01, x02 = xs * rng.standard_normal((B, n)), xs * rng.standard_normal((B, n))
    Ex = np.linalg.solve(model.E, np.eye(n))  # states of comparable size in E x
    x01, x02 = x01 @ Ex.T, x02 @ Ex.T
    u = rng.standard_normal((B, T, m)) * 10.0 ** rng.uniform(-1, 1)
    viol, _ = stepwise_violation(model, Q, c, None, x01, x02, u, u)
    if viol > 0:
        out.append(f"{tag}contraction: V(dx) did not decrease by c|dx|^2 (excess {viol:.3g})")
    if g is not None:
        u2 = u + rng.standard_normal((B, T, m)) * 10.0 ** rng.uniform(-2, 1)
        viol, _ = stepwise_violation(model, Q, c, g, x01, x02, u, u2)
        if viol > 0:
            out.append(f"{tag}dissipation inequality violated stepwise (excess {viol:.3g})")
        sv, ratio = sampled_gain_violation(model, g, rng)
        if sv > 0:
            out.append(f"{tag}sampled incremental gain {ratio:.8g} > gamma {g:.8g}")
        sv, ratio = sampled_gain_violation(model, g, rng, x0=x01[0])
        if sv > 0:
            out.append(f"{tag}sampled incremental gain from x0 != 0: {ratio:.8g} > gamma {g:.8g}")
        if lipschitz:
            from rrnn_convex.analysis import lipschitz_lower_bound
            lb = None
            try:
                lb = lipschitz_lower_bound(model, horizon=40, starts=2, steps=25, seed=int(rng.integers(1 << 30)))
            except ValueError as exc:  # the adjoint of a model with D11 (not supported yet): skipped
                if model.d11_kind == "zero" or "D11" not in str(exc):
                    raise
            if lb is not None and lb.value > g * (1 + 1e-7):
                out.append(f"{tag}lipschitz_lower_bound {lb.value:.8g} > gamma {g:.8g}")
    return out


# ----------------------------------------------------------------------------- tampering
TAMPERS = ("weights_ulp", "activation", "Q", "lam", "gamma_down", "scale_all_down")


def tamper(model, cert, rng, kind):
    """(model', cert') with one change; the claims of cert' may or may not still hold."""
    if kind == "weights_ulp":
        names = ("E", "F", "B1", "B2", "C1", "D12", "C2", "D21", "D22", "bx", "bv", "by")
        if model.d11_kind != "zero":
            names += ("D11",)
        name = names[rng.integers(len(names))]
        arr = np.array(getattr(model, name))
        idx = tuple(int(rng.integers(s)) for s in arr.shape)
        arr[idx] = np.nextafter(arr[idx], np.inf if rng.random() < 0.5 else -np.inf)
        try:
            return replace(model, **{name: arr}), cert
        except ValueError:  # e.g. E made singular: nothing to check
            return None
    if kind == "activation":
        other = {"relu": "tanh", "tanh": "relu", "sigmoid": "tanh", "leaky_relu": "relu"}[model.activation.name]
        return replace(model, activation=other), cert
    if kind == "Q":
        R = rng.standard_normal(cert.Q.shape)
        d = 10.0 ** rng.uniform(-14, -1) * np.linalg.norm(cert.Q, 2) * (R + R.T) / 2
        return model, replace(cert, Q=cert.Q + d)
    if kind == "lam":
        lam = cert.lam * (1 + 10.0 ** rng.uniform(-14, -1) * rng.standard_normal(cert.lam.shape))
        if rng.random() < 0.3:
            lam[rng.integers(lam.size)] = 0.0
        return model, replace(cert, lam=lam)
    if kind == "gamma_down":
        if cert.gamma is None:
            return None
        return model, replace(cert, gamma=cert.gamma * (1 - 10.0 ** rng.uniform(-15, -0.3)))
    if kind == "scale_all_down":  # the LMI is linear in (Q, lam, gamma): scaling down is harmless
        s = 10.0 ** rng.uniform(-3, 0)
        return model, replace(cert, Q=cert.Q * s, lam=cert.lam * s,
                              gamma=None if cert.gamma is None else cert.gamma * s)
    raise ValueError(kind)


# ----------------------------------------------------------------------------- one case
@dataclass
class CaseResult:
    spec: Spec
    certified: bool = False
    verified: bool = False
    gamma: float | None = None
    category: str = ""
    violations: list = field(default_factory=list)
    exception: str | None = None
    tampered_accepted: int = 0
    tampered_rejected: int = 0
    seconds: float = 0.0


def reason_category(reason: str) -> str:
    r = reason.lower()
    if "not contracting" in r:
        return "not certified: LMI infeasible (not contracting)"
    if "no solver returned" in r:
        return "not certified: no solver point"
    if "did not pass the rigorous check" in r:
        return "not certified: rigorous check failed"
    if "internal" in r:
        return "not certified: internal"
    return "not certified: other (" + reason[:60] + ")"


def norm_contractive(spec: Spec) -> bool:
    """Contracting by the small-gain bound ||A|| + beta ||B1h|| ||C1|| < 1 with room to spare, in a
    well-conditioned representation: a certificate must be found (completeness)."""
    return (spec.log_contraction <= np.log10(0.8) and spec.e_kind in ("identity", "well") and -2 <= spec.log_io <= 1.5
            and spec.d11 == "none")  # with D11 the small-gain bound does not imply a diagonal-multiplier LMI


def fuzz_case(spec: Spec, *, tampers: bool = True, lipschitz: bool = True, exact: bool = True,
              contraction_only: bool = False) -> CaseResult:
    """Certify the model of ``spec`` and judge the answer; never raises (exceptions are recorded)."""
    import time
    t0 = time.perf_counter()
    res = CaseResult(spec)
    rng = np.random.default_rng([spec.seed, 7])
    bounds = true_slope_bounds(spec)
    try:
        model = build_model(spec)
    except ValueError as exc:  # e.g. E too ill-conditioned for the constructor: a clear error is fine
        res.category = f"model rejected: {str(exc)[:50]}"
        return res
    try:
        cert = certify(model, contraction_only=contraction_only)
        res.certified = cert.certified
        if not cert.certified:
            res.category = reason_category(cert.reason)
            if not cert.reason:
                res.violations.append("not certified without a reason")
            if cert.verify(model).ok:
                res.violations.append("an uncertified answer verifies")
            if norm_contractive(spec) and not contraction_only:
                res.violations.append(f"COMPLETENESS: small-gain contractive model not certified ({cert.reason})")
            return res
        res.gamma = cert.gamma
        check = cert.verify(model)
        res.verified = check.ok
        if not check.ok:
            res.violations.append(f"certify returned a certificate that fails verify: {check.reason}")
            return res
        res.category = "certified"
        if contraction_only and cert.gamma is not None:
            res.violations.append("contraction_only certificate claims a gamma")
        res.violations += judge(model, cert, rng, bounds, lipschitz=lipschitz, exact=exact)
        if tampers:
            for kind in TAMPERS:
                t = tamper(model, cert, rng, kind)
                if t is None:
                    continue
                m2, c2 = t
                v = c2.verify(m2)
                if kind in ("weights_ulp", "activation"):
                    if v.ok or "hash" not in v.reason:
                        res.violations.append(f"tamper {kind}: verify did not report a hash mismatch ({v.reason})")
                    res.tampered_rejected += 1
                    continue
                if v.ok:
                    res.tampered_accepted += 1
                    res.violations += judge(m2, c2, rng, bounds, lipschitz=False, exact=exact, tag=f"tamper {kind}: ")
                else:
                    res.tampered_rejected += 1
    except Exception as exc:  # noqa: BLE001 - a crash is a finding, recorded not raised
        res.exception = f"{type(exc).__name__}: {exc}"
        res.category = f"EXCEPTION {type(exc).__name__}"
        res.violations.append("exception: " + traceback.format_exc(limit=4))
    res.seconds = time.perf_counter() - t0
    return res


def fixed_gamma_case(spec: Spec, factor: float) -> list[str]:
    """certify(model, gamma=G) with G = factor * (smallest certified gamma): G well below must not
    certify; a certified G must be true."""
    out = []
    model = build_model(spec)
    best = certify(model)
    if not best.certified or best.gamma is None:
        return out
    G = factor * best.gamma
    cert = certify(model, gamma=G)
    if cert.certified:
        if cert.gamma != G:
            out.append(f"fixed gamma {G} came back as {cert.gamma}")
        if not cert.verify(model):
            out.append("fixed-gamma certificate fails verify")
        else:
            out += judge(model, cert, np.random.default_rng([spec.seed, 9]), true_slope_bounds(spec),
                         lipschitz=False, tag="fixed gamma: ")
        if factor < 0.9:
            # certify's own minimum would then be > 10% off: a gross optimality failure
            out.append(f"gamma = {factor} x the 'smallest certifiable' gamma certified: the minimum is not minimal")
    elif not cert.reason:
        out.append("fixed gamma not certified without a reason")
    return out


# ============================================================================= the tests
@fuzz_settings(60)
@given(spec=specs())
def test_verified_certificates_are_true_and_tampering_is_caught(spec):
    res = fuzz_case(spec, lipschitz=True)
    assert res.exception is None, res.violations
    assert not res.violations, "\n".join(res.violations)


@fuzz_settings(12)
@given(spec=specs(max_log_contraction=0.3))
def test_contraction_only_certificates_are_true(spec):
    res = fuzz_case(spec, contraction_only=True, tampers=False, lipschitz=False)
    assert res.exception is None, res.violations
    assert not res.violations, "\n".join(res.violations)


@fuzz_settings(12)
@given(spec=specs(max_log_contraction=-0.05), factor=st.sampled_from([0.5, 0.999, 1.001, 2.0, 100.0]))
def test_fixed_gamma_decisions_are_true(spec, factor):
    out = fixed_gamma_case(spec, factor)
    assert not out, "\n".join(out)


def project_case(spec: Spec, gamma_factor: float | None) -> list[str]:
    """project() of a (possibly non-contracting) model: a verified, true certificate or a clear error."""
    from rrnn_convex.project import project
    model = build_model(spec)
    gamma = None
    if gamma_factor is not None:
        gamma = gamma_factor * (1.0 + float(np.linalg.norm(model.D22, 2)))
    try:
        pr = project(model, gamma=gamma)
    except (ValueError, RuntimeError) as exc:
        msg = str(exc)
        return [] if msg and (("gamma" in msg) or ("project" in msg)) else [f"unclear error: {exc!r}"]
    out = []
    check = pr.certificate.verify(pr.model)
    if not check.ok:
        return [f"projected model's certificate fails verify: {check.reason}"]
    if gamma is not None and not (pr.certificate.gamma is not None and pr.certificate.gamma <= gamma * (1 + 1e-12)):
        out.append(f"projection onto Theta_{gamma} certified gamma {pr.certificate.gamma}")
    out += judge(pr.model, pr.certificate, np.random.default_rng([spec.seed, 11]), true_slope_bounds(spec),
                 lipschitz=False, tag="project: ")
    return out


@fuzz_settings(10)
@given(spec=specs(max_log_contraction=0.4, e_kinds=("identity", "well", "permuted")),
       gamma_factor=st.sampled_from([None, 2.0, 20.0]))
def test_projection_gives_true_certificates(spec, gamma_factor):
    out = project_case(spec, gamma_factor)
    assert not out, "\n".join(out)


# ----------------------------------------------------------------------------- oracle self-tests
def test_exact_oracle_rejects_a_false_certificate_and_accepts_a_true_one():
    """The oracle must be able to fail: a certificate for gamma just below the optimum is false."""
    from conftest import lti_model, random_stable_lti, hinf_norm
    A, B, C, D = random_stable_lti(np.random.default_rng(3), 3, 1, 1, 0.9)
    model = lti_model(A, B, C, D)
    cert = certify(model)
    assert cert.verify(model)
    assert exact_certificate_holds(model, cert.Q, cert.lam, cert.gamma, (0.0, 1.0))
    # below the H-infinity norm no certificate exists, whatever Q
    h = hinf_norm(A, B, C, D)
    assert not exact_certificate_holds(model, cert.Q, cert.lam, 0.999 * h, (0.0, 1.0))
    assert not exact_certificate_holds(model, -cert.Q, cert.lam, cert.gamma, (0.0, 1.0))


def test_simulation_oracles_detect_a_non_contracting_model():
    """A model with x+ = 1.5 relu(x) + u, judged with a 'certificate' claiming Q = 1 works: the
    stepwise check and the gain sampler must flag it (so they can fail)."""
    model = ImplicitRNN(F=[[0.0]], B1=[[1.5]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]], activation="relu")
    rng = np.random.default_rng(0)
    x01, x02 = np.full((2, 1), 1.0), np.full((2, 1), -0.5)
    u = np.ones((2, 20, 1))
    viol, _ = stepwise_violation(model, np.eye(1), 0.0, None, x01, x02, u, u)
    assert viol > 0
    sv, _ = sampled_gain_violation(model, 5.0, rng)
    assert sv > 0


def test_tampered_weights_are_rejected_with_hash_reason():
    spec = Spec(3, 3, 1, 1, "tanh", 0.0, -0.3, 0.0, "ill", 6.0, False, 5)
    model = build_model(spec)
    cert = certify(model)
    assert cert.verify(model)
    rng = np.random.default_rng(0)
    for _ in range(10):
        m2, c2 = tamper(model, cert, rng, "weights_ulp")
        v = c2.verify(m2)
        assert not v.ok and "hash" in v.reason


# ----------------------------------------------------------------------------- extreme scales (issue 15)
def _pow2_or_decimal(draw, lo: float, hi: float):
    """A scale factor 10^x, x in [lo, hi]: half the time a power of two (exact scaling)."""
    x = draw(st.floats(lo, hi))
    if draw(st.booleans()):
        return float(2.0 ** int(round(x * np.log2(10.0))))
    return float(10.0 ** x)


def extreme_scale_case(spec: Spec, cert_scale: float, state_scale: float, gain: bool) -> list[str]:
    """A true certificate of the model of ``spec`` moved towards underflow / overflow: (Q, lam) (and
    gamma) multiplied by ``cert_scale``, and the model written as ``transform(state_scale I)`` with
    the matching metric Q / state_scale^2 (rounded). Whatever verify accepts must be true in exact
    arithmetic; a power-of-two ``state_scale`` that maps the certificate exactly must not change
    verify's answer (the state equations' units do not matter)."""
    model = build_model(spec)
    cert = certify(model, contraction_only=not gain)
    if not cert.certified:
        return []
    bounds = true_slope_bounds(spec)
    out = []
    with np.errstate(over="ignore", under="ignore"):
        Q = cert.Q * cert_scale
        lam = cert.lam * cert_scale
        g = None if cert.gamma is None else cert.gamma * cert_scale
        finite = np.all(np.isfinite(Q)) and np.all(np.isfinite(lam))
        if not (finite and (g is None or np.isfinite(g) and g > 0)):
            return []
        try:
            model2 = model.transform(state_scale * np.eye(model.n))
        except ValueError:  # E out of the constructor's range
            return []
        Q2 = Q / state_scale ** 2
        if not np.all(np.isfinite(Q2)):
            return []
    Q2 = 0.5 * (Q2 + Q2.T)
    c1 = replace(cert, Q=Q, lam=lam, gamma=g)
    c2 = replace(cert, model_hash=model2.weights_hash(), Q=Q2, lam=lam, gamma=g)
    for tag, m_, c_ in (("scaled certificate", model, c1), ("rescaled state equations", model2, c2)):
        v = c_.verify(m_)
        if v.ok and not exact_certificate_holds(m_, c_.Q, c_.lam, c_.gamma, bounds):
            out.append(f"FALSE CERTIFICATE ({tag}: cert scale {cert_scale:.3g}, "
                       f"state scale {state_scale:.3g})")
    exact_map = (np.frexp(state_scale)[0] == 0.5 and np.array_equal(Q2 * state_scale ** 2, Q)
                 and np.array_equal(model2.E / state_scale, model.E)
                 and np.array_equal(model2.F / state_scale, model.F))
    if exact_map and c1.verify(model).ok != c2.verify(model2).ok:
        out.append(f"verify is not equivariant under transform({state_scale:.3g} I): "
                   f"{c1.verify(model).reason} vs {c2.verify(model2).reason}")
    return out


@fuzz_settings(12)
@given(spec=specs(max_log_contraction=-0.05, e_kinds=("identity", "well", "ill")), data=st.data())
def test_certificates_scaled_towards_underflow_and_overflow_are_judged_truly(spec, data):
    gain = data.draw(st.booleans())
    cert_scale = _pow2_or_decimal(data.draw, -330.0, 305.0)
    state_scale = _pow2_or_decimal(data.draw, -150.0, 150.0)
    out = extreme_scale_case(spec, cert_scale, state_scale, gain)
    assert not out, "\n".join(out)


def issue15_family_case(rng: np.random.Generator) -> list[str]:
    """Models like issue 15's: E diagonal, F anti-diagonal with A^2 = rho^2 I, rho^2 - 1 in
    [-1e-6, 1e-6] (so contracting or not by a hair), and diagonal certificates near the boundary
    ratio q2/q1 = (e1 / f21)^2 at a scale towards underflow. Accepted must mean true."""
    e1, e2 = 10.0 ** rng.uniform(-3, 6, size=2)
    a = 10.0 ** rng.uniform(-1, 1)
    rho2 = 1.0 + float(rng.uniform(-1e-6, 1e-6))
    f12, f21 = a * e1, rho2 / a * e2  # (E^-1 F)^2 = (f12 f21 / (e1 e2)) I
    model = ImplicitRNN(E=np.diag([e1, e2]), F=np.array([[0.0, f12], [f21, 0.0]]), B1=np.zeros((2, 1)),
                        B2=np.zeros((2, 1)), C1=np.zeros((1, 2)), C2=np.zeros((1, 2)), activation="relu")
    q1 = float(rng.integers(1, 400))
    q2 = float(np.round(q1 * (e1 / f21) ** 2)) + float(rng.integers(-1, 2))
    if q2 <= 0:
        return []
    u = rng.random()  # mostly the subnormal range (the issue's certificate is a multiple of eta)
    scale = ETA if u < 0.5 else 2.0 ** int(rng.integers(-1074, -900) if u < 0.9 else rng.integers(-60, 60))
    with np.errstate(under="ignore"):
        Q = np.diag([q1, q2]) * scale
        lam = np.array([float(rng.integers(0, 50000))]) * scale
    from rrnn_convex.certify import Certificate
    cert = Certificate(model_hash=model.weights_hash(), contracting=True, gamma=None, Q=Q, lam=lam,
                       alpha=0.0, beta=1.0)
    if cert.verify(model).ok and not exact_certificate_holds(model, Q, lam, None, (0.0, 1.0)):
        return [f"FALSE CERTIFICATE: issue-15 family, E = diag({e1!r}, {e2!r}), F12 = {f12!r}, "
                f"F21 = {f21!r}, Q = diag({Q[0, 0]!r}, {Q[1, 1]!r}), lam = {lam[0]!r}"]
    return []


@fuzz_settings(200)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_subnormal_certificates_of_marginal_models_are_never_false(seed):
    out = issue15_family_case(np.random.default_rng(seed))
    assert not out, "\n".join(out)
