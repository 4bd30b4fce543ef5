"""`rrnn simulate` with column names from the model file and --init-samples; model-file metadata.

The data are simulated from a known nonzero initial state by a slowly forgetting model, so the
zero initial state is visibly wrong at the start of the record. Expected metrics are computed
here from the written predictions with plain numpy, not with rrnn_convex.metrics.
"""
import json
import re

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN
from rrnn_convex.cli import main
from rrnn_convex.io_models import load_model_file
from rrnn_convex.model import NPZ_FORMAT_VERSION, WEIGHT_FIELDS

from conftest import assert_usage_error

T, X0 = 120, np.array([1.5, -2.0])


def make_model():
    """Two states rotating and decaying by 0.95 a step, two tanh neurons weakly in the loop."""
    c, s = 0.95 * np.cos(0.3), 0.95 * np.sin(0.3)
    return ImplicitRNN(F=[[c, s], [-s, c]], B1=[[0.02, 0.0], [0.0, 0.02]], B2=[[1.0], [0.5]],
                       C1=[[1.0, -0.5], [0.3, 1.0]], D12=[[0.4], [-0.2]], bv=[0.1, -0.3],
                       C2=[[1.0, 0.5]], D21=[[0.5, -1.0]], by=[0.2], activation="tanh")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    model = make_model()
    model.save(d / "meta.npz", meta={"inputs": ["force"], "outputs": ["position"], "ts": 0.1, "init_samples": 10})
    model.save(d / "plain.npz")
    model.save(d / "other_names.npz", meta={"inputs": ["force"], "outputs": ["height"]})
    model.save(d / "bad_inputs.npz", meta={"inputs": ["voltage"]})
    rng = np.random.default_rng(0)
    u = rng.standard_normal((T, 1))
    y = model.simulate(u, X0)
    lines = ["time,force,position"] + [f"{i},{float(u[i, 0])!r},{float(y[i, 0])!r}" for i in range(T)]
    (d / "data.csv").write_text("\n".join(lines) + "\n")
    (d / "inputs_only.csv").write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    return d


def run(capsys, *args):
    """``rrnn`` in-process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def data(files):
    """(u, y) of data.csv, read back with numpy."""
    arr = np.loadtxt(files / "data.csv", delimiter=",", skiprows=1)
    return arr[:, 1:2], arr[:, 2:3]


def predictions(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "position_hat"
    return np.array([float(v) for v in lines[1:]])[:, None]


def nse_from(yhat, y, k):
    """||yhat - y|| / ||y - mean y|| over samples k.. (the paper's NSE, written out here)."""
    a, b = yhat[k:, 0], y[k:, 0]
    return np.linalg.norm(a - b) / np.linalg.norm(b - b.mean())


def printed(out, label):
    m = re.search(rf"^{label}\s*: \((samples .*)\) position: (\S+)$", out, flags=re.M)
    assert m, out
    return m.group(1), float(m.group(2))


# ---------------------------------------------------------------------- CLI
def test_column_names_come_from_the_model_file(files, tmp_path, capsys):
    pred = tmp_path / "p.csv"
    code, out, err = run(capsys, "simulate", files / "meta.npz", files / "data.csv", "--out", pred)
    assert code == 0, err
    assert "inputs ['force'] (from the model file), outputs ['position'] (from the model file)" in out
    assert "from zero initial state" in out
    u, y = data(files)
    np.testing.assert_array_equal(predictions(pred), make_model().simulate(u))
    scored, value = printed(out, "NSE")
    assert scored.startswith(f"samples 0..{T - 1};")
    assert value == pytest.approx(nse_from(predictions(pred), y, 0), rel=1e-5)


def test_init_samples_estimates_the_state_and_scores_the_rest(files, tmp_path, capsys):
    K = 10
    zero, est = tmp_path / "zero.csv", tmp_path / "est.csv"
    code, out0, err = run(capsys, "simulate", files / "meta.npz", files / "data.csv", "--out", zero)
    assert code == 0, err
    code, out, err = run(capsys, "simulate", files / "meta.npz", files / "data.csv", "--init-samples", K,
                         "--out", est)
    assert code == 0, err
    assert f"initial state estimated from the first {K} measured outputs" in out
    u, y = data(files)
    yz, ye = predictions(zero), predictions(est)
    assert ye.shape == (T, 1)  # the whole record is predicted
    # the data are noise-free from a model of the same structure: the estimate reproduces them
    np.testing.assert_allclose(ye[K:], y[K:], rtol=0, atol=1e-6 * np.max(np.abs(y)))
    assert nse_from(ye, y, K) < 1e-3 * nse_from(yz, y, K)
    scored, value = printed(out, "NSE")
    assert scored.startswith(f"samples {K}..{T - 1}, the first {K} not scored;")
    assert value == pytest.approx(nse_from(ye, y, K), rel=1e-5, abs=1e-12)
    assert value < printed(out0, "NSE")[1]
    rmse_scored = np.sqrt(np.mean((ye[K:] - y[K:]) ** 2))
    assert printed(out, "RMSE")[1] == pytest.approx(rmse_scored, rel=1e-5, abs=1e-14)
    # the zero-state run scores every sample
    assert printed(out0, "RMSE")[1] == pytest.approx(np.sqrt(np.mean((yz - y) ** 2)), rel=1e-5)


def test_the_first_k_samples_are_left_out_of_the_metrics(files, tmp_path, capsys):
    """A model with a wrong feedthrough D22 on data whose first K inputs are 10x larger: its errors
    are much larger there, so the whole-record and the scored RMSE clearly differ."""
    K = 10
    u, y = data(files)
    u = u.copy()
    u[:K] *= 10
    y = make_model().simulate(u, X0)
    lines = ["force,position"] + [f"{float(a)!r},{float(b)!r}" for a, b in zip(u[:, 0], y[:, 0])]
    (tmp_path / "loud.csv").write_text("\n".join(lines) + "\n")
    wrong = make_model()
    wrong = ImplicitRNN(**{**wrong.weights(), "D22": [[0.3]]}, activation="tanh")
    wrong.save(tmp_path / "wrong.npz", meta={"inputs": ["force"], "outputs": ["position"]})
    pred = tmp_path / "p.csv"
    code, out, err = run(capsys, "simulate", tmp_path / "wrong.npz", tmp_path / "loud.csv", "--init-samples", K,
                         "--out", pred)
    assert code == 0, err
    yhat = predictions(pred)
    rmse_scored = np.sqrt(np.mean((yhat[K:] - y[K:]) ** 2))
    rmse_all = np.sqrt(np.mean((yhat - y) ** 2))
    assert rmse_all > 2 * rmse_scored
    assert printed(out, "RMSE")[1] == pytest.approx(rmse_scored, rel=1e-5)
    assert printed(out, "NSE")[1] == pytest.approx(nse_from(yhat, y, K), rel=1e-5)


def test_explicit_columns_still_work_for_a_model_without_metadata(files, tmp_path, capsys):
    pred = tmp_path / "p.csv"
    code, out, err = run(capsys, "simulate", files / "plain.npz", files / "data.csv", "--inputs", "force",
                         "--outputs", "position", "--init-samples", "5", "--out", pred)
    assert code == 0, err
    assert "(from --inputs)" in out and "samples 5..119" in out


def test_recorded_outputs_missing_from_the_data_just_simulate(files, tmp_path, capsys):
    pred = tmp_path / "p.csv"
    code, out, err = run(capsys, "simulate", files / "other_names.npz", files / "data.csv", "--out", pred)
    assert code == 0, err
    assert "no measured outputs" in out and "NSE" not in out
    assert pred.read_text().splitlines()[0] == "y_hat_0"
    assert_usage_error(run(capsys, "simulate", files / "other_names.npz", files / "data.csv", "--init-samples", "5",
                     "--out", pred), "--init-samples", "'height'", "--outputs")


@pytest.mark.parametrize("value, needle", [("0", "got 0"), ("-3", "got -3"), ("abc", "got 'abc'"),
                                           ("2.5", "got '2.5'"), (str(T), f"got {T}"), ("500", "got 500")])
def test_bad_init_samples_exit_2(files, tmp_path, capsys, value, needle):
    assert_usage_error(run(capsys, "simulate", files / "meta.npz", files / "data.csv", "--init-samples", value,
                     "--out", tmp_path / "p.csv"), "--init-samples", needle)
    assert not (tmp_path / "p.csv").exists()


def test_init_samples_needs_outputs(files, tmp_path, capsys):
    assert_usage_error(run(capsys, "simulate", files / "plain.npz", files / "data.csv", "--inputs", "force",
                     "--init-samples", "5", "--out", tmp_path / "p.csv"), "--init-samples", "--outputs")
    assert_usage_error(run(capsys, "simulate", files / "meta.npz", files / "inputs_only.csv", "--init-samples", "5",
                     "--out", tmp_path / "p.csv"), "--init-samples", "'position'")


def test_missing_inputs_exit_2(files, tmp_path, capsys):
    assert_usage_error(run(capsys, "simulate", files / "plain.npz", files / "data.csv", "--out", tmp_path / "p.csv"),
                 "--inputs", "records no input column names")
    assert_usage_error(run(capsys, "simulate", files / "bad_inputs.npz", files / "data.csv", "--out",
                     tmp_path / "p.csv"), "--inputs", "'voltage'")
    assert not (tmp_path / "p.csv").exists()


# ---------------------------------------------------------------------- the model file's meta
def test_meta_round_trip_leaves_the_weights_and_the_format_alone(tmp_path):
    model = make_model()
    meta = {"inputs": ["u"], "outputs": ["y"], "scaling": {"u": [np.float64(0.5), 2.0]}, "ts": 4.0,
            "init_samples": np.int64(50), "offsets": np.array([1.0, 2.0])}
    with_meta = model.save(tmp_path / "a.npz", meta=meta)
    without = model.save(tmp_path / "b.npz")
    assert ImplicitRNN.read_meta(with_meta) == {"inputs": ["u"], "outputs": ["y"], "scaling": {"u": [0.5, 2.0]},
                                                "ts": 4.0, "init_samples": 50, "offsets": [1.0, 2.0]}
    assert ImplicitRNN.read_meta(without) == {}
    back = ImplicitRNN.load(with_meta)
    assert back == model and back.weights_hash() == model.weights_hash() == ImplicitRNN.load(without).weights_hash()
    with np.load(with_meta) as a, np.load(without) as b:
        assert set(a.files) - set(b.files) == {"meta"}
        assert int(a["format_version"]) == NPZ_FORMAT_VERSION == 1
        assert json.loads(str(a["meta"]))["ts"] == 4.0
    loaded = load_model_file(with_meta)
    assert loaded.kind == "rrnn_convex" and loaded.meta["inputs"] == ["u"]
    assert load_model_file(without).meta == {}


def test_files_without_meta_and_foreign_files(tmp_path):
    model = make_model()
    # a file as written before meta existed: the weights, activation, kind and version only
    np.savez(tmp_path / "old.npz", **{k: getattr(model, k) for k in WEIGHT_FIELDS},
             activation=np.array(json.dumps(model.activation.to_dict())), kind=np.array("rrnn_convex.ImplicitRNN"),
             format_version=np.array(1))
    assert ImplicitRNN.load(tmp_path / "old.npz") == model
    assert ImplicitRNN.read_meta(tmp_path / "old.npz") == {}
    np.savez(tmp_path / "elman.npz", W=np.eye(2) * 0.5, U=np.ones((2, 1)), activation="tanh")
    assert load_model_file(tmp_path / "elman.npz").meta == {}
    with pytest.raises(ValueError, match="not an rrnn_convex ImplicitRNN file"):
        ImplicitRNN.read_meta(tmp_path / "elman.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npz"):
        ImplicitRNN.read_meta(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        ImplicitRNN.read_meta(tmp_path / "missing.npz")


def test_meta_must_be_a_json_safe_dict(tmp_path):
    model = make_model()
    with pytest.raises(TypeError, match="meta: expected a dict"):
        model.save(tmp_path / "m.npz", meta=["u"])
    with pytest.raises(ValueError, match="meta: expected a JSON-serialisable dict"):
        model.save(tmp_path / "m.npz", meta={"ts": float("nan")})
    with pytest.raises(ValueError, match="meta: expected a JSON-serialisable dict"):
        model.save(tmp_path / "m.npz", meta={"f": object()})
    assert not (tmp_path / "m.npz").exists()
