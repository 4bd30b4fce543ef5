"""Figures of rrnn_convex.plots: they render to PNG files, check their inputs, and say how to get
matplotlib when it is missing (the optional ``plot`` extra)."""
import numpy as np
import pytest

import rrnn_convex.plots as plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history(k=6):
    rng = np.random.default_rng(0)
    loss = np.cumprod(np.full(k, 0.6)) * 1e3
    return [{"iteration": i, "loss": float(loss[i]), "val_nse": float(0.5 * 0.8 ** i), "mu": 1e-3 * 2 ** i,
             "accepted": i != 2, "margin": float(0.1 * 0.9 ** i), "seconds": float(rng.uniform(0.5, 1.5)),
             "info": ""} for i in range(k)]


def test_missing_matplotlib_names_the_extra(monkeypatch):
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(__import__("sys").modules, mod, None)
    with pytest.raises(ImportError, match=r'pip install "rrnn_convex\[plot\]"'):
        plots.plot_history(_history())


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib", reason='matplotlib not installed (pip install "rrnn_convex[plot]")')


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def test_fit_plot_writes_a_png_with_one_panel_pair_per_output(mpl, tmp_path):
    t = np.arange(200)
    y = np.stack([np.sin(0.05 * t), np.cos(0.03 * t)], axis=1)
    fig = plots.plot_fit(y[None], y[None] + 0.05, ts=0.5, output_names=["x", "v"], unit="m", path=tmp_path / "f.png")
    assert _is_png(tmp_path / "f.png")
    assert len(fig.axes) == 4  # data + error for each of the two outputs
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["x [m]", "error [m]", "v [m]", "error [m]"]
    assert fig.axes[-1].get_xlabel() == "time [s]"
    assert "NSE" in fig.axes[0].get_legend().get_texts()[1].get_text()
    with pytest.raises(ValueError, match="same shape"):
        plots.plot_fit(y, y[:10])
    with pytest.raises(ValueError, match="output_names"):
        plots.plot_fit(y, y, output_names=["x"])
    with pytest.raises(ValueError, match=".png"):
        plots.plot_fit(y, y, path=tmp_path / "f.jpg")


def test_tradeoff_plot_marks_certified_bounds_and_violations(mpl, tmp_path):
    rows = [(3.0, 0.40, 2.7), (5.0, 0.25, 4.6), (10.0, 0.13, None), (None, 0.06, 25.0)]
    fig = plots.plot_tradeoff(rows, title="sweep", path=tmp_path / "t.png")
    assert _is_png(tmp_path / "t.png")
    ax_n, ax_l = fig.axes[:2]
    assert "gamma" in ax_n.get_xlabel() and ax_n.get_ylabel().startswith("NSE")
    texts = [t.get_text() for t in ax_n.get_legend().get_texts()]
    assert any("no gain bound" in t for t in texts)
    # a lower bound above its certified gamma is impossible for a certified model: it is flagged
    fig = plots.plot_tradeoff([(3.0, 0.4, 3.5), (5.0, 0.2, 4.0)])
    assert any("violation" in t.get_text() for t in fig.axes[1].get_legend().get_texts())
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_tradeoff([])
    with pytest.raises(ValueError, match="triples"):
        plots.plot_tradeoff([(1.0, 0.5)])


def test_history_plot_from_a_fit_history(mpl, tmp_path):
    fig = plots.plot_history(_history(), path=tmp_path / "h.png")
    assert _is_png(tmp_path / "h.png")
    ylabels = [ax.get_ylabel() for ax in fig.axes[:4]]
    assert ylabels[1] == "validation NSE" and "margin" in ylabels[2] and "mu" in ylabels[3]
    assert any("rejected" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    # one iteration, NaN / None entries (JSON null): still a figure
    one = [dict(_history(1)[0], val_nse=None, margin=float("nan"))]
    plots.plot_history(one, path=tmp_path / "h1.png")
    assert _is_png(tmp_path / "h1.png")
    with pytest.raises(ValueError, match="empty"):
        plots.plot_history([])
    with pytest.raises(ValueError, match="missing keys"):
        plots.plot_history([{"loss": 1.0}])


def test_plots_do_not_change_the_pyplot_backend(mpl):
    import matplotlib
    before = matplotlib.get_backend()
    plots.plot_history(_history())
    assert matplotlib.get_backend() == before
