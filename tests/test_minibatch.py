"""Minibatches in the SCP trainer: ``batch_size="auto"``, patience counted in passes over the data,
and the minibatch's growth at a plateau (``batch_growth``)."""
import numpy as np
import pytest

from rrnn_convex.fit import AUTO_BATCH_SAMPLES, RobustRNNRegressor, Windows
from rrnn_convex.levenberg import grown_batch

from conftest import teacher_sequences


@pytest.fixture(scope="module")
def teacher_data():
    return teacher_sequences(3, 8, 120, val_T=300)


@pytest.mark.parametrize("count,length,expected", [
    (100, 1000, 25),                 # the paper's training set: 25 of 100 sequences per step
    (63, 1024, 25),                  # Silverbox in windows of 1024: ceil(25000 / 1024)
    (20, 1000, None),                # 20,000 samples: every sequence at every step
    (1, 1024, None),                 # one record
    (10, 2500, None),                # exactly AUTO_BATCH_SAMPLES: all
])
def test_auto_batch_covers_the_sample_budget(count, length, expected):
    windows = Windows(length, np.arange(count), np.zeros(count, dtype=int))
    got = RobustRNNRegressor(batch_size="auto")._batch(windows)
    assert got == expected
    if got is not None:
        assert (got - 1) * length < AUTO_BATCH_SAMPLES <= got * length


@pytest.mark.parametrize("value,expected", [(None, None), (3, 3), (8, None), (50, None)])
def test_explicit_batch_sizes(value, expected):
    windows = Windows(100, np.arange(8), np.zeros(8, dtype=int))
    assert RobustRNNRegressor(batch_size=value)._batch(windows) == expected


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "half"])
def test_bad_batch_size_is_a_clear_error(teacher_data, bad):
    u, y, _ = teacher_data
    with pytest.raises(ValueError, match=r"batch_size: expected 'auto', None or a positive integer, got"):
        RobustRNNRegressor(3, 4, batch_size=bad, max_iter=1, progress=False).fit(u, y)


def test_auto_on_small_data_is_the_full_batch_fit(teacher_data):
    """8 x 120 samples are below the sample budget: "auto" is exactly the every-window fit."""
    u, y, val = teacher_data
    runs = [RobustRNNRegressor(3, 4, batch_size=b, max_iter=3, progress=False).fit(u, y, validation=val)
            for b in ("auto", None)]
    assert runs[0].batch_size_ is None
    for a, b in zip(runs[0].history_, runs[1].history_):
        assert a["loss"] == b["loss"] and a["val_nse"] == b["val_nse"] and a["mu"] == b["mu"]
    np.testing.assert_array_equal(runs[0].model_.C2, runs[1].model_.C2)


def test_minibatch_fit_keeps_certificates_and_counts_patience_in_passes(teacher_data):
    """Two of eight sequences per step: every iterate certified, the training loss on all
    sequences falls, and patience 1 means one pass over the data, i.e. four accepted steps."""
    u, y, val = teacher_data
    est = RobustRNNRegressor(3, 4, batch_size=2, batch_growth=1, patience=1, max_iter=40, progress=False, seed=1)
    est.fit(u, y, validation=val)
    assert est.batch_size_ == 2
    assert {h["batch"] for h in est.history_} == {2}
    assert est.certificate_.certified and est.certificate_.verify(est.model_)
    assert all(h["margin"] > 0 for h in est.history_ if h["accepted"])
    losses = [h["loss"] for h in est.history_]
    assert min(losses) < losses[0]
    assert est.stop_reason_ == "patience"
    assert est.stop_detail_.startswith("4 accepted steps (1 pass over the training data)")
    best = int(np.argmin([h["val_nse"] for h in est.history_]))
    assert sum(h["accepted"] for h in est.history_[best + 1:]) == 4


@pytest.mark.parametrize("batch,count,factor,expected", [
    (25, 100, 2.0, 50),
    (50, 100, 2.0, None),       # 100 of 100: every window
    (60, 100, 2.0, None),       # capped at all windows
    (None, 100, 2.0, None),     # already every window
    (25, 100, 1.0, 25),         # no growth
    (1, 3, 1.1, 2),             # at least one more window
    (10, 100, 1.5, 15),
    (3, 100, 1.5, 5),           # rounded up
])
def test_grown_batch(batch, count, factor, expected):
    assert grown_batch(batch, count, factor) == expected


@pytest.mark.parametrize("bad", [0.5, 0, float("nan"), float("inf"), "double", True, None])
def test_bad_batch_growth_is_a_clear_error(teacher_data, bad):
    u, y, _ = teacher_data
    with pytest.raises(ValueError, match=r"batch_growth: expected a finite number of at least 1 \(1: no growth\), got"):
        RobustRNNRegressor(3, 4, batch_size=2, batch_growth=bad, max_iter=1, progress=False).fit(u, y)


@pytest.fixture(scope="module")
def grown_and_fixed(teacher_data):
    """The same minibatch fit with and without growth: 2 of 8 sequences, patience one pass."""
    u, y, val = teacher_data
    kw = dict(batch_size=2, patience=1, max_iter=60, progress=False, seed=1)
    fixed = RobustRNNRegressor(3, 4, batch_growth=1, **kw).fit(u, y, validation=val)
    grown = RobustRNNRegressor(3, 4, batch_growth=2, **kw).fit(u, y, validation=val)
    return fixed, grown


def test_growth_doubles_the_minibatch_at_plateaus_up_to_every_window(grown_and_fixed):
    """2 -> 4 -> every window (8), never shrinking, and the patience stop comes only once every
    step sees every window; until the first plateau the fit is the fixed-batch fit."""
    fixed, grown = grown_and_fixed
    batches = [h["batch"] for h in grown.history_]
    assert batches == sorted(batches)
    assert batches[0] == 2
    if grown.stop_reason_ == "patience":
        assert set(batches) == {2, 4, 8}
        assert grown.batch_size_ is None
        assert grown.stop_detail_.startswith("1 accepted step (1 pass over the training data)")
    n = len(fixed.history_)
    for a, b in zip(fixed.history_, grown.history_[:n]):
        assert a["loss"] == b["loss"] and a["val_nse"] == b["val_nse"] and a["batch"] == b["batch"]
    assert min(h["val_nse"] for h in grown.history_) <= min(h["val_nse"] for h in fixed.history_)
    assert grown.certificate_.certified and grown.certificate_.verify(grown.model_)
    assert all(h["margin"] > 0 for h in grown.history_ if h["accepted"])


def test_growth_goes_back_to_the_best_iterate(teacher_data, monkeypatch):
    """After a growth the fit stands at its best iterate so far (model, initial states and
    certificate point), not at the plateau's last one."""
    from rrnn_convex import fit as fit_module

    seen = []
    original = fit_module._Run.grow_batch

    def recording(run):
        before = run.state
        grew = original(run)
        if grew:
            st = run.state
            seen.append((st.model is before.best_model, np.array_equal(st.x0, before.best_x0),
                         st.point is before.best_point or not before.best_point, st.stall))
        return grew

    monkeypatch.setattr(fit_module._Run, "grow_batch", recording)
    u, y, val = teacher_data
    RobustRNNRegressor(3, 4, batch_size=2, batch_growth=2, patience=1, max_iter=60, progress=False,
                       seed=1).fit(u, y, validation=val)
    assert seen, "the fit never grew its minibatch"
    for same_model, same_x0, same_point, stall in seen:
        assert same_model and same_x0 and same_point and stall == 0


def test_resumed_fit_after_a_growth_equals_the_uninterrupted_fit(teacher_data, tmp_path):
    u, y, val = teacher_data
    kw = dict(batch_size=2, batch_growth=2, patience=1, max_iter=30, progress=False, seed=1, checkpoint_every=1)
    full = RobustRNNRegressor(3, 4, **kw).fit(u, y, validation=val)
    batches = [h["batch"] for h in full.history_]
    assert 4 in batches, "the fit never grew its minibatch"
    cut = batches.index(4) + 1      # stop just after the first grown step
    ckpt = tmp_path / "fit.ckpt.npz"
    RobustRNNRegressor(3, 4, **(kw | {"max_iter": cut, "checkpoint": ckpt})).fit(u, y, validation=val)
    resumed = RobustRNNRegressor(3, 4, **kw).fit(u, y, validation=val, resume=ckpt)
    assert [h["batch"] for h in resumed.history_] == batches
    for a, b in zip(resumed.history_, full.history_):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-9)
    for k in full.model_.weights():
        np.testing.assert_allclose(getattr(resumed.model_, k), getattr(full.model_, k), rtol=1e-9, atol=1e-12)
