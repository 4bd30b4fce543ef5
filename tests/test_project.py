"""Projection onto the model sets: optimality, idempotence, certified results, clear errors."""
import cvxpy as cp
import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex.project import project
from rrnn_convex.sets import CIRNNSet, SRNNSet

from conftest import random_rnn, sampled_incremental_gain


def unstable_elman(seed, n=5, radius=1.5):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, n))
    W *= radius / np.max(np.abs(np.linalg.eigvals(W)))
    return ImplicitRNN.from_elman(W, rng.standard_normal((n, 1)), rng.standard_normal(n),
                                  rng.standard_normal((1, n)), activation="relu")


def independent_projection(model, gamma, margin):
    """The same projection written out by hand: the lifted LMI of DESIGN.md section 3."""
    n, q, m, p = model.n, model.q, model.m, model.p
    V = {k: cp.Variable(getattr(model, k).shape) for k in ("E", "F", "B1", "B2", "C2", "D21", "D22")}
    P = cp.Variable((n, n), symmetric=True)
    lam = cp.Variable(q, nonneg=True)
    L = cp.diag(lam)
    C1, D12 = model.C1, model.D12  # relu: alpha = 0, beta = 1
    Z = np.zeros
    M = cp.bmat([
        [V["E"] + V["E"].T - P, -C1.T @ L, Z((n, m)), V["F"].T, V["C2"].T],
        [-L @ C1, 2 * L, -L @ D12, V["B1"].T, V["D21"].T],
        [Z((m, n)), -D12.T @ L, gamma * np.eye(m), V["B2"].T, V["D22"].T],
        [V["F"], V["B1"], V["B2"], P, Z((n, p))],
        [V["C2"], V["D21"], V["D22"], Z((p, n)), gamma * np.eye(p)]])
    N = M.shape[0]
    obj = sum(cp.sum_squares(V[k] - getattr(model, k)) for k in V)
    prob = cp.Problem(cp.Minimize(obj), [0.5 * (M + M.T) >> margin * np.eye(N)])
    prob.solve(solver="CLARABEL")
    return float(np.sqrt(prob.value))


@pytest.mark.parametrize("seed,gamma", [(0, 3.0), (1, 6.0)])
def test_projection_distance_equals_an_independent_formulation(seed, gamma):
    model = unstable_elman(seed, n=3)
    pr = project(model, gamma=gamma, norm="implicit")
    assert pr.moved and pr.certificate.verify(pr.model)
    ref = independent_projection(model, gamma, pr.margin)
    assert pr.distance == pytest.approx(ref, rel=1e-6)


def test_projecting_a_non_contracting_rnn_gives_a_verified_model_and_twice_moves_nothing():
    model = unstable_elman(2)
    assert not certify(model).certified
    pr = project(model)
    assert pr.moved and pr.distance > 0
    assert pr.certificate.contracting and pr.certificate.verify(pr.model)
    again = project(pr.model)
    assert not again.moved and again.distance == 0.0 and again.model is pr.model


def test_model_already_in_the_set_comes_back_unchanged():
    rng = np.random.default_rng(3)
    model = random_rnn(rng, 3, 3, 1, 1)
    pr = project(model, gamma=certify(model).gamma * 1.01)
    assert not pr.moved and pr.distance == 0.0 and pr.model is model


@pytest.mark.parametrize("gamma", [2.0, 5.0, 10.0])
def test_projected_elman_rnn_certifies_gamma_and_its_measured_gain_stays_below(gamma):
    model = unstable_elman(4, n=6, radius=1.5)
    pr = project(model, gamma=gamma)
    cert = pr.certificate
    assert cert.certified and cert.gamma == gamma and cert.verify(pr.model)
    measured = sampled_incremental_gain(pr.model, np.random.default_rng(0))
    assert measured <= gamma


def test_normalized_distance_is_representation_independent():
    model = unstable_elman(5, n=3)
    S = np.random.default_rng(5).standard_normal((3, 3)) + 3 * np.eye(3)
    a = project(model, gamma=4.0)
    b = project(model.transform(S), gamma=4.0)
    assert a.distance == pytest.approx(b.distance, rel=1e-5)
    u = np.random.default_rng(6).standard_normal((50, 1))
    np.testing.assert_allclose(a.model.simulate(u), b.model.simulate(u), atol=1e-5)


def test_projection_onto_srnn_and_cirnn_sets():
    model = unstable_elman(6, n=4)
    srnn = project(model, target=SRNNSet(eps=0.01))
    assert np.linalg.norm(srnn.model.C1, 2) <= 0.99 + 1e-7
    assert srnn.certificate.verify(srnn.model)
    ci = project(model, target=CIRNNSet())
    assert CIRNNSet().contains(ci.model) and ci.certificate.verify(ci.model)
    assert ci.distance <= srnn.distance + 1e-6  # ci-RNN contains the SRNNs (E = I, P = I)


def test_infeasible_gamma_names_the_bound():
    model = unstable_elman(7, n=3)
    model = ImplicitRNN.from_elman(model.C1, model.D12, model.bv, model.C2, D=[[2.0]])
    with pytest.raises(ValueError, match=r"at least \|\|D22\|\|_2 = 2"):
        project(model, gamma=1.5, fixed=("D22",))


def test_shapes_that_do_not_match_the_set_are_clear_errors():
    rng = np.random.default_rng(8)
    general = random_rnn(rng, 3, 4, 1, 1)
    with pytest.raises(ValueError, match="n = q"):
        project(general, target=SRNNSet())
    square = random_rnn(rng, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="does not have the SRNNSet structure"):
        project(square, target=SRNNSet())
    with pytest.raises(ValueError, match="norm: expected one of"):
        project(square, norm="l1")
    with pytest.raises(ValueError, match="either gamma or target"):
        project(square, gamma=2.0, target=SRNNSet())


# ---------------------------------------------------------------------- scale (issue 8)
def test_projection_solver_is_chosen_by_size_and_an_explicit_choice_is_kept():
    from rrnn_convex.project import projection_solvers
    from rrnn_convex.scalable import AUTO_MIN_SIZE

    small = {"n": 4, "q": 4, "m": 1, "p": 1}
    large = {"n": AUTO_MIN_SIZE // 2, "q": AUTO_MIN_SIZE // 2, "m": 1, "p": 1}
    assert projection_solvers(None, small)[0] == "CLARABEL"
    assert projection_solvers(None, large)[0] == "SCS"
    assert projection_solvers("CLARABEL", large)[0] == "CLARABEL"
    assert set(projection_solvers(None, large)) == set(projection_solvers(None, small))  # all kept as fallbacks


@pytest.mark.parametrize("gamma", [None, 5.0])
def test_first_order_projection_agrees_with_the_interior_point_one_and_both_verify(gamma):
    """n = q = 16 (n + q = 32): the default runs SCS; Clarabel solves the same SDP exactly."""
    model = unstable_elman(11, n=16)
    auto = project(model, gamma=gamma)
    ref = project(model, gamma=gamma, solver="CLARABEL")
    assert auto.solver == "SCS" and ref.solver == "CLARABEL"
    for pr in (auto, ref):
        assert pr.moved and pr.certificate.verify(pr.model).ok
        assert pr.certificate.contracting
        if gamma is not None:
            assert pr.certificate.gamma <= gamma
    assert auto.distance == pytest.approx(ref.distance, rel=1e-2)


def test_large_projection_is_no_farther_than_a_known_member_of_theta():
    """n = q = 32 through SCS + the KYP re-certification. Shrinking the neuron-to-state weight
    B1 = I to s I with s = 0.9 / ||W||_2 gives x+ = s relu(W x + ...), a contraction in the
    Euclidean norm, so a member of Theta at distance (1 - s) ||I||_F with the projection's moving
    weights; the nearest member can be no farther."""
    model = unstable_elman(12, n=32)
    assert not certify(model, contraction_only=True).certified
    pr = project(model)
    assert pr.solver == "SCS" and pr.certificate.contracting and pr.certificate.verify(pr.model).ok
    assert pr.certificate.formulation == "kyp"
    s = 0.9 / np.linalg.norm(model.C1, 2)
    member = ImplicitRNN(**(model.weights() | {"B1": s * model.B1}), activation="relu")
    assert certify(member, contraction_only=True).certified
    bound = (1 - s) * np.linalg.norm(model.B1)
    assert 0 < pr.distance <= bound * (1 + 1e-6)
