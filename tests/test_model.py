"""ImplicitRNN: validation, simulation, conversions and files."""
import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify, get_activation, leaky_relu

from conftest import random_rnn


def test_from_elman_simulation_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    n, m, p, T = 5, 2, 3, 40
    W, U, b = rng.standard_normal((n, n)), rng.standard_normal((n, m)), rng.standard_normal(n)
    C, D = rng.standard_normal((p, n)), rng.standard_normal((p, m))
    model = ImplicitRNN.from_elman(W, U, b, C, D, activation="tanh")
    u = rng.standard_normal((T, m))
    h = rng.standard_normal(n)
    y_ref = []
    hh = h.copy()
    for t in range(T):
        y_ref.append(C @ hh + D @ u[t])
        hh = np.tanh(W @ hh + U @ u[t] + b)
    np.testing.assert_allclose(model.simulate(u, h), np.array(y_ref), rtol=0, atol=1e-12)


@pytest.mark.parametrize("T", [1, 255, 256, 257, 600])
def test_simulation_in_time_blocks_matches_the_implicit_recursion(T):
    """simulate works through time in blocks (outputs once per block): at block edges and for
    records shorter, equal to and longer than one block, y and the states are those of the
    implicit recursion E x+ = F x + B1 w + B2 u + bx solved step by step."""
    rng = np.random.default_rng(7)
    model = random_rnn(rng, 3, 4, 2, 2, E_far=True)
    u = rng.standard_normal((2, T, 2))
    x0 = rng.standard_normal((2, 3))
    y, xs = model.simulate(u, x0, return_states=True)
    y_tr, xs_tr, ws = model.trajectory(u, x0)
    assert np.array_equal(y_tr, y) and np.array_equal(xs_tr, xs)
    for b in range(2):
        x = x0[b]
        for t in range(T):
            np.testing.assert_allclose(xs[b, t], x, rtol=1e-9, atol=1e-9)
            w = model.activation(model.C1 @ x + model.D12 @ u[b, t] + model.bv)
            np.testing.assert_allclose(ws[b, t], w, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(y[b, t], model.C2 @ x + model.D21 @ w + model.D22 @ u[b, t] + model.by,
                                       rtol=1e-9, atol=1e-9)
            x = np.linalg.solve(model.E, model.F @ x + model.B1 @ w + model.B2 @ u[b, t] + model.bx)
        np.testing.assert_allclose(xs[b, T], x, rtol=1e-9, atol=1e-9)


def test_trajectory_neurons_are_the_equilibrium_of_a_general_d11():
    """With a cyclic D11 the kept neurons solve w = sigma(C1 x + D11 w + D12 u + bv) at every step
    of the kept states, for one sequence (unbatched shapes) as for a batch."""
    from dataclasses import replace
    rng = np.random.default_rng(8)
    model = replace(random_rnn(rng, 3, 4, 2, 2, activation="tanh", E_far=True), D11=0.3 * rng.standard_normal((4, 4)))
    assert model.d11_kind == "general"
    u = rng.standard_normal((40, 2))
    y, xs, ws = model.trajectory(u)
    assert y.shape == (40, 2) and xs.shape == (41, 3) and ws.shape == (40, 4)
    np.testing.assert_allclose(y, model.simulate(u), rtol=0, atol=1e-14)
    v = xs[:40] @ model.C1.T + ws @ model.D11.T + u @ model.D12.T + model.bv
    np.testing.assert_allclose(ws, np.tanh(v), rtol=0, atol=1e-12)


def test_batched_simulation_equals_sequence_by_sequence():
    rng = np.random.default_rng(1)
    model = random_rnn(rng, 3, 4, 2, 2, E_far=True)
    u = rng.standard_normal((5, 30, 2))
    x0 = rng.standard_normal((5, 3))
    yb = model.simulate(u, x0)
    for i in range(5):
        np.testing.assert_allclose(yb[i], model.simulate(u[i], x0[i]), atol=1e-13)


def test_explicit_form_is_the_same_model():
    rng = np.random.default_rng(2)
    model = random_rnn(rng, 3, 4, 1, 1, E_far=True)
    u = rng.standard_normal((50, 1))
    exp = model.explicit()
    assert np.array_equal(exp.E, np.eye(3))
    np.testing.assert_allclose(exp.simulate(u), model.simulate(u), atol=1e-11)


def test_save_load_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(3)
    model = random_rnn(rng, 3, 2, 1, 2, activation=leaky_relu(0.2))
    path = model.save(tmp_path / "m.npz")
    back = ImplicitRNN.load(path)
    assert back == model and back.weights_hash() == model.weights_hash()
    assert back.activation.alpha == 0.2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_load_rejects_foreign_npz_and_missing_file(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not an rrnn_convex"):
        ImplicitRNN.load(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError):
        ImplicitRNN.load(tmp_path / "missing.npz")


def test_activation_slope_bounds_hold_on_samples():
    rng = np.random.default_rng(4)
    for act in ["relu", "tanh", "sigmoid", leaky_relu(0.3)]:
        a = get_activation(act)
        x, y = rng.standard_normal(10000) * 5, rng.standard_normal(10000) * 5
        slope = (a(x) - a(y)) / (x - y)
        assert np.all(slope >= a.alpha - 1e-12) and np.all(slope <= a.beta + 1e-12)


# ---------------------------------------------------------------- bad inputs
def _kw():
    return dict(F=np.zeros((2, 2)), B1=np.zeros((2, 3)), B2=np.zeros((2, 1)), C1=np.zeros((3, 2)),
                C2=np.zeros((1, 2)))


@pytest.mark.parametrize("field,value,expected", [
    ("C1", np.zeros((2, 2)), r"C1: expected shape \(3, 2\).*got \(2, 2\)"),
    ("D21", np.zeros((1, 2)), r"D21: expected shape \(1, 3\).*got \(1, 2\)"),
    ("bx", np.zeros(3), r"bx: expected shape \(2,\).*got \(3,\)"),
    ("F", np.zeros((2, 3)), r"F: expected a square"),
    ("E", np.zeros((3, 3)), r"E: expected shape \(2, 2\)"),
])
def test_wrong_shapes_name_the_field_and_shapes(field, value, expected):
    kw = _kw()
    kw[field] = value
    with pytest.raises(ValueError, match=expected):
        ImplicitRNN(**kw)


def test_nan_and_inf_rejected_with_field_named():
    kw = _kw()
    kw["B2"] = np.array([[np.nan], [0.0]])
    with pytest.raises(ValueError, match="B2: contains NaN or inf"):
        ImplicitRNN(**kw)
    kw = _kw()
    kw["bv"] = [0.0, np.inf, 0.0]
    with pytest.raises(ValueError, match="bv: contains NaN or inf"):
        ImplicitRNN(**kw)


def test_singular_E_rejected():
    kw = _kw()
    kw["E"] = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(ValueError, match="E: must be invertible"):
        ImplicitRNN(**kw)


def test_input_shape_errors():
    model = ImplicitRNN(**_kw())
    with pytest.raises(ValueError, match=r"u: expected the last axis to hold the model's m=1"):
        model.simulate(np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"u: expected a 2-D or 3-D array"):
        model.simulate(np.zeros(10))
    with pytest.raises(ValueError, match=r"x0: expected shape"):
        model.simulate(np.zeros((10, 1)), x0=np.zeros(5))
    with pytest.raises(ValueError, match="u: contains NaN"):
        model.simulate(np.full((10, 1), np.nan))


def test_lists_and_float32_and_ints_are_converted_to_float64():
    model = ImplicitRNN(F=[[0]], B1=np.array([[0.5]], dtype=np.float32), B2=[[1]], C1=[[1]], C2=[[1]])
    assert model.B1.dtype == np.float64 and model.F.dtype == np.float64
    assert model.simulate([[1], [2]]).dtype == np.float64


def test_certify_bad_arguments():
    model = ImplicitRNN(F=[[0.0]], B1=[[0.5]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]])
    with pytest.raises(ValueError, match="gamma: expected a value > 0"):
        certify(model, gamma=-1.0)
    with pytest.raises(ValueError, match="gamma: expected a finite number"):
        certify(model, gamma=float("nan"))
    with pytest.raises(ValueError, match="solver: expected one of"):
        certify(model, solver="NOPE")
    with pytest.raises(TypeError, match="model: expected an ImplicitRNN"):
        certify(np.eye(2))
    with pytest.raises(ValueError, match="activation: expected one of"):
        ImplicitRNN(F=[[0.0]], B1=[[0.5]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]], activation="swish")


def test_mosek_without_licence_is_a_clear_error():
    from rrnn_convex.solvers import mosek_status

    usable, why = mosek_status()
    if usable:
        pytest.skip("MOSEK is licensed on this machine")
    model = ImplicitRNN(F=[[0.0]], B1=[[0.5]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]])
    with pytest.raises(RuntimeError, match="MOSEK"):
        certify(model, solver="MOSEK")
