"""Error metrics for simulated outputs (docs/design.md section 5).

* :func:`nse` — the paper's normalised simulation error ``||y_hat - y|| / ||y - mean(y)||``
  (Revay, Wang & Manchester; whole sequence, no washout unless ``init`` is given);
* :func:`rmse`, :func:`nrmse` (= RMSE / std(y)) and :func:`fit` (= 100 (1 - NRMSE)) — the
  conventions of the ``nonlinear_benchmarks`` loader, where the first ``init`` samples of a test
  record are excluded.

Shapes and aggregation (the same for every metric): ``y_hat`` and ``y`` must have the same
shape, one of

* ``(T,)`` — one sequence, one channel: a float;
* ``(T, p)`` — one sequence, p channels: an array of shape ``(p,)``, one value per channel;
* ``(batch, T, p)`` — an array of shape ``(batch, p)``, one value per sequence and channel.

Nothing is averaged over sequences or channels: every value is computed over the time axis of
one sequence and one channel (the mean and the standard deviation of ``y`` too), so batches give
per-sequence values that can be box-plotted or averaged as the report needs. The first ``init``
samples of every sequence are dropped before anything is computed. The standard deviation is the
population one (``ddof=0``), as in ``nonlinear_benchmarks``.
"""
from __future__ import annotations

import numpy as np

from ._validation import as_float_array

__all__ = ["nse", "rmse", "nrmse", "fit"]


def _prepare(y_hat, y, init):
    yh = as_float_array(y_hat, "y_hat")
    yy = as_float_array(y, "y")
    if yh.ndim not in (1, 2, 3):
        raise ValueError(f"y_hat: expected shape (T,), (T, p) or (batch, T, p), got {yh.shape}")
    if yh.shape != yy.shape:
        raise ValueError(f"y_hat and y: expected the same shape, got y_hat {yh.shape} and y {yy.shape}")
    if isinstance(init, bool) or not isinstance(init, (int, np.integer)):
        raise TypeError(f"init: expected a non-negative integer number of samples, got {init!r}")
    t_axis = 0 if yh.ndim < 3 else 1
    T = yh.shape[t_axis]
    if not 0 <= init < T:
        raise ValueError(f"init: expected 0 <= init < T = {T} (the number of samples), got {init}")
    sl = [slice(None)] * yh.ndim
    sl[t_axis] = slice(int(init), None)
    sl = tuple(sl)
    return yh[sl], yy[sl], t_axis


def _out(value):
    return float(value) if np.ndim(value) == 0 else value


def _check_positive(denom, what):
    bad = ~(denom > 0)
    if np.any(bad):
        where = np.argwhere(np.atleast_1d(bad))[0]
        at = "" if np.ndim(denom) == 0 else f" at (sequence, channel) index {tuple(int(i) for i in where)}"
        raise ValueError(f"y: {what} is zero{at}; the normalised metric is undefined for a constant output")


def rmse(y_hat, y, init: int = 0):
    """Root-mean-square error ``sqrt(mean((y_hat - y)^2))`` over time, after dropping ``init`` samples.

    Parameters
    ----------
    y_hat, y : array_like, shape (T,), (T, p) or (batch, T, p)
        Simulated and measured outputs, of the same shape.
    init : int
        Leading samples of every sequence left out, ``0 <= init < T``.

    Returns
    -------
    float or numpy.ndarray
        A float for (T,), shape (p,) for (T, p), shape (batch, p) for (batch, T, p).

    Raises
    ------
    ValueError
        Different shapes, an unsupported number of axes, NaN/inf or ``init`` out of range.
    TypeError
        ``init`` is not an integer.
    """
    yh, yy, ax = _prepare(y_hat, y, init)
    return _out(np.sqrt(np.mean((yh - yy) ** 2, axis=ax)))


def nrmse(y_hat, y, init: int = 0):
    """Normalised RMSE: ``RMSE / std(y)`` per sequence and channel (std with ddof 0), after ``init``.

    Parameters
    ----------
    y_hat, y, init
        As in :func:`rmse`.

    Returns
    -------
    float or numpy.ndarray
        Shaped as in :func:`rmse`.

    Raises
    ------
    ValueError
        As :func:`rmse`, or a constant measured channel (zero standard deviation).
    TypeError
        ``init`` is not an integer.
    """
    yh, yy, ax = _prepare(y_hat, y, init)
    std = np.std(yy, axis=ax)
    _check_positive(std, "the standard deviation")
    return _out(np.sqrt(np.mean((yh - yy) ** 2, axis=ax)) / std)


def fit(y_hat, y, init: int = 0):
    """Fit index in percent: ``100 (1 - NRMSE)`` (100 is a perfect fit; it can be negative).

    Parameters
    ----------
    y_hat, y, init
        As in :func:`rmse`.

    Returns
    -------
    float or numpy.ndarray
        Shaped as in :func:`rmse`.

    Raises
    ------
    ValueError, TypeError
        As :func:`nrmse`.
    """
    return _out(100.0 * (1.0 - np.asarray(nrmse(y_hat, y, init))))


def nse(y_hat, y, init: int = 0):
    """The paper's normalised simulation error ``||y_hat - y|| / ||y - mean(y)||`` per sequence and channel.

    Norms and the mean run over the time samples of one sequence (from ``init`` on; the paper
    uses the whole sequence, ``init = 0``). Over the same samples ``nse == nrmse``.

    Parameters
    ----------
    y_hat, y, init
        As in :func:`rmse`.

    Returns
    -------
    float or numpy.ndarray
        Shaped as in :func:`rmse`.

    Raises
    ------
    ValueError
        As :func:`rmse`, or a constant measured channel (``||y - mean(y)|| = 0``).
    TypeError
        ``init`` is not an integer.
    """
    yh, yy, ax = _prepare(y_hat, y, init)
    denom = np.sqrt(np.sum((yy - np.mean(yy, axis=ax, keepdims=True)) ** 2, axis=ax))
    _check_positive(denom, "||y - mean(y)||")
    return _out(np.sqrt(np.sum((yh - yy) ** 2, axis=ax)) / denom)
