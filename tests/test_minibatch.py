"""Minibatches in the SCP trainer: ``batch_size="auto"``, and patience counted in passes over the data."""
import numpy as np
import pytest

from rrnn_convex.fit import AUTO_BATCH_SAMPLES, RobustRNNRegressor, Windows

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
    est = RobustRNNRegressor(3, 4, batch_size=2, patience=1, max_iter=40, progress=False, seed=1)
    est.fit(u, y, validation=val)
    assert est.batch_size_ == 2
    assert est.certificate_.certified and est.certificate_.verify(est.model_)
    assert all(h["margin"] > 0 for h in est.history_ if h["accepted"])
    losses = [h["loss"] for h in est.history_]
    assert min(losses) < losses[0]
    assert est.stop_reason_ == "patience"
    assert est.stop_detail_.startswith("4 accepted steps (1 pass over the training data)")
    best = int(np.argmin([h["val_nse"] for h in est.history_]))
    assert sum(h["accepted"] for h in est.history_[best + 1:]) == 4
