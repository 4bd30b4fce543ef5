"""The paper's expressivity results: stable LTI systems, ci-RNNs and SRNNs lie in Theta."""
import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex.init import from_cirnn, from_lti, srnn_certificate
from rrnn_convex.sets import CIRNNSet

from conftest import hinf_norm, random_stable_lti

LTI = [(2, 1, 1, 0.5, 0), (3, 1, 2, 0.9, 1), (4, 2, 1, 0.99, 2), (5, 1, 1, 0.999, 3), (6, 2, 2, 0.95, 4),
       (8, 1, 1, 0.99, 5)]


@pytest.mark.parametrize("n,m,p,rho,seed", LTI)
def test_every_stable_lti_system_is_in_theta_and_theta_gamma_above_its_hinf_norm(n, m, p, rho, seed):
    A, B, C, D = random_stable_lti(np.random.default_rng(seed), n, m, p, rho)
    model, cert = from_lti(A, B, C, D)
    assert cert.contracting and cert.verify(model), cert.reason  # constructive, no solver
    u = np.random.default_rng(seed).standard_normal((40, m))
    x, y = np.zeros(n), []
    for t in range(40):  # the embedding is the same system
        y.append(C @ x + D @ u[t])
        x = A @ x + B @ u[t]
    np.testing.assert_allclose(model.simulate(u), np.array(y), atol=1e-8 * (1 + np.abs(y).max()))
    h = hinf_norm(A, B, C, D)
    assert certify(model, gamma=1.01 * h).certified
    best = certify(model)
    assert best.gamma == pytest.approx(h, rel=1e-5 if rho < 0.999 else 1e-4)


def test_unstable_lti_is_rejected():
    with pytest.raises(ValueError, match="spectral radius"):
        from_lti([[1.01]], [[1.0]], [[1.0]])


@pytest.mark.parametrize("seed", range(5))
def test_every_feasible_cirnn_maps_into_theta(seed):
    rng = np.random.default_rng(seed)
    n, m = 4, 2
    pdiag = rng.uniform(0.5, 2.0, n)
    K = rng.standard_normal((n, n))
    K *= rng.uniform(0.5, 0.99) / np.linalg.norm(K, 2)
    W = np.diag(np.sqrt(pdiag)) @ K @ np.diag(np.sqrt(pdiag))  # W'P^-1W < P
    S = rng.standard_normal((n, n))
    E = np.diag(pdiag) + (S - S.T)  # E + E' - P = P
    ci_lmi = np.block([[E + E.T - np.diag(pdiag), W.T], [W, np.diag(pdiag)]])
    assert np.linalg.eigvalsh(ci_lmi)[0] > 0  # a feasible ci-RNN
    model, cert = from_cirnn(E, W, rng.standard_normal((n, m)), rng.standard_normal(n),
                             rng.standard_normal((1, n)), P=pdiag, activation="tanh")
    assert cert.contracting and cert.verify(model), cert.reason
    assert CIRNNSet().contains(model)


def test_srnn_is_in_theta_with_identity_certificate():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 5))
    W *= 0.97 / np.linalg.norm(W, 2)
    model = ImplicitRNN.from_elman(W, rng.standard_normal((5, 1)), C=rng.standard_normal((1, 5)))
    cert = srnn_certificate(model)
    assert cert.contracting and cert.verify(model)


def test_scalar_lti_system_in_theta_but_not_a_cirnn():
    """x+ = 0.5 x + u, y = x is in Theta. A ci-RNN's state update passes through the activation
    (E x+ = relu(.)), so a scalar ci-RNN's state has the sign of 1/E for every input, while this
    system's state takes both signs; structurally it is not in the ci-RNN set either."""
    model, cert = from_lti([[0.5]], [[1.0]], [[1.0]])
    assert cert.verify(model)
    assert not CIRNNSet().contains(model)  # it has a linear path F != 0 and B1 = 0
    u = np.array([[1.0], [-3.0], [0.0]])
    _, x = model.simulate(u, return_states=True)
    assert x[1:].max() > 0 and x[1:].min() < 0
    rng = np.random.default_rng(1)
    for _ in range(200):  # any scalar relu ci-RNN: the state keeps one sign after one step
        e, w, uu, b = rng.standard_normal(4)
        ci, _ = from_cirnn([[e]], [[w]], [[uu]], [b])
        _, xc = ci.simulate(u, return_states=True)
        assert np.all(xc[1:] * np.sign(e) >= 0)


@pytest.mark.parametrize("n,m,p,rho", [(2, 1, 1, 0.9), (4, 1, 1, 0.95), (4, 2, 2, 0.9)])
def test_n4sid_recovers_a_known_system_from_noise_free_data(n, m, p, rho):
    from rrnn_convex.init import _lti_response, n4sid

    rng = np.random.default_rng(n + m + p)
    A, B, C, D = random_stable_lti(rng, n, m, p, rho)
    U = rng.standard_normal((2, 800, m))
    x0 = rng.standard_normal((2, n))  # unknown initial states are estimated away
    Y = _lti_response(A, B, C, D, U, x0)
    A2, B2, C2, D2 = n4sid(U, Y, n)
    assert hinf_norm(A2, B2, C2, D2) == pytest.approx(hinf_norm(A, B, C, D), rel=1e-8)
    U2 = rng.standard_normal((1, 200, m))
    z = np.zeros((1, n))
    np.testing.assert_allclose(_lti_response(A2, B2, C2, D2, U2, z), _lti_response(A, B, C, D, U2, z), atol=1e-8)


def test_n4sid_returns_a_stable_model_and_rejects_bad_input():
    from rrnn_convex.init import n4sid

    rng = np.random.default_rng(0)
    u = rng.standard_normal((400, 1))
    y = np.cumsum(u, axis=0)  # an integrator: unstable
    A, B, C, D = n4sid(u, y, 2)
    assert np.max(np.abs(np.linalg.eigvals(A))) < 1.0
    with pytest.raises(ValueError, match="u, y: expected the same"):
        n4sid(u, y[:-1], 2)
    with pytest.raises(ValueError, match="too short"):
        n4sid(u[:30], y[:30], 2)


@pytest.mark.parametrize("n,m,p,rho,seed", LTI[:4])
def test_elman_embedding_reproduces_the_lti_system_on_its_input_and_clips_outside(n, m, p, rho, seed):
    """ReLU Elman RNN h = x + c: exact (rounding only) from h0 = c on the input it was built for."""
    from rrnn_convex.init import elman_from_lti

    A, B, C, D = random_stable_lti(np.random.default_rng(seed), n, m, p, rho)
    u = np.random.default_rng(seed + 10).uniform(-1, 1, (3, 200, m))
    model = elman_from_lti(A, B, C, D, u=u)
    c = np.linalg.solve(np.eye(n) - A, model.bv)
    assert np.all(c > 0) and np.allclose(model.C1, A) and np.allclose(model.E, np.eye(n))
    x, y = np.zeros((3, n)), []
    for t in range(200):
        y.append(x @ C.T + u[:, t] @ D.T)
        x = x @ A.T + u[:, t] @ B.T
    y = np.stack(y, axis=1)
    got = model.simulate(u, np.tile(c, (3, 1)))
    np.testing.assert_allclose(got, y, atol=1e-10 * (1 + np.abs(y).max()))
    # an input far larger than the one it was built for drives states below -c: the neurons clip
    big = model.simulate(50 * u, np.tile(c, (3, 1)))
    lin = 50 * y
    assert np.abs(big - lin).max() > 1e-3 * np.abs(lin).max()
    with pytest.raises(ValueError, match="u: expected shape"):
        elman_from_lti(A, B, C, D, u=np.ones((3, 10, m + 1)))
    with pytest.raises(ValueError, match="headroom"):
        elman_from_lti(A, B, C, D, u=u, headroom=1.0)
