"""The equilibrium term D11 on the model side (issue 18): w = sigma(C1 x + D11 w + D12 u + bv).

* D11 = 0 is bit for bit the model without D11 (simulation, hash, files);
* an acyclic (strictly lower-triangular after reordering) D11 is two stacked Elman layers;
* a general well-posed D11 is solved to a fixed-point residual <= 1e-12 and agrees with slow
  independent solvers (active-set enumeration for ReLU, scipy's root finder for tanh);
* an ill-posed D11 is refused with an error naming D11, and so are wrong shapes and NaN;
* files round-trip, and files without D11 load as D11 = 0.
"""
import hashlib
import itertools
import json
from dataclasses import replace

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN
from rrnn_convex.model import (NPZ_FORMAT_VERSION, NPZ_FORMAT_VERSION_D11, find_well_posed_multiplier,
                               well_posedness_margin)
from rrnn_convex.shapes import WEIGHT_FIELDS

from conftest import random_rnn


def _old_hash(model):
    """The hash as computed before D11 existed (the fields of WEIGHT_FIELDS only)."""
    h = hashlib.sha256()
    h.update(json.dumps(model.activation.to_dict(), sort_keys=True).encode())
    for name in WEIGHT_FIELDS:
        arr = np.ascontiguousarray(getattr(model, name), dtype="<f8")
        h.update(f"{name}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _v0_and_w(model, u, x0=None):
    """The neurons' inputs without the D11 term and the outputs w along a simulation."""
    y, xs = model.simulate(u, x0, return_states=True)
    v0 = xs[:, :-1] @ model.C1.T + u @ model.D12.T + model.bv
    return y, xs, v0


def _general_d11(rng, q, diag=0.4, spread=0.3):
    X = rng.standard_normal((q, q))
    return diag * np.eye(q) + spread * X / np.linalg.norm(X, 2)


# ---------------------------------------------------------------------- D11 = 0
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_zero_d11_is_bitwise_the_model_without_it(tmp_path, activation):
    rng = np.random.default_rng(0)
    model = random_rnn(rng, 4, 5, 2, 3, activation=activation)
    zero = replace(model, D11=np.zeros((5, 5)))
    assert zero.d11_kind == model.d11_kind == "zero" and zero.well_posed_multiplier is None
    u = rng.standard_normal((3, 60, 2))
    x0 = rng.standard_normal((3, 4))
    y1, x1 = model.simulate(u, x0, return_states=True)
    y2, x2 = zero.simulate(u, x0, return_states=True)
    assert np.array_equal(y1, y2) and np.array_equal(x1, x2)
    assert zero == model
    assert zero.weights_hash() == model.weights_hash() == _old_hash(model)
    assert list(zero.weights()) == list(WEIGHT_FIELDS)
    a, b = model.save(tmp_path / "a.npz"), zero.save(tmp_path / "b.npz")
    with np.load(a) as fa, np.load(b) as fb:
        assert fa.files == fb.files and "D11" not in fb.files
        assert int(fb["format_version"]) == NPZ_FORMAT_VERSION == 1
        for k in fa.files:
            assert np.array_equal(fa[k], fb[k])


def test_nonzero_d11_changes_the_hash_and_equality():
    rng = np.random.default_rng(1)
    model = random_rnn(rng, 3, 4, 1, 1)
    D11 = np.zeros((4, 4))
    D11[2, 0] = 1e-300
    other = replace(model, D11=D11)
    assert other.d11_kind == "acyclic"
    assert other.weights_hash() != model.weights_hash() and other != model
    assert list(other.weights()) == list(WEIGHT_FIELDS) + ["D11"]
    assert ImplicitRNN(**other.weights(), activation=other.activation) == other
    # -0.0 is zero: the same model
    assert replace(model, D11=-np.zeros((4, 4))).weights_hash() == model.weights_hash()


# ---------------------------------------------------------------------- acyclic D11: stacked layers
def _two_layer_elman(rng, m=2, h1=8, h2=8, p=2, activation="relu"):
    W1 = rng.standard_normal((h1, h1)) * 0.5 / np.sqrt(h1)
    U1 = rng.standard_normal((h1, m))
    b1 = rng.standard_normal(h1) * 0.3
    W2 = rng.standard_normal((h2, h2)) * 0.5 / np.sqrt(h2)
    U2 = rng.standard_normal((h2, h1)) / np.sqrt(h1)
    b2 = rng.standard_normal(h2) * 0.3
    C = rng.standard_normal((p, h2))
    return W1, U1, b1, W2, U2, b2, C


def _stacked_reference(layers, u, h10, h20, sigma):
    """h1[t] = sigma(W1 h1[t-1] + U1 u[t] + b1), h2[t] = sigma(W2 h2[t-1] + U2 h1[t] + b2), y = C h2[t]."""
    W1, U1, b1, W2, U2, b2, C = layers
    h1, h2 = h10.copy(), h20.copy()
    ys = []
    for ut in u:
        h1 = sigma(W1 @ h1 + U1 @ ut + b1)
        h2 = sigma(W2 @ h2 + U2 @ h1 + b2)
        ys.append(C @ h2)
    return np.array(ys)


def _stacked_model(layers, activation):
    W1, U1, b1, W2, U2, b2, C = layers
    h1, h2, m, p = W1.shape[0], W2.shape[0], U1.shape[1], C.shape[0]
    n = q = h1 + h2
    C1 = np.block([[W1, np.zeros((h1, h2))], [np.zeros((h2, h1)), W2]])
    D11 = np.block([[np.zeros((h1, h1)), np.zeros((h1, h2))], [U2, np.zeros((h2, h2))]])
    D12 = np.vstack([U1, np.zeros((h2, m))])
    return ImplicitRNN(F=np.zeros((n, n)), B1=np.eye(n), B2=np.zeros((n, m)), C1=C1, C2=np.zeros((p, n)),
                       D11=D11, D12=D12, D21=np.hstack([np.zeros((p, h1)), C]), bv=np.concatenate([b1, b2]),
                       activation=activation)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_lower_triangular_d11_is_two_stacked_elman_layers(activation):
    rng = np.random.default_rng(2)
    layers = _two_layer_elman(rng, activation=activation)
    model = _stacked_model(layers, activation)
    assert model.d11_kind == "acyclic" and model.well_posed_multiplier is None
    assert [list(level) for level in model.neuron_levels] == [list(range(8)), list(range(8, 16))]
    u = rng.standard_normal((120, 2))
    h10, h20 = rng.standard_normal(8), rng.standard_normal(8)
    y = model.simulate(u, x0=np.concatenate([h10, h20]))
    ref = _stacked_reference(layers, u, h10, h20, model.activation)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)
    # batched simulation gives the same rows
    yb = model.simulate(np.stack([u, u[::-1]]), x0=np.concatenate([h10, h20])[None].repeat(2, 0))
    np.testing.assert_allclose(yb[0], ref, rtol=0, atol=1e-12)


def test_acyclic_d11_in_any_neuron_order_is_evaluated_explicitly():
    """The same stacked network with its neurons permuted (D11 no longer triangular) simulates the same."""
    rng = np.random.default_rng(3)
    model = _stacked_model(_two_layer_elman(rng), "relu")
    perm = rng.permutation(model.q)
    P = np.eye(model.q)[perm]
    permuted = replace(model, C1=P @ model.C1, D11=P @ model.D11 @ P.T, D12=P @ model.D12, bv=P @ model.bv,
                       B1=model.B1 @ P.T, D21=model.D21 @ P.T)
    assert np.any(np.triu(permuted.D11)) and permuted.d11_kind == "acyclic"
    u = rng.standard_normal((2, 80, 2))
    np.testing.assert_allclose(permuted.simulate(u), model.simulate(u), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- general D11
def _relu_equilibrium_by_enumeration(D, v0):
    """The unique w = relu(v0 + D w), found by trying every active set (slow, independent)."""
    q = len(v0)
    found = []
    for bits in itertools.product([0.0, 1.0], repeat=q):
        S = np.diag(bits)
        w = np.linalg.solve(np.eye(q) - S @ D, S @ v0)
        v = v0 + D @ w
        if np.all(v[np.array(bits) == 1] >= -1e-9) and np.all(v[np.array(bits) == 0] <= 1e-9):
            found.append(w)
    assert found
    assert all(np.allclose(w, found[0], atol=1e-9) for w in found)  # unique
    return found[0]


@pytest.mark.parametrize("case", ["small", "skew", "scaled"])
def test_general_d11_relu_equilibrium(case):
    rng = np.random.default_rng(4)
    q = 5
    base = random_rnn(rng, 3, q, 2, 2, activation="relu")
    if case == "small":   # ||D11|| < 1: even the plain iteration contracts
        D11 = _general_d11(rng, q)
    elif case == "skew":  # 0.5 I + a large skew part: Lambda = I proves it, the plain iteration diverges
        X = rng.standard_normal((q, q))
        D11 = 0.5 * np.eye(q) + 2.0 * (X - X.T)
    else:                 # needs a Lambda far from the identity (found by the SDP)
        D11 = (np.diag([0.5, 0.3, 0.2, 0.4, 0.1]) + np.diag([6.0, 5.0, 0.0, 4.0], 1)
               + np.diag([0.02, 0.0, 0.03, 0.01], -1))
    # B1 small: the equilibrium's gain (up to ~1 / (1 - 0.5) and more) must not make the state explode
    base = replace(base, B1=0.02 * base.B1)
    model = replace(base, D11=D11)
    assert model.d11_kind == "general"
    lam = model.well_posed_multiplier
    assert lam.shape == (q,) and np.all(lam > 0) and well_posedness_margin(D11, lam) > 0
    if case == "scaled":
        assert well_posedness_margin(D11, np.ones(q)) < 0 and np.max(lam) / np.min(lam) > 10
    u = rng.standard_normal((3, 50, 2)) * 2.0
    y, xs, v0 = _v0_and_w(model, u)
    w = model.neurons(v0.reshape(-1, q))
    residual = np.abs(w - np.maximum(v0.reshape(-1, q) + w @ D11.T, 0.0))
    assert residual.max() <= 1e-12
    for k in rng.choice(len(w), 12, replace=False):
        ref = _relu_equilibrium_by_enumeration(D11, v0.reshape(-1, q)[k])
        np.testing.assert_allclose(w[k], ref, rtol=0, atol=1e-10)
    # the simulated outputs are the readout of these w
    yref = xs[:, :-1] @ model.C2.T + w.reshape(3, 50, q) @ model.D21.T + u @ model.D22.T + model.by
    np.testing.assert_allclose(y, yref, rtol=0, atol=1e-12)
    # a given multiplier is used as is, with the same results
    given = replace(base, D11=D11, well_posed_multiplier=lam * 3.0)
    np.testing.assert_array_equal(given.well_posed_multiplier, lam * 3.0)
    np.testing.assert_allclose(given.simulate(u), y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu"])
def test_general_d11_smooth_activations_against_scipy(activation):
    from scipy.optimize import root

    rng = np.random.default_rng(5)
    q = 4
    X = rng.standard_normal((q, q))
    D11 = 0.3 * np.eye(q) + 1.5 * (X - X.T)
    model = replace(random_rnn(rng, 3, q, 1, 1, activation=activation), D11=D11)
    assert model.d11_kind == "general"
    u = rng.standard_normal((2, 40, 1)) * 3.0
    _, _, v0 = _v0_and_w(model, u)
    v0 = v0.reshape(-1, q)
    w = model.neurons(v0)
    sigma = model.activation
    assert np.abs(w - sigma(v0 + w @ D11.T)).max() <= 1e-12
    for k in rng.choice(len(w), 8, replace=False):
        sol = root(lambda z: z - sigma(v0[k] + D11 @ z), np.zeros(q), method="hybr", tol=1e-14)
        assert np.abs(sol.x - sigma(v0[k] + D11 @ sol.x)).max() <= 1e-12  # converged (success may be
        # False only because xtol cannot be met in float64)
        np.testing.assert_allclose(w[k], sol.x, rtol=0, atol=1e-10)


def test_neurons_single_vector_and_warm_start():
    rng = np.random.default_rng(6)
    model = replace(random_rnn(rng, 2, 3, 1, 1), D11=_general_d11(rng, 3))
    v0 = rng.standard_normal(3)
    w = model.neurons(v0)
    assert w.shape == (3,)
    np.testing.assert_allclose(model.neurons(v0, w0=w + 1.0), w, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="v0"):
        model.neurons(np.zeros(4))


def test_explicit_and_transform_keep_d11():
    rng = np.random.default_rng(7)
    model = replace(random_rnn(rng, 3, 4, 1, 1, E_far=True), D11=_general_d11(rng, 4))
    u = rng.standard_normal((60, 1))
    y = model.simulate(u)
    for other in (model.explicit(), model.transform(rng.standard_normal((3, 3)) + 3 * np.eye(3))):
        assert np.array_equal(other.D11, model.D11) and other.d11_kind == "general"
        np.testing.assert_allclose(other.simulate(u), y, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------- refusals
def test_ill_posed_d11_is_refused_naming_d11_and_what_was_tried():
    rng = np.random.default_rng(8)
    base = random_rnn(rng, 2, 3, 1, 1)
    # w = relu(v0 + 2 w): none for v0 > 0, two (0 and -v0) for v0 < 0
    with pytest.raises(ValueError, match=r"D11: .*not known to be well-posed.*Lambda = I.*SDP") as info:
        replace(base, D11=2.0 * np.eye(3))
    assert "well_posed_multiplier" in str(info.value)
    assert find_well_posed_multiplier(2.0 * np.eye(3)) is None
    with pytest.raises(ValueError, match="the given well_posed_multiplier: margin"):
        replace(base, D11=2.0 * np.eye(3), well_posed_multiplier=np.ones(3))
    # a self-loop of weight 1: the w-block 2 l (1 - 1) is never > 0
    D = np.zeros((3, 3))
    D[0, 0] = 1.0
    with pytest.raises(ValueError, match="D11"):
        replace(base, D11=D)


def test_d11_shape_and_value_errors():
    rng = np.random.default_rng(9)
    base = random_rnn(rng, 2, 3, 1, 1)
    with pytest.raises(ValueError, match=r"D11: expected shape \(3, 3\) \(q=3, q=3\), got \(3, 4\)"):
        replace(base, D11=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="D11"):
        replace(base, D11=np.zeros(3))
    bad = np.zeros((3, 3))
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="D11"):
        replace(base, D11=bad)
    bad[1, 0] = np.inf
    with pytest.raises(ValueError, match="D11"):
        replace(base, D11=bad)
    with pytest.raises(TypeError, match="D11"):
        replace(base, D11=np.zeros((3, 3), dtype=complex))
    with pytest.raises(ValueError, match=r"well_posed_multiplier: expected shape \(3,\)"):
        replace(base, D11=_general_d11(rng, 3), well_posed_multiplier=np.ones(4))
    # stored as float64, read-only
    model = replace(base, D11=np.tril(np.ones((3, 3), dtype=np.float32), -1))
    assert model.D11.dtype == np.float64 and not model.D11.flags.writeable


# ---------------------------------------------------------------------- files
def test_npz_round_trip_with_d11(tmp_path):
    rng = np.random.default_rng(10)
    model = replace(random_rnn(rng, 3, 4, 2, 1, activation="tanh"), D11=_general_d11(rng, 4))
    path = model.save(tmp_path / "m.npz", meta={"note": "d11"})
    with np.load(path) as f:
        assert "D11" in f.files and int(f["format_version"]) == NPZ_FORMAT_VERSION_D11 == 2
    back = ImplicitRNN.load(path)
    assert back == model and back.weights_hash() == model.weights_hash()
    assert back.d11_kind == "general" and np.all(back.well_posed_multiplier > 0)
    u = rng.standard_normal((30, 2))
    assert np.array_equal(back.simulate(u), model.simulate(u))
    assert ImplicitRNN.read_meta(path) == {"note": "d11"}
    # a version-1 file (no D11 entry) loads as D11 = 0
    plain = random_rnn(rng, 3, 4, 2, 1)
    np.savez(tmp_path / "old.npz", **{k: getattr(plain, k) for k in WEIGHT_FIELDS},
             activation=np.array(json.dumps(plain.activation.to_dict())),
             kind=np.array("rrnn_convex.ImplicitRNN"),
             format_version=np.array(1))
    old = ImplicitRNN.load(tmp_path / "old.npz")
    assert old == plain and old.d11_kind == "zero" and not old.D11.any()
    # a newer format is refused
    np.savez(tmp_path / "new.npz", **{k: getattr(plain, k) for k in WEIGHT_FIELDS},
             activation=np.array(json.dumps(plain.activation.to_dict())),
             kind=np.array("rrnn_convex.ImplicitRNN"),
             format_version=np.array(3))
    with pytest.raises(ValueError, match="newer than this package supports"):
        ImplicitRNN.load(tmp_path / "new.npz")
    # a file whose D11 is ill-posed is refused with the file named
    np.savez(tmp_path / "bad.npz", **{k: getattr(plain, k) for k in WEIGHT_FIELDS}, D11=2.0 * np.eye(4),
             activation=np.array(json.dumps(plain.activation.to_dict())),
             kind=np.array("rrnn_convex.ImplicitRNN"),
             format_version=np.array(2))
    with pytest.raises(ValueError, match="bad.npz.*D11"):
        ImplicitRNN.load(tmp_path / "bad.npz")


def test_the_splitting_fallback_alone_converges_to_the_equilibrium():
    """Douglas-Rachford (the fallback where Newton stalls) from a poor start, without Newton."""
    from rrnn_convex.activations import RELU, TANH
    from rrnn_convex.model import _splitting

    rng = np.random.default_rng(11)
    q = 5
    X = rng.standard_normal((q, q))
    D11 = 0.5 * np.eye(q) + 2.0 * (X - X.T)   # the plain iteration w <- relu(v0 + D11 w) diverges here
    v0 = rng.standard_normal((6, q)) * 3.0
    w = _splitting(RELU, D11, v0, np.full((6, q), 5.0), target=np.zeros(6), max_iter=5000)
    for k in range(6):
        np.testing.assert_allclose(w[k], _relu_equilibrium_by_enumeration(D11, v0[k]), rtol=0, atol=1e-11)
    w = _splitting(TANH, D11, v0, np.zeros((6, q)), target=np.zeros(6), max_iter=5000)
    assert np.abs(w - np.tanh(v0 + w @ D11.T)).max() <= 1e-11
