"""Initial-state estimation from the first measured outputs (rrnn_convex.initial_state).

Data are simulated from a known initial state; the expected values are that state and the
simulation from it (``ImplicitRNN.simulate`` is checked against a plain loop in test_model.py),
or closed forms computed here (the equilibrium, the minimum-norm correction of a linear model).
The estimator is a local method: the true states are drawn near the starting points (the
equilibrium and zero), where the least-squares problem has its global minimum in reach.
"""
from dataclasses import replace

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN
from rrnn_convex.initial_state import equilibrium_state, estimate_initial_state

from conftest import lti_model, random_rnn


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def plain_equilibrium(model, u0, steps=3000):
    """x = A x + B1h sigma(C1 x + D12 u0 + bv) + B2h u0 + bxh by a plain loop on E^-1 (..)."""
    Ei = np.linalg.inv(model.E)
    x = np.zeros(model.n)
    for _ in range(steps):
        w = model.activation(model.C1 @ x + model.D12 @ u0 + model.bv)
        x = Ei @ (model.F @ x + model.B1 @ w + model.B2 @ u0 + model.bx)
    return x


def slow_model(seed, n, activation):
    """A random contracting model (conftest's random_rnn) made to forget its state slowly: the
    explicit A = 0.95 Q (Q orthogonal) and ||B1h|| ||C1|| = 0.04, so ||A|| + ||B1h|| ||C1|| < 1;
    one input, one output. The zero state then stays visibly wrong for tens of samples."""
    rng = np.random.default_rng(seed)
    model = random_rnn(rng, n, 5, 1, 1, activation=activation, E_far=seed % 2 == 1)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    B1h = np.linalg.solve(model.E, model.B1)
    B1h *= 0.04 / (np.linalg.norm(B1h, 2) * np.linalg.norm(model.C1, 2))
    return replace(model, F=model.E @ (0.95 * Q), B1=model.E @ B1h)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_the_state_from_the_first_samples(activation, n, seed):
    model = slow_model(seed, n, activation)
    rng = np.random.default_rng(100 + seed)
    T, K = 150, 2 * n  # K * p = 2n >= n measurements
    u = rng.standard_normal((T, 1))
    x0 = 0.5 * rng.standard_normal(n)
    y = model.simulate(u, x0)
    est = estimate_initial_state(model, u, y, K)
    assert est.shape == (n,)
    y_est, y_zero = model.simulate(u, est), model.simulate(u)
    assert rel(y_est[K:], y[K:]) < 1e-6
    # the zero state is visibly wrong on the scored part, the estimate much better
    assert rel(y_zero[K:], y[K:]) > 1e-5
    assert rel(y_est[K:], y[K:]) < 1e-2 * rel(y_zero[K:], y[K:])
    if activation == "tanh":  # smooth and observable: the state itself is found
        np.testing.assert_allclose(est, x0, rtol=0, atol=1e-4 * (1 + np.linalg.norm(x0)))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_recovers_the_predictions_of_strongly_nonlinear_models(activation, seed):
    """conftest's random_rnn as it is (neurons in the loop), two outputs, a large initial state."""
    rng = np.random.default_rng(seed)
    n = 3 + seed % 2
    model = random_rnn(rng, n, 5, 2, 2, activation=activation)
    T, K = 200, 3 * n
    u = rng.standard_normal((T, 2))
    x0 = 3 * rng.standard_normal(n)
    y = model.simulate(u, x0)
    est = estimate_initial_state(model, u, y, K)
    assert rel(model.simulate(u, est)[K:], y[K:]) < 1e-6
    assert rel(model.simulate(u, est)[K:], y[K:]) <= rel(model.simulate(u)[K:], y[K:])


def test_noisy_measurements_still_beat_the_zero_state():
    model = slow_model(3, 4, "tanh")
    rng = np.random.default_rng(7)
    T, K = 300, 40
    u = rng.standard_normal((T, 1))
    x0 = equilibrium_state(model, u[0]) + rng.standard_normal(4)
    y_true = model.simulate(u, x0)
    y = y_true + 0.01 * np.std(y_true) * rng.standard_normal(y_true.shape)
    est = estimate_initial_state(model, u, y, K)
    assert rel(model.simulate(u, est)[K:], y_true[K:]) < 0.2 * rel(model.simulate(u)[K:], y_true[K:])


def test_batch_has_one_state_per_sequence():
    model = slow_model(4, 3, "tanh")
    rng = np.random.default_rng(8)
    B, T, K = 3, 80, 8
    u = rng.standard_normal((B, T, 1))
    x0 = 0.5 * rng.standard_normal((B, 3))
    y = model.simulate(u, x0)
    est = estimate_initial_state(model, u, y, K)
    assert est.shape == (B, 3)
    for b in range(B):
        assert rel(model.simulate(u[b], est[b])[K:], y[b, K:]) < 1e-6
        np.testing.assert_allclose(est[b], estimate_initial_state(model, u[b], y[b], K), atol=1e-8)
    # the states really differ: one shared estimate could not fit all sequences
    assert np.min(np.linalg.norm(est[:, None] - est[None], axis=2) + np.eye(B)) > 0.1


def test_equilibrium_is_the_fixed_point_for_a_constant_input():
    model = random_rnn(np.random.default_rng(5), 4, 3, 2, 1, activation="tanh", E_far=True)
    u0 = np.array([0.3, -1.2])
    x = equilibrium_state(model, u0)
    np.testing.assert_allclose(x, plain_equilibrium(model, u0), atol=1e-8)
    _, xs = model.simulate(np.tile(u0, (50, 1)), x, return_states=True)
    np.testing.assert_allclose(xs, np.tile(x, (51, 1)), atol=1e-8)
    both = equilibrium_state(model, np.stack([u0, -u0]))
    assert both.shape == (2, 4)
    np.testing.assert_allclose(both[1], plain_equilibrium(model, -u0), atol=1e-8)


def test_equilibrium_of_a_diverging_model_falls_back_to_zero():
    model = ImplicitRNN(F=[[1.5]], B1=[[0.0]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]])
    assert np.array_equal(equilibrium_state(model, [1.0]), [0.0])
    # and the estimate still works from that prior
    u = np.ones((6, 1))
    y = model.simulate(u, [2.0])
    np.testing.assert_allclose(estimate_initial_state(model, u, y, 3), [2.0], atol=1e-7)


def test_underdetermined_linear_model_takes_the_minimum_norm_correction():
    rng = np.random.default_rng(9)
    n = 4
    A = rng.standard_normal((n, n))
    A *= 0.9 / np.max(np.abs(np.linalg.eigvals(A)))
    B, C, D = rng.standard_normal((n, 1)), rng.standard_normal((1, n)), rng.standard_normal((1, 1))
    model = lti_model(A, B, C, D)  # y_0 = C x0 + D u_0 (the neurons do not act)
    u = rng.standard_normal((30, 1))
    y = model.simulate(u, 3 * rng.standard_normal(n))
    prior = rng.standard_normal(n)
    est = estimate_initial_state(model, u, y, 1, x0_guess=prior)
    expected = prior + np.linalg.pinv(C) @ (y[0] - C @ prior - D @ u[0])
    np.testing.assert_allclose(est, expected, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_one_sample_for_four_states_stays_finite_and_fits_no_worse_than_the_prior(activation):
    model = slow_model(6, 4, activation)
    rng = np.random.default_rng(10)
    u = rng.standard_normal((40, 1))
    y = model.simulate(u, 2 * rng.standard_normal(4))
    est = estimate_initial_state(model, u, y, 1)
    prior = plain_equilibrium(model, u[0])
    assert np.all(np.isfinite(est))
    assert np.linalg.norm(est - prior) < 10 * (1 + np.linalg.norm(y[0]) + np.linalg.norm(prior))
    loss = lambda x: float(np.sum((model.simulate(u[:1], x) - y[:1]) ** 2))  # noqa: E731
    assert loss(est) <= loss(prior)
    assert loss(est) < 1e-8 * max(loss(prior), 1e-300) or loss(est) < 1e-20


def test_max_iter_zero_returns_the_prior_and_the_loop_terminates():
    model = slow_model(7, 3, "relu")
    rng = np.random.default_rng(11)
    u = rng.standard_normal((50, 1))
    y = rng.standard_normal((50, 1))  # not produced by the model: no exact fit exists
    guess = np.array([0.1, -0.2, 0.3])
    np.testing.assert_array_equal(estimate_initial_state(model, u, y, 10, x0_guess=guess, max_iter=0), guess)
    est = estimate_initial_state(model, u, y, 50, max_iter=500, tol=0.0)
    assert np.all(np.isfinite(est))


def test_simulate_with_y_init_estimates_then_simulates_the_whole_record():
    model = slow_model(8, 3, "tanh")
    rng = np.random.default_rng(12)
    u = rng.standard_normal((2, 60, 1))
    y = model.simulate(u, 0.5 * rng.standard_normal((2, 3)))
    K = 9
    est = estimate_initial_state(model, u, y, K)
    got, xs = model.simulate(u, y_init=y, init_samples=K, return_states=True)
    np.testing.assert_allclose(got, model.simulate(u, est), atol=1e-12)
    np.testing.assert_allclose(xs[:, 0], est, atol=1e-12)
    # only the first K measured samples are needed, and only they are used
    np.testing.assert_allclose(model.simulate(u, y_init=y[:, :K], init_samples=K), got, atol=1e-12)
    y_changed = y.copy()
    y_changed[:, K:] += 100.0
    np.testing.assert_allclose(model.simulate(u, y_init=y_changed, init_samples=K), got, atol=1e-12)
    # unbatched
    np.testing.assert_allclose(model.simulate(u[1], y_init=y[1], init_samples=K), got[1], atol=1e-10)


def test_simulate_without_the_new_arguments_is_unchanged():
    model = slow_model(9, 3, "relu")
    u = np.random.default_rng(13).standard_normal((20, 1))
    np.testing.assert_array_equal(model.simulate(u), model.simulate(u, np.zeros(3)))


def test_simulate_argument_errors():
    model = slow_model(10, 3, "tanh")
    u = np.zeros((20, 1))
    y = np.zeros((20, 1))
    with pytest.raises(ValueError, match="x0, y_init"):
        model.simulate(u, np.zeros(3), y_init=y, init_samples=5)
    with pytest.raises(ValueError, match="init_samples: needs y_init"):
        model.simulate(u, init_samples=5)
    with pytest.raises(ValueError, match="y_init: needs init_samples"):
        model.simulate(u, y_init=y)
    with pytest.raises(ValueError, match=r"init_samples: expected 1 <= init_samples <= T = 4"):
        model.simulate(u, y_init=y[:4], init_samples=5)
    with pytest.raises(ValueError, match=r"y_init: .*\(T, 1\).*\(20, 1\).*got shape \(20, 2\)"):
        model.simulate(u, y_init=np.zeros((20, 2)), init_samples=5)
    with pytest.raises(ValueError, match=r"y_init: .*\(2, T, 1\).*\(2, 20, 1\).*got shape \(3, 20, 1\)"):
        model.simulate(np.zeros((2, 20, 1)), y_init=np.zeros((3, 20, 1)), init_samples=5)


def test_estimate_argument_errors():
    model = slow_model(11, 3, "tanh")
    u, y = np.zeros((20, 1)), np.zeros((20, 1))
    for bad in (0, 21, -1):
        with pytest.raises(ValueError, match=f"init_samples: .*T = 20.*got {bad}"):
            estimate_initial_state(model, u, y, bad)
    for bad in (2.5, True, "3", None):
        with pytest.raises(TypeError, match="init_samples: expected an integer"):
            estimate_initial_state(model, u, y, bad)
    with pytest.raises(ValueError, match=r"y: expected the same number of samples as u \(shape \(20, 1\)\), "
                                         r"got shape \(19, 1\)"):
        estimate_initial_state(model, u, y[:19], 5)
    with pytest.raises(ValueError, match=r"y: expected shape \(T, 1\).*u of shape \(20, 1\).*p=1.*\(20, 3\)"):
        estimate_initial_state(model, u, np.zeros((20, 3)), 5)
    with pytest.raises(ValueError, match=r"y: expected shape \(1, T, 1\).*got shape \(20, 1\)"):
        estimate_initial_state(model, u[None], y, 5)
    with pytest.raises(ValueError, match=r"u: .*m=1"):
        estimate_initial_state(model, np.zeros((20, 2)), y, 5)
    with pytest.raises(ValueError, match=r"y: contains NaN"):
        estimate_initial_state(model, u, np.full((20, 1), np.nan), 5)
    with pytest.raises(ValueError, match=r"x0: expected shape \(3,\) or \(1, 3\) \(x0_guess\), got \(2,\)"):
        estimate_initial_state(model, u, y, 5, x0_guess=np.zeros(2))
    with pytest.raises(ValueError, match="max_iter: .*got -1"):
        estimate_initial_state(model, u, y, 5, max_iter=-1)
    with pytest.raises(TypeError, match="max_iter"):
        estimate_initial_state(model, u, y, 5, max_iter=2.0)
    with pytest.raises(ValueError, match="tol"):
        estimate_initial_state(model, u, y, 5, tol=-1.0)
