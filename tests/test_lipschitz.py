"""Empirical Lipschitz bound (gamma_hat <= gamma) and the generalisation study."""
import casadi as ca
import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex.analysis import (DEFAULT_WIDTHS, generalisation_data, generalisation_study, implicit_rnn_vjp,
                                  lipschitz_lower_bound)
from rrnn_convex.datasets import MassSpringDamper

from conftest import hinf_norm, lti_model, random_rnn, random_stable_lti

# the MIMO case is slow (about 9 s): the SISO case keeps the claim in the default suite
LIN_CASES = [(4, 1, 1, 0.9, 0), pytest.param(5, 2, 2, 0.95, 2, marks=pytest.mark.slow)]


def measured_ratio(model, u, v):
    y1, y2 = model.simulate(u), model.simulate(v)
    return np.linalg.norm(y1 - y2) / np.linalg.norm(u - v)


# ------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_adjoint_matches_finite_differences(activation):
    rng = np.random.default_rng(4)
    model = random_rnn(rng, n=3, q=4, m=2, p=2, activation=activation, E_far=True)
    T = 30
    u = rng.standard_normal((2, T, 2))
    g = rng.standard_normal((2, T, 2))
    y, gu = implicit_rnn_vjp(model, u, g)
    np.testing.assert_allclose(y, model.simulate(u), rtol=0, atol=1e-13)
    eps = 1e-6
    for _ in range(3):
        d = rng.standard_normal(u.shape)
        fd = (model.simulate(u + eps * d) - model.simulate(u - eps * d)) / (2 * eps)
        for b in range(2):  # per sequence: <g, J d> = <J' g, d>
            assert np.sum(gu[b] * d[b]) == pytest.approx(np.sum(g[b] * fd[b]), rel=1e-6, abs=1e-8)
    # unbatched form and a nonzero initial state
    x0 = rng.standard_normal(model.n)
    y1, gu1 = implicit_rnn_vjp(model, u[0], g[0], x0=x0)
    d = rng.standard_normal(u[0].shape)
    fd = (model.simulate(u[0] + eps * d, x0) - model.simulate(u[0] - eps * d, x0)) / (2 * eps)
    assert gu1.shape == (T, 2)
    assert np.sum(gu1 * d) == pytest.approx(np.sum(g[0] * fd), rel=1e-6, abs=1e-8)


def test_adjoint_shape_errors():
    model = random_rnn(np.random.default_rng(0), n=2, q=2, m=1, p=2)
    with pytest.raises(ValueError, match="cotangent"):
        implicit_rnn_vjp(model, np.zeros((5, 1)), np.zeros((5, 1)))
    with pytest.raises(TypeError, match="ImplicitRNN"):
        implicit_rnn_vjp(lambda u: u, np.zeros((5, 1)), np.zeros((5, 1)))


# ------------------------------------------------------------------------ linear models: H-infinity
@pytest.mark.parametrize("n,m,p,rho,seed", LIN_CASES)
def test_bound_reaches_hinf_norm_of_linear_model_and_never_exceeds_it(n, m, p, rho, seed):
    A, B, C, D = random_stable_lti(np.random.default_rng(seed), n, m, p, rho)
    model = lti_model(A, B, C, D, seed=seed)  # B1 = 0, D21 = 0: an LTI system
    h = hinf_norm(A, B, C, D)
    res = lipschitz_lower_bound(model, horizon=500, starts=3, steps=250, seed=seed)
    print(f"LTI n={n} m={m} p={p} rho={rho}: H-inf {h:.5f}, lower bound {res.value:.5f} "
          f"({res.value / h:.4f})")
    assert res.value >= 0.95 * h
    assert res.value <= h * (1 + 1e-9)
    assert np.nanmax(res.history) <= h * (1 + 1e-9)
    assert res.u.shape == res.v.shape == (500, m)
    assert res.value == pytest.approx(measured_ratio(model, res.u, res.v), rel=1e-12)


# ------------------------------------------------------------------------ certified nonlinear models
@pytest.mark.parametrize("activation,seed", [("relu", 0), ("tanh", 1), ("relu", 2)])
def test_bound_never_exceeds_certified_gamma(activation, seed):
    rng = np.random.default_rng(seed)
    model = random_rnn(rng, n=3, q=4, m=1 + seed % 2, p=1, activation=activation, scale=0.9)
    cert = certify(model)
    assert cert.contracting and cert.gamma is not None
    res = lipschitz_lower_bound(model, horizon=200, starts=3, steps=120, seed=seed)
    print(f"{activation} seed {seed}: certified gamma {cert.gamma:.4f}, lower bound {res.value:.4f}")
    assert res.value <= cert.gamma
    assert np.nanmax(res.history) <= cert.gamma
    assert res.value == pytest.approx(measured_ratio(model, res.u, res.v), rel=1e-12)
    assert res.value >= np.max(res.history[:, 0]), "the ascent must not end below its starting points"
    assert res.value > 0.5 * cert.gamma  # the ascent finds a substantial fraction of the certified bound


# ------------------------------------------------------------------------ generic simulators
def casadi_rnn_simulator(model):
    """The explicit model written with casadi operations (so it accepts MX symbols)."""
    e = model.explicit()

    def sim(u):
        x = ca.DM.zeros(e.n, 1)
        ys = []
        for t in range(u.shape[0]):
            ut = u[t, :].T
            w = ca.tanh(ca.mtimes(e.C1, x) + ca.mtimes(e.D12, ut) + e.bv)
            ys.append(ca.mtimes(e.C2, x) + ca.mtimes(e.D21, w) + ca.mtimes(e.D22, ut) + e.by)
            x = ca.mtimes(e.F, x) + ca.mtimes(e.B1, w) + ca.mtimes(e.B2, ut) + e.bx
        return ca.horzcat(*ys).T

    return sim


def test_generic_simulators_with_vjp_or_casadi_agree_with_the_model():
    rng = np.random.default_rng(3)
    model = random_rnn(rng, n=3, q=4, m=1, p=1, activation="tanh", scale=0.9)
    kw = dict(horizon=60, starts=2, steps=25, seed=1)
    ref = lipschitz_lower_bound(model, **kw)
    via_vjp = lipschitz_lower_bound(lambda u: model.simulate(u), m=1,
                                    vjp=lambda u, g: implicit_rnn_vjp(model, u, g)[1], **kw)
    via_casadi = lipschitz_lower_bound(casadi_rnn_simulator(model), m=1, **kw)
    assert (ref.method, via_vjp.method, via_casadi.method) == ("implicit_rnn", "callable+vjp", "casadi")
    np.testing.assert_allclose(via_vjp.history, ref.history, rtol=1e-9)
    np.testing.assert_allclose(via_casadi.history, ref.history, rtol=1e-9)
    assert via_casadi.value == pytest.approx(ref.value, rel=1e-9)


def test_generic_simulator_without_gradient_is_an_error_not_finite_differences():
    msd = MassSpringDamper(noise_std=0.0)
    calls = []

    def sim(u):
        calls.append(1)
        return msd.simulate(u)

    with pytest.raises(TypeError, match="vjp"):
        lipschitz_lower_bound(sim, horizon=20, m=1)
    assert len(calls) <= 1  # it tried casadi symbols once, never numeric perturbations
    with pytest.raises(ValueError, match="m: the number of inputs"):
        lipschitz_lower_bound(lambda u: u, horizon=20)


def test_argument_errors():
    model = random_rnn(np.random.default_rng(0), n=2, q=2, m=1, p=1)
    with pytest.raises(ValueError, match="horizon"):
        lipschitz_lower_bound(model, horizon=0)
    with pytest.raises(ValueError, match="starts"):
        lipschitz_lower_bound(model, starts=0)
    with pytest.raises(ValueError, match="vjp"):
        lipschitz_lower_bound(model, horizon=10, vjp=lambda u, g: u)
    with pytest.raises(TypeError, match="model_or_simulator"):
        lipschitz_lower_bound(3.0, horizon=10, m=1)


# ------------------------------------------------------------------------ generalisation study
@pytest.fixture(scope="module")
def small_study_data():
    return generalisation_data(realisations=3, horizon=400, seed=0)


def test_generalisation_study_shapes_and_defaults(small_study_data):
    assert len(DEFAULT_WIDTHS) == 21 and DEFAULT_WIDTHS[0] == 0.5 and DEFAULT_WIDTHS[-1] == 10.5
    assert sorted(small_study_data) == list(DEFAULT_WIDTHS)
    d = small_study_data[10.5]
    assert d.u.shape == (3, 400, 1) and np.all(np.abs(d.u) <= 10.5 / 2)
    assert np.all(np.abs(d.x0_true) <= 5) and not d.x0_known.any()
    model = random_rnn(np.random.default_rng(0), n=3, q=4, m=1, p=1)
    study = generalisation_study(model, data=small_study_data, washout=200)
    assert study.nse.shape == (21, 3)
    boxes = study.as_dict()
    assert list(boxes) == list(DEFAULT_WIDTHS) and all(v.shape == (3,) for v in boxes.values())


@pytest.mark.slow  # about 13 s; test_generalisation_study_shapes_and_defaults keeps the study in the default suite
def test_generalisation_study_separates_true_system_from_a_null_model(small_study_data):
    msd = MassSpringDamper(noise_std=0.0)
    truth = generalisation_study(msd.simulate, data=small_study_data, washout=200, batched=True)
    zero = generalisation_study(lambda u: np.zeros((u.shape[0], 1)), data=small_study_data, washout=200)
    # zero prediction: ||y|| / ||y - mean(y)|| >= 1 by Pythagoras
    assert np.all(zero.nse >= 1.0 - 1e-12)
    # the true system from the wrong (zero) state: after the washout only the noise remains
    assert np.all(truth.nse[DEFAULT_WIDTHS >= 2] < 0.2)
    assert np.median(truth.nse) < 0.1


def test_generalisation_data_is_deterministic_and_options_are_checked():
    a = generalisation_data(widths=[1.0, 4.0], realisations=2, horizon=50, seed=5)
    b = generalisation_data(widths=[1.0, 4.0], realisations=2, horizon=50, seed=5)
    c = generalisation_data(widths=[1.0, 4.0], realisations=2, horizon=50, seed=6)
    np.testing.assert_array_equal(a[4.0].y, b[4.0].y)
    assert not np.array_equal(a[4.0].y, c[4.0].y)
    model = ImplicitRNN(F=[[0.5]], B1=[[0.0]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]])
    with pytest.raises(ValueError, match="washout"):
        generalisation_study(model, data=a, washout=50)
    with pytest.raises(ValueError, match="data"):
        generalisation_study(model, widths=[1.0], data=a)
    study = generalisation_study(model, widths=[1.0, 2.0], realisations=2, horizon=60, washout=10, seed=1)
    assert study.nse.shape == (2, 2) and list(study.widths) == [1.0, 2.0]
