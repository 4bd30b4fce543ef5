"""Importing torch.nn.RNN weights (skipped cleanly when PyTorch is absent)."""
import numpy as np
import pytest

from rrnn_convex import ImplicitRNN

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")


@pytest.mark.torch
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh"])
def test_from_torch_rnn_matches_torch_forward(nonlinearity):
    torch.manual_seed(0)
    rnn = torch.nn.RNN(input_size=2, hidden_size=6, nonlinearity=nonlinearity, batch_first=True).double()
    readout = torch.nn.Linear(6, 3).double()
    u = torch.randn(4, 50, 2, dtype=torch.float64)
    h0 = torch.randn(1, 4, 6, dtype=torch.float64)
    with torch.no_grad():
        out, _ = rnn(u, h0)
        y_torch = readout(out).numpy()
    model = ImplicitRNN.from_torch_rnn(rnn, readout=readout)
    y = model.simulate(u.numpy(), x0=h0[0].numpy())
    np.testing.assert_allclose(y, y_torch, rtol=0, atol=1e-10)
    # the state_dict path gives the same model
    same = ImplicitRNN.from_torch_rnn(rnn.state_dict(), readout=readout.state_dict(), nonlinearity=nonlinearity)
    assert same == model


@pytest.mark.torch
def test_from_torch_rnn_accepts_stacked_layers_and_refuses_bidirectional():
    # the one-layer limit is gone (issue 18): the method is the stacked importer of io_models
    torch.manual_seed(3)
    rnn = torch.nn.RNN(2, 4, num_layers=2, nonlinearity="relu").double()
    u = torch.randn(3, 20, 2, dtype=torch.float64)
    with torch.no_grad():
        out, _ = rnn(u.transpose(0, 1))
    model = ImplicitRNN.from_torch_rnn(rnn)
    assert model.n == model.q == 8 and model.d11_kind == "acyclic"
    np.testing.assert_allclose(model.simulate(u.numpy()), out.transpose(0, 1).numpy(), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="bidirectional"):
        ImplicitRNN.from_torch_rnn(torch.nn.RNN(2, 4, bidirectional=True))
