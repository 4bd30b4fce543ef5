"""The SCP trainer: every returned model is certified, the loss goes down, fits resume exactly."""
import numpy as np
import pytest

from rrnn_convex.fit import RobustRNNRegressor
from rrnn_convex.metrics import nse

from conftest import teacher_sequences


@pytest.fixture(scope="module")
def teacher_data():
    return teacher_sequences(0, 6, 150, val_T=400)


@pytest.mark.parametrize("model_set,gamma", [("theta", None), ("theta_gamma", 2.5)])
def test_fit_improves_and_returns_a_verified_model_in_the_set(teacher_data, model_set, gamma):
    u, y, val = teacher_data
    est = RobustRNNRegressor(3, 4, model_set=model_set, gamma=gamma, max_iter=8, progress=False)
    init = est.initial_model(u, y, est._set())
    est.fit(u, y, validation=val, init_model=init)
    cert = est.certificate_
    assert cert.certified and cert.verify(est.model_)
    if gamma is not None:
        assert cert.gamma == gamma
    losses = [h["loss"] for h in est.history_ if h["accepted"]]
    assert len(losses) >= 3 and all(b < a for a, b in zip(losses, losses[1:]))
    start = float(np.mean(nse(init.simulate(val[0]), val[1])))
    assert min(h["val_nse"] for h in est.history_) < 0.7 * start
    assert est.history_[0]["margin"] > 0  # each accepted iterate carried a certificate


def test_resumed_fit_equals_uninterrupted_fit(teacher_data, tmp_path):
    u, y, val = teacher_data
    kw = dict(model_set="theta", max_iter=6, progress=False, checkpoint_every=2, seed=3)
    full = RobustRNNRegressor(3, 4, **kw).fit(u, y, validation=val)
    ckpt = tmp_path / "fit.ckpt.npz"
    RobustRNNRegressor(3, 4, **(kw | {"max_iter": 4, "checkpoint": ckpt})).fit(u, y, validation=val)
    resumed = RobustRNNRegressor(3, 4, **kw).fit(u, y, validation=val, resume=ckpt)
    assert len(resumed.history_) == len(full.history_)
    for k in full.model_.weights():
        np.testing.assert_allclose(getattr(resumed.model_, k), getattr(full.model_, k), rtol=1e-9, atol=1e-12)


def test_srnn_and_unconstrained_sets_train_with_the_same_optimiser(teacher_data):
    u, y, val = teacher_data
    srnn = RobustRNNRegressor(3, 3, model_set="srnn", max_iter=4, progress=False).fit(u, y, validation=val)
    assert np.linalg.norm(srnn.model_.C1, 2) <= 0.99 + 1e-6
    assert srnn.certificate_.verify(srnn.model_)
    free = RobustRNNRegressor(3, 4, model_set="unconstrained", max_iter=4, progress=False).fit(u, y)
    assert free.history_[-1]["loss"] < free.history_[0]["loss"] or free.history_[0]["accepted"]


def test_bad_arguments():
    u, y = np.zeros((2, 50, 1)), np.zeros((2, 50, 1))
    with pytest.raises(ValueError, match="model_set: expected one of"):
        RobustRNNRegressor(model_set="lstm").fit(u, y)
    with pytest.raises(ValueError, match="gamma: only meaningful"):
        RobustRNNRegressor(model_set="srnn", gamma=2.0).fit(u, y)
    with pytest.raises(ValueError, match="u, y: expected the same"):
        RobustRNNRegressor().fit(u, y[:, :40])
    with pytest.raises(RuntimeError, match="call fit first"):
        RobustRNNRegressor().simulate(u)


def test_fitted_model_is_saved_with_its_certificate(teacher_data, tmp_path):
    from rrnn_convex import Certificate, ImplicitRNN

    u, y, val = teacher_data
    est = RobustRNNRegressor(3, 4, model_set="theta_gamma", gamma=3.0, max_iter=2, progress=False).fit(u, y)
    path = est.save(tmp_path / "model.npz")
    back = ImplicitRNN.load(path)
    cert = Certificate.from_json(path.with_suffix(".cert.json"))
    assert back == est.model_ and cert.verify(back) and cert.gamma == 3.0


def test_gamma_path_stages_end_in_the_requested_set(teacher_data):
    u, y, val = teacher_data
    est = RobustRNNRegressor(3, 4, model_set="theta_gamma", gamma=1.0, gamma_path=(4.0, 2.0), path_iter=2,
                             max_iter=3, progress=False).fit(u, y, validation=val)
    assert [s["gamma"] for s in est.path_] == [4.0, 2.0]
    assert all(s["iterations"] >= 1 for s in est.path_)
    cert = est.certificate_
    assert cert.certified and cert.gamma <= 1.0 and cert.verify(est.model_)


def test_gamma_path_arguments():
    u, y = np.zeros((2, 50, 1)), np.zeros((2, 50, 1))
    with pytest.raises(ValueError, match="gamma_path: expected gammas decreasing"):
        RobustRNNRegressor(model_set="theta_gamma", gamma=5.0, gamma_path=(3.0,)).fit(u, y)
    with pytest.raises(ValueError, match="gamma_path: only for model_set 'theta_gamma'"):
        RobustRNNRegressor(model_set="theta", gamma_path=(3.0,)).fit(u, y)


def test_elman_baseline_keeps_the_elman_structure(teacher_data):
    u, y, val = teacher_data
    est = RobustRNNRegressor(3, 3, model_set="elman", max_iter=3, progress=False).fit(u, y, validation=val)
    m = est.model_
    np.testing.assert_array_equal(m.E, np.eye(3))
    np.testing.assert_array_equal(m.F, np.zeros((3, 3)))
    np.testing.assert_array_equal(m.B1, np.eye(3))
    np.testing.assert_array_equal(m.B2, np.zeros((3, 1)))
    assert est.history_[0]["accepted"] and est.history_[-1]["loss"] < est.history_[0]["loss"] * 1.000001


def test_linearisation_threads_keep_the_fit_reproducible(teacher_data):
    """n_jobs shares the windows between threads: for a given n_jobs the fit is reproducible
    exactly (the parts and the order of the sums are fixed, whatever the thread timing); with
    another n_jobs only the order of floating-point sums differs."""
    u, y, val = teacher_data

    def run(jobs):
        est = RobustRNNRegressor(3, 4, max_iter=4, progress=False, n_jobs=jobs)
        return est.fit(u, y, validation=val).history_

    one, two, again = run(1), run(2), run(2)
    keys = ("loss", "val_nse", "mu", "accepted")
    assert [[h[k] for k in keys] for h in two] == [[h[k] for k in keys] for h in again]
    # the step SDP's solution moves with rounding-level changes of J'J, so compare loosely
    assert [h["accepted"] for h in two] == [h["accepted"] for h in one]
    np.testing.assert_allclose([h["loss"] for h in two], [h["loss"] for h in one], rtol=0.05)
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n_jobs"):
            RobustRNNRegressor(3, 4, max_iter=1, progress=False, n_jobs=bad).fit(u, y)
