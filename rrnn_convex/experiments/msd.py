"""The paper's comparison on the mass-spring-damper data, end to end and resumable.

Trains every model of the paper's Table I / Fig. 2 — an Elman RNN, an LSTM (tanh), the stable
RNN (SRNN), the contracting implicit RNN (ci-RNN) and the robust RNNs of Theta and Theta_gamma
(gamma in 3, 5, 8, 10, 15) — with 10 states (ReLU; LSTM: tanh), on the paper's data (the
authors' ``msd_dataset`` folder: passed in as ``folder`` / ``--data``, else
``$RRNN_DATA/msd_dataset`` when present; otherwise the package's own generated splits), then
writes:

* ``results.csv`` and ``results.md``: NSE on test_u1..u4 (zero initial state, no washout, the
  paper's definition), validation NSE, the certified gamma where one exists, the measured
  Lipschitz lower bound, iterations, wall time, whether the certificate verifies;
* ``fig_nse_vs_lipschitz.png`` (the paper's Fig. 2: test_u3 NSE against the Lipschitz lower
  bound), ``fig_generalisation.png`` (Figs. 3-4: median NSE against the input width on the true
  system), ``fig_traces.png`` (example outputs on test_u3) — when matplotlib is installed.

Each finished model's weights (``models/<name>.npz``) and result (``results/<name>.json``) are
written atomically as soon as it is done; a rerun with the same output folder skips them, so an
interrupted run is completed by running it again. ``quick=True`` is a smoke-test version
(generated data, fewer sequences and iterations) that runs in a couple of minutes.

    python -m rrnn_convex.experiments.msd --out msd_results --data ../shared/data/msd_dataset  # 1-2 hours
    rrnn experiment msd --quick --out msd_quick
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from ..datasets.folders import data_folder, require_data_folder
from ..sets import ModelSet

TESTS = ("test_u1", "test_u2", "test_u3", "test_u4")
TEST_WIDTHS = (1.0, 2.0, 3.0, 4.0)
# The paper's published NSE (test_u1 / u2 / u3 / u4) for the robust RNNs (Revay, Wang &
# Manchester, Table I); no value was published for gamma = 15.
PAPER_NSE = {"Theta": (.0636, .0502, .0610, .0670), "Theta_3": (.4011, .2765, .2395, .2074),
             "Theta_5": (.2474, .1558, .1355, .1329), "Theta_8": (.1539, .1030, .0991, .1058),
             "Theta_10": (.1284, .0901, .0919, .0981)}


@dataclass(frozen=True)
class ModelSpec:
    """One model of the comparison: ``kind`` "scp" (RobustRNNRegressor with ``model_set``) or
    "lstm" (LSTMRegressor, Levenberg-Marquardt); ``gamma_path`` for the small-gamma sets.

    Parameters
    ----------
    name : str
        The model's name in the tables (e.g. ``"Theta_5"``).
    kind : {"scp", "lstm"}
        The trainer.
    model_set : str, optional
        The registered model set (``"scp"`` only).
    gamma : float, optional
        The gain bound of ``"theta_gamma"``.
    gamma_path : tuple of float
        The continuation path (``RobustRNNRegressor(gamma_path=...)``).
    activation : str
        ``"relu"``; ``"tanh"`` for the LSTM (recorded only: the LSTM's cell is always tanh).
    """

    name: str
    kind: str
    model_set: str | None = None
    gamma: float | None = None
    gamma_path: tuple = ()
    activation: str = "relu"


def default_specs() -> list[ModelSpec]:
    """The paper's models. Small gammas are fitted through a path of gammas (continuation):
    from the N4SID start they stall in a poor local minimum (README, "Small gamma").

    Returns
    -------
    list of ModelSpec
        RNN, LSTM, SRNN, ci-RNN, Theta and Theta_15, _10, _8, _5 (path 10), _3 (path 10, 5), in
        this order (the order of the tables).
    """
    specs = [ModelSpec("RNN", "scp", "elman"), ModelSpec("LSTM", "lstm", activation="tanh"),
             ModelSpec("SRNN", "scp", "srnn"), ModelSpec("ci-RNN", "scp", "cirnn"),
             ModelSpec("Theta", "scp", "theta")]
    paths = {3.0: (10.0, 5.0), 5.0: (10.0,)}
    for g in (15.0, 10.0, 8.0, 5.0, 3.0):
        specs.append(ModelSpec(f"Theta_{g:g}", "scp", "theta_gamma", g, paths.get(g, ())))
    return specs


@dataclass(frozen=True)
class Settings:
    """Sizes and budgets. ``FULL`` is the paper-size run, ``QUICK`` a smoke test.

    Parameters
    ----------
    n : int
        States (and, for the SCP models, neurons); the LSTM's hidden units.
    max_iter : int
        Iterations of each fit (of the final stage of a gamma path).
    path_iter : int
        Iterations of each earlier stage of a gamma path.
    time_budget : float
        Seconds per fit.
    patience : int
        Early-stopping patience of each fit.
    n_train : int
        Training sequences of generated data.
    lipschitz_horizon, lipschitz_starts, lipschitz_steps : int
        Options of :func:`~rrnn_convex.analysis.lipschitz_lower_bound`.
    realisations, horizon : int
        Of the generalisation study (:func:`~rrnn_convex.experiments.generalisation.generalisation_data`);
        ``realisations = 0`` skips it.
    widths : tuple of float
        Input widths of the generalisation study.
    seed : int
        Seeds the data generation, the fits and the Lipschitz search.
    data : {"auto", "paper", "generated"}
        Which data (see :func:`load_data`).
    solver : str, optional
        The SDP solver of the fits and certificates.
    """

    n: int = 10
    max_iter: int = 60
    path_iter: int = 15
    time_budget: float = 840.0  # + start, certificate, evaluation: under 15 minutes per model
    patience: int = 15
    n_train: int = 100  # training sequences of generated data (the authors' files have 100)
    lipschitz_horizon: int = 500
    lipschitz_starts: int = 3
    lipschitz_steps: int = 150
    realisations: int = 20
    horizon: int = 1000
    widths: tuple = tuple(np.round(np.arange(0.5, 11.0, 1.0), 2))
    seed: int = 0
    data: str = "auto"  # "auto" (authors' files when present), "paper", "generated"
    solver: str | None = None


FULL = Settings()
QUICK = Settings(n=4, max_iter=2, path_iter=1, time_budget=60.0, n_train=6, lipschitz_horizon=100,
                 lipschitz_starts=1, lipschitz_steps=30, realisations=3, horizon=300,
                 widths=(1.0, 3.0, 6.0), data="generated")


def paper_data_folder(folder=None) -> Path | None:
    """Where the authors' files are expected: ``folder``, else ``$RRNN_DATA/msd_dataset``.

    Parameters
    ----------
    folder : str or os.PathLike, optional
        The authors' ``msd_dataset`` folder.

    Returns
    -------
    pathlib.Path or None
        The folder (not checked on disk), or None when ``folder`` is not given and
        ``RRNN_DATA`` is unset.
    """
    return data_folder("msd_dataset", folder)


def _paper_folder_to_use(settings: Settings, folder) -> Path | None:
    """The authors' folder to read for ``settings.data``, or None for generated data."""
    if settings.data == "generated":
        return None
    if settings.data == "paper":
        return require_data_folder("msd_dataset", folder)
    path = paper_data_folder(folder)  # "auto": a folder passed in is used; $RRNN_DATA's when present
    return path if path is not None and (folder is not None or path.is_dir()) else None


def load_data(settings: Settings, folder=None) -> tuple[dict, str]:
    """The comparison's data: the authors' files or the package's generated splits.

    Parameters
    ----------
    settings : Settings
        ``settings.data``: "paper" (the authors' files, required), "generated", or "auto" (the
        authors' files when ``folder`` is given or ``$RRNN_DATA/msd_dataset`` exists, else
        generated); ``seed`` and ``n_train`` for generated data.
    folder : str or os.PathLike, optional
        The authors' ``msd_dataset`` folder (default: ``$RRNN_DATA/msd_dataset``).

    Returns
    -------
    tuple of (dict, str)
        The splits as a dict name -> SequenceData, and a one-line description of their origin.

    Raises
    ------
    ValueError
        If ``settings.data`` is not "auto", "paper" or "generated".
    FileNotFoundError
        If "paper" is asked for without ``folder`` or ``RRNN_DATA``, or a folder passed in (or
        "paper"'s folder) does not hold the authors' files.
    """
    from ..datasets import load_paper_msd, make_datasets

    if settings.data not in ("auto", "paper", "generated"):
        raise ValueError(f"data: expected 'auto', 'paper' or 'generated', got {settings.data!r}")
    path = _paper_folder_to_use(settings, folder)
    if path is not None:
        return load_paper_msd(path).as_dict(), f"authors' files ({path})"
    return (make_datasets(seed=settings.seed, n_train=settings.n_train).as_dict(),
            f"generated: rrnn_convex.datasets.make_datasets(seed={settings.seed}, n_train={settings.n_train})")


# ---------------------------------------------------------------------- one model
def _slug(name: str) -> str:
    return name.lower().replace("-", "").replace(" ", "_")


def fit_spec(spec: ModelSpec, data: dict, s: Settings, progress: bool = False):
    """Train one model; returns (model, estimator).

    The ReLU Elman RNN starts from N4SID on ``train_u1`` embedded by
    :func:`~rrnn_convex.init.elman_from_lti`; the other SCP models from the estimator's own
    start; all are fitted on ``train_u3`` with ``val`` for early stopping.

    Parameters
    ----------
    spec : ModelSpec
    data : dict of str to SequenceData
        The splits of :func:`load_data` (``train_u3``, ``train_u1``, ``val`` used).
    s : Settings
    progress : bool
        Passed to the estimator.

    Returns
    -------
    model : ImplicitRNN or LSTM
        The fitted model (``est.model_``).
    est : RobustRNNRegressor or LSTMRegressor
        The fitted estimator.
    """
    tr, val = data["train_u3"], data["val"]
    if spec.kind == "lstm":
        from ..baselines.lstm import LSTMRegressor

        est = LSTMRegressor(s.n, max_iter=s.max_iter, time_budget=s.time_budget, patience=s.patience,
                            seed=s.seed, progress=progress)
        est.fit(tr.u, tr.y, validation=(val.u, val.y))
        return est.model_, est
    from ..fit import RobustRNNRegressor

    est = RobustRNNRegressor(s.n, s.n, model_set=spec.model_set, gamma=spec.gamma, activation=spec.activation,
                             max_iter=s.max_iter, time_budget=s.time_budget, patience=s.patience, seed=s.seed,
                             solver=s.solver, progress=progress, gamma_path=spec.gamma_path, path_iter=s.path_iter)
    init = None
    if spec.model_set == "elman" and spec.activation == "relu":
        # the same N4SID model, embedded exactly in the ReLU Elman RNN by a state shift that
        # keeps the neurons active over the training inputs (init.elman_from_lti)
        from ..init import elman_from_lti, n4sid

        A, B, C, D = n4sid(data["train_u1"].u, data["train_u1"].y, s.n)
        init = elman_from_lti(A, B, C, D, u=tr.u)
    # Theta and Theta_gamma: the estimator's own start on the training data (N4SID orders 1..n
    # scored by simulation, initial states estimated per sequence, embedded in the first set of
    # the gamma path). The authors started from train_u1 because their N4SID needed a zero
    # initial state. Measured: that start gave validation NSE 0.0367 after 100 iterations
    # (Theta), this one 0.0309 after 40
    est.fit(tr.u, tr.y, validation=(val.u, val.y), init_model=init)
    return est.model_, est


def _save_model(model, path: Path) -> None:
    from .._io import atomic_path
    from ..model import ImplicitRNN

    if isinstance(model, ImplicitRNN):
        model.save(path)
        return
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, kind=np.array(type(model).__name__),
                     **{k: getattr(model, k) for k in model.__dataclass_fields__})


def evaluate(spec: ModelSpec, model, est, data: dict, s: Settings, seconds: float, gen_data) -> dict:
    """The table row of one trained model (and its generalisation curve).

    An ImplicitRNN whose estimator has no certified ``certificate_`` is certified here (minimal
    gamma); the LSTM gets none.

    Parameters
    ----------
    spec : ModelSpec
    model : ImplicitRNN or LSTM
    est : object
        The fitted estimator (``certificate_``, ``n_iter_``, ``history_``, ``path_`` are read
        where present).
    data : dict of str to SequenceData
        With ``test_u1`` .. ``test_u4`` and ``val``.
    s : Settings
    seconds : float
        The fit's wall time.
    gen_data : dict or None
        Records of :func:`~rrnn_convex.experiments.generalisation.generalisation_data`; None
        skips the generalisation curve.

    Returns
    -------
    dict
        JSON-ready: model, kind, model_set, gamma_set, gamma_path, ``nse_<test>`` and
        ``nse_val`` (mean over sequences and channels), contracting, certified_gamma, verified,
        lipschitz_lb, iterations, seconds, path, history and, with ``gen_data``,
        generalisation (``widths``, ``median_nse``).
    """
    from ..analysis import lipschitz_lower_bound
    from .generalisation import generalisation_study
    from ..certify import certify
    from ..metrics import nse
    from ..model import ImplicitRNN

    row = {"model": spec.name, "kind": spec.kind, "model_set": spec.model_set, "gamma_set": spec.gamma,
           "gamma_path": list(spec.gamma_path)}
    for k in TESTS + ("val",):
        row[f"nse_{k}"] = float(np.mean(nse(model.simulate(data[k].u), data[k].y)))
    cert = None
    if isinstance(model, ImplicitRNN):
        cert = getattr(est, "certificate_", None)
        if cert is None or not cert.certified:
            # baselines (RNN) are certified after the fact where possible; not required to be
            cert = certify(model, solver=s.solver)
    row["contracting"] = bool(cert is not None and cert.certified)
    row["certified_gamma"] = None if cert is None or cert.gamma is None else float(cert.gamma)
    row["verified"] = bool(cert is not None and cert.certified and cert.verify(model).ok)
    # ImplicitRNN: exact adjoint; LSTM: casadi reverse mode through its symbolic call
    lb = lipschitz_lower_bound(model, horizon=s.lipschitz_horizon, starts=s.lipschitz_starts,
                               steps=s.lipschitz_steps, seed=s.seed)
    row["lipschitz_lb"] = float(lb.value)
    row["iterations"] = int(getattr(est, "n_iter_", len(getattr(est, "history_", []))))
    row["seconds"] = float(seconds)
    row["path"] = list(getattr(est, "path_", []))
    study = None
    if gen_data is not None:
        sim = model if isinstance(model, ImplicitRNN) else model.simulate
        study = generalisation_study(sim, data=gen_data, batched=not isinstance(model, ImplicitRNN))
    if study is not None:
        row["generalisation"] = {"widths": [float(w) for w in study.widths],
                                 "median_nse": [float(v) for v in study.median()]}
    row["history"] = [{k: h.get(k) for k in ("loss", "val_nse", "mu", "accepted", "margin", "seconds")}
                      for h in getattr(est, "history_", [])]
    return row


# ---------------------------------------------------------------------- the run
@dataclass
class Run:
    """Where a run keeps its files, and what it did.

    Parameters
    ----------
    out : pathlib.Path
        The output folder.
    rows : list of dict
        The table rows (:func:`evaluate`), in the order of :func:`default_specs`.
    skipped : list of str
        Models finished by an earlier run (read back, not trained).
    data_source : str
        One line saying where the data came from.
    """

    out: Path
    rows: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    data_source: str = ""


def run(out="msd_results", *, quick: bool = False, models=None, settings: Settings | None = None,
        progress: bool = False, log=print, folder=None) -> Run:
    """Train and evaluate every model (or the names in ``models``), resuming from ``out``.

    Parameters
    ----------
    out : str or os.PathLike
        Output folder; a rerun with the same folder skips the finished models.
    quick : bool
        Use ``QUICK`` (generated data, tiny budgets) instead of ``FULL``.
    models : list of str, optional
        Only these model names (:func:`default_specs`).
    settings : Settings, optional
        Overrides the defaults (``QUICK`` with ``quick=True``, else ``FULL``).
    progress : bool
        Show the fits' progress bars.
    log : callable
        Called with every line of the report.
    folder : str or os.PathLike, optional
        The authors' ``msd_dataset`` folder (default: ``$RRNN_DATA/msd_dataset``; see
        :func:`load_data`). Not part of the settings: a run may be resumed with the data elsewhere.

    Returns
    -------
    Run
        Its ``rows`` are the table rows (dicts), finished ones included.

    Raises
    ------
    ValueError
        If ``models`` names an unknown model, or ``out`` holds a run with other settings.
    FileNotFoundError
        As :func:`load_data`.
    """
    s = settings or (QUICK if quick else FULL)
    specs = default_specs()
    if models is not None:
        names = {sp.name for sp in specs}
        unknown = [m for m in models if m not in names]
        if unknown:
            raise ValueError(f"models: unknown {unknown}; expected some of {sorted(names)}")
        specs = [sp for sp in specs if sp.name in models]
    out = Path(out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "models").mkdir(parents=True, exist_ok=True)
    settings_file = out / "settings.json"
    mine = json.dumps(asdict(s), sort_keys=True, default=float)
    if settings_file.exists() and settings_file.read_text() != mine:
        raise ValueError(f"out: {out} holds a run with other settings ({settings_file}); use another folder")
    write_text_atomic(settings_file, mine)
    data, source = load_data(s, folder)
    result = Run(out, data_source=source)
    log(f"# msd experiment: {platform.machine()}, {os.cpu_count()} cores; data: {source}")
    gen_data = None
    for spec in specs:
        res_file = out / "results" / f"{_slug(spec.name)}.json"
        if res_file.exists():
            result.rows.append(json.loads(res_file.read_text()))
            result.skipped.append(spec.name)
            log(f"{spec.name:>9}: done before ({res_file})")
            continue
        if gen_data is None and s.realisations > 0:
            from .generalisation import generalisation_data
            gen_data = generalisation_data(list(s.widths), s.realisations, s.horizon, s.seed)
        t0 = time.perf_counter()
        model, est = fit_spec(spec, data, s, progress)
        secs = time.perf_counter() - t0
        _save_model(model, out / "models" / f"{_slug(spec.name)}.npz")
        row = evaluate(spec, model, est, data, s, secs, gen_data)
        write_text_atomic(res_file, json.dumps(row, indent=1, default=float))
        result.rows.append(row)
        log(_line(row))
    order = {sp.name: i for i, sp in enumerate(default_specs())}
    result.rows.sort(key=lambda r: order.get(r["model"], 99))
    write_tables(result.rows, out, source)
    try:
        write_figures(result.rows, out, data)
    except ImportError as exc:
        log(f"figures skipped: {exc}")
    return result


def _fmt(x, spec=".4f"):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def _verified(r: dict) -> str:
    """"True"/"False" for a certified model's re-check, "-" for a model without a certificate."""
    return str(r["verified"]) if r.get("contracting") else "-"


def _line(r: dict) -> str:
    tests = " ".join(_fmt(r[f"nse_{k}"]) for k in TESTS)
    return (f"{r['model']:>9}: {tests} | val {_fmt(r['nse_val'])} | gamma {_fmt(r['certified_gamma'], '.3f')} "
            f"lb {_fmt(r['lipschitz_lb'], '.3f')} | {r['iterations']} it {r['seconds']:.0f} s "
            f"verified {_verified(r)}")


COLUMNS = ("model", *(f"nse_{k}" for k in TESTS), "nse_val", "certified_gamma", "lipschitz_lb", "verified",
           "iterations", "seconds")


def write_tables(rows, out: Path, source: str = "") -> None:
    """``results.csv`` and ``results.md`` (with the paper's published NSE where there is one).

    The published values are shown only when ``source`` says the data are the authors' files.

    Parameters
    ----------
    rows : list of dict
        Rows of :func:`evaluate`.
    out : pathlib.Path
        The folder written to (atomically).
    source : str
        The data description of :func:`load_data` (first line of ``results.md``).
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([["" if r.get(c) is None else r.get(c) for c in COLUMNS] for r in rows])
    write_text_atomic(out / "results.csv", buf.getvalue())
    md = [f"Data: {source}" if source else "", "",
          "| model | test_u1 | test_u2 | test_u3 | test_u4 | val | certified gamma | Lipschitz lb | verified "
          "| iterations | seconds | paper u1/u2/u3/u4 |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    authors = source.startswith("authors'")
    for r in rows:
        paper = PAPER_NSE.get(r["model"]) if authors else None  # comparable on the same data only
        md.append(f"| {r['model']} | " + " | ".join(_fmt(r[f"nse_{k}"]) for k in TESTS) +
                  f" | {_fmt(r['nse_val'])} | {_fmt(r['certified_gamma'], '.3f')} | {_fmt(r['lipschitz_lb'], '.3f')} "
                  f"| {_verified(r)} | {r['iterations']} | {r['seconds']:.0f} | "
                  f"{'/'.join(f'{x:.4f}' for x in paper) if paper else '-'} |")
    write_text_atomic(out / "results.md", "\n".join(md) + "\n")


def write_figures(rows, out: Path, data: dict) -> None:
    """The paper's Fig. 2 (NSE vs Lipschitz lower bound), Figs. 3-4 (generalisation) and traces.

    Writes ``fig_nse_vs_lipschitz.png``, ``fig_generalisation.png`` (only when a row has a
    generalisation curve) and ``fig_traces.png`` (the saved models LSTM, Theta, Theta_3 and
    Theta_10 that exist under ``out/models``) into ``out``.

    Parameters
    ----------
    rows : list of dict
        Rows of :func:`evaluate`.
    out : pathlib.Path
        The run's folder.
    data : dict of str to SequenceData
        With ``test_u3``.

    Raises
    ------
    rrnn_convex.errors.MissingDependency
        Without matplotlib (an ImportError).
    """
    from ..plots import figure, save_figure

    fig = figure(6.5, 4.5)
    ax = fig.subplots()
    for r in rows:
        robust = r["model"].startswith("Theta")
        ax.plot(r["lipschitz_lb"], r["nse_test_u3"], "o" if robust else "s",
                color="tab:blue" if robust else "tab:gray")
        ax.annotate(r["model"], (r["lipschitz_lb"], r["nse_test_u3"]), textcoords="offset points",
                    xytext=(4, 4), fontsize="small")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    for axis in (ax.xaxis, ax.yaxis):  # plain 2, 5, 10, ... labels; none on the minor ticks
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"measured Lipschitz lower bound $\hat\gamma$ (log)")
    ax.set_ylabel("NSE on test_u3 (log; lower is better)")
    ax.set_title("Accuracy against robustness (paper Fig. 2)")
    ax.grid(alpha=0.3, which="both")
    save_figure(fig, out / "fig_nse_vs_lipschitz.png")

    curves = [r for r in rows if r.get("generalisation")]
    if curves:
        fig = figure(7.5, 4.5)
        ax = fig.subplots()
        for r in curves:
            g = r["generalisation"]
            ax.plot(g["widths"], g["median_nse"], "o-" if r["model"].startswith("Theta") else "s--",
                    label=r["model"], ms=3)
        ax.axvspan(0, 3.0, color="tab:green", alpha=0.08, label="training width (<= 3)")
        ax.set_yscale("log")
        ax.set_xlabel("input width w (input levels uniform on [-w/2, w/2])")
        ax.set_ylabel("median NSE on the true system (log)")
        ax.set_title("Generalisation to larger inputs (paper Figs. 3-4)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small", ncol=2)
        save_figure(fig, out / "fig_generalisation.png")

    models_dir = out / "models"
    test = data["test_u3"]
    fig = figure(9, 4.5)
    ax = fig.subplots()
    T = min(800, test.T)
    t = np.arange(T) * 0.5
    ax.plot(t, test.y[0, :T, 0], color="k", lw=1.5, label="measured (test_u3)")
    for name in ("LSTM", "Theta", "Theta_3", "Theta_10"):
        f = models_dir / f"{_slug(name)}.npz"
        if not f.exists():
            continue
        model = _load_model(f)
        ax.plot(t, model.simulate(test.u[:1, :T])[0, :, 0], lw=1, label=name)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("position of the last cart")
    ax.set_title("Example outputs, zero initial state")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    save_figure(fig, out / "fig_traces.png")


def _load_model(path: Path):
    from ..model import ImplicitRNN

    with np.load(path, allow_pickle=False) as z:
        if "kind" in z.files and str(z["kind"]) == "LSTM":
            from ..baselines.lstm import LSTM
            return LSTM(**{k: z[k] for k in z.files if k != "kind"})
    return ImplicitRNN.load(path)


def main(argv=None) -> int:
    """The command line ``rrnn experiment msd`` / ``python -m rrnn_convex.experiments.msd``.

    Runs :func:`run` with ``--out``, ``--quick``, ``--models``, ``--data`` and ``--progress``
    and prints ``results.md``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every model that should carry a certificate has a verified one (the LSTM and
        the sets registered with ``certifies=False`` excepted), else 1.

    Raises
    ------
    SystemExit
        On invalid arguments or ``--help`` (argparse).
    ValueError, FileNotFoundError
        As :func:`run`.
    """
    ap = argparse.ArgumentParser(prog="rrnn experiment msd", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="msd_results", help="output folder (reused to resume)")
    ap.add_argument("--quick", action="store_true", help="smoke test: generated data, tiny budgets")
    ap.add_argument("--models", nargs="+", default=None, help="subset of model names")
    ap.add_argument("--data", default=None,
                    help="the authors' msd_dataset folder (default: $RRNN_DATA/msd_dataset when present, "
                         "else generated data)")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    res = run(args.out, quick=args.quick, models=args.models, progress=args.progress, folder=args.data)
    print((Path(args.out) / "results.md").read_text())
    uncertified = ModelSet.names_where(certifies=False)
    return 0 if all(r["verified"] or r["kind"] == "lstm" or r["model_set"] in uncertified for r in res.rows) else 1


__all__ = ["ModelSpec", "Settings", "FULL", "QUICK", "default_specs", "paper_data_folder", "load_data",
           "fit_spec", "run", "evaluate", "write_tables", "write_figures", "PAPER_NSE", "main"]

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

