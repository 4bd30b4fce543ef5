"""Parallel sweeps: a grid of fits in worker processes (joblib) or on a local Dask cluster.

A failed cell (here: an SRNN asked for with n_states != n_neurons) is a row with its error; the
other cells still run, and each certified row's certificate is re-verified from its weights.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rrnn_convex.sweep import grid, sweep

from conftest import random_rnn


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    teacher = random_rnn(rng, 2, 3, 1, 1, activation="relu", scale=0.7)
    u = rng.uniform(-1, 1, (3, 80, 1))
    y = teacher.simulate(u) + 0.01 * rng.standard_normal((3, 80, 1))
    uv = rng.uniform(-1, 1, (1, 120, 1))
    return u, y, (uv, teacher.simulate(uv))


def _check(res, n_ok):
    ok = [r for r in res.rows if r["status"] == "ok"]
    assert len(ok) == n_ok
    for r, m in zip(res.rows, res.models):
        if r["status"] == "ok":
            assert r["verified"] and m is not None
            if r["gamma"] is not None:
                assert r["certified_gamma"] <= r["gamma"]
    failed = res.failed
    assert len(failed) == 1 and failed[0]["model_set"] == "srnn" and "n_neurons" in failed[0]["error"]
    assert res.to_csv().count("\n") == len(res.rows) + 1


def test_joblib_sweep_reports_a_failed_cell_and_keeps_the_others(data):
    u, y, val = data
    res = sweep(u, y, val, gammas=(2.0, 4.0), seeds=(0,), model_sets=("theta_gamma", "theta", "srnn"),
                n_states=2, n_neurons=3, n_jobs=2, max_iter=2)
    assert [(r["model_set"], r["gamma"]) for r in res.rows] == [("theta_gamma", 2.0), ("theta_gamma", 4.0),
                                                                 ("theta", None), ("srnn", None)]
    assert res.backend.startswith("joblib")
    _check(res, 3)


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                    reason='needs dask.distributed (pip install "rrnn_convex[dask]")')
def test_dask_sweep_on_a_local_cluster(data):
    from dask.distributed import LocalCluster

    u, y, val = data
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                      dashboard_address=None) as cluster:
        res = sweep(u, y, val, gammas=(3.0, 5.0), seeds=(1,), model_sets=("theta_gamma", "srnn"), n_states=2,
                    n_neurons=3, scheduler=cluster.scheduler_address, max_iter=2)
    assert res.backend.startswith("dask")
    assert [(r["model_set"], r["gamma"], r["seed"]) for r in res.rows] == [
        ("theta_gamma", 3.0, 1), ("theta_gamma", 5.0, 1), ("srnn", None, 1)]
    _check(res, 2)


def test_grid_arguments():
    assert len(grid((1.0, 2.0), (0, 1), ("theta_gamma", "theta"))) == 6
    with pytest.raises(ValueError, match="model_sets: expected some of"):
        grid((1.0,), (0,), ("gru",))
    with pytest.raises(ValueError, match="gammas: model set 'theta_gamma' needs"):
        grid((), (0,), ("theta_gamma",))
    with pytest.raises(ValueError, match="gammas"):
        grid((-1.0,), (0,), ("theta_gamma",))


def test_rrnn_sweep_command(data, tmp_path):
    import subprocess
    import sys

    u, y, _ = data
    rows = ["sequence,u,y"] + [f"{b},{float(u[b, t, 0])!r},{float(y[b, t, 0])!r}" for b in range(u.shape[0]) for t in range(u.shape[1])]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "table.csv"
    proc = subprocess.run([sys.executable, "-m", "rrnn_convex", "sweep", str(tmp_path / "d.csv"), "--inputs", "u",
                           "--outputs", "y", "--states", "2", "--neurons", "3", "--gammas", "3", "--model-sets",
                           "theta_gamma", "srnn", "--max-iter", "1", "--jobs", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # the srnn cell (n != q) fails: reported, not fatal
    assert "cell srnn" in proc.stderr and "Traceback" not in proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0].startswith("model_set,gamma,seed,status") and lines[1].startswith("theta_gamma,3.0,0,ok")


def test_a_cell_reports_the_best_finite_validation_score(monkeypatch):
    """A history whose first validation score is nan (no model yet) must not hide the others:
    min() with a nan first returns the nan."""
    import rrnn_convex.fit as fit_module
    from rrnn_convex.sweep import Cell, fit_cell

    class Fitted:
        def __init__(self, **params):
            self.params = params

        def fit(self, u, y, validation=None):
            self.history_ = [{"val_nse": float("nan"), "loss": 3.0}, {"val_nse": 0.5, "loss": 2.0},
                             {"val_nse": 0.25, "loss": 1.0}]
            self.n_iter_ = 3
            self.certificate_ = None
            self.model_ = random_rnn(np.random.default_rng(0), 2, 2, 1, 1)
            return self

    monkeypatch.setattr(fit_module, "RobustRNNRegressor", Fitted)
    u, y = np.zeros((1, 5, 1)), np.zeros((1, 5, 1))
    row, _ = fit_cell(Cell("theta", None, 0), u, y, (u, y), {})
    assert row["status"] == "ok", row
    assert row["val_nse"] == 0.25
    row, _ = fit_cell(Cell("theta", None, 0), u, y, None, {})
    assert row["val_nse"] is None
