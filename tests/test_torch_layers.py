"""Importing stacked torch.nn.RNN layers (issue 18): the layers become a block-lower-triangular D11.

Skipped cleanly when PyTorch is absent.
"""
import numpy as np
import pytest

from rrnn_convex import ImplicitRNN
from rrnn_convex.io_models import from_torch_rnn

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")


def _torch_outputs(rnn, readout, u, h0):
    with torch.no_grad():
        out, _ = rnn(torch.as_tensor(u), torch.as_tensor(h0))
        return (readout(out) if readout is not None else out).numpy()


@pytest.mark.torch
@pytest.mark.parametrize("nonlinearity, bias, batch_first, layers",
                         [("relu", True, True, 2), ("relu", False, False, 2), ("tanh", True, True, 3),
                          ("tanh", False, True, 2)])
def test_stacked_rnn_simulates_like_torch(nonlinearity, bias, batch_first, layers):
    torch.manual_seed(0)
    H, m, p, batch, T = 8, 2, 3, 4, 60
    rnn = torch.nn.RNN(input_size=m, hidden_size=H, num_layers=layers, nonlinearity=nonlinearity, bias=bias,
                       batch_first=batch_first).double().eval()
    readout = torch.nn.Linear(H, p).double()
    rng = np.random.default_rng(0)
    u = rng.standard_normal((batch, T, m))
    h0 = rng.standard_normal((layers, batch, H)) * 0.5
    u_torch = u if batch_first else u.transpose(1, 0, 2)
    y_torch = _torch_outputs(rnn, readout, u_torch, h0)
    if not batch_first:
        y_torch = y_torch.transpose(1, 0, 2)
    model = from_torch_rnn(rnn, readout=readout)
    assert model.n == model.q == layers * H and model.d11_kind == "acyclic"
    assert [len(level) for level in model.neuron_levels] == [H] * layers
    x0 = h0.transpose(1, 0, 2).reshape(batch, layers * H)
    y = model.simulate(u, x0=x0)
    np.testing.assert_allclose(y, y_torch, rtol=0, atol=1e-12)
    # the state_dict path gives the same model
    same = from_torch_rnn(rnn.state_dict(), readout=readout.state_dict(), nonlinearity=nonlinearity)
    assert same == model and same.weights_hash() == model.weights_hash()


@pytest.mark.torch
def test_without_readout_the_output_is_the_last_layers_hidden_state():
    torch.manual_seed(1)
    rnn = torch.nn.RNN(1, 5, num_layers=2, nonlinearity="relu", batch_first=True).double()
    u = np.random.default_rng(1).standard_normal((2, 30, 1))
    h0 = np.zeros((2, 2, 5))
    model = from_torch_rnn(rnn)
    np.testing.assert_allclose(model.simulate(u), _torch_outputs(rnn, None, u, h0), rtol=0, atol=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_one_layer_equals_the_model_method(nonlinearity):
    torch.manual_seed(2)
    rnn = torch.nn.RNN(2, 6, nonlinearity=nonlinearity).double()
    readout = torch.nn.Linear(6, 1).double()
    model = from_torch_rnn(rnn, readout=readout)
    assert model == ImplicitRNN.from_torch_rnn(rnn, readout=readout) and model.d11_kind == "zero"
    assert model.weights_hash() == ImplicitRNN.from_torch_rnn(rnn, readout=readout).weights_hash()


@pytest.mark.torch
def test_refusals():
    with pytest.raises(ValueError, match="bidirectional"):
        from_torch_rnn(torch.nn.RNN(2, 4, num_layers=2, bidirectional=True))
    sd = dict(torch.nn.RNN(2, 4, num_layers=3).state_dict())
    del sd["weight_ih_l1"], sd["weight_hh_l1"], sd["bias_ih_l1"], sd["bias_hh_l1"]
    with pytest.raises(ValueError, match="layers 0 .. L-1"):
        from_torch_rnn(sd)
    with pytest.raises(ValueError, match="unexpected keys"):
        from_torch_rnn(dict(torch.nn.RNN(2, 4).state_dict()) | {"foo": torch.zeros(1)})
    with pytest.raises(ValueError, match="nonlinearity"):
        from_torch_rnn(torch.nn.RNN(2, 4), nonlinearity="gelu")
    with pytest.raises(ValueError, match="readout"):
        from_torch_rnn(torch.nn.RNN(2, 4, num_layers=2), readout=torch.nn.Linear(3, 1))
    sd = dict(torch.nn.RNN(2, 4, num_layers=2).state_dict())
    sd["weight_ih_l1"] = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"weight_ih_l1: expected shape \(4, 4\)"):
        from_torch_rnn(sd)
