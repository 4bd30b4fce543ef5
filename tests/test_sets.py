"""Theta and Theta_gamma as cvxpy sets: signs checked against closed forms and certify()."""
import cvxpy as cp
import numpy as np
import pytest

from rrnn_convex import certify
from rrnn_convex.sets import Contracting, GainBounded

from conftest import hinf_norm, random_stable_lti


@pytest.mark.parametrize("seed,rho", [(0, 0.6), (1, 0.9)])
def test_theta_gamma_min_gamma_over_realisations_of_an_lti_system_is_its_hinf_norm(seed, rho):
    """With E, P free and F = E A, B2 = E B, B1 = 0, the lifted LMI is exact (E = P = Q^-1)."""
    rng = np.random.default_rng(seed)
    n, m, p, q = 3, 1, 2, 2
    A, B, C, D = random_stable_lti(rng, n, m, p, rho)
    C1 = rng.standard_normal((q, n))
    sv = GainBounded(gamma=None, margin=1e-9).build(
        {"n": n, "q": q, "m": m, "p": p}, "relu",
        fixed={"C1": C1, "D12": np.zeros((q, m)), "C2": C, "D21": np.zeros((p, q)), "D22": D,
               "B1": np.zeros((n, q))})
    E, F, B2 = sv.params["E"], sv.params["F"], sv.params["B2"]
    cons = sv.constraints + [F == E @ A, B2 == E @ B]
    cp.Problem(cp.Minimize(sv.cert["gamma"]), cons).solve(solver="CLARABEL")
    assert sv.cert["gamma"].value == pytest.approx(hinf_norm(A, B, C, D), rel=1e-4)


@pytest.mark.parametrize("gamma", [2.0, 5.0])
def test_every_model_from_theta_gamma_certifies_gamma(gamma):
    rng = np.random.default_rng(int(gamma))
    n, q, m, p = 3, 3, 1, 1
    C1, D12 = rng.standard_normal((q, n)), rng.standard_normal((q, m))
    sv = GainBounded(gamma=gamma).build({"n": n, "q": q, "m": m, "p": p}, "relu", fixed={"C1": C1, "D12": D12})
    # pull the free weights towards a random (unstable, high-gain) target: lands on the boundary
    target = {k: 3 * rng.standard_normal(sv.params[k].shape) for k in sv.free}
    target["E"] = np.eye(n)
    obj = sum(cp.sum_squares(sv.params[k] - target[k]) for k in sv.free)
    cp.Problem(cp.Minimize(obj), sv.constraints).solve(solver="CLARABEL")
    model = sv.to_model("relu")
    cert = certify(model, gamma=gamma)
    assert cert.certified and cert.verify(model)
    best = certify(model)
    assert best.gamma <= gamma * (1 + 1e-6)


def test_free_C1_parametrisation_gives_contracting_models():
    rng = np.random.default_rng(3)
    n, q, m, p = 3, 4, 1, 1
    sv = Contracting(parametrization="free_C1").build({"n": n, "q": q, "m": m, "p": p}, "relu")
    target = {k: 2 * rng.standard_normal(sv.params[k].shape) for k in sv.free}
    Ct0 = 2 * rng.standard_normal((q, n))
    obj = sum(cp.sum_squares(sv.params[k] - target[k]) for k in sv.free) + cp.sum_squares(sv.extra["Ct"] - Ct0)
    cp.Problem(cp.Minimize(obj), sv.constraints + [cp.sum(sv.cert["lam"]) == q]).solve(solver="CLARABEL")
    model = sv.to_model("relu")
    cert = certify(model)
    assert cert.contracting and cert.verify(model)


def test_sets_reject_bad_arguments():
    dims = {"n": 2, "q": 2, "m": 1, "p": 1}
    with pytest.raises(ValueError, match="needs C1"):
        Contracting().build(dims, "relu")
    with pytest.raises(ValueError, match=r"fixed\['C1'\]: expected shape \(2, 2\)"):
        Contracting().build(dims, "relu", fixed={"C1": np.zeros((3, 2)), "D12": np.zeros((2, 1))})
    with pytest.raises(ValueError, match="alpha \\* beta == 0"):
        Contracting(parametrization="free_C1").build(dims, {"name": "leaky_relu", "slope": 0.1})
    with pytest.raises(ValueError, match="gamma: expected a value > 0"):
        GainBounded(gamma=0.0)
    with pytest.raises(ValueError, match="dims"):
        Contracting().build({"n": 2}, "relu")


@pytest.mark.parametrize("limit", [1e-9, 0.05])
def test_a_time_limited_smallest_gamma_still_proves_contraction(limit):
    """Theta's certificate with a (too) short time for the smallest-gamma search: still a
    verified certificate of contraction; any gamma it reports is proven (verify checks it), and
    none is lower than the unlimited search's optimum."""
    from conftest import random_rnn
    rng = np.random.default_rng(3)
    model = random_rnn(rng, 4, 5, 1, 1)
    full = Contracting().certificate(model, smallest_gamma=True)
    assert full.certified and full.gamma is not None
    cert = Contracting().certificate(model, smallest_gamma=True, gamma_time_limit=limit)
    assert cert.certified and cert.verify(model).ok
    if cert.gamma is not None:
        assert cert.gamma >= full.gamma * (1 - 1e-6)
