"""Loaders of the standard identification benchmarks: splits, init lengths, file routes, errors."""
import csv
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from rrnn_convex.datasets import (cascaded_tanks, coupled_electric_drives, emps, load_benchmark, silverbox)

SYSID = Path(__file__).resolve().parents[2] / "shared" / "data" / "sysid"
needs = lambda sub: pytest.mark.skipif(not (SYSID / sub).is_dir(),  # noqa: E731
                                       reason=f"benchmark data not found at {SYSID / sub}")


def csv_columns(path):
    """The CSV read with the standard library only (independent of the package's reader)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    names = [n for n in rows[0] if n]
    return {n: np.array([float(r[i]) for r in rows[1:] if r and r[i] != ""]) for i, n in enumerate(names)}


@pytest.mark.data
@needs("cascaded_tanks")
def test_cascaded_tanks():
    b = cascaded_tanks(SYSID / "cascaded_tanks")
    assert b.train.u.shape == b.train.y.shape == (1, 1024, 1)
    assert b.test.u.shape == (1, 1024, 1)
    assert (b.train.init, b.test.init, b.train.ts, b.test.ts) == (0, 50, 4.0, 4.0)
    ref = csv_columns(SYSID / "cascaded_tanks" / "dataBenchmark.csv")
    np.testing.assert_allclose(b.train.u[0, :, 0], ref["uEst"], rtol=1e-4)
    np.testing.assert_allclose(b.train.y[0, :, 0], ref["yEst"], rtol=1e-4)
    np.testing.assert_allclose(b.test.u[0, :, 0], ref["uVal"], rtol=1e-4)
    np.testing.assert_allclose(b.test.y[0, :, 0], ref["yVal"], rtol=1e-4)
    # the parent folder works too (the loader looks in the usual sub-folder)
    np.testing.assert_array_equal(cascaded_tanks(SYSID).test.y, b.test.y)


@pytest.mark.data
@needs("cascaded_tanks")
def test_cascaded_tanks_csv_route(tmp_path):
    shutil.copy(SYSID / "cascaded_tanks" / "dataBenchmark.csv", tmp_path)  # only the CSV (trailing comma)
    from_csv = cascaded_tanks(tmp_path)
    from_mat = cascaded_tanks(SYSID / "cascaded_tanks")
    np.testing.assert_allclose(from_csv.train.y, from_mat.train.y, rtol=1e-4)
    assert from_csv.test.init == 50 and from_csv.test.ts == 4.0


@pytest.mark.data
@needs("coupled_electric_drives")
def test_coupled_electric_drives():
    b = coupled_electric_drives(SYSID / "coupled_electric_drives")
    assert b.train.u.shape == b.train.y.shape == (2, 400, 1)
    assert b.test.u.shape == b.test.y.shape == (2, 100, 1)
    assert (b.test.init, b.test.ts) == (10, 0.02)
    ref = csv_columns(SYSID / "coupled_electric_drives" / "DATAUNIF.csv")
    np.testing.assert_allclose(b.train.u[1, :, 0], ref["u12"][:400], rtol=1e-4)
    np.testing.assert_allclose(b.test.y[0, :, 0], ref["z11"][400:], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b.test.y[1, :, 0], ref["z12"][400:], rtol=1e-4, atol=1e-6)
    assert load_benchmark("CED", SYSID).test.y.shape == (2, 100, 1)


@pytest.mark.data
@needs("emps")
def test_emps():
    b = emps(SYSID / "emps")
    assert b.train.u.shape == b.train.y.shape == (1, 24841, 1)
    assert b.test.u.shape == (1, 24841, 1)
    assert b.test.init == 20 and b.train.ts == pytest.approx(1e-3) and b.rmse_scale == 1000.0
    assert b.rmse_unit == "mm"


@pytest.mark.data
@needs("silverbox")
def test_silverbox():
    b = silverbox(SYSID / "silverbox")
    assert b.train.u.shape == (1, 105712 - 40650, 1)
    lengths = {k: v.T for k, v in b.tests.items()}
    assert lengths == {"multisine": 127400 - 105712, "arrow_full": 40575 - 100,
                       "arrow_no_extrapolation": 32000}
    assert all(v.init == 50 for v in b.tests.values())
    assert b.train.ts == pytest.approx(1 / 610.35) and b.rmse_unit == "mV"
    # arrow_no_extrapolation is the beginning of arrow_full
    np.testing.assert_array_equal(b.tests["arrow_no_extrapolation"].u[0], b.tests["arrow_full"].u[0, :32000])
    with pytest.raises(ValueError, match="3 test sets"):
        b.test


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        cascaded_tanks(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"dataBenchmark\.csv.*pip install nonlinear_benchmarks"):
        cascaded_tanks(tmp_path)
    with pytest.raises(FileNotFoundError, match="SNLS80mV.mat"):
        silverbox(tmp_path)
    with pytest.raises(ValueError, match="unknown benchmark 'wiener'"):
        load_benchmark("wiener", tmp_path)


def test_short_coupled_electric_drives_records_are_refused_with_the_needed_length(tmp_path):
    """A generated DATAUNIF.csv of 300 samples (no shared data needed): the message states the
    length the split needs (401) and what was found."""
    rows = ["u11,u12,z11,z12"] + [f"{k},{-k},{0.5 * k},{0.25 * k}" for k in range(300)]
    (tmp_path / "DATAUNIF.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"DATAUNIF\.csv: expected at least 401 samples.*got 300"):
        coupled_electric_drives(tmp_path)


def test_no_folder_and_no_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "nonlinear_benchmarks", None)  # makes the import fail
    for loader in (cascaded_tanks, coupled_electric_drives, emps, silverbox):
        with pytest.raises(FileNotFoundError, match=r"pip install nonlinear_benchmarks.*folder="):
            loader()


@pytest.mark.data
@needs("cascaded_tanks")
def test_delegation_to_nonlinear_benchmarks_reads_the_same_files(monkeypatch):
    fake = types.ModuleType("nonlinear_benchmarks")
    tanks = str(SYSID / "cascaded_tanks" / "dataBenchmark.mat")
    fake.Cascaded_Tanks = lambda data_file_locations=False: tanks
    fake.EMPS = lambda data_file_locations=False: [str(SYSID / "emps" / n)
                                                   for n in ("DATA_EMPS.mat", "DATA_EMPS_PULSES.mat")]
    monkeypatch.setitem(sys.modules, "nonlinear_benchmarks", fake)
    np.testing.assert_array_equal(cascaded_tanks().test.u, cascaded_tanks(SYSID / "cascaded_tanks").test.u)
    if (SYSID / "emps").is_dir():
        assert emps().test.init == 20
    with pytest.raises(RuntimeError, match="pass folder"):
        silverbox()  # the fake package has no Silverbox()


def test_the_recipe_runner_takes_the_loaders_names_and_aliases(tmp_path):
    """sysid.run resolves names as load_benchmark does: an alias reaches the loader (which then
    finds no files in an empty folder), an unknown name is refused before any loading."""
    from rrnn_convex.datasets.benchmarks import benchmark_key
    from rrnn_convex.experiments import sysid

    assert benchmark_key("CED") == benchmark_key("Coupled Electric-Drives") == "coupled_electric_drives"
    with pytest.raises(FileNotFoundError, match="DATAUNIF"):
        sysid.run("ced", folder=tmp_path)
    with pytest.raises(ValueError, match=r"unknown benchmark 'wiener'.*\(or ced, tanks\)"):
        sysid.run("wiener", folder=tmp_path)
