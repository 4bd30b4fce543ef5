"""The paper's training method (log-det barrier + Adam): exact gradients, strict feasibility of
every iterate, a verified certificate for the returned model."""
from dataclasses import replace

import numpy as np
import pytest

from rrnn_convex.activations import get_activation
from rrnn_convex.baselines.barrier import (BarrierSGD, Variables, barrier, lifted_point, lmi_basis,
                                           simulation_gradient)
from rrnn_convex.datasets.msd import make_datasets
from rrnn_convex.fit import RobustRNNRegressor
from rrnn_convex.linearize import ParamLayout, linearize

from conftest import random_rnn


@pytest.fixture(scope="module")
def msd():
    return make_datasets(seed=0, n_train=4, train_length=200, test_length=300)


@pytest.fixture(scope="module")
def start(msd):
    scp = RobustRNNRegressor(3, 3, model_set="theta_gamma", gamma=8.0, solver="CLARABEL", progress=False)
    return scp.initial_model(msd.init.u, msd.init.y, scp._set())


def test_simulation_gradient_equals_the_forward_sensitivities(rng):
    """The adjoint gradient of mean((y_hat - y)^2) is 2 J'r / N from linearize (forward mode)."""
    model = random_rnn(rng, 3, 4, 2, 2, activation="tanh", E_far=True)
    u, y = rng.standard_normal((3, 30, 2)), rng.standard_normal((3, 30, 2))
    x0 = rng.standard_normal((3, 3))
    loss, G, g_x0 = simulation_gradient(model, u, y, x0)
    lin = linearize(model, u, y, x0, ParamLayout.for_model(model))
    N = y.size
    assert loss == pytest.approx(lin.loss / N, rel=1e-12)
    layout = ParamLayout.for_model(model)
    for name, sl in layout.offsets().items():
        np.testing.assert_allclose(G[name].ravel(), 2 * lin.g[sl] / N, rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(g_x0, 2 * lin.gx / N, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gain", [True, False])
def test_chain_rule_and_barrier_gradient_equal_finite_differences(rng, gain):
    gamma = 8.0 if gain else None
    model = random_rnn(rng, 3, 4, 1, 1, activation="relu", scale=0.5)
    model = replace(model, C2=0.3 * model.C2, D21=0.3 * model.D21, D22=0.3 * model.D22)
    P, lam, t = lifted_point(model, gamma)  # a central point: t, the smallest eigenvalue, is ~0.5
    assert t > 0.1
    act = get_activation(model.activation)
    var = Variables.for_dims(model.dims, gain)
    z = var.from_model(model, P, lam)
    basis = lmi_basis(var, act, gamma)
    val, grad = barrier(var, basis, z, act, gamma)
    M = var.lmi(z, act, gamma)
    assert val == pytest.approx(-np.linalg.slogdet(M)[1], rel=1e-10)
    # finite differences along random directions (symmetric in P)
    for _ in range(5):
        d = rng.standard_normal(z.size)
        Pd = var.unpack(d)["P"]
        Pd[:] = 0.5 * (Pd + Pd.T)
        h = 1e-5 / np.linalg.norm(d)
        fd = (barrier(var, None, z + h * d, act, gamma)[0] - barrier(var, None, z - h * d, act, gamma)[0]) / (2 * h)
        assert grad @ d == pytest.approx(fd, rel=1e-5)
    # the loss gradient in the decision variables (C1 = Ct / lam, D12 = Dt / lam)
    u, y = rng.standard_normal((2, 25, 1)), rng.standard_normal((2, 25, 1))

    def loss(zz):
        return simulation_gradient(var.to_model(zz, act), u, y)[0]

    g = var.loss_gradient(z, simulation_gradient(var.to_model(z, act), u, y)[1])
    for _ in range(5):
        d = rng.standard_normal(z.size)
        h = 1e-6
        fd = (loss(z + h * d) - loss(z - h * d)) / (2 * h)
        assert g @ d == pytest.approx(fd, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("model_set,gamma", [("theta_gamma", 8.0), ("theta", None)])
def test_every_iterate_is_strictly_feasible_and_the_result_certified(msd, start, model_set, gamma):
    est = BarrierSGD(3, 3, model_set=model_set, gamma=gamma, max_epochs=4, eval_every=1, seed=0)
    est.fit(msd.train.u, msd.train.y, validation=(msd.val.u, msd.val.y), init_model=start)
    steps = [h for h in est.history_ if not h.get("epoch_end")]
    assert len(steps) == 1 + 4 * 4  # the start, then every minibatch step (one sequence each)
    assert all(h["min_eig"] > 0 for h in est.history_)  # the LMI's smallest eigenvalue, every iterate
    cert = est.certificate_
    assert cert.certified and cert.verify(est.model_).ok
    if gamma is not None:
        assert cert.gamma == gamma
    keys = {"epoch", "step", "seconds_since_start", "loss", "val_nse", "barrier_weight", "lr"}
    assert keys <= set(est.history_[-1])
    times = [h["seconds_since_start"] for h in est.history_]
    assert times == sorted(times)


def test_adam_reduces_the_training_loss(msd, start):
    est = BarrierSGD(3, 3, gamma=8.0, max_epochs=40, lr=1e-2, seed=1)
    est.fit(msd.train.u, msd.train.y, validation=(msd.val.u, msd.val.y), init_model=start)
    epochs = [h for h in est.history_ if h.get("epoch_end")]
    assert epochs[-1]["loss"] < 0.8 * epochs[0]["loss"], [e["loss"] for e in epochs]
    assert len({frozenset(h) for h in est.history_}) == 1, "every record has the same keys"
    assert est.history_[0]["epoch_end"] is False
    assert est.certificate_.verify(est.model_).ok


def test_schedule_raises_the_weight_and_stops_after_max_weight(msd, start):
    """No validation improvement can beat tol = inf: every `patience` epochs w x10 and lr x0.25."""
    est = BarrierSGD(3, 3, gamma=8.0, max_epochs=50, patience=1, tol=np.inf, barrier_weight0=10.0,
                     max_weight=1e3, seed=0)
    est.fit(msd.train.u, msd.train.y, validation=(msd.val.u, msd.val.y), init_model=start)
    ws = [h["barrier_weight"] for h in est.history_ if h.get("epoch_end")]
    lrs = [h["lr"] for h in est.history_ if h.get("epoch_end")]
    assert est.stop_reason_ == "barrier weight"
    assert ws == pytest.approx([10.0, 100.0, 1000.0])
    assert lrs == pytest.approx([1e-3, 2.5e-4, 6.25e-5])


def test_bad_arguments(msd):
    with pytest.raises(ValueError, match="needs gamma"):
        BarrierSGD(model_set="theta_gamma").fit(msd.train.u, msd.train.y)
    with pytest.raises(ValueError, match="model_set"):
        BarrierSGD(model_set="srnn").fit(msd.train.u, msd.train.y)
