"""Extreme gamma, weight scales and conditioning (issue 9, item 3).

Correct answers or a clear error, never a false certificate. Every certificate below is judged by
verify(), by the exact rational check of tests/test_fuzz.py and, for linear models, against the
H-infinity norm from a frequency sweep (a frequency sweep gives a LOWER bound on the H-infinity
norm, so "certified gamma < swept gain" is a proof of a false certificate).
"""
from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex.model import MAX_COND_E

from conftest import random_rnn
from test_fuzz import exact_certificate_holds, judge, true_slope_bounds


# ----------------------------------------------------------------------------- references
def hinf_sweep(A, B, C, D, E=None, grid=6000):
    """max_w sigma_max(C (e^{jw} E - A)^-1 B + D): grid, the poles' angles, local refinement."""
    n = A.shape[0]
    E = np.eye(n) if E is None else E

    def gain(w):
        G = C @ np.linalg.solve(np.exp(1j * w) * E - A, B) + D
        return np.linalg.svd(np.atleast_2d(G), compute_uv=False)[0]

    poles = np.linalg.eigvals(np.linalg.solve(E, A))
    w = np.unique(np.concatenate([np.linspace(0.0, np.pi, grid), np.abs(np.angle(poles))]))
    vals = np.array([gain(x) for x in w])
    best = float(vals.max())
    for i in np.argsort(vals)[-5:]:
        lo, hi = w[max(i - 1, 0)], w[min(i + 1, len(w) - 1)]
        if hi > lo:
            r = minimize_scalar(lambda x: -gain(x), bounds=(lo, hi), method="bounded", options={"xatol": 1e-14})
            best = max(best, -float(r.fun))
    return best


def linear_model(A, B, C, D, E=None, q=2, seed=0, activation="relu"):
    """An LTI system as an ImplicitRNN with q idle neurons (B1 = 0, D21 = 0): its incremental
    gain is the H-infinity norm whatever the activation."""
    rng = np.random.default_rng(seed)
    n = A.shape[0]
    E = np.eye(n) if E is None else E
    return ImplicitRNN(E=E, F=E @ A, B1=np.zeros((n, q)), B2=E @ B, C1=rng.standard_normal((q, n)),
                       D12=rng.standard_normal((q, B.shape[1])), C2=C, D22=D, activation=activation)


def stable_lti(seed, n, m, p, rho):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    A *= rho / np.max(np.abs(np.linalg.eigvals(A)))
    return A, rng.standard_normal((n, m)), rng.standard_normal((p, n)), rng.standard_normal((p, m))


def assert_true_certificate(model, cert):
    assert cert.certified, cert.reason
    v = cert.verify(model)
    assert v.ok, v.reason
    assert exact_certificate_holds(model, cert.Q, cert.lam, cert.gamma, true_slope_bounds(model.activation)), \
        "FALSE CERTIFICATE (exact rational check)"


# near-singular E that is exactly representable: E = [[1, 1], [1, 1 + 2^-k]] (cond ~ 4^(k/2+1)),
# with dyadic A, B so that F = E A and E B are exact: the explicit form is exactly (A, B)
A2 = np.array([[0.5, 0.25], [-0.125, 0.375]])
B2_ = np.array([[1.0], [0.5]])
C2_ = np.array([[1.0, -0.5]])
D2_ = np.array([[0.25]])


def exact_near_singular_E(k):
    E = np.array([[1.0, 1.0], [1.0, 1.0 + 2.0 ** -k]])
    assert np.array_equal(np.linalg.solve(E, E @ A2), A2) or k > 0  # (documentation only)
    return E


# ============================================================================= gamma from 1e-3 to 1e4
@pytest.mark.parametrize("out_scale", [1e-3, 1.0, 1e3])
def test_fixed_gamma_decided_correctly_from_1e_minus3_to_1e4(out_scale):
    A, B, C, D = stable_lti(1, 3, 1, 1, 0.9)
    C, D = C * out_scale, D * out_scale
    model = linear_model(A, B, C, D)
    h = hinf_sweep(A, B, C, D)
    for G in np.logspace(-3, 4, 15):
        cert = certify(model, gamma=G)
        if G < h * (1 - 1e-9):
            assert not cert.certified, f"FALSE: gamma={G} certified below the H-inf norm {h}"
            assert "not certifiable" in cert.reason and "smallest certifiable gamma" in cert.reason
        elif G > h * (1 + 1e-4):
            assert_true_certificate(model, cert)
            assert cert.gamma == G


@pytest.mark.parametrize("G", [1e-300, 1e-12, 1e12, 1e300])
def test_absurd_gammas_give_answers_not_crashes(G):
    model = linear_model(A2, B2_, C2_, D2_)
    h = hinf_sweep(A2, B2_, C2_, D2_)
    cert = certify(model, gamma=G)
    if cert.certified:
        assert G >= h
        assert_true_certificate(model, cert)
    else:
        assert cert.reason
        if G < h:
            assert "not certifiable" in cert.reason


@pytest.mark.parametrize("G", [float("nan"), float("inf"), -1.0, 0.0, -0.0])
def test_invalid_gamma_is_a_clear_error(G):
    model = linear_model(A2, B2_, C2_, D2_)
    with pytest.raises(ValueError, match="gamma"):
        certify(model, gamma=G)


# ============================================================================= linear models: gamma == H-inf
LIN = [  # seed, n, m, p, rho, output scale, E kind, tightness tolerance (relative)
    (0, 3, 1, 1, 0.5, 1.0, "I", 1e-5), (1, 4, 2, 2, 0.99, 1.0, "I", 1e-5), (2, 4, 1, 2, 0.999, 1.0, "I", 1e-5),
    (3, 3, 2, 1, 0.9, 1e-3, "I", 1e-4), (4, 3, 1, 1, 0.9, 1e3, "I", 1e-5), (5, 5, 1, 1, 0.95, 1.0, "well", 1e-5),
    # looser: an ill-conditioned E (cond 1e5) costs accuracy; small output weights meet the absolute
    # SDP margin (see test_gamma_is_equivariant_under_output_scaling)
    (6, 4, 2, 2, 0.9, 1.0, "ill1e5", 1e-3), (7, 6, 1, 1, 0.98, 1e2, "ill1e5", 1e-4),
    (8, 2, 1, 1, 0.999, 1e-2, "well", 1e-2),
]


@pytest.mark.parametrize("seed,n,m,p,rho,scale,ekind,tight", LIN)
def test_certified_gamma_of_linear_model_matches_hinf_sweep(seed, n, m, p, rho, scale, ekind, tight):
    A, B, C, D = stable_lti(seed, n, m, p, rho)
    C, D = C * scale, D * scale
    rng = np.random.default_rng(100 + seed)
    E = None
    if ekind == "well":
        E = rng.standard_normal((n, n)) + 3 * np.eye(n)
    elif ekind.startswith("ill"):
        Uo, _ = np.linalg.qr(rng.standard_normal((n, n)))
        Vo, _ = np.linalg.qr(rng.standard_normal((n, n)))
        E = Uo @ np.diag(np.logspace(0, -np.log10(float(ekind[3:])), n)) @ Vo
    model = linear_model(A, B, C, D, E=E, seed=seed, activation=["relu", "tanh", "sigmoid"][seed % 3])
    # the reference from the model's own weights (generalised frequency response, no inversion)
    h = hinf_sweep(model.F, model.B2, model.C2, model.D22, E=model.E)
    cert = certify(model)
    assert_true_certificate(model, cert)
    kappa = float(np.linalg.cond(model.E))
    assert cert.gamma >= h * (1 - 1e-9 - 1e3 * kappa * 2.0 ** -53), f"FALSE: gamma {cert.gamma} < swept H-inf {h}"
    assert cert.gamma <= h * (1 + tight), f"gamma {cert.gamma} not tight (H-inf {h}, gap {cert.gamma / h - 1:.2e})"


# Was: an absolute SDP margin made the minimal gamma loose for tiny output weights.
@pytest.mark.parametrize("s", [1e-6, 1e-8])
def test_gamma_is_equivariant_under_output_scaling(s):
    base = random_rnn(np.random.default_rng(3), 3, 3, 1, 1, activation="tanh")
    g0 = certify(base).gamma
    scaled = replace(base, C2=base.C2 * s, D21=base.D21 * s, D22=base.D22 * s)
    cert = certify(scaled)
    assert_true_certificate(scaled, cert)
    assert cert.gamma == pytest.approx(s * g0, rel=1e-5)


# ============================================================================= weight scales
def _scale_all(m, s):
    return ImplicitRNN(**{k: v * s for k, v in m.weights().items()}, activation=m.activation)


def _scale_io(m, s):
    return replace(m, B2=m.B2 * s, D12=m.D12 * s, C2=m.C2 * s, D21=m.D21 * s, D22=m.D22 * s)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_weights_scaled_by_1e_minus6(activation):
    base = random_rnn(np.random.default_rng(3), 3, 3, 1, 1, activation=activation)
    for model in (_scale_all(base, 1e-6), _scale_io(base, 1e-6), base.transform(1e-6 * np.eye(3))):
        cert = certify(model)
        assert_true_certificate(model, cert)
        assert not judge(model, cert, np.random.default_rng(0), true_slope_bounds(model.activation))
    # the representation does not change the model: same gamma
    g0 = certify(base).gamma
    assert certify(base.transform(1e-6 * np.eye(3))).gamma == pytest.approx(g0, rel=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_weights_scaled_by_1e3(activation):
    base = random_rnn(np.random.default_rng(3), 3, 3, 1, 1, activation=activation)
    g0 = certify(base).gamma
    # input/output weights x 1e3: still contracting, a gamma of order 1e3-1e6, true
    big_io = _scale_io(base, 1e3)
    cert = certify(big_io)
    assert_true_certificate(big_io, cert)
    assert not judge(big_io, cert, np.random.default_rng(1), true_slope_bounds(big_io.activation))
    # another representation of the same model: the same gamma
    rep = base.transform(1e3 * np.eye(3))
    assert certify(rep).gamma == pytest.approx(g0, rel=1e-5)
    # every weight x 1e3: the loop gain is ~600 (sigmoid ~150), not contracting; a trajectory pair
    # from different initial states must not converge, and certify must say "not certified"
    big = _scale_all(base, 1e3)
    cert = certify(big)
    assert not cert.certified and cert.reason
    assert not cert.verify(big)


@pytest.mark.parametrize("s", [1e-150, 1e150])
@pytest.mark.parametrize("how", ["all", "io", "representation"])
def test_absurd_scales_never_crash_or_lie(s, how):
    base = random_rnn(np.random.default_rng(3), 3, 3, 1, 1, activation="tanh")
    model = {"all": _scale_all, "io": _scale_io, "representation": lambda m, s: m.transform(s * np.eye(3))}[how](base, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cert = certify(model)
    if cert.certified:
        assert_true_certificate(model, cert)
    else:
        assert cert.reason


# ============================================================================= near-singular E
def test_singular_E_is_a_clear_error():
    with pytest.raises(ValueError, match=r"E: must be invertible.*condition number"):
        ImplicitRNN(E=np.zeros((2, 2)), F=A2, B1=np.zeros((2, 1)), B2=B2_, C1=np.ones((1, 2)), C2=C2_)
    with pytest.raises(ValueError, match=r"E: must be invertible.*condition number"):
        linear_model(A2, B2_, C2_, D2_, E=exact_near_singular_E(40))  # cond 4.4e12 > MAX_COND_E
    assert np.linalg.cond(exact_near_singular_E(36)) < MAX_COND_E  # accepted (next tests' range)


@pytest.mark.parametrize("k", [0, 10, 20])
def test_near_singular_E_gives_the_explicit_models_gamma(k):
    """E = [[1, 1], [1, 1 + 2^-k]] with F = E A exactly: the model IS (A, B, C, D); cond(E) up to 4e6."""
    E = exact_near_singular_E(k) if k else np.eye(2)
    model = linear_model(A2, B2_, C2_, D2_, E=E)
    h = hinf_sweep(A2, B2_, C2_, D2_)
    cert = certify(model)
    assert_true_certificate(model, cert)
    assert cert.gamma >= h * (1 - 1e-12), f"FALSE: gamma {cert.gamma} < H-inf {h}"
    assert cert.gamma <= h * (1 + 1e-4)


@pytest.mark.parametrize("k", [26, 30, 34])
def test_near_singular_E_never_gives_a_false_certificate(k):
    model = linear_model(A2, B2_, C2_, D2_, E=exact_near_singular_E(k))
    h = hinf_sweep(A2, B2_, C2_, D2_)
    for kw in ({}, {"gamma": 2 * h}, {"contraction_only": True}, {"formulation": "lifted"}):
        cert = certify(model, **kw)
        if cert.certified:
            assert_true_certificate(model, cert)
            assert cert.gamma is None or cert.gamma >= h * (1 - 1e-12)
        else:
            assert cert.reason


# Models with cond(E) ~1e8..1e12 are still not certified (the metric Q = E^-T Qx E^-1 loses
# ~cond(E)^2 in float64); the reason now names E and suggests the explicit form.
def test_near_singular_E_is_certified_or_the_reason_names_E():
    model = linear_model(A2, B2_, C2_, D2_, E=exact_near_singular_E(30))  # cond(E) = 4.3e9 < 1e12
    cert = certify(model)
    if not cert.certified:
        assert "condition" in cert.reason or "ill-conditioned" in cert.reason, cert.reason
    else:
        assert_true_certificate(model, cert)


@pytest.mark.parametrize("seed", range(6))
def test_random_models_with_ill_conditioned_E_never_lie(seed):
    rng = np.random.default_rng(seed)
    n, q = 3 + seed % 3, 2 + seed % 4
    base = random_rnn(rng, n, q, 1 + seed % 2, 1, activation=["relu", "tanh", "sigmoid"][seed % 3], scale=0.9)
    Uo, _ = np.linalg.qr(rng.standard_normal((n, n)))
    Vo, _ = np.linalg.qr(rng.standard_normal((n, n)))
    E = Uo @ np.diag(np.logspace(0, -(6 + seed), n)) @ Vo  # cond 1e6 .. 1e11
    model = base.transform(E)
    cert = certify(model)
    if cert.certified:
        assert_true_certificate(model, cert)
        assert not judge(model, cert, rng, true_slope_bounds(model.activation), lipschitz=False)
    else:
        assert cert.reason


# ============================================================================= non-contracting models
# Was: the dense contraction SDP had no Q > 0 constraint and came back unbounded.
def test_unstable_linear_model_is_reported_not_contracting():
    model = ImplicitRNN(F=np.diag([1.5, 0.5]), B1=np.zeros((2, 1)), B2=np.ones((2, 1)), C1=np.ones((1, 2)),
                        C2=np.ones((1, 2)))
    for kw in ({}, {"contraction_only": True}, {"gamma": 5.0}):
        cert = certify(model, **kw)
        assert not cert.certified
        assert "not contracting" in cert.reason or "not certifiable" in cert.reason, (kw, cert.reason)


def test_unstable_linear_model_is_never_certified_by_either_formulation():
    model = ImplicitRNN(F=np.diag([1.5, 0.5]), B1=np.zeros((2, 1)), B2=np.ones((2, 1)), C1=np.ones((1, 2)),
                        C2=np.ones((1, 2)))
    for f in ("dense", "lifted"):
        for kw in ({}, {"contraction_only": True}, {"gamma": 5.0}, {"gamma": 1e4}):
            cert = certify(model, formulation=f, **kw)
            assert not cert.certified and cert.reason
    assert "not contracting" in certify(model, formulation="lifted").reason


# Was: Certificate.margin came from a plain float64 rebuild (wrong, even negative, for ill-conditioned E).
def test_reported_margin_is_consistent_with_the_proven_margin():
    model = linear_model(A2, B2_, C2_, D2_, E=exact_near_singular_E(22))  # cond(E) = 1.7e7
    cert = certify(model)
    assert_true_certificate(model, cert)
    assert cert.margin >= cert.proven_margin > 0, (cert.margin, cert.proven_margin)


# found by benchmarks/fuzz_campaign.py (seed 2025, case 1590): a linear relu model (idle neurons)
# with cond(E) = 3e6, spectral radius 0.0073
CRASH_E = np.array([
    [-0.44592132392976586, -2.2036593880842976, 2.010888341374228, 0.4315545543217573],
    [7.3216165276071665, 22.382737279710796, -20.63050009681634, -4.724904140587782],
    [-13.864953030735517, -41.371077804053385, 38.15546748352482, 8.779861022958372],
    [-3.8920658303612137, -10.5560065051543, 9.76061577973011, 2.2884587879798053]])
CRASH_F = np.array([
    [-0.026643594734104915, -0.01287739370594547, -0.0032231357845999885, 0.008907237855838973],
    [0.2627831673080385, 0.11976356312885046, 0.03673613260351925, -0.08222562260756205],
    [-0.4847710429252902, -0.22003218319571297, -0.06837924135322755, 0.1509811116481307],
    [-0.12268776721695503, -0.054725603180074564, -0.01795658624165666, 0.037460797424048]])
CRASH_B2 = np.array([[-94.66523288903723], [1093.2558511173067], [-2035.7382776304844], [-535.6229731854232]])
CRASH_C2 = np.array([[112.91420856719016, -22.999910518661206, -75.50394969722896, -145.058258249304]])
CRASH_D22 = np.array([[19.290703512489358]])
CRASH_C1 = np.array([
    [1.4288178663257198, -1.5998484130778228, -0.5954865333269693, 0.23580226132312232],
    [0.8075686610965636, -1.0824526710641034, -0.22579790075730002, 1.4375367644113948],
    [0.12394832658866721, -2.3598773435810294, -0.8255034795611508, 0.9092132474595904],
    [0.35853041093675553, -2.099057541029418, -1.2915223028069012, 2.2269647898123717]])
CRASH_D12 = np.array([[-42.63253595694836], [-21.31261589814834], [-187.36592422388898], [62.63192627777223]])


# Was a crash (LinAlgError from the preconditioner when E'QE is not numerically PD).
def test_ill_conditioned_E_does_not_crash_the_preconditioner():
    model = ImplicitRNN(E=CRASH_E, F=CRASH_F, B1=np.zeros((4, 4)), B2=CRASH_B2, C1=CRASH_C1, D12=CRASH_D12,
                        C2=CRASH_C2, D21=np.zeros((1, 4)), D22=CRASH_D22, activation="relu")
    cert = certify(model)
    if cert.certified:
        assert_true_certificate(model, cert)
    else:
        assert cert.reason
