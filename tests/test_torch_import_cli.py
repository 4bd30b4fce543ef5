"""Issue 18, import: torch.nn.RNN with MLP readouts and one import path for modules and .pt files
(explicit REN weights through ``rrnn certify``: tests/test_ren_cli.py).

The expected outputs come from torch's own forward pass (float64), the expected hashes from the
Python importers, the lower bound from torch autograd; nothing is copied from the code under
test. Skipped cleanly when PyTorch is absent.
"""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")

from rrnn_convex import ImplicitRNN, certify  # noqa: E402
from rrnn_convex.analysis import lipschitz_lower_bound  # noqa: E402
from rrnn_convex.io_models import from_torch_rnn, load_model_file  # noqa: E402

from conftest import assert_usage_error as assert_error, rrnn_in_process as cli  # noqa: E402

nn = torch.nn




def _scaled(module, norm):
    """Scale every weight matrix of ``module`` to spectral norm ``norm`` (a contracting, gain-bounded net)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 2:
                p.mul_(norm / torch.linalg.matrix_norm(p, ord=2))
    return module


def _net(nonlinearity="relu", layers=2, H=5, seed=0, trailing=False):
    torch.manual_seed(seed)
    act = nn.ReLU if nonlinearity == "relu" else nn.Tanh
    rnn = _scaled(nn.RNN(1, H, num_layers=layers, nonlinearity=nonlinearity, batch_first=True,
                         dtype=torch.float64), 0.7)
    mods = [nn.Linear(H, 6), act(), nn.Dropout(0.5), nn.Linear(6, 4), nn.Identity(), act(), nn.Linear(4, 2)]
    if trailing:
        mods.append(act())
    head = _scaled(nn.Sequential(*mods).double(), 1.0).eval()
    return rnn.eval(), head


def _torch_y(rnn, head, u, h0=None):
    with torch.no_grad():
        out, _ = rnn(torch.as_tensor(u), None if h0 is None else torch.as_tensor(h0))
        return head(out).numpy()


class _TorchSimulator:
    """u (T, 1) -> y (T, p) of the torch network from a zero state; vjp by torch autograd."""

    m = 1

    def __init__(self, rnn, head):
        self.rnn, self.head = rnn, head

    def __call__(self, u):
        return _torch_y(self.rnn, self.head, np.asarray(u, dtype=np.float64)[None])[0]

    def vjp(self, u, g):
        ut = torch.as_tensor(np.array(u, dtype=np.float64)).requires_grad_(True)
        y = self.head(self.rnn(ut[None])[0])[0]
        (grad,) = torch.autograd.grad(y, ut, torch.as_tensor(np.asarray(g, dtype=np.float64)))
        return grad.numpy()


# ---------------------------------------------------------------------- MLP readouts
@pytest.mark.torch
@pytest.mark.parametrize("nonlinearity, trailing", [("relu", False), ("tanh", True)])
def test_mlp_readout_simulates_like_torch(nonlinearity, trailing):
    rnn, head = _net(nonlinearity, layers=2, trailing=trailing)
    model = from_torch_rnn(rnn, readout=head)
    # 2 layers of 5 neurons, then the readout's hidden layers of 6 and 4 (Dropout, Identity skipped)
    assert (model.n, model.q, model.m, model.p) == (10, 10 + 6 + 4 + 2 * trailing, 1, 2)
    assert model.d11_kind == "acyclic"
    assert [len(level) for level in model.neuron_levels] == [5, 5, 6, 4] + [2] * trailing
    rng = np.random.default_rng(1)
    u = rng.standard_normal((3, 40, 1))
    h0 = 0.5 * rng.standard_normal((2, 3, 5))
    y = model.simulate(u, x0=h0.transpose(1, 0, 2).reshape(3, 10))
    np.testing.assert_allclose(y, _torch_y(rnn, head, u, h0), rtol=0, atol=1e-10)
    # one implementation: the model's classmethod and the function are the same import
    same = ImplicitRNN.from_torch_rnn(rnn, readout=head)
    assert same == model and same.weights_hash() == model.weights_hash()


@pytest.mark.torch
def test_mlp_readout_certifies_above_a_measured_lower_bound():
    rnn, head = _net("relu", layers=1, H=4, seed=2)
    model = from_torch_rnn(rnn, readout=head)
    cert = certify(model)
    assert cert.certified and cert.verify(model).ok, cert.reason
    sim = _TorchSimulator(rnn, head)
    lb = lipschitz_lower_bound(sim, horizon=15, starts=2, steps=20, seed=0, m=1, vjp=sim.vjp)
    assert 0.0 < lb.value <= cert.gamma, (lb.value, cert.gamma)


@pytest.mark.torch
def test_readout_refusals_name_the_layer():
    rnn = nn.RNN(1, 3, nonlinearity="tanh")
    with pytest.raises(ValueError, match=r"readout\[1\] \(ReLU\).*'relu'.*'tanh'.*one activation"):
        from_torch_rnn(rnn, readout=nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)))
    with pytest.raises(ValueError, match=r"readout\[1\] \(Sigmoid\).*'sigmoid'.*'tanh'"):
        ImplicitRNN.from_torch_rnn(rnn, readout=nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 1)))
    with pytest.raises(ValueError, match=r"readout\[1\]: unsupported readout layer LeakyReLU"):
        from_torch_rnn(rnn, readout=nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(), nn.Linear(4, 1)))
    with pytest.raises(ValueError, match=r"readout\[2\]: expected a weight of shape \(k, 4\), got \(1, 5\)"):
        from_torch_rnn(rnn, readout=nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(5, 1)))
    for cls in (nn.LSTM, nn.GRU):
        with pytest.raises(ValueError, match="multiply two neuron outputs"):
            from_torch_rnn(cls(1, 3))


# ---------------------------------------------------------------------- .pt files
class _Net(nn.Module):
    def __init__(self, rnn, head):
        super().__init__()
        self.rnn, self.head = rnn, head


@pytest.mark.torch
def test_pt_files_with_stacked_layers_and_mlp_readouts(tmp_path):
    rnn, head = _net("relu", layers=2)
    expected = from_torch_rnn(rnn, readout=head)
    torch.save(_Net(rnn, head).state_dict(), tmp_path / "net.pt")  # keys rnn.*_l0, rnn.*_l1, head.0., .3., .6.
    torch.save({"rnn": rnn.state_dict(), "readout": head.state_dict(), "nonlinearity": "relu"},
               tmp_path / "nested.pt")
    # Dropout at index 2 and Identity at 4 leave two-index gaps: the file must say what it holds
    with pytest.raises(ValueError, match=r"readout layer 'head.3' follows 2 layers without weights.*readout_layers"):
        load_model_file(tmp_path / "net.pt", nonlinearity="relu")
    spec = "linear,relu,linear,relu,linear"
    torch.save(_Net(rnn, head).state_dict() | {"readout_layers": spec, "nonlinearity": "relu"}, tmp_path / "spec.pt")
    loaded = load_model_file(tmp_path / "spec.pt")
    assert loaded.model == expected and loaded.model.weights_hash() == expected.weights_hash()
    assert "2 layers" in loaded.description and "MLP readout (3 Linear, 2 relu layers)" in loaded.description
    # a plain Sequential (Linear, ReLU, Linear, ReLU, Linear): one-index gaps are the RNN's activation
    plain = nn.Sequential(head[0], nn.ReLU(), head[3], nn.ReLU(), head[6])
    torch.save({"rnn": rnn.state_dict(), "readout": plain.state_dict(), "nonlinearity": "relu"}, tmp_path / "p.pt")
    assert load_model_file(tmp_path / "p.pt").model == expected
    # a trailing activation leaves no trace in a state_dict: readout_layers says it is there
    rnn_t, head_t = _net("tanh", layers=1, trailing=True)
    sd = {"rnn": rnn_t.state_dict(), "out": head_t.state_dict(), "nonlinearity": "tanh",
          "readout_layers": "linear,tanh,linear,tanh,linear,tanh"}
    torch.save(sd, tmp_path / "t.pt")
    assert load_model_file(tmp_path / "t.pt").model == from_torch_rnn(rnn_t, readout=head_t)
    torch.save(sd | {"readout_layers": "linear,tanh,linear"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"one 'linear' per Linear layer in the file \(3\)"):
        load_model_file(tmp_path / "bad.pt")


@pytest.mark.torch
def test_rrnn_certify_reads_stacked_rnns_with_mlp_readouts(tmp_path):
    rnn, head = _net("relu", layers=2, seed=3)
    plain = nn.Sequential(head[0], nn.ReLU(), head[3], nn.ReLU(), head[6])
    torch.save({"rnn": rnn.state_dict(), "readout": plain.state_dict()}, tmp_path / "net.pt")
    code, out, err = cli("certify", tmp_path / "net.pt", "--nonlinearity", "relu", "--out", tmp_path / "c.json")
    assert code == 0, (out, err)
    assert "torch.nn.RNN (relu, given; 2 layers) + MLP readout" in out and "PASSED" in out
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["model_hash"] == from_torch_rnn(rnn, readout=head).weights_hash()
    # a readout activation other than the RNN's: exit 2, one line naming the layer and both activations
    mixed = nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 1))
    torch.save({"rnn": rnn.state_dict(), "readout": mixed.state_dict(), "nonlinearity": "relu",
                "readout_layers": "linear,tanh,linear"}, tmp_path / "mixed.pt")
    assert_error(cli("certify", tmp_path / "mixed.pt"), "readout[1] ('tanh')", "'tanh' differs", "'relu'")
