"""r, J'J, J'r from forward sensitivities agree with finite differences of the simulator."""
import numpy as np
import pytest

from rrnn_convex.linearize import MIN_WINDOWS_PER_WORKER, NormalEquations, ParamLayout, linearize, thread_plan

from conftest import random_rnn


def _fd_jacobians(model, layout, u, y, x0, eps=1e-6):
    theta = layout.flatten(model)

    def resid(th, x0v):
        return (layout.unflatten(th, model).simulate(u, x0v) - y).ravel()

    J = np.empty((y.size, theta.size))
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = eps
        J[:, i] = (resid(theta + e, x0) - resid(theta - e, x0)) / (2 * eps)
    Bn, n = x0.shape
    Jx = np.empty((y.size, Bn * n))
    for i in range(Bn * n):
        e = np.zeros(Bn * n)
        e[i] = eps
        Jx[:, i] = (resid(theta, x0 + e.reshape(Bn, n)) - resid(theta, x0 - e.reshape(Bn, n))) / (2 * eps)
    return resid(theta, x0), J, Jx


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("names", [None, ("F", "B1", "C1", "C2", "by"), ("E", "D12", "bv", "D21")])
def test_normal_equations_match_finite_differences(activation, names):
    rng = np.random.default_rng(1)
    model = random_rnn(rng, 3, 4, 2, 2, activation=activation, E_far=True)
    Bn, T = 3, 12
    u = rng.standard_normal((Bn, T, 2))
    y = rng.standard_normal((Bn, T, 2))
    x0 = rng.standard_normal((Bn, 3))
    layout = ParamLayout.for_model(model, names)
    lin = linearize(model, u, y, x0, layout, chunk=5)
    r, J, Jx = _fd_jacobians(model, layout, u, y, x0)
    np.testing.assert_allclose(lin.residual.ravel(), r, atol=1e-12)
    scale = np.abs(J.T @ J).max()
    np.testing.assert_allclose(lin.H, J.T @ J, atol=1e-7 * scale)
    np.testing.assert_allclose(lin.g, J.T @ r, atol=1e-7 * np.abs(J.T @ r).max())
    for b in range(Bn):
        Jb = Jx[:, 3 * b:3 * b + 3]
        np.testing.assert_allclose(lin.Hx[b], Jb.T @ Jb, atol=1e-7 * scale)
        np.testing.assert_allclose(lin.Hxt[b], Jb.T @ J, atol=1e-7 * scale)
        np.testing.assert_allclose(lin.gx[b], Jb.T @ r, atol=1e-6 * np.abs(J.T @ r).max())


@pytest.mark.parametrize("marquardt", [False, True])
def test_schur_reduction_gives_the_full_regularised_gauss_newton_step(marquardt):
    rng = np.random.default_rng(2)
    model = random_rnn(rng, 3, 3, 1, 1, activation="tanh")
    Bn, T, mu = 4, 20, 0.3
    u, y = rng.standard_normal((Bn, T, 1)), rng.standard_normal((Bn, T, 1))
    x0 = rng.standard_normal((Bn, 3))
    layout = ParamLayout.for_model(model)
    lin = linearize(model, u, y, x0, layout)
    r, J, Jx = _fd_jacobians(model, layout, u, y, x0)
    Jall = np.hstack([J, Jx])
    JtJ = Jall.T @ Jall
    D = np.diag(np.diag(JtJ)) if marquardt else np.eye(Jall.shape[1])
    full = np.linalg.solve(JtJ + mu * D, -Jall.T @ r)
    Hr, gr = lin.reduced(mu, marquardt=marquardt)
    d = np.linalg.solve(Hr, -gr)
    dx = lin.x0_step(d, mu, marquardt=marquardt)
    np.testing.assert_allclose(d, full[:J.shape[1]], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(dx.ravel(), full[J.shape[1]:], rtol=1e-5, atol=1e-8)


def test_layout_round_trip_and_errors():
    rng = np.random.default_rng(3)
    model = random_rnn(rng, 3, 2, 1, 1)
    layout = ParamLayout.for_model(model, ("C2", "F"))
    assert layout.names == ("F", "C2")  # dynamic fields first
    theta = layout.flatten(model)
    assert layout.unflatten(theta, model) == model
    with pytest.raises(ValueError, match="theta: expected shape"):
        layout.unflatten(theta[:-1], model)
    with pytest.raises(ValueError, match="unknown weights"):
        ParamLayout.for_model(model, ("W",))
    with pytest.raises(ValueError, match="y: expected shape"):
        linearize(model, np.zeros((2, 5, 1)), np.zeros((2, 4, 1)))


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "leaky_relu"])
@pytest.mark.parametrize("names", [None, ("F", "B1", "C1", "C2", "by"), ("E", "D12", "bv", "D21")])
def test_closed_form_sensitivities_equal_casadi_automatic_differentiation(activation, names):
    """Two independent derivations of the same blocks: the closed-form propagation of
    zeta = E dx (linearize) and casadi's automatic differentiation of the step function,
    propagated by the casadi engine of the LSTM baseline."""
    from rrnn_convex.baselines import casadi_linearize
    from rrnn_convex.linearize import casadi_step
    rng = np.random.default_rng(7)
    model = random_rnn(rng, 3, 4, 2, 2, activation=activation, E_far=True)
    layout = ParamLayout.for_model(model, names)
    u, y = rng.standard_normal((3, 15, 2)), rng.standard_normal((3, 15, 2))
    x0 = rng.standard_normal((3, 3))
    a = linearize(model, u, y, x0, layout, chunk=4)
    b = casadi_linearize(casadi_step(model, layout), layout.flatten(model), u, y, x0, chunk=5)
    for k in ("y_hat", "H", "g", "Hx", "Hxt", "gx"):
        ref = getattr(b, k)
        np.testing.assert_allclose(getattr(a, k), ref, rtol=0, atol=1e-12 * np.abs(ref).max(), err_msg=k)


@pytest.mark.parametrize("chunk", [64, 20, 3])
def test_blocks_of_time_steps_join_up_over_long_sequences(chunk):
    """The propagation works in blocks of BLOCK_STEPS steps (cut short by the end of a chunk of
    rows and of the sequence): over 45 steps, with chunks that hold several, part of one and less
    than one block, it still equals casadi's automatic differentiation propagated step by step."""
    from rrnn_convex.baselines import casadi_linearize
    from rrnn_convex.linearize import BLOCK_STEPS, casadi_step
    rng = np.random.default_rng(11)
    model = random_rnn(rng, 3, 4, 2, 2, activation="tanh", E_far=True)
    T = 45
    assert T > 2 * BLOCK_STEPS and T % BLOCK_STEPS
    u, y = rng.standard_normal((3, T, 2)), rng.standard_normal((3, T, 2))
    x0 = rng.standard_normal((3, 3))
    layout = ParamLayout.for_model(model)
    a = linearize(model, u, y, x0, layout, chunk=chunk)
    b = casadi_linearize(casadi_step(model, layout), layout.flatten(model), u, y, x0, chunk=7)
    for k in ("y_hat", "H", "g", "Hx", "Hxt", "gx"):
        ref = getattr(b, k)
        np.testing.assert_allclose(getattr(a, k), ref, rtol=0, atol=1e-11 * np.abs(ref).max(), err_msg=k)


def test_rows_of_several_steps_must_fit_the_buffer():
    acc = NormalEquations(2, 3, 1, 1, chunk=4)
    rows_t, rows_x, res = acc.rows(3)
    assert rows_t.shape == (3, 2, 1, 3) and rows_x.shape == (3, 2, 1, 1) and res.shape == (3, 2, 1)
    acc.commit(3)
    assert acc.space == 1
    with pytest.raises(ValueError, match=r"steps: expected 1 .. 1 .*got 2"):
        acc.rows(2)
    with pytest.raises(ValueError, match=r"steps: expected 1 .. 1 .*got 2"):
        acc.commit(2)  # more steps than were given out would run past the buffer
    acc.close()


def test_sequences_shared_between_threads_give_the_same_blocks():
    rng = np.random.default_rng(8)
    model = random_rnn(rng, 3, 4, 2, 1, activation="tanh", E_far=True)
    u, y = rng.standard_normal((5, 30, 2)), rng.standard_normal((5, 30, 1))
    x0 = rng.standard_normal((5, 3))
    one = linearize(model, u, y, x0, chunk=7)
    for workers in (2, 3, 8):  # 8 > 5 sequences: one thread per sequence
        many = linearize(model, u, y, x0, chunk=7, workers=workers)
        for k in ("y_hat", "residual", "H", "g", "Hx", "Hxt", "gx"):
            np.testing.assert_allclose(getattr(many, k), getattr(one, k), rtol=1e-13, atol=1e-13, err_msg=k)
    with pytest.raises(ValueError, match="workers"):
        linearize(model, u, y, x0, workers=0)


def test_folding_in_the_background_gives_the_same_sums_bit_for_bit():
    """overlap=True folds chunk k in a helper thread while chunk k + 1 is filled into a second
    buffer: the chunks are folded in the same order, so every block is identical, including
    with a last partial chunk (30 = 4 * 7 + 2) and with the sequences shared by two threads."""
    rng = np.random.default_rng(9)
    model = random_rnn(rng, 3, 4, 2, 1, activation="relu", E_far=True)
    u, y = rng.standard_normal((5, 30, 2)), rng.standard_normal((5, 30, 1))
    x0 = rng.standard_normal((5, 3))
    for workers in (1, 2):
        plain = linearize(model, u, y, x0, chunk=7, workers=workers)
        folded = linearize(model, u, y, x0, chunk=7, workers=workers, overlap=True)
        for k in ("y_hat", "residual", "H", "g", "Hx", "Hxt", "gx"):
            assert np.array_equal(getattr(folded, k), getattr(plain, k)), (workers, k)
        assert np.array_equal(folded.H, folded.H.T)


def test_an_error_in_the_background_fold_reaches_the_caller():
    acc = NormalEquations(2, 3, 1, 1, chunk=1, background=True)
    rows_t, rows_x, res = acc.rows()
    rows_t[:] = 1.0
    acc.Hxt = np.zeros((2, 1, 4))  # a wrong shape: the helper thread's fold raises
    acc.commit()
    with pytest.raises(ValueError):
        acc.finish()
    acc.close()


def test_thread_plan_shares_windows_only_when_each_thread_gets_enough():
    k = MIN_WINDOWS_PER_WORKER
    assert thread_plan(k - 1, 2) == (1, True)  # one propagating thread, one folding
    assert thread_plan(2 * k, 2) == (2, False)  # both threads propagate: none left to fold
    assert thread_plan(3 * k, 8) == (3, True)
    assert thread_plan(10 * k, 1) == (1, False)  # one thread: nothing in the background
    with pytest.raises(ValueError, match="jobs"):
        thread_plan(5, 0)
