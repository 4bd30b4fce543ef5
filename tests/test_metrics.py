"""Error metrics against values computed by hand."""
import math

import numpy as np
import pytest

from rrnn_convex.metrics import fit, nrmse, nse, rmse

Y = [1.0, 2.0, 3.0, 4.0]
YHAT = [1.0, 2.0, 3.0, 6.0]
# by hand: error (0, 0, 0, 2), ||e|| = 2; mean(y) = 2.5, y - mean = (-1.5, -0.5, 0.5, 1.5), squared norm 5
# NSE = 2 / sqrt(5); RMSE = sqrt(4 / 4) = 1; std(y) = sqrt(5 / 4); NRMSE = 1 / sqrt(1.25) = 2 / sqrt(5)


def test_single_channel_values():
    assert nse(YHAT, Y) == pytest.approx(2 / math.sqrt(5), rel=1e-15)
    assert rmse(YHAT, Y) == pytest.approx(1.0, rel=1e-15)
    assert nrmse(YHAT, Y) == pytest.approx(2 / math.sqrt(5), rel=1e-15)
    assert fit(YHAT, Y) == pytest.approx(100 * (1 - 2 / math.sqrt(5)), rel=1e-14)
    assert isinstance(nse(YHAT, Y), float)


def test_perfect_prediction_and_mean_predictor():
    assert nse(Y, Y) == 0.0 and rmse(Y, Y) == 0.0 and fit(Y, Y) == 100.0
    # predicting the mean: ||y - mean|| / ||y - mean|| = 1, fit 0
    assert nse([2.5] * 4, Y) == pytest.approx(1.0)
    assert fit([2.5] * 4, Y) == pytest.approx(0.0, abs=1e-12)
    # predicting zero: ||y|| / ||y - mean|| = sqrt(30) / sqrt(5)
    assert nse([0.0] * 4, Y) == pytest.approx(math.sqrt(6))


def test_washout_drops_the_first_samples():
    # init = 2: y = (3, 4), y_hat = (3, 6): e = (0, 2), mean 3.5, deviations (-0.5, 0.5)
    assert nse(YHAT, Y, init=2) == pytest.approx(2 / math.sqrt(0.5))
    assert rmse(YHAT, Y, init=2) == pytest.approx(math.sqrt(2))
    assert nrmse(YHAT, Y, init=2) == pytest.approx(math.sqrt(2) / 0.5)
    assert fit(YHAT, Y, init=2) == pytest.approx(100 * (1 - math.sqrt(2) / 0.5))
    # errors inside the washout do not count
    assert rmse([100.0, -100.0, 3.0, 4.0], Y, init=2) == 0.0


def test_channels_and_batches_give_per_sequence_per_channel_values():
    y2, yhat2 = [0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0]
    # by hand: e = (1, 1, -1, -1), ||e|| = 2; mean 1, deviations (-1, -1, 1, 1), norm 2: NSE 1, RMSE 1, std 1
    y = np.array([Y, y2]).T  # (T, 2)
    yhat = np.array([YHAT, yhat2]).T
    np.testing.assert_allclose(nse(yhat, y), [2 / math.sqrt(5), 1.0])
    np.testing.assert_allclose(rmse(yhat, y), [1.0, 1.0])
    np.testing.assert_allclose(nrmse(yhat, y), [2 / math.sqrt(5), 1.0])
    assert nse(yhat, y).shape == (2,)
    # batch of two sequences with one channel: one value per sequence (nothing is averaged)
    yb = np.array([Y, y2])[:, :, None]
    yhatb = np.array([YHAT, yhat2])[:, :, None]
    out = nse(yhatb, yb)
    assert out.shape == (2, 1)
    np.testing.assert_allclose(out[:, 0], [2 / math.sqrt(5), 1.0])
    np.testing.assert_allclose(fit(yhatb, yb)[:, 0], [100 * (1 - 2 / math.sqrt(5)), 0.0], atol=1e-12)
    # the mean is per sequence: shifting one sequence does not change its NSE
    np.testing.assert_allclose(nse(yhatb + [[[5.0]], [[0.0]]], yb + [[[5.0]], [[0.0]]]), out)


def test_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"y_hat \(4,\) and y \(3,\)"):
        nse(YHAT, Y[:3])
    with pytest.raises(ValueError, match=r"y_hat: expected shape"):
        rmse(np.zeros((2, 2, 2, 2)), np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="y_hat and y"):
        rmse(np.zeros((5, 1)), np.zeros((1, 5, 1)))


def test_init_errors():
    with pytest.raises(ValueError, match=r"init: expected 0 <= init < T = 4"):
        nse(YHAT, Y, init=4)
    with pytest.raises(ValueError, match="init"):
        rmse(YHAT, Y, init=-1)
    with pytest.raises(TypeError, match="init"):
        rmse(YHAT, Y, init=1.5)


def test_constant_output_and_nan_are_rejected():
    with pytest.raises(ValueError, match="constant output"):
        nse([1.0, 2.0], [3.0, 3.0])
    with pytest.raises(ValueError, match="constant output"):
        nrmse([1.0, 2.0, 3.0], [0.0, 3.0, 3.0], init=1)
    with pytest.raises(ValueError, match="y_hat: contains NaN"):
        rmse([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="y: contains NaN"):
        rmse([1.0, 2.0], [np.inf, 2.0])
