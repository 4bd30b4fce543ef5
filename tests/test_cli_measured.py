"""`rrnn fit` on measured-looking data and `rrnn benchmark` (issue 14): the fit records its
columns and scaling so that `rrnn simulate` needs no repeated options, says why it stopped, and
a benchmark runs end to end on the shared data (skipped cleanly without it)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN
from rrnn_convex.cli import main

SYSID = Path(__file__).resolve().parents[2] / "shared" / "data" / "sysid"


def run(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "rrnn_convex", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def offset_data(tmp_path_factory):
    """A CSV with an offset, badly scaled output (around 250 V, spread 0.05 V) and a first-order
    lag driven by a 0..10 V input: what a measured record looks like."""
    d = tmp_path_factory.mktemp("measured")
    rng = np.random.default_rng(1)
    T = 300
    u = 5.0 + 5.0 * np.repeat(rng.uniform(-1, 1, T // 10), 10)
    x, y = 0.0, np.empty(T)
    for t in range(T):
        y[t] = 250.0 + 0.01 * x + 1e-4 * rng.standard_normal()
        x = 0.9 * x + 0.1 * (u[t] - 5.0) * 3.0
    lines = ["voltage,level"] + [f"{a!r},{b!r}" for a, b in zip(u.tolist(), y.tolist())]
    (d / "record.csv").write_text("\n".join(lines) + "\n")
    (d / "val.csv").write_text("\n".join(lines[:1] + lines[201:]) + "\n")
    return d


def test_fit_records_columns_and_scaling_and_simulate_reuses_them(offset_data, tmp_path):
    out = tmp_path / "m.npz"
    res = run("fit", offset_data / "record.csv", "--inputs", "voltage", "--outputs", "level", "--states", "2",
              "--neurons", "2", "--max-iter", "3", "--validation", offset_data / "val.csv", "--init-samples", "10",
              "--no-progress", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "stopped         : max_iter" in res.stdout
    assert "start           : N4SID order" in res.stdout
    assert "initial state estimated from its first 10 samples" in res.stdout
    meta = ImplicitRNN.read_meta(out)
    assert meta["inputs"] == ["voltage"] and meta["outputs"] == ["level"] and meta["init_samples"] == 10
    assert meta["scaling"]["y_mean"][0] == pytest.approx(250.0, abs=0.01)
    hist = json.loads(out.with_suffix(".history.json").read_text())
    assert hist["stop_reason"] == "max_iter" and hist["start"]["order"] >= 1 and hist["settings"]["normalize"]
    # no --inputs / --outputs: the model file knows them
    pred = tmp_path / "p.csv"
    res = run("simulate", out, offset_data / "val.csv", "--init-samples", "10", "--out", pred)
    assert res.returncode == 0, res.stderr
    assert "from the model file" in res.stdout and "RMSE" in res.stdout
    yhat = np.loadtxt(pred, delimiter=",", skiprows=1)
    y = np.loadtxt(offset_data / "val.csv", delimiter=",", skiprows=1)[:, 1]
    # a model of the physical data: predictions at the 250 V level, error well below the spread
    assert np.sqrt(np.mean((yhat[10:] - y[10:]) ** 2)) < 0.5 * np.std(y[10:])


def cli(*args):
    """``rrnn`` in-process: (exit code, stderr)."""
    import contextlib
    import io
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, err.getvalue()


@pytest.mark.parametrize("extra, needle", [
    (["--window", "1"], "--window: expected a window of at least 2 samples"),
    (["--window", "big"], "--window: expected 'auto', 'none' or a number of samples"),
    (["--init-samples", "-1"], "--init-samples: expected a non-negative integer"),
    (["--window-stride", "0"], "--window-stride: expected a positive integer"),
    (["--validation", "VAL", "--init-samples", "100"], "--init-samples: expected fewer than the 100 samples"),
])
def test_fit_options_are_checked(offset_data, tmp_path, extra, needle):
    extra = [offset_data / "val.csv" if a == "VAL" else a for a in extra]
    code, err = cli("fit", offset_data / "record.csv", "--inputs", "voltage", "--outputs", "level", "--states", "2",
                    "--neurons", "2", "--out", tmp_path / "m.npz", *extra)
    assert code == 2 and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.data
@pytest.mark.skipif(not (SYSID / "cascaded_tanks").is_dir(), reason=f"benchmark data not found at {SYSID}")
def test_benchmark_cascaded_tanks_quick(tmp_path):
    out = tmp_path / "ct"
    res = run("benchmark", "cascaded_tanks", "--quick", "--data", SYSID, "--out", out, "--no-progress")
    assert res.returncode == 0, res.stderr
    for name in ("model.npz", "model.cert.json", "result.json", "result.md"):
        assert (out / name).is_file(), name
    result = json.loads((out / "result.json").read_text())
    assert result["verified"] and result["contracting"]
    assert result["lipschitz_lower_bound"] <= result["certified_gamma"]
    row = result["tests"]["test"]
    assert row["init"] == [50, 5]  # the data notes' and the nonlinear_benchmarks loader's init lengths
    assert all(v > 0 for v in row["rmse"]["50"] + row["rmse_n4sid"]["50"])
    assert "| test | 50 |" in res.stdout and "published" in res.stdout
    assert run("verify", out / "model.npz", out / "model.cert.json").returncode == 0


def test_benchmark_without_data_says_where_to_get_it(tmp_path):
    res = run("benchmark", "cascaded_tanks", "--quick", "--data", tmp_path / "nowhere", "--out", tmp_path / "o")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "folder: no such directory" in res.stderr
