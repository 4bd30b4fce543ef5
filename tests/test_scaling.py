"""Per-channel normalisation: the model in physical units, and what its certificates say.

Physics being checked: normalising u_n = Su^-1 (u - mu_u), y = Sy y_n + mu_y changes neither
the states nor contraction, but the incremental gain is measured in the units of u and y: for a
linear model the physical gain is the H-infinity norm of Sy G Su^-1 (for one input and one
output simply sy / su times the normalised gain). Theta_gamma with a scaling must bound exactly
that physical gain while its variables are the normalised weights.
"""
import dataclasses
import json

import cvxpy as cp
import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex import solvers
from rrnn_convex.certify import certificate_from
from rrnn_convex.scaling import ChannelScaling
from rrnn_convex.sets import Contracting, GainBounded

from conftest import hinf_norm, lti_model, random_rnn, random_stable_lti


def _odd_scaling(rng, m, p):
    """Scales far from 1 and different per channel, non-zero means."""
    su = np.array([1e3, 0.5, 7.0][:m])
    sy = np.array([0.01, 3.0, 0.2][:p])
    return ChannelScaling(rng.standard_normal(m) * 5, su, rng.standard_normal(p) * 5, sy)


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


# ---------------------------------------------------------------------- signals and fit
def test_normalize_is_the_per_channel_affine_map_and_denormalize_inverts_it(rng):
    s = _odd_scaling(rng, 2, 3)
    u = rng.standard_normal((4, 50, 2)) * [1e3, 0.5] + [10.0, -2.0]
    y = rng.standard_normal((50, 3))
    # the map written out by hand, channel by channel
    for c in range(2):
        np.testing.assert_allclose(s.normalize_inputs(u)[..., c], (u[..., c] - s.u_mean[c]) / s.u_scale[c],
                                   rtol=1e-15)
    np.testing.assert_allclose(s.normalize_outputs(y), (y - s.y_mean) / s.y_scale, rtol=1e-15)
    assert s.normalize_inputs(u).shape == u.shape and s.normalize_outputs(y).shape == y.shape
    np.testing.assert_allclose(s.denormalize_inputs(s.normalize_inputs(u)), u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.denormalize_outputs(s.normalize_outputs(y)), y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.normalize_outputs(s.denormalize_outputs(y)), y, rtol=1e-12, atol=1e-12)


def test_fit_gives_channel_mean_and_population_std_over_all_sequences():
    # channel 0 takes the values 1 and 3 equally often: mean 2, population std exactly 1;
    # channel 1 is -4 and 6: mean 1, std 5. Split unevenly between sequences on purpose.
    u0 = np.array([[1.0, 3.0, 1.0, 3.0], [3.0, 3.0, 1.0, 1.0]])
    u1 = np.array([[-4.0, -4.0, 6.0, 6.0], [6.0, -4.0, 6.0, -4.0]])
    u = np.stack([u0, u1], axis=-1)  # (batch 2, T 4, m 2)
    y = np.full((2, 4, 1), 7.5)      # constant output channel: std 0 -> scale 1, only shifted
    s = ChannelScaling.fit(u, y)
    np.testing.assert_allclose(s.u_mean, [2.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(s.u_scale, [1.0, 5.0], rtol=1e-15)
    np.testing.assert_allclose(s.y_mean, [7.5])
    assert s.y_scale.tolist() == [1.0]
    # a constant channel whose float std is a few ulps, not exactly zero, is still constant
    y_ulps = np.full((1, 10, 1), 0.1)
    assert ChannelScaling.fit(np.ones((1, 10, 1)), y_ulps).y_scale.tolist() == [1.0]
    # one (T, c) sequence is a batch of one
    assert ChannelScaling.fit(u[0], y[0]) == ChannelScaling.fit(u[:1], y[:1])


def test_fitted_scaling_makes_the_data_zero_mean_unit_std(rng):
    u = rng.standard_normal((3, 200, 2)) * [300.0, 0.02] + [50.0, -1.0]
    y = rng.standard_normal((3, 200, 1)) * 1e-3 + 4.0
    s = ChannelScaling.fit(u, y)
    for z in (s.normalize_inputs(u), s.normalize_outputs(y)):
        flat = z.reshape(-1, z.shape[-1])
        np.testing.assert_allclose(flat.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(flat.std(axis=0), 1.0, rtol=1e-12)


def test_identity_changes_nothing(rng):
    s = ChannelScaling.identity(2, 1)
    assert (s.m, s.p) == (2, 1)
    model = random_rnn(rng, 3, 2, 2, 1)
    assert s.to_physical(model) == model and s.to_normalized(model) == model
    u = rng.standard_normal((10, 2))
    np.testing.assert_array_equal(s.normalize_inputs(u), u)


def test_fields_are_frozen_read_only_float64_and_round_trip_through_json(rng):
    s = _odd_scaling(rng, 2, 2)
    assert all(getattr(s, k).dtype == np.float64 for k in ("u_mean", "u_scale", "y_mean", "y_scale"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.u_scale = np.ones(2)
    with pytest.raises(ValueError):
        s.u_scale[0] = 1.0
    back = ChannelScaling.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back is not s
    assert dataclasses.replace(s, y_scale=[0.01, 3.5]) != s
    assert ChannelScaling([0], [1], [0], [1]) == ChannelScaling.identity(1, 1)


# ---------------------------------------------------------------------- models
def test_to_physical_and_to_normalized_are_inverse(rng):
    s = _odd_scaling(rng, 2, 3)
    model = random_rnn(rng, 4, 3, 2, 3, E_far=True)
    for there_and_back in (s.to_normalized(s.to_physical(model)), s.to_physical(s.to_normalized(model))):
        for k, v in model.weights().items():
            assert _rel(getattr(there_and_back, k), v) < 1e-12, k
    # E, F, B1, C1 (the state equation's own weights) are untouched
    phys = s.to_physical(model)
    for k in ("E", "F", "B1", "C1"):
        np.testing.assert_array_equal(getattr(phys, k), getattr(model, k))
    assert phys.activation == model.activation


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_physical_model_on_raw_signals_equals_the_normalised_model_on_normalised_signals(rng, activation):
    """y(u) = Sy y_n(Su^-1 (u - mu_u)) + mu_y, from the same initial state."""
    m, p = 2, 3
    s = _odd_scaling(rng, m, p)
    model_n = random_rnn(rng, 4, 3, m, p, activation=activation, E_far=True)
    u = rng.standard_normal((3, 40, m)) * s.u_scale + s.u_mean  # raw, physical-unit inputs
    x0 = rng.standard_normal((3, 4))
    u_n = (u - s.u_mean) / s.u_scale  # by hand, not through normalize_inputs
    expected = model_n.simulate(u_n, x0) * s.y_scale + s.y_mean
    got = s.to_physical(model_n).simulate(u, x0)
    assert _rel(got, expected) < 1e-10
    # and the other way: the normalised model of a physical one predicts normalised outputs
    model_p = random_rnn(rng, 4, 3, m, p, activation=activation)
    y_p = model_p.simulate(u, x0)
    np.testing.assert_allclose(s.to_normalized(model_p).simulate(u_n, x0), (y_p - s.y_mean) / s.y_scale,
                               rtol=1e-9, atol=1e-9)


def test_contraction_does_not_depend_on_the_scaling(rng):
    """Same states, same E, F, B1, C1: the normalised model's metric certifies the physical one."""
    s = _odd_scaling(rng, 2, 2)
    model_n = random_rnn(rng, 3, 3, 2, 2, E_far=True)
    model_p = s.to_physical(model_n)
    cn = certify(model_n, contraction_only=True)
    cp_ = certify(model_p, contraction_only=True)
    assert cn.contracting and cn.verify(model_n)
    assert cp_.contracting and cp_.verify(model_p)
    moved = certificate_from(model_p, cn.Q, cn.lam, how="metric of the normalised model")
    assert moved.contracting and moved.verify(model_p), moved.reason
    back = certificate_from(model_n, cp_.Q, cp_.lam, how="metric of the physical model")
    assert back.contracting and back.verify(model_n), back.reason


def test_physical_gain_of_an_lti_model_is_the_hinf_norm_of_Sy_G_Su_inverse(rng):
    A, B, C, D = random_stable_lti(rng, 3, 2, 2, 0.8)
    s = _odd_scaling(rng, 2, 2)
    model_n = lti_model(A, B, C, D)
    Su_inv, Sy = np.diag(1.0 / s.u_scale), np.diag(s.y_scale)
    reference = hinf_norm(A, B @ Su_inv, Sy @ C, Sy @ D @ Su_inv)  # independent frequency sweep
    cert = certify(s.to_physical(model_n))
    assert cert.certified and cert.verify(s.to_physical(model_n))
    assert cert.gamma == pytest.approx(reference, rel=1e-3)
    assert cert.gamma >= reference * (1 - 1e-6)  # a certified bound is never below the true gain
    assert not cert.gamma == pytest.approx(hinf_norm(A, B, C, D), rel=0.1)


def test_the_gain_is_not_scale_invariant_siso_gain_scales_by_sy_over_su(rng):
    """One input, one output: y = sy y_n + ..., u_n = u / su + ..., so gamma_phys = gamma_n sy / su."""
    A, B, C, D = random_stable_lti(rng, 3, 1, 1, 0.8)
    model_n = lti_model(A, B, C, D)
    s = ChannelScaling(u_mean=[2.0], u_scale=[1e3], y_mean=[-1.0], y_scale=[0.01])
    g_n = certify(model_n).gamma
    g_p = certify(s.to_physical(model_n)).gamma
    assert g_n == pytest.approx(hinf_norm(A, B, C, D), rel=1e-3)
    assert g_p == pytest.approx(g_n * 0.01 / 1e3, rel=1e-3)
    assert g_p < 1e-3 * g_n  # the means play no part, the scales do


# ---------------------------------------------------------------------- the weighted set
def _weighted_set_problem(model_n, scaling, gamma=None, parametrization="fixed_C1"):
    """Theta_gamma (in physical units when ``scaling``) around one given normalised model.

    C1, D12, C2, D21, D22 are fixed to the model's; E, F, B1, B2 may only be another
    representation of it (F = E A, B1 = E B1h, B2 = E B2h with A, B1h, B2h its explicit form),
    so E plays the role of the metric: with P free this lifted LMI is exact (E = P = metric),
    and the set's optimal gamma is the model's smallest certifiable gamma.
    """
    A, B1h, B2h = (np.linalg.solve(model_n.E, getattr(model_n, k)) for k in ("F", "B1", "B2"))
    fixed = {k: getattr(model_n, k) for k in ("C1", "D12", "C2", "D21", "D22")}
    sv = GainBounded(gamma=gamma, margin=1e-9, parametrization=parametrization, scaling=scaling).build(
        model_n.dims, model_n.activation, fixed=fixed)
    E = sv.params["E"]
    cons = sv.constraints + [sv.params["F"] == E @ A, sv.params["B1"] == E @ B1h, sv.params["B2"] == E @ B2h]
    objective = cp.Minimize(sv.cert["gamma"]) if gamma is None else cp.Minimize(0)
    prob = cp.Problem(objective, cons)
    attempt = solvers.run(prob, "CLARABEL")
    return attempt.status, sv


@pytest.mark.parametrize("activation,parametrization", [
    ("relu", "fixed_C1"), ("relu", "free_C1"), ({"name": "leaky_relu", "slope": 0.2}, "fixed_C1")])
def test_weighted_theta_gamma_bounds_the_gain_of_the_physical_model(activation, parametrization):
    rng = np.random.default_rng(7)
    m, p = 2, 2
    model_n = random_rnn(rng, 3, 4, m, p, activation=activation, E_far=True)
    s = _odd_scaling(rng, m, p)
    g_phys = certify(s.to_physical(model_n)).gamma
    g_norm = certify(model_n).gamma
    assert abs(g_phys - g_norm) > 0.5 * g_norm  # the scales matter here: the test can tell them apart

    status, sv = _weighted_set_problem(model_n, s, parametrization=parametrization)
    assert status == "optimal"
    assert float(sv.cert["gamma"].value) == pytest.approx(g_phys, rel=1e-4)
    # the same set without a scaling is Theta_gamma in the model's own (normalised) units
    status, sv0 = _weighted_set_problem(model_n, None, parametrization=parametrization)
    assert status == "optimal" and float(sv0.cert["gamma"].value) == pytest.approx(g_norm, rel=1e-4)
    # the variables are normalised weights: the model read back is the normalised one
    np.testing.assert_allclose(sv.to_model(model_n.activation).D22, model_n.D22)

    # a physical gamma just below the certifiable one is not in the set; just above, it is
    # (the solver proves infeasibility; "inaccurate" only says its certificate met looser tolerances)
    below = _weighted_set_problem(model_n, s, gamma=0.995 * g_phys, parametrization=parametrization)[0]
    assert below in ("infeasible", "infeasible_inaccurate")
    above = _weighted_set_problem(model_n, s, gamma=1.005 * g_phys, parametrization=parametrization)[0]
    assert above == "optimal"


def test_contracting_set_ignores_the_scaling_but_checks_its_dimensions(rng):
    """Theta's LMI involves only E, F, B1, C1, P, Lambda: the same matrix with or without a scaling."""
    model = random_rnn(rng, 3, 3, 2, 2)
    s = _odd_scaling(rng, 2, 2)
    fixed = {k: v for k, v in model.weights().items() if v.ndim == 2}
    P, lam = rng.standard_normal((3, 3)), rng.uniform(0.5, 2.0, 3)
    P = P @ P.T + np.eye(3)
    matrices = []
    for scaling in (None, s):
        sv = Contracting(margin=0.0, scaling=scaling).build(model.dims, model.activation, fixed=fixed)
        sv.cert["P"].value, sv.cert["lam"].value = P, lam
        matrices.append(sv.constraints[0].args[0].value)
    assert matrices[0].shape == (3 + 3 + 3, 3 + 3 + 3)
    np.testing.assert_array_equal(matrices[0], matrices[1])
    with pytest.raises(ValueError, match=r"dims: has m=2 inputs and p=2 outputs, but the scaling has m=1"):
        Contracting(scaling=ChannelScaling.identity(1, 2)).build(model.dims, "relu", fixed=fixed)


# ---------------------------------------------------------------------- bad input
def _fields(u_mean=(0.0,), u_scale=(1.0,), y_mean=(0.0,), y_scale=(1.0,)):
    return dict(u_mean=u_mean, u_scale=u_scale, y_mean=y_mean, y_scale=y_scale)


@pytest.mark.parametrize("kwargs,match", [
    (_fields(u_mean=[0.0, 0.0]), r"u_scale: expected shape \(m,\) = \(2,\) \(the length of u_mean\), "
                                 r"got \(1,\)"),
    (_fields(u_mean=[[0.0]]), r"u_mean: expected a 1-D array, got shape \(1, 1\)"),
    (_fields(u_scale=[0.0]), r"u_scale: expected every entry > 0, got 0.0 at index 0"),
    (_fields(y_mean=[0.0, 1.0], y_scale=[1.0, -2.0]), r"y_scale: expected every entry > 0, got -2.0 at "
                                                      r"index 1"),
    (_fields(y_scale=[np.nan]), r"y_scale: contains NaN or inf"),
    (_fields(u_scale=[np.inf]), r"u_scale: contains NaN or inf"),
    (_fields(u_mean=[np.nan]), r"u_mean: contains NaN or inf"),
])
def test_bad_fields_are_rejected_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ChannelScaling(**kwargs)


def test_bad_signals_models_and_dicts_are_rejected_naming_the_argument(rng):
    s = _odd_scaling(rng, 2, 1)
    with pytest.raises(ValueError, match=r"u: expected shape \(T, 2\) or \(batch, T, 2\) .* got \(10, 3\)"):
        s.normalize_inputs(np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"un: expected a 2-D or 3-D array, got shape \(10,\)"):
        s.denormalize_inputs(np.zeros(10))
    with pytest.raises(ValueError, match=r"y: expected shape \(T, 1\)"):
        s.normalize_outputs(np.zeros((2, 10, 2)))
    with pytest.raises(ValueError, match=r"yn: contains NaN"):
        s.denormalize_outputs(np.full((10, 1), np.nan))
    with pytest.raises(ValueError, match=r"model_n: has m=2 inputs and p=2 outputs, but the scaling has "
                                         r"m=2, p=1"):
        s.to_physical(random_rnn(rng, 2, 2, 2, 2))
    with pytest.raises(ValueError, match=r"model_p: has m=1 inputs"):
        s.to_normalized(random_rnn(rng, 2, 2, 1, 1))
    with pytest.raises(TypeError, match="model_n: expected an ImplicitRNN"):
        s.to_physical("not a model")
    with pytest.raises(ValueError, match=r"u, y: expected the same \(batch, T\)"):
        ChannelScaling.fit(np.zeros((2, 10, 1)), np.zeros((10, 1)))
    with pytest.raises(ValueError, match=r"u, y: expected at least one sample"):
        ChannelScaling.fit(np.zeros((0, 1)), np.zeros((0, 1)))
    with pytest.raises(ValueError, match=r"d: expected keys .*missing \['y_scale'\]"):
        ChannelScaling.from_dict({"u_mean": [0.0], "u_scale": [1.0], "y_mean": [0.0]})
    with pytest.raises(ValueError, match=r"m: expected a non-negative integer"):
        ChannelScaling.identity(-1, 1)
    with pytest.raises(ValueError, match=r"dims: has m=1 inputs and p=1 outputs, but the scaling has "
                                         r"m=2, p=1"):
        GainBounded(gamma=1.0, scaling=s).build({"n": 2, "q": 2, "m": 1, "p": 1}, "relu",
                                                fixed={"C1": np.zeros((2, 2)), "D12": np.zeros((2, 1))})
    with pytest.raises(TypeError, match="scaling: expected a ChannelScaling"):
        GainBounded(gamma=1.0, scaling={"u_scale": [1.0]})
    assert isinstance(s.to_physical(random_rnn(rng, 2, 2, 2, 1)), ImplicitRNN)
