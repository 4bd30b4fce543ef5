"""Baselines: the LSTM (casadi derivatives, Levenberg-Marquardt). The Elman RNN is fit.py's
model_set "elman" (tests/test_fit.py)."""
import os
import shutil
import time

import casadi as ca
import numpy as np
import pytest

from rrnn_convex.analysis import lipschitz_lower_bound
from rrnn_convex.baselines import LSTM, LSTMRegressor, casadi_linearize, train_lm
from rrnn_convex.datasets.msd import make_datasets


@pytest.fixture(scope="module")
def msd():
    return make_datasets(seed=0, n_train=4, train_length=200, test_length=300)


def _fd_jacobian(f, x, eps=1e-6):
    return np.stack([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in np.eye(x.size)], axis=1)


def test_lstm_numpy_and_casadi_simulations_agree(rng):
    lstm = LSTM.random(3, 2, 2, seed=1)
    u = rng.standard_normal((30, 2))
    usym = ca.MX.sym("u", 30, 2)
    y_casadi = np.array(ca.Function("f", [usym], [lstm(usym)])(u))
    np.testing.assert_allclose(lstm.simulate(u), y_casadi, atol=1e-13)
    assert lstm.simulate(u[None]).shape == (1, 30, 2)
    np.testing.assert_array_equal(lstm.with_theta(lstm.theta()).theta(), lstm.theta())


def test_lstm_casadi_jacobian_equals_finite_differences(rng):
    """J'J, J'r and the initial-state blocks of casadi_linearize against a finite-difference J."""
    lstm = LSTM.random(3, 1, 1, seed=0)
    B, T = 3, 40
    U, Y = rng.standard_normal((B, T, 1)), rng.standard_normal((B, T, 1))
    X0 = 0.3 * rng.standard_normal((B, 6))
    th = lstm.theta()
    lin = casadi_linearize(lstm.casadi_step(), th, U, Y, X0, chunk=7)  # chunk not dividing T
    r = lambda t, x0: (lstm.with_theta(t).simulate(U, x0) - Y).ravel()  # noqa: E731
    r0 = r(th, X0)
    np.testing.assert_allclose(lin.residual.ravel(), r0, atol=1e-13)
    J = _fd_jacobian(lambda t: r(t, X0), th)
    np.testing.assert_allclose(lin.H, J.T @ J, rtol=1e-6, atol=1e-7 * np.abs(lin.H).max())
    np.testing.assert_allclose(lin.g, J.T @ r0, atol=1e-6)
    Jx = _fd_jacobian(lambda x: r(th, x.reshape(B, 6)), X0.ravel()).reshape(B, T, B, 6)
    Jt = J.reshape(B, T, -1)
    for b in range(B):
        np.testing.assert_allclose(lin.Hx[b], Jx[b, :, b].T @ Jx[b, :, b], atol=1e-7)
        np.testing.assert_allclose(lin.Hxt[b], Jx[b, :, b].T @ Jt[b], atol=1e-6)
        np.testing.assert_allclose(lin.gx[b], Jx[b, :, b].T @ r0.reshape(B, T)[b], atol=1e-6)


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler (cc) on the PATH")
def test_compiled_local_jacobians_give_the_same_blocks(rng):
    """casadi's generated C code, compiled, against casadi's virtual machine."""
    lstm = LSTM.random(2, 1, 1, seed=3)
    U, Y = rng.standard_normal((2, 15, 1)), rng.standard_normal((2, 15, 1))
    X0 = 0.3 * rng.standard_normal((2, 4))
    vm = casadi_linearize(lstm.casadi_step(), lstm.theta(), U, Y, X0)
    cc = casadi_linearize(lstm.casadi_step(), lstm.theta(), U, Y, X0, compiled=True)
    for k in ("y_hat", "H", "g", "Hx", "Hxt", "gx"):
        np.testing.assert_allclose(getattr(cc, k), getattr(vm, k), rtol=1e-12, atol=1e-14, err_msg=k)


def test_compiling_without_a_c_compiler_is_a_clear_error(rng, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-rrnn")
    lstm = LSTM.random(2, 1, 1, seed=4)
    U, Y = rng.standard_normal((3, 5, 1)), rng.standard_normal((3, 5, 1))
    with pytest.raises(RuntimeError, match="no C compiler 'no-such-compiler-rrnn'"):
        casadi_linearize(lstm.casadi_step(), lstm.theta(), U, Y, compiled=True)


def test_lstm_input_vjp_equals_finite_differences_and_drives_the_lipschitz_bound(rng):
    lstm = LSTM.random(3, 2, 1, seed=2)
    u = rng.standard_normal((2, 25, 2))
    g = rng.standard_normal((2, 25, 1))
    y, gu = lstm.vjp(u, g)
    np.testing.assert_allclose(y, lstm.simulate(u), atol=1e-13)
    fd = _fd_jacobian(lambda v: np.atleast_1d(np.sum(lstm.simulate(v.reshape(u.shape)) * g)), u.ravel())
    np.testing.assert_allclose(gu.ravel(), fd.ravel(), atol=1e-7)
    # both routes of analysis.lipschitz_lower_bound: casadi symbols, and the explicit vjp hook
    a = lipschitz_lower_bound(lstm, horizon=20, starts=2, steps=5, seed=0)
    b = lipschitz_lower_bound(lambda v: lstm.simulate(v), horizon=20, starts=2, steps=5, seed=0, m=2,
                              vjp=lambda v, c: lstm.vjp(v, c)[1])
    assert a.value > 0 and abs(a.value - b.value) < 1e-8 * a.value


def test_lm_decreases_the_loss_and_respects_the_time_budget(msd):
    u, y = msd.train.u, msd.train.y
    est = LSTMRegressor(4, max_iter=6, patience=100, seed=0)
    init = est.initial_model(u, y)
    loss0 = float(np.sum((init.simulate(u) - y) ** 2))
    est.fit(u, y, validation=(msd.val.u, msd.val.y), init_model=init)
    losses = [h["loss"] for h in est.history_ if h["accepted"]]
    assert len(losses) >= 3 and losses[-1] < 0.9 * loss0
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert {"loss", "val_nse", "mu", "accepted", "seconds", "seconds_since_start"} <= set(est.history_[0])
    # the budget is checked before every linearisation and trial step: the overrun is at most one of them
    budget = 0.5
    t0 = time.perf_counter()
    res = train_lm(init, u, y, max_iter=1000, time_budget=budget, patience=1000)
    elapsed = time.perf_counter() - t0
    one_iter = max(h["seconds"] for h in res.history)
    assert len(res.history) < 1000 and elapsed < budget + one_iter + 0.5
