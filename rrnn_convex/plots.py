"""Figures for fits and certificates (optional: ``pip install "rrnn_convex[plot]"``).

* :func:`plot_fit` — measured vs simulated output with the error underneath;
* :func:`plot_tradeoff` — the robustness / accuracy trade-off of a sweep over gamma: NSE
  against the certified gamma, and the empirical Lipschitz lower bound against gamma (it must
  stay below the diagonal gamma_hat = gamma);
* :func:`plot_history` — loss, validation NSE, LMI margin and damping of a fit, per iteration.

Every function returns a :class:`matplotlib.figure.Figure` and, with ``path=``, also writes a
PNG atomically. Figures are drawn on matplotlib's Agg canvas without pyplot, so importing this
module never changes the matplotlib backend of a running session (figures still display in
Jupyter).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ._io import atomic_path
from .errors import MissingDependency

__all__ = ["plot_fit", "plot_tradeoff", "plot_history", "save_figure", "figure", "require_matplotlib", "PLOT_HINT"]

PLOT_HINT = 'plotting needs matplotlib: pip install "rrnn_convex[plot]"'


def require_matplotlib():
    """Import matplotlib's Figure and Agg canvas.

    Returns
    -------
    Figure, FigureCanvasAgg : type
        ``matplotlib.figure.Figure`` and ``matplotlib.backends.backend_agg.FigureCanvasAgg``.

    Raises
    ------
    rrnn_convex.errors.MissingDependency
        matplotlib is not installed (an ImportError naming the ``plot`` extra).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependency(PLOT_HINT) from None
    return Figure, FigureCanvasAgg


def figure(width: float, height: float):
    """A matplotlib figure of ``width`` x ``height`` inches, constrained layout, not tied to pyplot.

    Parameters
    ----------
    width, height : float
        Size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas attached, ready for :func:`save_figure`.

    Raises
    ------
    rrnn_convex.errors.MissingDependency
        When matplotlib is not installed (the ``[plot]`` extra).
    """
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike
        Must end in ``.png``.
    dpi : int

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        The path does not end in ``.png``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plot: expected a .png path, got {str(path)!r}")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path


def _channels(arr, name: str, sequence: int) -> np.ndarray:
    """(T, p) float array of one sequence from (T,), (T, p) or (batch, T, p)."""
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 1:
        return a[:, None]
    if a.ndim == 2:
        return a
    if a.ndim == 3:
        if not -a.shape[0] <= sequence < a.shape[0]:
            raise ValueError(f"sequence: expected an index below {a.shape[0]}, got {sequence}")
        return a[sequence]
    raise ValueError(f"{name}: expected shape (T,), (T, p) or (batch, T, p), got {a.shape}")


def plot_fit(y, y_hat, *, ts: float | None = None, sequence: int = 0, output_names=None, unit: str = "",
             title: str | None = None, path=None):
    """Measured output ``y`` and simulated output ``y_hat`` over time, with the error below.

    ``y`` and ``y_hat``: (T,), (T, p) or (batch, T, p) (then sequence ``sequence`` is shown).
    ``ts``: sampling period in seconds (x-axis in seconds; samples otherwise). ``output_names``:
    one label per channel; ``unit``: the outputs' unit for the axis labels. The legend shows the
    NSE ``||y_hat - y|| / ||y - mean(y)||`` of each channel over the plotted sequence.

    Parameters
    ----------
    y, y_hat : array_like
        Measured and simulated outputs.
    ts : float, optional
    sequence : int
    output_names : list of str, optional
    unit : str
    title : str, optional
    path : str or os.PathLike, optional
        Also write the figure as a PNG.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        Shapes that differ or are not supported, a sequence index out of range, the wrong
        number of names, or a path without ``.png``.
    rrnn_convex.errors.MissingDependency
        matplotlib is not installed.
    """
    Y = _channels(y, "y", sequence)
    Yh = _channels(y_hat, "y_hat", sequence)
    if Y.shape != Yh.shape:
        raise ValueError(f"y and y_hat: expected the same shape, got {Y.shape} and {Yh.shape}")
    T, p = Y.shape
    names = list(output_names) if output_names is not None else (["y"] if p == 1 else [f"y{i}" for i in range(p)])
    if len(names) != p:
        raise ValueError(f"output_names: expected {p} names, got {len(names)}")
    t = np.arange(T) * (ts if ts else 1.0)
    xlabel = "time [s]" if ts else "sample"
    ulab = f" [{unit}]" if unit else ""
    fig = figure(10, 2.4 + 2.6 * p)
    axes = fig.subplots(2 * p, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3] * p})
    for i in range(p):
        ax, ax_e = axes[2 * i], axes[2 * i + 1]
        err = Yh[:, i] - Y[:, i]
        denom = np.linalg.norm(Y[:, i] - Y[:, i].mean())
        nse_txt = f"NSE {np.linalg.norm(err) / denom:.4f}" if denom > 0 else "NSE undefined (constant y)"
        ax.plot(t, Y[:, i], color="0.25", lw=1.2, label="measured")
        ax.plot(t, Yh[:, i], color="tab:orange", lw=1.2, ls="--", label=f"model ({nse_txt})")
        ax.set_ylabel(f"{names[i]}{ulab}")
        ax.legend(loc="upper right", fontsize="small", framealpha=0.85)
        ax.grid(alpha=0.3)
        ax_e.plot(t, err, color="tab:red", lw=0.9)
        ax_e.axhline(0.0, color="0.5", lw=0.8)
        ax_e.set_ylabel(f"error{ulab}")
        ax_e.grid(alpha=0.3)
    axes[-1].set_xlabel(xlabel)
    axes[-1].set_xlim(t[0], t[-1] if T > 1 else t[0] + 1)
    fig.suptitle(title or "Simulated vs measured output (error = model - measured)")
    if path is not None:
        save_figure(fig, path)
    return fig


def _finite(x) -> float:
    if x is None:
        return math.nan
    x = float(x)
    return x if math.isfinite(x) else math.nan


def plot_tradeoff(rows, *, title: str | None = None, path=None):
    """Robustness vs accuracy of a sweep over gamma: rows of ``(gamma, nse, lipschitz_lb)``.

    Left: NSE against the certified gamma (log axis). Right: the empirical Lipschitz lower
    bound against gamma with the line gamma_hat = gamma; every certified model must lie on or
    below it. A row with ``gamma`` None or inf is a model of Theta (no gain bound): its NSE is
    drawn as a dashed horizontal line. ``lipschitz_lb`` may be None (not measured).

    Parameters
    ----------
    rows : iterable of tuple
        ``(gamma, nse, lipschitz_lb)`` per model.
    title : str, optional
    path : str or os.PathLike, optional
        Also write the figure as a PNG.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        No rows, a row that is not a triple, or a gamma that is not positive.
    rrnn_convex.errors.MissingDependency
        matplotlib is not installed.
    """
    require_matplotlib()
    from matplotlib.ticker import NullFormatter

    rows = [tuple(r) for r in rows]
    if not rows:
        raise ValueError("rows: expected at least one (gamma, nse, lipschitz_lb) row")
    for r in rows:
        if len(r) != 3:
            raise ValueError(f"rows: expected (gamma, nse, lipschitz_lb) triples, got {r!r}")
    bounded = sorted((float(g), _finite(e), _finite(lb)) for g, e, lb in rows
                     if g is not None and math.isfinite(float(g)))
    unbounded = [(_finite(e), _finite(lb)) for g, e, lb in rows if g is None or not math.isfinite(float(g))]
    for g, _, _ in bounded:
        if not g > 0:
            raise ValueError(f"rows: gamma must be positive, got {g}")
    fig = figure(11, 4.2)
    ax_n, ax_l = fig.subplots(1, 2)
    if bounded:
        g = np.array([r[0] for r in bounded])
        e = np.array([r[1] for r in bounded])
        lb = np.array([r[2] for r in bounded])
        ax_n.plot(g, e, "o-", color="tab:blue", label=r"$\Theta_\gamma$ models")
        for gi, ei in zip(g, e):
            if math.isfinite(ei):
                ax_n.annotate(f"{ei:.3f}", (gi, ei), textcoords="offset points", xytext=(4, 5), fontsize="x-small")
        ok = np.isfinite(lb)
        ax_l.plot(g[ok], lb[ok], "s", color="tab:green", label=r"measured lower bound $\hat\gamma$")
        lo, hi = float(g.min()), float(g.max())
        span = np.array([lo / 1.3, hi * 1.3])
        ax_l.plot(span, span, "k--", lw=1, label=r"certified bound $\hat\gamma = \gamma$")
        ax_l.fill_between(span, span, span * 0 + max(span[1], np.nanmax(lb, initial=0) * 1.1), color="tab:red",
                          alpha=0.08, label="impossible if certified")
        for ax in (ax_l, ax_n):
            ax.set_xscale("log")
            ax.set_xticks(g, [f"{x:g}" for x in g])
            ax.xaxis.set_minor_formatter(NullFormatter())
        bad = ok & (lb > g)
        if np.any(bad):
            ax_l.plot(g[bad], lb[bad], "x", color="tab:red", ms=10, mew=2, label=r"violation ($\hat\gamma > \gamma$)")
    else:
        ax_l.text(0.5, 0.5, r"no $\Theta_\gamma$ rows", ha="center", va="center", transform=ax_l.transAxes)
    for i, (e, lb) in enumerate(unbounded):
        if math.isfinite(e):
            lab = r"$\Theta$ (contracting, no gain bound)" + (f", lower bound {lb:.3g}" if math.isfinite(lb) else "")
            ax_n.axhline(e, color="tab:purple", ls="--", lw=1.2, label=lab if i == 0 else None)
    ax_n.set_xlabel(r"certified incremental $\ell_2$ gain bound $\gamma$")
    ax_n.set_ylabel("NSE  (lower is better)")
    ax_n.set_title("Accuracy vs robustness")
    ax_l.set_xlabel(r"certified bound $\gamma$")
    ax_l.set_ylabel(r"empirical Lipschitz lower bound $\hat\gamma$")
    ax_l.set_title(r"Certified vs measured gain")
    for ax in (ax_n, ax_l):
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path)
    return fig


def _wide(y) -> bool:
    """Positive values spanning more than a factor 20: worth a log axis."""
    y = np.asarray(y, dtype=float)
    y = y[np.isfinite(y)]
    return bool(y.size) and bool(np.all(y > 0)) and float(y.max() / y.min()) > 20.0


_HISTORY_KEYS = ("loss", "val_nse", "mu", "accepted", "margin")


def plot_history(history, *, title: str | None = None, path=None):
    """Per-iteration record of a fit (``RobustRNNRegressor.history_`` or a ``.history.json``).

    ``history``: a list of dicts with keys loss, val_nse, mu, accepted, margin (and optionally
    seconds, iteration). Four panels share the iteration axis: training loss (sum of squared
    errors, log scale; rejected steps marked), validation NSE, the certificate's LMI margin
    (smallest eigenvalue of the dissipation LMI, log scale) and the Levenberg-Marquardt damping
    mu. The top axis shows the cumulative wall time when ``seconds`` is recorded.

    Parameters
    ----------
    history : iterable of dict
    title : str, optional
    path : str or os.PathLike, optional
        Also write the figure as a PNG.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        An empty history, or an entry without one of the keys above.
    rrnn_convex.errors.MissingDependency
        matplotlib is not installed.
    """
    require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    history = list(history)
    if not history:
        raise ValueError("history: empty (the fit recorded no iterations)")
    for i, h in enumerate(history):
        missing = [k for k in _HISTORY_KEYS if k not in h]
        if missing:
            raise ValueError(f"history[{i}]: missing keys {missing} (expected {list(_HISTORY_KEYS)})")
    it = np.array([h.get("iteration", i) for i, h in enumerate(history)], dtype=float) + 1
    col = {k: np.array([_finite(h[k]) for h in history]) for k in ("loss", "val_nse", "mu", "margin")}
    acc = np.array([bool(h["accepted"]) for h in history])
    fig = figure(9, 8)
    axes = fig.subplots(4, 1, sharex=True)
    ax = axes[0]
    ax.plot(it, col["loss"], "-", color="tab:blue", lw=1.2)
    ax.plot(it[acc], col["loss"][acc], "o", color="tab:blue", ms=4, label="accepted step")
    if np.any(~acc):
        ax.plot(it[~acc], col["loss"][~acc], "x", color="tab:red", ms=7, label="rejected (no certified decrease)")
    ax.set_ylabel("training loss\n(sum sq. error)")
    ax.legend(fontsize="small")
    panels = [(axes[1], "val_nse", "validation NSE", "tab:green", False),
              (axes[2], "margin", "LMI margin\n(min eigenvalue)", "tab:purple", True),
              (axes[3], "mu", "damping mu", "tab:gray", True)]
    for a, key, label, color, logy in panels:
        y = col[key]
        if np.any(np.isfinite(y)):
            a.plot(it, y, "o-", color=color, ms=3, lw=1.2)
            if key == "val_nse":
                k = int(np.nanargmin(y))
                a.plot(it[k], y[k], "*", color="k", ms=10, label=f"best {y[k]:.4f} (iteration {int(it[k])})")
                a.legend(fontsize="small")
        else:
            a.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=a.transAxes, color="0.4")
        a.set_ylabel(label)
        if logy and _wide(y):
            a.set_yscale("log")
    if _wide(col["loss"]):
        axes[0].set_yscale("log")
    for a in axes:
        a.grid(alpha=0.3, which="both")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("iteration")
    if len(it) == 1:
        axes[-1].set_xlim(it[0] - 0.5, it[0] + 0.5)
    secs = np.cumsum([_finite(h.get("seconds")) for h in history])
    if len(it) >= 2 and np.all(np.isfinite(secs)) and np.all(np.diff(secs) > 0) and np.all(np.diff(it) > 0):
        top = axes[0].secondary_xaxis("top", functions=(lambda x: np.interp(x, it, secs),
                                                        lambda s: np.interp(s, secs, it)))
        top.set_xlabel("cumulative time [s]")
    fig.suptitle(title or "Fit history (every accepted iterate is certified)")
    if path is not None:
        save_figure(fig, path)
    return fig
