"""Issue 18: ``rrnn certify`` reads explicit REN weights from an .npz (the names of
io_models.from_ren: A or E, F; B1, B2, C1, C2, D11, D12, D21, D22; bx, bv, by; activation).

The expected model is built here with the ImplicitRNN constructor from the weights written.
"""
import json

import numpy as np

from rrnn_convex import ImplicitRNN
from rrnn_convex.io_models import from_ren

from conftest import assert_usage_error as assert_error, rrnn_in_process as cli




# ---------------------------------------------------------------------- explicit REN weights
def _ren_weights(rng, n=3, q=4, m=1, p=1):
    """A small explicit REN with a strictly lower-triangular D11, scaled to contract."""
    w = {"A": rng.standard_normal((n, n)), "B1": rng.standard_normal((n, q)), "B2": rng.standard_normal((n, m)),
         "C1": rng.standard_normal((q, n)), "D11": np.tril(rng.standard_normal((q, q)), -1),
         "D12": rng.standard_normal((q, m)), "C2": rng.standard_normal((p, n)), "D21": rng.standard_normal((p, q)),
         "D22": rng.standard_normal((p, m)), "bx": rng.standard_normal(n), "bv": rng.standard_normal(q),
         "by": rng.standard_normal(p)}
    for k, s in (("A", 0.3), ("B1", 0.3), ("C1", 0.5), ("D11", 0.5)):
        w[k] *= s / np.linalg.norm(w[k], 2)
    return w


def test_rrnn_certify_reads_explicit_ren_weights(tmp_path):
    w = _ren_weights(np.random.default_rng(4))
    np.savez(tmp_path / "ren.npz", **w, activation="tanh")
    code, out, err = cli("certify", tmp_path / "ren.npz", "--out", tmp_path / "ren.json")
    assert code == 0, (out, err)
    assert "REN weights (explicit form) from 'ren.npz'" in out
    expected = ImplicitRNN(E=np.eye(3), F=w["A"], B1=w["B1"], B2=w["B2"], C1=w["C1"], D11=w["D11"], D12=w["D12"],
                           C2=w["C2"], D21=w["D21"], D22=w["D22"], bx=w["bx"], bv=w["bv"], by=w["by"],
                           activation="tanh")
    assert json.loads((tmp_path / "ren.json").read_text())["model_hash"] == expected.weights_hash()
    assert from_ren(tmp_path / "ren.npz") == expected
    # without an activation entry: relu, said in the description
    np.savez(tmp_path / "relu.npz", **w)
    code, out, _ = cli("certify", tmp_path / "relu.npz", "--out", tmp_path / "relu.json")
    assert code in (0, 1) and "activation relu (the default" in out
    # bad files: exit 2, one line naming the matrix
    np.savez(tmp_path / "short.npz", **{k: v for k, v in w.items() if k != "C2"})
    assert_error(cli("certify", tmp_path / "short.npz"), "explicit REN weights", "missing C2")
    np.savez(tmp_path / "shape.npz", **(w | {"D12": np.zeros((4, 2))}))
    assert_error(cli("certify", tmp_path / "shape.npz"), "D12: has shape (4, 2), expected (4, 1)")
    np.savez(tmp_path / "mixed.npz", **w, W=np.eye(3))
    assert_error(cli("certify", tmp_path / "mixed.npz"), "unexpected keys ['W']")
