"""Issue 17's split of analysis.py by job, and data folders passed in or named by RRNN_DATA.

* the adjoint (rrnn_convex.adjoint) against finite differences, the initial-state gradient
  included, and the old import path (rrnn_convex.analysis) serving the same objects;
* the generalisation study (rrnn_convex.experiments.generalisation) against a direct NSE, and
  the layering: importing analysis does not import the experiments;
* data folders: an argument wins, else $RRNN_DATA/<name>, else a clear error when the folder is
  needed (the paper's files) or a documented fallback when it is not (generated data, the
  nonlinear_benchmarks cache).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rrnn_convex import adjoint, analysis
from rrnn_convex.datasets import DATA_ENV, data_folder, require_data_folder
from rrnn_convex.experiments import generalisation, msd, sysid
from rrnn_convex.metrics import nse

from conftest import random_rnn


# ------------------------------------------------------------------------ the adjoint
def test_the_adjoint_gives_the_initial_state_gradient_and_the_input_gradient():
    rng = np.random.default_rng(7)
    model = random_rnn(rng, n=3, q=4, m=2, p=2, activation="tanh", E_far=True)
    B, T = 2, 25
    u = rng.standard_normal((B, T, 2))
    x0 = rng.standard_normal((B, 3))
    g = rng.standard_normal((B, T, 2))
    _, xs = model.simulate(u, x0, return_states=True)
    _, _, lam0 = adjoint.rnn_adjoint(model, u, xs, g)
    eps = 1e-6
    for b in range(B):  # <g, dy/dx0 d> = <lam_0, d>, by central differences
        d = rng.standard_normal(3)
        fd = (model.simulate(u[b], x0[b] + eps * d) - model.simulate(u[b], x0[b] - eps * d)) / (2 * eps)
        assert lam0[b] @ d == pytest.approx(np.sum(g[b] * fd), rel=1e-6, abs=1e-8)
    gu = adjoint.rnn_input_vjp(model, u, xs, g)
    _, gu_ref = adjoint.implicit_rnn_vjp(model, u, g, x0=x0)
    np.testing.assert_array_equal(gu, gu_ref)
    d = rng.standard_normal(u.shape)
    fd = (model.simulate(u + eps * d, x0) - model.simulate(u - eps * d, x0)) / (2 * eps)
    assert np.sum(gu * d) == pytest.approx(np.sum(g * fd), rel=1e-6)


def test_analysis_still_serves_the_moved_names():
    assert analysis.implicit_rnn_vjp is adjoint.implicit_rnn_vjp
    assert analysis.rnn_adjoint is adjoint.rnn_adjoint
    for name in ("GeneralisationStudy", "generalisation_data", "generalisation_study", "DEFAULT_WIDTHS"):
        assert getattr(analysis, name) is getattr(generalisation, name)
        assert name in analysis.__all__
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        analysis.no_such_name  # noqa: B018


@pytest.mark.parametrize("module, absent", [("rrnn_convex.analysis", "rrnn_convex.experiments"),
                                            ("rrnn_convex.adjoint", "rrnn_convex.analysis")])
def test_lower_layers_do_not_import_higher_ones(module, absent):
    code = f"import sys, {module}; print({absent!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------ the generalisation study
def test_generalisation_study_is_the_nse_after_the_washout():
    data = generalisation.generalisation_data(widths=[1.0, 3.0], realisations=2, horizon=40, seed=3)
    assert sorted(data) == [1.0, 3.0] and data[3.0].u.shape == (2, 40, 1)
    half = lambda u: 0.5 * np.tanh(u)  # noqa: E731
    study = generalisation.generalisation_study(half, data=data, washout=10)
    for i, w in enumerate([1.0, 3.0]):
        d = data[w]
        ref = [float(np.mean(nse(half(d.u[j]), d.y[j], init=10))) for j in range(2)]
        np.testing.assert_allclose(study.nse[i], ref, rtol=1e-12)
    assert study.horizon == 40 and study.seed == 3 and study.washout == 10
    np.testing.assert_array_equal(study.median(), np.median(study.nse, axis=1))


# ------------------------------------------------------------------------ data folders
@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    return monkeypatch


def test_a_folder_passed_in_wins_over_the_environment(no_env, tmp_path):
    no_env.setenv(DATA_ENV, str(tmp_path / "root"))
    assert data_folder("sysid", tmp_path / "mine") == tmp_path / "mine"
    assert data_folder("sysid") == tmp_path / "root" / "sysid"
    no_env.setenv(DATA_ENV, "")
    assert data_folder("sysid") is None


def test_a_needed_folder_without_argument_or_environment_is_a_clear_error(no_env, tmp_path):
    assert data_folder("msd_dataset") is None
    with pytest.raises(FileNotFoundError, match=r"folder: no msd_dataset folder given and RRNN_DATA is not set"):
        require_data_folder("msd_dataset")
    with pytest.raises(FileNotFoundError, match=r"--data: expected the sysid folder \(a directory\), got '.*nowhere'"):
        require_data_folder("sysid", tmp_path / "nowhere", argument="--data")
    no_env.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"RRNN_DATA: expected the folder that holds sysid/, got '.*'"):
        require_data_folder("sysid")
    (tmp_path / "sysid").mkdir()
    assert require_data_folder("sysid") == tmp_path / "sysid"


def test_sysid_default_folder_is_the_environment_or_none(no_env, tmp_path):
    assert sysid.default_data_folder() is None  # the loaders then ask nonlinear_benchmarks
    no_env.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="RRNN_DATA"):
        sysid.default_data_folder()
    (tmp_path / "sysid").mkdir()
    assert sysid.default_data_folder() == tmp_path / "sysid"


def test_msd_data_without_a_folder(no_env, tmp_path, monkeypatch):
    """Where the data comes from; generating it is tested elsewhere (tests/test_msd.py), so a
    stand-in generator keeps this test fast."""
    import rrnn_convex.datasets as datasets

    class _Generated:
        def as_dict(self):
            return {}

    monkeypatch.setattr(datasets, "make_datasets", lambda **kw: _Generated())
    small = msd.Settings(n_train=1)
    assert msd.paper_data_folder() is None
    _, source = msd.load_data(small)
    assert source.startswith("generated")
    no_env.setenv(DATA_ENV, str(tmp_path))  # auto: RRNN_DATA without msd_dataset/ falls back
    _, source = msd.load_data(small)
    assert source.startswith("generated")
    no_env.delenv(DATA_ENV)
    with pytest.raises(FileNotFoundError, match="no msd_dataset folder given and RRNN_DATA is not set"):
        msd.load_data(msd.Settings(data="paper"))
    with pytest.raises(FileNotFoundError, match="nowhere"):  # a folder passed in is used, even in auto
        msd.load_data(small, tmp_path / "nowhere")


@pytest.mark.data
def test_msd_data_from_an_argument_or_the_environment(no_env, shared_data):
    folder = shared_data / "msd_dataset"
    by_arg, source = msd.load_data(msd.Settings(data="paper"), folder)
    assert source == f"authors' files ({folder})"
    no_env.setenv(DATA_ENV, str(shared_data))
    by_env, source = msd.load_data(msd.Settings())
    assert source == f"authors' files ({folder})"
    np.testing.assert_array_equal(by_env["test_u3"].y, by_arg["test_u3"].y)
    _, source = msd.load_data(msd.Settings(data="generated", n_train=1), folder)
    assert source.startswith("generated")
