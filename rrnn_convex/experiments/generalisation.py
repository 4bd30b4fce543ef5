"""The paper's generalisation study on the mass-spring-damper system (Figs. 3-4).

:func:`generalisation_study` gives the NSE of a model against the input width (0.5 to 10.5, 21
levels) on many realisations of the true mass-spring-damper system started from random states,
with a washout; :func:`generalisation_data` generates those realisations once, so several models
can be compared on the same records (as :mod:`rrnn_convex.experiments.msd` does).

Import edges: the model, the data sets and the metrics; not :mod:`rrnn_convex.analysis`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_float_array, check_scalar
from ..model import ImplicitRNN

__all__ = ["GeneralisationStudy", "generalisation_data", "generalisation_study", "DEFAULT_WIDTHS"]


def _count(value, name, low=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


#: the paper's 21 input widths, 0.5 to 10.5
DEFAULT_WIDTHS = np.linspace(0.5, 10.5, 21)


@dataclass(frozen=True, eq=False)
class GeneralisationStudy:
    """NSE of a model against the true system, per input width: ``nse[i, j]`` for width i, realisation j.

    Parameters
    ----------
    widths : numpy.ndarray
        The input widths, sorted, (k,).
    nse : numpy.ndarray
        NSE per width and realisation, (k, realisations).
    washout : int
        Samples dropped at the start of every record before the NSE.
    horizon : int
        Samples per record.
    seed : int or None
        The seed the records were generated with (``None``: fresh entropy).
    """

    widths: np.ndarray
    nse: np.ndarray
    washout: int
    horizon: int
    seed: int | None

    def as_dict(self) -> dict:
        """width -> array of NSE values (one per realisation), ready for a box plot.

        Returns
        -------
        dict of float to numpy.ndarray
            Each value a copy, shape (realisations,).
        """
        return {float(w): self.nse[i].copy() for i, w in enumerate(self.widths)}

    def median(self) -> np.ndarray:
        """The median NSE of every width, (k,).

        Returns
        -------
        numpy.ndarray, shape (k,)
            In the order of ``widths``.
        """
        return np.median(self.nse, axis=1)


def _width_streams(seed, count: int) -> list:
    """One random generator per width: ``SeedSequence([seed, 1000 + i])``, or fresh entropy for None."""
    if seed is None:
        return [np.random.default_rng(ss) for ss in np.random.SeedSequence().spawn(count)]
    return [np.random.default_rng(np.random.SeedSequence([int(seed), 1000 + i])) for i in range(count)]


def generalisation_data(widths=None, realisations: int = 20, horizon: int = 1000, seed: int | None = 0, *,
                        system=None, x0_range: float = 5.0, period: int = 100) -> dict:
    """Data of the generalisation study: width -> :class:`~rrnn_convex.datasets.SequenceData`.

    For every width, ``realisations`` sequences of ``horizon`` samples of the true system
    (:class:`~rrnn_convex.datasets.MassSpringDamper`, noise included) driven by the paper's
    random piecewise-constant input of that width and started from states uniform on
    ``[-x0_range, x0_range]`` (``x0_known`` False, the states kept in ``x0_true``). Width i
    has its own stream ``SeedSequence([seed, 1000 + i])``; all sequences are integrated as one batch.
    Compute it once and pass it to :func:`generalisation_study` to compare several models.

    Parameters
    ----------
    widths : array_like, optional
        Non-negative input widths (default :data:`DEFAULT_WIDTHS`).
    realisations : int
        Sequences per width, >= 1.
    horizon : int
        Samples per sequence, >= 1.
    seed : int or None
        Seed of the records; ``None`` draws fresh entropy.
    system : MassSpringDamper, optional
        The true system (default ``MassSpringDamper()``).
    x0_range : float
        Initial states are uniform on ``[-x0_range, x0_range]``, >= 0.
    period : int
        Hold period of the random input, in samples.

    Returns
    -------
    dict
        float width -> :class:`~rrnn_convex.datasets.SequenceData` of (realisations, horizon, 1).

    Raises
    ------
    ValueError
        If ``widths`` is not 1-D, is empty or has a negative or non-finite width,
        ``realisations``, ``horizon`` or ``period`` is not an integer >= 1 (``period`` >= 2),
        or ``x0_range`` is negative.
    TypeError
        Non-numeric ``widths`` or ``x0_range``.
    """
    from ..datasets import MassSpringDamper, SequenceData, random_hold_input
    system = MassSpringDamper() if system is None else system
    widths = DEFAULT_WIDTHS if widths is None else as_float_array(widths, "widths", ndim=1)
    if widths.size == 0 or np.any(widths < 0):
        raise ValueError(f"widths: expected non-negative input widths, got {widths}")
    R = _count(realisations, "realisations")
    T = _count(horizon, "horizon")
    x0_range = check_scalar(x0_range, "x0_range", low=0.0, low_inclusive=True)
    rngs = _width_streams(seed, widths.size)
    U = np.concatenate([random_hold_input(T, float(w), r, batch=R, period=period)
                        for w, r in zip(widths, rngs)])
    X0 = np.concatenate([r.uniform(-x0_range, x0_range, size=(R, system.n)) for r in rngs])
    X = system.states(U, X0)
    out = {}
    for i, (w, r) in enumerate(zip(widths, rngs)):
        sl = slice(i * R, (i + 1) * R)
        y = X[sl, :, -2:-1] + system.noise_std * r.standard_normal((R, T, 1))
        out[float(w)] = SequenceData(u=U[sl], y=y, ts=system.Ts, name=f"generalisation width {w:g}",
                                     x0_known=False, x0_true=X0[sl], meta={"width": float(w), "seed": seed})
    return out


def _study_data(data, widths, realisations, horizon, seed, data_options) -> dict:
    """The records of :func:`generalisation_study`: ``data`` as given (checked), or generated."""
    if data is None:
        data = generalisation_data(widths, realisations, horizon, seed, **data_options)
    elif widths is not None or data_options:
        raise ValueError("data: pass either data=... or the options that generate it "
                         "(widths, system, ...), not both")
    if not isinstance(data, dict) or not data:
        raise TypeError("data: expected a non-empty dict width -> SequenceData (from generalisation_data)")
    return data


def _predict(model_or_simulator, d, batched: bool) -> np.ndarray:
    """The outputs of the model or simulator for the inputs of the records ``d``, shaped like ``d.y``."""
    if isinstance(model_or_simulator, ImplicitRNN):
        y_hat = model_or_simulator.simulate(d.u)
    elif callable(model_or_simulator) and batched:
        y_hat = as_float_array(model_or_simulator(d.u), "simulator(u)")
    elif callable(model_or_simulator):
        y_hat = np.stack([np.reshape(as_float_array(model_or_simulator(u), "simulator(u)"), d.y.shape[1:])
                          for u in d.u])
    else:
        raise TypeError(f"model_or_simulator: expected an ImplicitRNN or a callable, got "
                        f"{type(model_or_simulator).__name__}")
    if y_hat.shape != d.y.shape:
        raise ValueError(f"model_or_simulator: output shape {y_hat.shape} does not match "
                         f"the data {d.y.shape}")
    return y_hat


def generalisation_study(model_or_simulator, widths=None, realisations: int = 20, horizon: int = 1000,
                         washout: int = 200, seed: int | None = 0, *, data: dict | None = None,
                         batched: bool = False, **data_options) -> GeneralisationStudy:
    """The paper's generalisation experiment: NSE against the input width.

    For each width (default :data:`DEFAULT_WIDTHS`, 0.5 to 10.5 in 21 levels) the model,
    simulated from its zero initial state (it does not know the true system's random initial
    state), is compared with ``realisations`` noisy records of the true system
    (:func:`generalisation_data`); the first ``washout`` samples are dropped and
    :func:`~rrnn_convex.metrics.nse` (``||y_hat - y|| / ||y - mean(y)||`` over the remaining
    samples) is computed per realisation (averaged over the output channels when p > 1). (The
    authors' script normalised by ``||y||`` without removing the mean; the package uses the
    paper's NSE throughout.)

    Pass ``data`` (from :func:`generalisation_data`) to reuse the same records for several
    models; otherwise ``widths``, ``realisations``, ``horizon``, ``seed`` and ``data_options``
    (``system``, ``x0_range``, ``period``) generate them. Defaults are modest (20 realisations
    of 1000 samples; the authors used 300).

    Parameters
    ----------
    model_or_simulator : ImplicitRNN or callable
        An ImplicitRNN (simulated as one batch) or a callable ``u (T, m) -> y (T, p)`` (with
        ``batched=True``: ``(batch, T, m) -> (batch, T, p)``, one call per width).
    widths, realisations, horizon, seed
        As for :func:`generalisation_data`, when ``data`` is not given.
    washout : int
        Samples dropped at the start of every record, >= 0 and below the record length.
    data : dict, optional
        Records from :func:`generalisation_data`.
    batched : bool
        Whether a callable simulator takes a whole batch.
    **data_options
        ``system``, ``x0_range``, ``period`` of :func:`generalisation_data`.

    Returns
    -------
    GeneralisationStudy
        The NSE per width (sorted) and realisation.

    Raises
    ------
    ValueError
        If both ``data`` and generating options are given, ``washout`` is not an integer in
        [0, T), or the simulator's output shape differs from the records'.
    TypeError
        If ``data`` is not a non-empty dict, or ``model_or_simulator`` is neither an
        ImplicitRNN nor callable.
    """
    from ..metrics import nse
    data = _study_data(data, widths, realisations, horizon, seed, data_options)
    washout = _count(washout, "washout", low=0)
    ws = np.array(sorted(data))
    rows = []
    for w in ws:
        d = data[w]
        if washout >= d.T:
            raise ValueError(f"washout: expected fewer than T = {d.T} samples, got {washout}")
        y_hat = _predict(model_or_simulator, d, batched)
        rows.append(np.asarray(nse(y_hat, d.y, init=washout)).reshape(d.batch, -1).mean(axis=1))
    first = data[ws[0]]
    return GeneralisationStudy(widths=ws, nse=np.array(rows), washout=washout, horizon=first.T,
                               seed=first.meta.get("seed"))
