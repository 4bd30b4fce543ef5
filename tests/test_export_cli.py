"""Issue 18, export: ``rrnn export MODEL --to torch OUT.pt`` writes a file that ``rrnn certify`` /
``verify`` / ``simulate`` read back to the identical float64 model: export, reload, simulate,
certify give the same outputs, the same weights hash and the same certificate.

The model has a general E, a nonzero acyclic D11, biases and tanh, so a file that stored the
explicit form E^-1 F, dropped D11 or the activation would change the hash. Skipped cleanly when
PyTorch is absent.
"""
import dataclasses
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")

from rrnn_convex.io_models import load_any_model, load_model_file, save_torch  # noqa: E402

from conftest import assert_usage_error as assert_error, random_rnn, rrnn_in_process as cli  # noqa: E402




@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(11)
    base = random_rnn(rng, n=3, q=4, m=1, p=2, activation="tanh", scale=0.5, E_far=True)
    D11 = np.tril(rng.standard_normal((4, 4)), -1)
    return dataclasses.replace(base, D11=0.4 * D11 / np.linalg.norm(D11, 2))


@pytest.mark.torch
def test_export_round_trip_same_outputs_hash_and_certificate(model, tmp_path):
    src = tmp_path / "model.npz"
    model.save(src, meta={"inputs": ["force"], "outputs": ["a", "b"]})
    out = tmp_path / "exported.pt"
    code, stdout, err = cli("export", src, "--to", "torch", out)
    assert code == 0, err
    assert model.weights_hash()[:16] in stdout and out.is_file()
    assert not list(tmp_path.glob(".*.tmp*")), "a temporary file was left behind"
    # reload: the identical float64 weights, the activation and the metadata
    loaded = load_model_file(out)
    assert loaded.model == model and loaded.model.weights_hash() == model.weights_hash()
    assert loaded.model.d11_kind == "acyclic" and loaded.model.activation == model.activation
    assert loaded.meta == {"inputs": ["force"], "outputs": ["a", "b"]}
    for name, value in model.weights().items():
        assert np.array_equal(getattr(loaded.model, name), value), name
    # a plain dict of float64 tensors, readable without pickled code
    doc = torch.load(out, weights_only=True)
    assert doc["format"] == "rrnn_convex.ImplicitRNN"
    assert all(t.dtype == torch.float64 for t in doc["weights"].values())
    assert torch.equal(doc["weights"]["E"], torch.tensor(np.array(model.E)))  # the implicit form, not E^-1 F
    # simulate: identical outputs; the torch module of the reloaded model agrees with simulate
    u = np.random.default_rng(0).standard_normal((2, 30, 1))
    y = model.simulate(u)
    np.testing.assert_array_equal(loaded.model.simulate(u), y)
    with torch.no_grad():
        y_torch, _ = loaded.model.to_torch()(torch.as_tensor(u))
    np.testing.assert_allclose(y_torch.numpy(), y, rtol=0, atol=1e-10)
    # certify both files through the CLI: the same certificate (solve time aside)
    assert cli("certify", src, "--out", tmp_path / "a.json")[0] == 0
    code, stdout, err = cli("certify", out, "--out", tmp_path / "b.json")
    assert code == 0 and "exported to torch" in stdout, err
    a, b = (json.loads((tmp_path / f"{k}.json").read_text()) for k in "ab")
    assert a["model_hash"] == b["model_hash"] == model.weights_hash()
    for d in (a, b):
        d.pop("solve_seconds")
        for attempt in d["attempts"]:
            attempt.pop("seconds", None)
    assert a == b
    # and each file's certificate verifies against the other file
    assert cli("verify", out, tmp_path / "a.json")[0] == 0
    assert cli("verify", src, tmp_path / "b.json")[0] == 0


@pytest.mark.torch
def test_export_of_a_torch_file_and_overwriting_an_earlier_export(tmp_path):
    torch.manual_seed(0)
    rnn = torch.nn.RNN(1, 3, num_layers=2, nonlinearity="relu")
    torch.save(rnn.state_dict(), tmp_path / "rnn.pt")
    first = load_any_model(tmp_path / "rnn.pt", nonlinearity="relu")
    out = tmp_path / "out.pth"
    out.write_text("an older file")
    os.chmod(out, 0o640)
    assert cli("export", tmp_path / "rnn.pt", "--nonlinearity", "relu", "--to", "torch", out)[0] == 0
    assert load_any_model(out) == first and (os.stat(out).st_mode & 0o777) == 0o640
    assert_error(cli("export", out, "--nonlinearity", "tanh", "--to", "torch", tmp_path / "x.pt"),
                 "the file records 'relu'")


@pytest.mark.torch
def test_export_refusals_exit_2_with_one_line(model, tmp_path):
    src = tmp_path / "m.npz"
    model.save(src)
    assert_error(cli("export", src, "--to", "onnx", tmp_path / "m.onnx"), "--to onnx", "onnx and onnxscript")
    assert_error(cli("export", src, "--to", "keras", tmp_path / "m.pt"), "--to: expected 'torch', got 'keras'")
    assert_error(cli("export", src, "--to", "torch", tmp_path / "m.npz"), "OUT: expected a .pt or .pth")
    assert_error(cli("export", src, "--to", "torch", tmp_path / "m.txt"), "OUT: expected a .pt or .pth")
    (tmp_path / "dir.pt").mkdir()
    assert_error(cli("export", src, "--to", "torch", tmp_path / "dir.pt"), "is a directory")
    assert_error(cli("export", tmp_path / "none.npz", "--to", "torch", tmp_path / "n.pt"), "no such file")
    save_torch(model, tmp_path / "in.pt")
    before = (tmp_path / "in.pt").read_bytes()
    assert_error(cli("export", tmp_path / "in.pt", "--to", "torch", tmp_path / "in.pt"), "same file")
    assert (tmp_path / "in.pt").read_bytes() == before
    code, _, err = cli("export", src, tmp_path / "m.pt")
    assert code == 2 and "--to" in err
    # a damaged export is refused when read back, naming what is wrong
    doc = torch.load(tmp_path / "in.pt", weights_only=True)
    torch.save(doc | {"format_version": 99}, tmp_path / "v.pt")
    assert_error(cli("certify", tmp_path / "v.pt"), "format_version 99")
    doc["weights"]["F"] = doc["weights"]["F"].float()
    torch.save(doc, tmp_path / "f32.pt")
    assert_error(cli("certify", tmp_path / "f32.pt"), "weights ['F'] are not float64 tensors")
