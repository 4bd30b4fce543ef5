"""The paper's claims about certification, stated as falsifiable tests."""
import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify, leaky_relu
from rrnn_convex.lmi import dissipation_lmi, model_operands

from conftest import hinf_norm, lti_model, random_rnn, random_stable_lti, sampled_incremental_gain

LTI_CASES = [(3, 1, 1, 0.5, 0), (4, 2, 2, 0.9, 1), (4, 1, 1, 0.99, 2), (6, 2, 2, 0.99, 3), (5, 1, 2, 0.95, 4),
             (8, 2, 1, 0.99, 5)]


@pytest.mark.parametrize("n,m,p,rho,seed", LTI_CASES)
@pytest.mark.parametrize("formulation", ["lifted", "dense"])
def test_certified_gamma_of_linear_model_equals_hinf_norm(n, m, p, rho, seed, formulation):
    A, B, C, D = random_stable_lti(np.random.default_rng(seed), n, m, p, rho)
    model = lti_model(A, B, C, D, seed=seed)
    cert = certify(model, formulation=formulation)
    h = hinf_norm(A, B, C, D)
    assert cert.contracting and cert.verify(model)
    assert cert.gamma >= h * (1 - 1e-9), "a certified gamma below the H-infinity norm would be false"
    assert cert.gamma == pytest.approx(h, rel=1e-5)


@pytest.mark.parametrize("a", [0.0, 0.5, -0.5, 0.9, -0.9, 0.99])
def test_scalar_relu_loop_contracting_when_gain_below_one(a):
    model = ImplicitRNN(F=[[0.0]], B1=[[a]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]], activation="relu")
    cert = certify(model)
    assert cert.contracting and cert.verify(model)
    if a > 0:  # x+ = a relu(x) + u, y = x: worst case slope 1 gives the linear gain 1 / (1 - a)
        assert cert.gamma == pytest.approx(1.0 / (1.0 - a), rel=1e-5)


@pytest.mark.parametrize("a", [1.01, -1.01, 1.5, 3.0])
def test_scalar_relu_loop_not_certified_when_gain_above_one(a):
    model = ImplicitRNN(F=[[0.0]], B1=[[a]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]], activation="relu")
    cert = certify(model)  # must not raise
    assert not cert.certified and not cert.contracting and cert.gamma is None
    assert "not contracting" in cert.reason
    assert not cert.verify(model)


@pytest.mark.parametrize("activation", ["relu", "tanh", leaky_relu(0.1), "sigmoid"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_certified_gamma_bounds_measured_incremental_gain(activation, seed):
    rng = np.random.default_rng(100 + seed)
    model = random_rnn(rng, n=3, q=4, m=1 + seed % 2, p=1 + (seed + 1) % 2, activation=activation,
                       E_far=seed == 2)
    cert = certify(model)
    assert cert.contracting and cert.verify(model)
    measured = sampled_incremental_gain(model, rng)
    assert measured <= cert.gamma, f"measured incremental gain {measured} exceeds certified {cert.gamma}"
    # ... and from a nonzero common initial state too
    measured_x0 = sampled_incremental_gain(model, rng, x0=rng.standard_normal(model.n))
    assert measured_x0 <= cert.gamma


def test_dissipation_inequality_holds_stepwise_along_trajectories():
    """Falsification of the LMI's signs: V(dx+) - V(dx) <= g|du|^2 - |dy|^2/g at every step."""
    rng = np.random.default_rng(7)
    model = random_rnn(rng, n=4, q=5, m=2, p=2, activation="tanh", E_far=True)
    cert = certify(model)
    assert cert.verify(model)
    Q, g = cert.Q, cert.gamma
    u1 = 2 * rng.standard_normal((20, 60, 2))
    u2 = u1 + rng.standard_normal((20, 60, 2))
    x0a, x0b = rng.standard_normal((20, 4)), rng.standard_normal((20, 4))
    y1, x1 = model.simulate(u1, x0a, return_states=True)
    y2, x2 = model.simulate(u2, x0b, return_states=True)
    Edx = (x1 - x2) @ model.E.T
    V = np.einsum("bti,ij,btj->bt", Edx, Q, Edx)
    supply = g * np.sum((u1 - u2) ** 2, axis=2) - np.sum((y1 - y2) ** 2, axis=2) / g
    assert np.all(V[:, 1:] - V[:, :-1] <= supply + 1e-9 * (1 + V[:, :-1]))


def test_contraction_trajectories_converge():
    rng = np.random.default_rng(3)
    model = random_rnn(rng, n=4, q=6, m=1, p=1, activation="relu")
    cert = certify(model)
    assert cert.contracting
    u = rng.standard_normal((1, 300, 1))
    _, xa = model.simulate(u, 10 * rng.standard_normal(4), return_states=True)
    _, xb = model.simulate(u, -10 * rng.standard_normal(4), return_states=True)
    d = np.linalg.norm(xa - xb, axis=-1)[0]
    assert d[-1] < 1e-6 * d[0]


def test_certificate_invariant_to_representation():
    rng = np.random.default_rng(11)
    model = random_rnn(rng, n=4, q=3, m=1, p=1, activation="relu")
    S = rng.standard_normal((4, 4)) + 4 * np.eye(4)
    other = model.transform(S)
    c1, c2 = certify(model), certify(other)
    assert c1.verify(model) and c2.verify(other)
    assert c2.gamma == pytest.approx(c1.gamma, rel=1e-6)
    np.testing.assert_allclose(other.simulate(np.ones((30, 1))), model.simulate(np.ones((30, 1))), atol=1e-10)


def test_fixed_gamma_above_and_below_optimum():
    rng = np.random.default_rng(5)
    model = random_rnn(rng, n=3, q=3, m=1, p=1)
    best = certify(model)
    above = certify(model, gamma=1.05 * best.gamma)
    assert above.certified and above.gamma == 1.05 * best.gamma and above.verify(model)
    below = certify(model, gamma=0.95 * best.gamma)
    assert not below.certified and "smallest certifiable gamma" in below.reason


@pytest.mark.parametrize("solver", ["SCS"])
def test_other_solver_gives_verified_certificate(solver):
    rng = np.random.default_rng(8)
    model = random_rnn(rng, n=3, q=3, m=1, p=1)
    ref = certify(model)
    cert = certify(model, solver=solver)
    assert cert.verify(model)
    assert cert.gamma == pytest.approx(ref.gamma, rel=1e-3)
    assert cert.attempts[0]["solver"] == solver


def test_certificate_margin_matches_lmi():
    rng = np.random.default_rng(9)
    model = random_rnn(rng, n=3, q=2, m=1, p=1)
    cert = certify(model)
    M = dissipation_lmi(**model_operands(model, cert.Q, cert.lam), gamma=cert.gamma)
    assert np.linalg.eigvalsh(M)[0] == pytest.approx(cert.margin, rel=1e-6, abs=1e-14)
    assert 0 < cert.proven_margin <= cert.margin


def test_falls_back_to_another_solver_when_one_fails(monkeypatch):
    from rrnn_convex import solvers

    real_run = solvers.run

    def broken_clarabel(problem, solver, **kw):
        if solver == "CLARABEL":
            return solvers.Attempt(solver, "solver_error", 0.0, "injected fault")
        return real_run(problem, solver, **kw)

    monkeypatch.setattr(solvers, "run", broken_clarabel)
    rng = np.random.default_rng(4)
    model = random_rnn(rng, n=3, q=3, m=1, p=1)
    cert = certify(model)
    assert cert.verify(model) and cert.solver == "SCS"
    assert cert.attempts[0]["solver"] == "CLARABEL" and cert.attempts[0]["detail"] == "injected fault"
    none = certify(model, fallback=False)
    assert not none.certified and "no solver" in none.reason


def test_contraction_only_certificate():
    rng = np.random.default_rng(12)
    model = random_rnn(rng, n=3, q=3, m=1, p=1)
    cert = certify(model, contraction_only=True)
    assert cert.contracting and cert.gamma is None and cert.verify(model)
    bad = ImplicitRNN(F=[[0.0]], B1=[[1.2]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]])
    assert not certify(bad, contraction_only=True).certified
    with pytest.raises(ValueError, match="contraction_only"):
        certify(model, gamma=2.0, contraction_only=True)


def test_gamma_is_tight_when_the_direct_sdp_fails():
    """A case where Clarabel fails the direct gamma SDP, so certify preconditions from the
    contraction anchor (whose gamma is ~100x too large); the answer must still be tight."""
    rng = np.random.default_rng(2)
    A = rng.standard_normal((8, 8))
    A *= 0.99 / np.max(np.abs(np.linalg.eigvals(A)))
    B, C, D = rng.standard_normal((8, 2)), rng.standard_normal((2, 8)), rng.standard_normal((2, 2))
    model = ImplicitRNN(F=A, B1=np.zeros((8, 2)), B2=B, C1=rng.standard_normal((2, 8)), C2=C, D22=D)
    cert = certify(model)
    assert cert.verify(model)
    assert cert.gamma == pytest.approx(hinf_norm(A, B, C, D), rel=1e-5)
