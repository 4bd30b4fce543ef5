"""Measured system-identification benchmarks, end to end: ``rrnn benchmark NAME``.

For each benchmark of :mod:`rrnn_convex.datasets.benchmarks` (Cascaded Tanks, Silverbox, EMPS,
Coupled Electric Drives) one fixed, documented :class:`Recipe` (model size, training windows,
budget) fits a contracting robust RNN (the set Theta) on the official training data, and in the
same run an N4SID linear model (the best order up to the recipe's n by training simulation
error, :func:`rrnn_convex.init.linear_start`). Both are scored on every official test set the
benchmark way: free-run simulation from the initial state estimated over the first ``init``
samples (:func:`rrnn_convex.initial_state.estimate_initial_state`), RMSE over the remaining
samples, in the benchmark's own units. The runner also reports the certified contraction and
the smallest certified incremental l2 gain gamma (physical units), a measured Lipschitz lower
bound (which must stay below gamma) and the wall time, and writes the model, its certificate,
a JSON/Markdown result and a plot of prediction against measurement.

``init`` lengths: the data notes (``../shared/data/README.md``) and the ``nonlinear_benchmarks``
loader's code disagree on two benchmarks (Cascaded Tanks 50 vs 5, Coupled Electric Drives 10 vs
4); both are scored and reported.

EMPS holds an integrator (position from force) and is sampled at 1 kHz: a contracting model
needs a time constant far longer than its sampling period to mimic it (0.995 per step is only
0.2 s at 1 kHz). Its recipe decimates by 10 (anti-aliased, zero-phase FIR on the input and the
output) and trains at 100 Hz; the predictions are interpolated back to 1 kHz and scored against
the raw measurement.

Model size and the ``init`` window: the initial state of a test record is estimated from the
first ``init`` samples only, so the recipe's n keeps the state determined by them: ``n * p <=
ceil(init / decimation)`` outputs, for the shorter of the two ``init`` lengths. Cascaded Tanks
(5 samples), Coupled Electric Drives (4) and Silverbox (50) allow the 3 (Silverbox 4) states of
the common recipe; EMPS keeps 2 of its 20 samples at 100 Hz, so its model has 2 states (with 3,
the third state was left to the estimator's prior: 11.0 mm against 2.8 mm; the same model scored
4.1 mm from 5 samples). Its initial-state window also uses the raw outputs at samples 0 and 10
(plain subsampling): the anti-aliased record carries later samples into its first ones.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._io import json_safe, write_text_atomic
from ..datasets.folders import data_folder, require_data_folder

__all__ = ["Recipe", "RECIPES", "PUBLISHED", "INIT_PACKAGE", "run", "default_data_folder"]


@dataclass(frozen=True)
class Recipe:
    """How a benchmark is fitted: model size, activation, training windows, minibatch, budget,
    decimation. ``quick`` holds the overrides of ``--quick`` (a smoke test, not a result).

    Every field but ``n_states``, ``n_neurons``, ``decimate``, ``quick`` and ``note`` is passed
    to :class:`~rrnn_convex.fit.RobustRNNRegressor` as the keyword of the same name.

    Parameters
    ----------
    n_states, n_neurons : int
        Model size.
    time_budget : float
        Seconds of the fit.
    activation : str
    window : "auto", int or None
        Training windows (see :class:`~rrnn_convex.fit.RobustRNNRegressor`).
    window_stride : int, optional
    batch_size : int, optional
        Windows per step (None: all).
    decimate : int
        Decimation factor of the training data (anti-aliased); the predictions are
        interpolated back to the raw rate for scoring.
    restarts, restart_iter : int
        Restarts of the fit and their iterations.
    quick : dict
        Overrides with ``quick=True`` (any of the fields above and estimator options such as
        ``max_iter``).
    note : str
        A description for the report.
    """

    n_states: int
    n_neurons: int
    time_budget: float
    activation: str = "relu"
    window: object = "auto"
    window_stride: int | None = None
    batch_size: int | None = None
    decimate: int = 1
    restarts: int = 3
    restart_iter: int = 30
    quick: dict = field(default_factory=dict)
    note: str = ""


_QUICK = {"time_budget": 20.0, "max_iter": 3, "restarts": 1, "n_states": 2, "n_neurons": 4}

#: one recipe per benchmark: the same trainer everywhere (contracting set, free C1, normalised
#: data, N4SID start, 3 restarts of 30 iterations, then the best continued until convergence or
#: a 13-minute budget) and the same size (3 states, 8 ReLU neurons) except on Silverbox, whose
#: long record is trained in windows and whose best fits came with 4 states and 12 neurons, and
#: on EMPS, whose init window determines only 2 states (module docstring)
RECIPES = {
    "cascaded_tanks": Recipe(3, 8, 780.0, quick=_QUICK, note="1024 samples, trained whole"),
    "coupled_electric_drives": Recipe(3, 8, 780.0, quick=_QUICK, note="two 400-sample records, trained whole"),
    "emps": Recipe(2, 8, 780.0, decimate=10, window=None, quick=_QUICK,
                   note="decimated by 10 to 100 Hz (2,485 samples), trained whole; 2 states: the "
                        "20-sample init window keeps 2 samples at 100 Hz"),
    "silverbox": Recipe(4, 12, 780.0, window=1024, window_stride=1024, batch_size=16, quick=_QUICK,
                        note="65,062 samples in 63 windows of 1024; 16 windows per step"),
}

#: test-set ``init`` lengths in the nonlinear_benchmarks loader's code (benchmarks.py); the data
#: notes' values are the Benchmark objects' own ``init``
INIT_PACKAGE = {"cascaded_tanks": {"test": 5}, "coupled_electric_drives": {"test": 4}, "emps": {"test": 20},
                "silverbox": {"multisine": 50, "arrow_full": 50, "arrow_no_extrapolation": 50}}

#: published test RMSE for orientation (the benchmark's units), as collected in issue 14 of this
#: project from the benchmark literature; not re-measured here
PUBLISHED = {
    "cascaded_tanks": {"test": {"LTI": 0.59, "LSTM": 0.49, "PNLSS": 0.45, "GRU": 0.396, "NLSS2": 0.34,
                                "CT-SUBNET": 0.306, "grey box": 0.19}},
    "silverbox": {"multisine": {"LSTM": 1.50, "polynomial NARX": 0.64, "GP-NARX": 0.30}},
    "emps": {"test": {"LTI": 5.5, "CT-SUBNET": 4.61, "dynoNet": 2.64}},
    "coupled_electric_drives": {"test (record 1 / 2)": {"CT-SUBNET": (0.115, 0.074), "polynomial NARX": (0.10, 0.141)}},
}


def default_data_folder() -> Path | None:
    """The benchmark files' folder when none is passed in: ``$RRNN_DATA/sysid``.

    Returns
    -------
    pathlib.Path or None
        ``$RRNN_DATA/sysid``, or None when ``RRNN_DATA`` is unset (the loaders then use the
        ``nonlinear_benchmarks`` package's download cache).

    Raises
    ------
    FileNotFoundError
        If ``RRNN_DATA`` is set but holds no ``sysid/`` folder.
    """
    if data_folder("sysid") is None:
        return None
    return require_data_folder("sysid")


# ---------------------------------------------------------------------- data handling
def _decimate(x: np.ndarray, q: int) -> np.ndarray:
    """(batch, T, c) -> (batch, ceil(T / q), c): anti-aliased, zero-phase FIR decimation."""
    from scipy.signal import decimate
    return np.ascontiguousarray(decimate(x, q, ftype="fir", zero_phase=True, axis=1))


def _upsample(y: np.ndarray, q: int, T: int) -> np.ndarray:
    """Decimated predictions (batch, Td, p) at t = 0, q, 2q, ... linearly interpolated to T samples."""
    td = np.arange(y.shape[1]) * q
    t = np.arange(T)
    out = np.empty((y.shape[0], T, y.shape[2]))
    for b in range(y.shape[0]):
        for c in range(y.shape[2]):
            out[b, :, c] = np.interp(t, td, y[b, :, c])
    return out


class _Scorer:
    """Free-run predictions and RMSE of a model on one test set, at the recipe's rate."""

    def __init__(self, test, decimate: int):
        self.test, self.q = test, decimate
        self.u = test.u if decimate == 1 else _decimate(test.u, decimate)
        self.y = test.y if decimate == 1 else _decimate(test.y, decimate)

    def predict(self, model, init: int) -> np.ndarray:
        """Predictions at the raw rate, from the state estimated over the first ``init`` raw samples.

        With decimation the initial state is fitted to the raw outputs at samples 0, q, 2q, ...
        below ``init`` (plain subsampling): the anti-aliased record ``self.y`` is zero-phase
        filtered, so its first samples carry later raw samples, which the protocol reserves
        for scoring."""
        k = max(1, math.ceil(init / self.q))
        y_init = self.y if self.q == 1 else self.test.y[:, ::self.q][:, :k]
        yh = model.simulate(self.u, y_init=y_init, init_samples=k)
        return yh if self.q == 1 else _upsample(yh, self.q, self.test.y.shape[1])

    def rmse(self, y_hat: np.ndarray, init: int, scale: float) -> list[float]:
        from ..metrics import rmse
        return [float(v) * scale for v in np.asarray(rmse(y_hat, self.test.y, init=init)).reshape(-1)]


# ---------------------------------------------------------------------- one benchmark
#: the N4SID baseline tries every order up to this (or the recipe's n, if larger)
LINEAR_MAX_ORDER = 8


def _linear_model(U, Y, n: int, scaling):
    """The N4SID baseline: the best order up to max(n, LINEAR_MAX_ORDER) by training simulation
    error (linear_start on normalised data), as an ImplicitRNN in physical units (no neurons
    act), and the order used."""
    from ..init import linear_start
    from ..model import ImplicitRNN

    st = linear_start(scaling.normalize_inputs(U), scaling.normalize_outputs(Y), max(n, LINEAR_MAX_ORDER))
    k = st.order
    lti = ImplicitRNN(F=st.A[:k, :k], B1=np.zeros((k, 1)), B2=st.B[:k], C1=np.zeros((1, k)), C2=st.C[:, :k],
                      D22=st.D)
    return scaling.to_physical(lti), k


def run(name: str, out=None, *, quick: bool = False, folder=None, recipe: Recipe | None = None,
        seed: int = 0, progress: bool = False, log=print) -> dict:
    """Fit and score one benchmark; returns the result (also written to ``out`` if given).

    ``folder``: where the benchmark files are (default :func:`default_data_folder`, i.e.
    ``$RRNN_DATA/sysid``, else the ``nonlinear_benchmarks`` package's cache). ``recipe``
    overrides ``RECIPES``.

    Parameters
    ----------
    name : str
        A key of ``RECIPES``, written as :func:`~rrnn_convex.datasets.benchmarks.load_benchmark`
        accepts it (case-insensitive, ``-`` or a space for ``_``, the aliases ``ced`` and ``tanks``).
    out : str or os.PathLike, optional
        Folder for ``model.npz`` (and its certificate), ``result.json``, ``result.md`` and
        ``prediction.png`` (with matplotlib); created if needed. None: nothing is written.
    quick : bool
        Apply the recipe's ``quick`` overrides (a smoke test).
    folder : str or os.PathLike, optional
        The benchmark files (see above).
    recipe : Recipe, optional
        Instead of the benchmark's entry in ``RECIPES``.
    seed : int
        Of the fit and the Lipschitz search.
    progress : bool
        Show the fit's progress bar.
    log : callable
        Called with every line of the report (the result table included).

    Returns
    -------
    dict
        JSON-ready: benchmark, quick, recipe, settings, unit, tests (per test set: ``init``,
        the init lengths scored, longest first; ``rmse`` and ``rmse_n4sid``, init (as a
        string) -> RMSE per sequence and channel in ``unit``; ``rmse_zero_state``), n4sid_order,
        contracting, verified, certified_gamma, lipschitz_lower_bound, fit_seconds,
        wall_seconds, iterations, stop_reason, stop_detail, start, published, machine.

    Raises
    ------
    ValueError
        An unknown benchmark, or from the loader, the recipe's settings or the fit.
    FileNotFoundError
        No benchmark files (see :func:`default_data_folder` and
        :func:`~rrnn_convex.datasets.benchmarks.load_benchmark`).
    """
    from ..analysis import lipschitz_lower_bound
    from ..datasets.benchmarks import benchmark_key, load_benchmark
    from ..fit import RobustRNNRegressor

    key = benchmark_key(name)  # the loader's names and aliases
    if key not in RECIPES:
        raise ValueError(f"name: no recipe for benchmark {name!r}; recipes: {sorted(RECIPES)}")
    folder = default_data_folder() if folder is None else folder
    bench = load_benchmark(key, folder)
    rec = recipe or RECIPES[key]
    settings = asdict(rec) | (rec.quick if quick else {})
    settings.pop("quick")
    settings.pop("note")
    t_run = time.perf_counter()
    q = int(settings.pop("decimate"))
    U, Y = bench.train.u, bench.train.y
    if q > 1:
        U, Y = _decimate(U, q), _decimate(Y, q)
    n, nq = settings.pop("n_states"), settings.pop("n_neurons")
    est = RobustRNNRegressor(n, nq, model_set="theta", seed=seed, progress=progress, **settings)
    log(f"# {key}: {U.shape[0]} x {U.shape[1]} training samples (decimated by {q})" if q > 1 else
        f"# {key}: {U.shape[0]} x {U.shape[1]} training samples")
    t0 = time.perf_counter()
    est.fit(U, Y)
    fit_seconds = time.perf_counter() - t0
    lin, order = _linear_model(U, Y, n, est.scaling_)
    model, cert = est.model_, est.certificate_
    tests = {}
    for tname, test in bench.tests.items():
        sc = _Scorer(test, q)
        inits = sorted({test.init, INIT_PACKAGE[key].get(tname, test.init)}, reverse=True)
        row = {"init": inits, "rmse": {}, "rmse_n4sid": {}, "rmse_zero_state": None}
        for k in inits:
            row["rmse"][str(k)] = sc.rmse(sc.predict(model, k), k, bench.rmse_scale)
            row["rmse_n4sid"][str(k)] = sc.rmse(sc.predict(lin, k), k, bench.rmse_scale)
        y0 = model.simulate(sc.u)
        y0 = y0 if q == 1 else _upsample(y0, q, test.y.shape[1])
        row["rmse_zero_state"] = sc.rmse(y0, test.init, bench.rmse_scale)
        tests[tname] = row
    lip = lipschitz_lower_bound(model, horizon=200 if quick else 500, starts=2 if quick else 4,
                                steps=30 if quick else 200, seed=seed, scale=float(np.mean(est.scaling_.u_scale)))
    verified = bool(cert is not None and cert.verify(model).ok)
    result = {
        "benchmark": key, "quick": quick, "recipe": asdict(rec), "settings": settings | {"n_states": n,
                                                                                         "n_neurons": nq,
                                                                                         "decimate": q},
        "unit": bench.rmse_unit, "tests": tests, "n4sid_order": order,
        "contracting": bool(cert is not None and cert.contracting), "verified": verified,
        "certified_gamma": None if cert is None or cert.gamma is None else float(cert.gamma),
        "lipschitz_lower_bound": float(lip.value), "fit_seconds": fit_seconds,
        "wall_seconds": time.perf_counter() - t_run, "iterations": est.n_iter_,
        "stop_reason": est.stop_reason_, "stop_detail": est.stop_detail_, "start": est.start_,
        "published": PUBLISHED.get(key, {}),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    if out is not None:
        _write(result, est, bench, q, Path(out), log)
    for line in table(result):
        log(line)
    return result


def table(result: dict) -> list[str]:
    """The result as Markdown lines: one row per test set and init length.

    Parameters
    ----------
    result : dict
        As returned by :func:`run`.

    Returns
    -------
    list of str
        A Markdown table (the zero-state RMSE on the first row of each test set, the published
        results of the test set whose name starts with the test's), a blank line and a
        summary line.
    """
    unit = result["unit"]
    lines = [f"| {result['benchmark']} test | init | RMSE [{unit}] | N4SID [{unit}] | zero state [{unit}] | "
             f"published [{unit}] |", "|---|---|---|---|---|---|"]
    pub = result["published"]
    for tname, row in result["tests"].items():
        ptxt = "; ".join(f"{k} {v}" for k, v in next((d for n_, d in pub.items() if n_.startswith(tname)),
                                                       {}).items()) or "-"
        for k in row["init"]:
            fmt = lambda xs: " / ".join(f"{x:.4g}" for x in xs)  # noqa: E731
            lines.append(f"| {tname} | {k} | {fmt(row['rmse'][str(k)])} | {fmt(row['rmse_n4sid'][str(k)])} | "
                         f"{fmt(row['rmse_zero_state']) if k == row['init'][0] else ''} | {ptxt} |")
    g = result["certified_gamma"]
    lines.append("")
    lines.append(f"contracting: {result['contracting']} (verified: {result['verified']}); certified gamma "
                 f"{'-' if g is None else f'{g:.4g}'} (physical units); Lipschitz lower bound "
                 f"{result['lipschitz_lower_bound']:.4g}; N4SID order {result['n4sid_order']}; "
                 f"{result['iterations']} iterations, stopped by {result['stop_reason']}; fit "
                 f"{result['fit_seconds']:.0f} s, wall {result['wall_seconds']:.0f} s")
    return lines


def _write(result: dict, est, bench, q: int, out: Path, log) -> None:
    """Model (with meta), certificate, result.json / result.md and the prediction plot."""
    out.mkdir(parents=True, exist_ok=True)
    path = est.save(out / "model.npz", meta={"inputs": ["u"], "outputs": ["y"], "benchmark": result["benchmark"],
                                              "decimate": q, "ts": bench.train.ts * q if bench.train.ts else None})
    write_text_atomic(out / "result.json", json.dumps(json_safe(result), indent=1))
    write_text_atomic(out / "result.md", "\n".join(table(result)) + "\n")
    written = [path, out / "result.json", out / "result.md"]
    if est.certificate_ is not None:
        written.insert(1, path.with_suffix(".cert.json"))
    try:
        from ..plots import plot_fit, require_matplotlib
        require_matplotlib()
    except ImportError as exc:
        log(f"note: no plot ({exc})")
    else:
        tname, test = next(iter(bench.tests.items()))
        sc = _Scorer(test, q)
        yh = sc.predict(est.model_, test.init)
        plot_fit(test.y[:, test.init:], yh[:, test.init:], ts=test.ts, unit=bench.rmse_unit if bench.rmse_scale == 1 else "",
                 title=f"{result['benchmark']} {tname}: free-run simulation after {test.init} initialisation "
                       f"samples (certified contracting model)", path=out / "prediction.png")
        written.append(out / "prediction.png")
    log("written: " + ", ".join(str(p) for p in written))
