"""Inputs (issue 9, item 4): conversion to float64, rejection of NaN/inf, shapes named precisely.

float32 and integer arrays and lists are accepted and converted to float64, and every guarantee
is computed on the float64 values; NaN/inf anywhere is rejected with the field named; shape
mismatches between model and data name the argument, the expected and the received shape.
"""
from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from rrnn_convex import Activation, ImplicitRNN, certify
from rrnn_convex.certify import certificate_from
from rrnn_convex.fit import RobustRNNRegressor
from rrnn_convex.model import WEIGHT_FIELDS
from rrnn_convex.project import project

from conftest import random_rnn
from test_fuzz import exact_certificate_holds

DIMS = dict(n=3, q=2, m=2, p=1)
SHAPES = {"E": ("n", "n"), "F": ("n", "n"), "B1": ("n", "q"), "B2": ("n", "m"), "C1": ("q", "n"),
          "D12": ("q", "m"), "C2": ("p", "n"), "D21": ("p", "q"), "D22": ("p", "m"),
          "bx": ("n",), "bv": ("q",), "by": ("p",)}


@pytest.fixture(scope="module")
def model():
    return random_rnn(np.random.default_rng(0), **DIMS, activation="tanh")


@pytest.fixture(scope="module")
def cert(model):
    c = certify(model)
    assert c.certified
    return c


def weights_as(model, convert):
    return {k: convert(v) for k, v in model.weights().items()}


# ============================================================================= dtypes
def test_float32_weights_are_stored_as_float64_and_certified_in_float64(model):
    w32 = weights_as(model, lambda v: v.astype(np.float32))
    m32 = ImplicitRNN(**w32, activation="tanh")
    for k in WEIGHT_FIELDS:
        arr = getattr(m32, k)
        assert arr.dtype == np.float64, k
        assert np.array_equal(arr, w32[k].astype(np.float64)), k
    cert = certify(m32)
    assert cert.certified and cert.Q.dtype == np.float64 and cert.lam.dtype == np.float64
    assert isinstance(cert.gamma, float)
    # the guarantee is about the float64 values: the same model given in float64 has the same hash
    m64 = ImplicitRNN(**weights_as(m32, lambda v: np.asarray(v, dtype=np.float64)), activation="tanh")
    assert m64.weights_hash() == m32.weights_hash() and cert.verify(m64)
    assert exact_certificate_holds(m64, cert.Q, cert.lam, cert.gamma, (0.0, 1.0))
    # ... and it is NOT transferred to the original (unrounded) float64 weights: another model
    if not all(np.array_equal(getattr(model, k), getattr(m32, k)) for k in WEIGHT_FIELDS):
        v = cert.verify(model)
        assert not v.ok and "hash" in v.reason


def test_integer_and_list_weights(model):
    mi = ImplicitRNN(F=np.zeros((2, 2), dtype=np.int64), B1=np.zeros((2, 1), dtype=np.int32),
                     B2=[[1], [0]], C1=[[1, 0]], C2=[[0, 1]], D22=[[0]], bx=[0, 0])
    for k in WEIGHT_FIELDS:
        assert getattr(mi, k).dtype == np.float64, k
    cert = certify(mi)
    assert cert.certified and cert.verify(mi)
    ml = ImplicitRNN(**weights_as(model, lambda v: v.tolist()), activation="tanh")
    assert ml.weights_hash() == model.weights_hash()


def test_simulate_converts_float32_integer_and_list_inputs(model):
    rng = np.random.default_rng(1)
    u = rng.standard_normal((4, 20, 2)).astype(np.float32)
    x0 = rng.standard_normal(3).astype(np.float32)
    y32 = model.simulate(u, x0)
    y64 = model.simulate(u.astype(np.float64), x0.astype(np.float64))
    assert y32.dtype == np.float64 and np.array_equal(y32, y64)
    ui = rng.integers(-3, 3, size=(20, 2))
    assert np.array_equal(model.simulate(ui), model.simulate(ui.astype(np.float64)))
    assert np.array_equal(model.simulate(ui.tolist(), x0.tolist()), model.simulate(ui.astype(float), x0.astype(float)))
    y, xs = model.simulate(u, return_states=True)
    assert y.dtype == xs.dtype == np.float64


def test_float32_gamma_and_certificate_data_are_float64(model, cert):
    g32 = np.float32(2 * cert.gamma)
    c = certify(model, gamma=g32)
    assert c.certified and type(c.gamma) is float and c.gamma == float(g32)
    c2 = certificate_from(model, cert.Q.astype(np.float32), cert.lam.astype(np.float32), float(g32))
    if c2.certified:  # the float32-rounded Q is a different Q: it is judged as such, in float64
        assert c2.Q.dtype == np.float64 and c2.verify(model)
        assert exact_certificate_holds(model, c2.Q, c2.lam, c2.gamma, (0.0, 1.0))
    c3 = certificate_from(model, cert.Q.tolist(), cert.lam.tolist(), cert.gamma)
    assert c3.certified and c3.Q.dtype == np.float64


def test_fit_converts_float32_data():
    teacher = random_rnn(np.random.default_rng(0), 2, 2, 1, 1)
    rng = np.random.default_rng(1)
    u = rng.standard_normal((2, 60, 1))
    y = teacher.simulate(u)
    est = RobustRNNRegressor(2, 2, max_iter=1, progress=False).fit(u.astype(np.float32), y.astype(np.float32))
    assert est.model_.F.dtype == np.float64
    assert est.certificate_.verify(est.model_)


def test_complex_weights_are_rejected():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((TypeError, ValueError), match="F"):
            ImplicitRNN(F=np.array([[0.5 + 0.3j]]), B1=[[0.1]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]])


# Was a false certificate: Activation did not check its slope bounds against its function.
@pytest.mark.parametrize("spec,b1", [(("relu", 0.0, 0.5), 1.5),
                                     (("leaky_relu", 0.0, 1.0, -2.0), 0.9),
                                     (("sigmoid", 0.0, 0.1), 8.0)])
def test_activation_with_wrong_slope_bounds_cannot_produce_a_certificate(spec, b1):
    try:
        act = Activation(*spec)
        m = ImplicitRNN(F=[[0.0]], B1=[[b1]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]], activation=act)
    except ValueError as exc:
        assert "activation" in str(exc) or "slope" in str(exc)
        return
    cert = certify(m)
    # the model really is not contracting: two trajectories from different states separate
    _, xa = m.simulate(np.zeros((30, 1)), [1.0], return_states=True)
    _, xb = m.simulate(np.zeros((30, 1)), [-1.0], return_states=True)
    assert abs(xa[-1, 0] - xb[-1, 0]) > abs(xa[0, 0] - xb[0, 0])
    assert not cert.certified, f"FALSE CERTIFICATE: gamma={cert.gamma}"


# ============================================================================= NaN / inf
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("field", WEIGHT_FIELDS)
def test_nan_or_inf_in_any_weight_is_rejected_naming_it(model, field, bad):
    w = model.weights()
    arr = np.array(w[field])
    arr.flat[arr.size - 1] = bad
    w[field] = arr
    with pytest.raises(ValueError, match=rf"^{field}: contains NaN or inf"):
        ImplicitRNN(**w, activation="tanh")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_data_is_rejected_naming_it(model, bad):
    u = np.zeros((2, 10, 2))
    u[1, 5, 0] = bad
    with pytest.raises(ValueError, match=r"^u: contains NaN or inf \(first at index \(1, 5, 0\)\)"):
        model.simulate(u)
    with pytest.raises(ValueError, match=r"^x0: contains NaN or inf"):
        model.simulate(np.zeros((10, 2)), [0.0, bad, 0.0])
    y = np.zeros((2, 10, 1))
    est = RobustRNNRegressor(3, 2, max_iter=1, progress=False)
    with pytest.raises(ValueError, match=r"^u: contains NaN or inf"):
        est.fit(u, y)
    yb = y.copy()
    yb[0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"^y: contains NaN or inf"):
        est.fit(np.zeros((2, 10, 2)), yb)
    with pytest.raises(ValueError, match=r"^validation y: contains NaN or inf"):
        est.fit(np.zeros((2, 10, 2)), y, validation=(np.zeros((1, 10, 2)), yb[:1]))


@pytest.mark.parametrize("gamma", [np.nan, np.inf, -np.inf, -1.0, 0.0])
def test_bad_gamma_rejected_by_certify_project_and_fit(model, gamma):
    with pytest.raises(ValueError, match=r"^gamma: expected"):
        certify(model, gamma=gamma)
    with pytest.raises(ValueError, match=r"^gamma: expected"):
        project(model, gamma=gamma)
    est = RobustRNNRegressor(3, 2, model_set="theta_gamma", gamma=gamma, max_iter=1, progress=False)
    with pytest.raises(ValueError, match=r"^gamma: expected"):
        est.fit(np.zeros((1, 40, 2)), np.zeros((1, 40, 1)))


def test_non_numeric_arguments_are_type_errors(model):
    with pytest.raises(TypeError, match=r"^gamma: expected a real number"):
        certify(model, gamma="big")
    with pytest.raises(TypeError, match=r"^F: expected an array of real numbers"):
        ImplicitRNN(F=[["a"]], B1=[[0.0]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]])
    with pytest.raises(TypeError, match=r"^model: expected an ImplicitRNN"):
        certify({"F": [[0.0]]})
    with pytest.raises(TypeError, match=r"^model: expected an ImplicitRNN"):
        project("model")
    with pytest.raises(ValueError, match=r"^margin: expected"):
        certify(model, margin=-1e-9)
    with pytest.raises(ValueError, match=r"^formulation: expected"):
        certify(model, formulation="sparse")
    with pytest.raises(ValueError, match=r"^solver: expected"):
        certify(model, solver="GUROBI")


def test_certificate_with_nan_or_wrong_shapes_is_rejected_not_raised(model, cert):
    for c, word in [(replace(cert, Q=np.full_like(cert.Q, np.nan)), "non-finite"),
                    (replace(cert, lam=cert.lam * np.inf), "non-finite"),
                    (replace(cert, gamma=float("nan")), "gamma"),
                    (replace(cert, Q=cert.Q[:2, :2]), "Q: expected shape (3, 3)"),
                    (replace(cert, lam=np.ones(5)), "lam: expected shape (2,)")]:
        v = c.verify(model)
        assert not v.ok and word in v.reason, v.reason
    c = certificate_from(model, np.full((3, 3), np.inf), cert.lam, cert.gamma)
    assert not c.certified and "non-finite" in c.reason


# ============================================================================= shapes
def _dim(name):
    return DIMS[name]


@pytest.mark.parametrize("field", [f for f in WEIGHT_FIELDS if f not in ("F", "B1", "B2", "C2")])
def test_wrong_weight_shape_names_field_expected_and_received(model, field):
    """F, B1, B2, C2 define n, q, m, p; every other field is checked against them."""
    w = model.weights()
    shape = tuple(_dim(d) for d in SHAPES[field])
    bad_shape = (shape[0] + 1,) + shape[1:]
    w[field] = np.zeros(bad_shape)
    with pytest.raises(ValueError) as info:
        ImplicitRNN(**w, activation="tanh")
    msg = str(info.value)
    assert msg.startswith(f"{field}: expected shape {shape}") and f"got {bad_shape}" in msg, msg


@pytest.mark.parametrize("field,bad,expected", [
    ("B1", np.zeros((4, 2)), "B1: expected shape (3, 2)"),
    ("B2", np.zeros((2, 2)), "B2: expected shape (3, 2)"),
    ("C2", np.zeros((1, 4)), "C2: expected shape (1, 3)"),
    ("F", np.zeros((3, 4)), "F: expected a square (n, n) matrix, got shape (3, 4)"),
    ("F", np.zeros(3), "F: expected a 2-D array, got shape (3,)"),
    ("bx", np.zeros((3, 3)), "bx: expected shape (3,)"),
])
def test_wrong_defining_shapes(model, field, bad, expected):
    w = model.weights()
    w[field] = bad
    with pytest.raises(ValueError) as info:
        ImplicitRNN(**w, activation="tanh")
    assert str(info.value).startswith(expected), str(info.value)


def test_simulate_shape_errors_are_precise(model):
    with pytest.raises(ValueError, match=r"^u: expected the last axis to hold the model's m=2 inputs.*got shape \(10, 3\)"):
        model.simulate(np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"^u: expected a 2-D or 3-D array, got shape \(10,\)"):
        model.simulate(np.zeros(10))
    with pytest.raises(ValueError, match=r"^x0: expected shape \(3,\) or \(4, 3\), got \(2,\)"):
        model.simulate(np.zeros((4, 10, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"^x0: expected shape \(3,\) or \(4, 3\), got \(5, 3\)"):
        model.simulate(np.zeros((4, 10, 2)), np.zeros((5, 3)))


def test_fit_with_mismatched_u_and_y_names_both():
    est = RobustRNNRegressor(2, 2, max_iter=1, progress=False)
    u = np.zeros((2, 60, 1))
    with pytest.raises(ValueError, match=r"^u, y: expected the same \(batch, T\), got \(2, 60\) and \(2, 50\)"):
        est.fit(u, np.zeros((2, 50, 1)))
    with pytest.raises(ValueError, match=r"^u, y: expected the same \(batch, T\), got \(2, 60\) and \(1, 60\)"):
        est.fit(u, np.zeros((1, 60, 1)))
    with pytest.raises(ValueError, match=r"^validation u, validation y: expected the same"):
        est.fit(u, np.zeros((2, 60, 1)), validation=(np.zeros((1, 60, 1)), np.zeros((1, 59, 1))))


def test_fit_with_data_not_matching_the_init_model():
    init = random_rnn(np.random.default_rng(0), 2, 2, 1, 1)
    est = RobustRNNRegressor(2, 2, max_iter=1, progress=False)
    u, y = np.zeros((1, 60, 1)), np.zeros((1, 60, 1))
    with pytest.raises(ValueError, match=r"u, y: the model has m=1, p=1; data has 2, 1"):
        est.fit(np.zeros((1, 60, 2)), y, init_model=init)
    with pytest.raises(ValueError, match=r"u, y: the model has m=1, p=1; data has 1, 2"):
        est.fit(u, np.zeros((1, 60, 2)), init_model=init)


def test_project_argument_errors(model):
    with pytest.raises(ValueError, match=r"^norm: expected"):
        project(model, norm="frobenius")
    with pytest.raises(ValueError, match=r"^fixed: unknown weight names \['G'\]"):
        project(model, fixed=("G",))
    with pytest.raises(ValueError, match=r"^weights: unknown weight name 'Z'"):
        project(model, weights={"Z": 1.0})
    with pytest.raises(ValueError, match=r"^weights\['F'\]: expected"):
        project(model, weights={"F": float("nan")})


def test_wider_slope_bounds_are_allowed_and_conservative():
    wide = Activation("relu", -0.5, 1.5)  # contains [0, 1]: a valid (weaker) assumption
    m = ImplicitRNN(F=[[0.2]], B1=[[0.3]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]], activation=wide)
    exact = ImplicitRNN(F=[[0.2]], B1=[[0.3]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]], activation="relu")
    assert certify(m).gamma >= certify(exact).gamma * (1 - 1e-6)
