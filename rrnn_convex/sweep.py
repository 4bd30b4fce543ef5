"""Parallel sweeps: fit a grid of (model set, gamma, seed) cells, gather one table.

``sweep(u, y, validation, gammas=..., seeds=..., model_sets=...)`` fits every cell with
:class:`~rrnn_convex.fit.RobustRNNRegressor` in parallel processes (joblib, ``n_jobs``), or on a
Dask cluster when ``scheduler`` (an address such as ``"tcp://127.0.0.1:8786"``) is given and
``dask.distributed`` is installed (``pip install "rrnn_convex[dask]"``). A cell that fails is a
row with its error, never fatal to the others; each certified row's certificate was verified in
the worker (``verified``) and is re-verified here from the returned weights.

Grid: the sets that bound the gain (``"theta_gamma"``) take every value of ``gammas``; the other
registered sets (:meth:`ModelSet.names <rrnn_convex.sets.ModelSet.names>`: "theta", "srnn",
"cirnn", "elman", "unconstrained") take no gamma. Each cell is fitted with its own ``seed``.
"""
from __future__ import annotations

import csv
import io
import math
import time
import traceback
from dataclasses import dataclass, field

from ._validation import check_scalar, paired_sequences
from .errors import MissingDependency
from .sets import ModelSet

COLUMNS = ("model_set", "gamma", "seed", "status", "val_nse", "train_loss", "certified_gamma", "verified",
           "iterations", "seconds", "error")


@dataclass(frozen=True)
class Cell:
    """One cell of a sweep.

    Parameters
    ----------
    model_set : str
        A registered set name.
    gamma : float or None
        The gain bound (None for the sets without one).
    seed : int
        The estimator's seed.
    """

    model_set: str
    gamma: float | None
    seed: int


@dataclass
class SweepResult:
    """Rows (dicts with ``COLUMNS``), the fitted models (None for a failed cell), wall time.

    Parameters
    ----------
    rows : list of dict
        One per cell, in grid order, with the keys of ``COLUMNS`` (a failed cell's row from a
        worker also has ``traceback``).
    models : list of ImplicitRNN or None
        The fitted models, aligned with ``rows``.
    seconds : float
        Wall time of the sweep.
    backend : str
        ``"serial"``, ``"joblib (loky, n_jobs=k)"`` or ``"dask (<scheduler>)"``.
    """

    rows: list
    models: list = field(repr=False, default_factory=list)
    seconds: float = 0.0
    backend: str = ""

    @property
    def failed(self) -> list:
        """The rows whose status is not ``"ok"``."""
        return [r for r in self.rows if r["status"] != "ok"]

    def to_csv(self, path=None) -> str:
        """The table as CSV text; written atomically when ``path`` is given.

        Parameters
        ----------
        path : str or os.PathLike, optional
            The file to write.

        Returns
        -------
        str
            A header row of ``COLUMNS`` and one row per cell (None as an empty field).
        """
        from ._io import write_text_atomic

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([["" if r.get(c) is None else r.get(c) for c in COLUMNS] for r in self.rows])
        text = buf.getvalue()
        if path is not None:
            write_text_atomic(path, text)
        return text

    def to_markdown(self) -> str:
        """The table as Markdown (set, gamma, seed, status, val NSE, certified gamma, verified,
        iterations, seconds).

        Returns
        -------
        str
            One row per cell; None and non-finite numbers shown as ``-``.
        """
        head = "| set | gamma | seed | status | val NSE | certified gamma | verified | iterations | seconds |"
        out = [head, "|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            f = (lambda x, s=".4f": "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, s))
            out.append(f"| {r['model_set']} | {f(r['gamma'], 'g')} | {r['seed']} | {r['status']} | {f(r['val_nse'])} "
                       f"| {f(r['certified_gamma'], '.4g')} | {r['verified']} | {r['iterations']} | {f(r['seconds'], '.1f')} |")
        return "\n".join(out)


def grid(gammas=(), seeds=(0,), model_sets=("theta_gamma",)) -> list[Cell]:
    """The cells of a sweep (validated): gammas apply to the gain-bounded sets only.

    Parameters
    ----------
    gammas : sequence of float
        Gain bounds for the sets that bound the gain (``"theta_gamma"``); needed when one is
        in ``model_sets``.
    seeds : sequence of int
        One cell per seed.
    model_sets : str or sequence of str
        Registered set names (:meth:`ModelSet.names <rrnn_convex.sets.ModelSet.names>`).

    Returns
    -------
    list of Cell
        In the order set, gamma, seed.

    Raises
    ------
    ValueError
        For an unknown or missing set name, no seed, a gain-bounded set without gammas, a gamma
        that is not a positive finite number, or a seed not convertible to int.
    TypeError
        A non-numeric gamma or seed.
    """
    model_sets = [model_sets] if isinstance(model_sets, str) else list(model_sets)
    names = ModelSet.names()
    unknown = [s for s in model_sets if s not in names]
    if unknown or not model_sets:
        raise ValueError(f"model_sets: expected some of {names}, got {model_sets!r}")
    gammas = [check_scalar(g, "gammas", low=0.0) for g in (gammas or ())]
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    bounded = [s for s in model_sets if ModelSet.registered(s).gain]
    if bounded and not gammas:
        raise ValueError(f"gammas: model set {bounded[0]!r} needs at least one gamma")
    cells = []
    for s in model_sets:
        for g in (gammas if ModelSet.registered(s).gain else [None]):
            cells.extend(Cell(s, g, seed) for seed in seeds)
    return cells


def fit_cell(cell: Cell, u, y, validation, options: dict) -> tuple[dict, dict | None]:
    """Fit one cell (runs in a worker). Returns (row, weights or None); never raises.

    Any exception of the fit (an ``Exception``) becomes a failed row.

    Parameters
    ----------
    cell : Cell
    u, y : numpy.ndarray
        Training inputs (batch, T, m) and outputs (batch, T, p).
    validation : tuple of numpy.ndarray or None
        ``(u, y)`` of the validation sequences.
    options : dict
        Keywords of :class:`~rrnn_convex.fit.RobustRNNRegressor`; ``model_set``, ``gamma``,
        ``seed`` and ``progress`` are set from the cell (progress off).

    Returns
    -------
    row : dict
        The keys of ``COLUMNS``: status ``"ok"`` or ``"failed"`` (then ``error``, its first line,
        and ``traceback``); ``val_nse`` the smallest validation NSE of the history (None without
        validation), ``train_loss`` the last, ``certified_gamma`` and ``verified`` for a
        certified model.
    weights : dict or None
        ``{"weights", "activation", "certificate"}`` (plain data that pickles), None for a
        failed cell.
    """
    from .fit import RobustRNNRegressor

    row = {"model_set": cell.model_set, "gamma": cell.gamma, "seed": cell.seed, "status": "ok", "val_nse": None,
           "train_loss": None, "certified_gamma": None, "verified": False, "iterations": 0, "seconds": 0.0,
           "error": ""}
    t0 = time.perf_counter()
    try:
        est = RobustRNNRegressor(**(options | {"model_set": cell.model_set, "gamma": cell.gamma, "seed": cell.seed,
                                               "progress": False}))
        est.fit(u, y, validation=validation)
        h = est.history_
        row["iterations"] = est.n_iter_
        row["train_loss"] = float(h[-1]["loss"]) if h else None
        scores = [float(e["val_nse"]) for e in h if math.isfinite(e["val_nse"])] if validation is not None else []
        row["val_nse"] = min(scores) if scores else None  # (min() with a nan depends on the order)
        cert = est.certificate_
        if cert is not None and cert.certified:
            row["certified_gamma"] = cert.gamma
            row["verified"] = bool(cert.verify(est.model_).ok)
        weights = {"weights": est.model_.weights(), "activation": est.model_.activation.to_dict(),
                   "certificate": None if cert is None else cert.to_json()}
    except Exception as exc:  # a failed cell is a row, not the end of the sweep
        row["status"] = "failed"
        row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        row["traceback"] = traceback.format_exc(limit=3)
        weights = None
    row["seconds"] = time.perf_counter() - t0
    return row, weights


def _rebuild(payload):
    from .certify import Certificate
    from .model import ImplicitRNN

    model = ImplicitRNN(**payload["weights"], activation=payload["activation"])
    cert = None if payload["certificate"] is None else Certificate.from_json(payload["certificate"])
    return model, cert


def sweep(u, y, validation=None, *, gammas=(), seeds=(0,), model_sets=("theta_gamma",), n_states: int = 10,
          n_neurons: int = 10, n_jobs: int = 2, scheduler: str | None = None, **fit_options) -> SweepResult:
    """Fit every cell of the grid in parallel; see the module docstring.

    ``fit_options`` go to :class:`~rrnn_convex.fit.RobustRNNRegressor` (``max_iter``,
    ``time_budget``, ``activation``, ``solver``...). ``n_jobs``: joblib worker processes
    (ignored with ``scheduler``); when fits run in parallel (several processes or a scheduler),
    each fit's linearisation uses one thread (the estimator's own ``n_jobs`` is 1). Returns a :class:`SweepResult` (rows in grid order).

    Parameters
    ----------
    u : array_like, shape (batch, T, m) or (T, m)
        Training inputs.
    y : array_like, shape (batch, T, p) or (T, p)
        Training outputs.
    validation : tuple of array_like, optional
        ``(u, y)`` of the validation sequences.
    gammas, seeds, model_sets
        The grid (:func:`grid`).
    n_states, n_neurons : int
        Model size of every cell.
    n_jobs : int
        joblib worker processes (1: serial in this process).
    scheduler : str, optional
        Address of a Dask scheduler.
    **fit_options
        Further keywords of :class:`~rrnn_convex.fit.RobustRNNRegressor`.

    Returns
    -------
    SweepResult
        ``verified`` re-checked here from the returned weights and certificate.

    Raises
    ------
    ValueError
        Invalid sequences, an invalid grid (:func:`grid`), or ``fit_options`` that set
        ``model_set``, ``gamma``, ``seed`` or ``progress``.
    TypeError
        Non-numeric sequences or grid values.
    rrnn_convex.errors.MissingDependency
        With ``scheduler`` but without ``dask.distributed``.
    """
    U, Y = paired_sequences(u, y)
    val = None if validation is None else paired_sequences(*validation, names=("validation u", "validation y"))
    cells = grid(gammas, seeds, model_sets)
    bad = {"model_set", "gamma", "seed", "progress"} & set(fit_options)
    if bad:
        raise ValueError(f"fit_options: {sorted(bad)} are set by the grid")
    options = {"n_states": int(n_states), "n_neurons": int(n_neurons)} | fit_options
    if scheduler is not None or int(n_jobs) != 1:
        options["n_jobs"] = 1  # fits run side by side: one linearisation thread each
    t0 = time.perf_counter()
    if scheduler is not None:
        try:
            from dask.distributed import Client
        except ImportError:
            raise MissingDependency('scheduler: a Dask cluster needs dask.distributed: pip install "rrnn_convex[dask]"') \
                from None
        with Client(scheduler) as client:
            data = client.scatter([U, Y, val], broadcast=True)
            futures = [client.submit(fit_cell, c, data[0], data[1], data[2], options, pure=False) for c in cells]
            results = []
            for c, f in zip(cells, futures):
                try:
                    results.append(f.result())
                except Exception as exc:  # the worker died: report the cell
                    results.append((_failed(c, exc), None))
        backend = f"dask ({scheduler})"
    else:
        n_jobs = int(n_jobs)
        if n_jobs == 1:
            results = [fit_cell(c, U, Y, val, options) for c in cells]
            backend = "serial"
        else:
            from joblib import Parallel, delayed

            results = Parallel(n_jobs=n_jobs, backend="loky")(delayed(fit_cell)(c, U, Y, val, options) for c in cells)
            backend = f"joblib (loky, n_jobs={n_jobs})"
    rows, models = [], []
    for row, payload in results:
        model = None
        if payload is not None:
            model, cert = _rebuild(payload)
            if row["verified"]:
                # re-verified here from the returned weights, not taken on the worker's word
                row["verified"] = bool(cert is not None and cert.verify(model).ok)
        rows.append(row)
        models.append(model)
    return SweepResult(rows, models, time.perf_counter() - t0, backend)


def _failed(cell: Cell, exc: BaseException) -> dict:
    return {"model_set": cell.model_set, "gamma": cell.gamma, "seed": cell.seed, "status": "failed",
            "val_nse": None, "train_loss": None, "certified_gamma": None, "verified": False, "iterations": 0,
            "seconds": float("nan"), "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}


__all__ = ["sweep", "grid", "fit_cell", "Cell", "SweepResult", "COLUMNS"]
