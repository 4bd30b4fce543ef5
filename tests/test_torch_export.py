"""ImplicitRNN.to_torch (issue 18): a float64, batch-first torch module that simulates like the model.

Skipped cleanly when PyTorch is absent.
"""
from dataclasses import replace

import numpy as np
import pytest

from conftest import random_rnn

torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install torch==2.13.0)")


def _d11(rng, q, kind):
    if kind == "zero":
        return None
    X = rng.standard_normal((q, q))
    if kind == "acyclic":
        return np.tril(X, -1) * 0.5
    return 0.3 * np.eye(q) + 1.5 * (X - X.T) / np.linalg.norm(X - X.T, 2)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["zero", "acyclic", "general"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "leaky_relu"])
def test_module_outputs_match_simulate(kind, activation):
    rng = np.random.default_rng(0)
    model = random_rnn(rng, 4, 5, 2, 3, activation=activation, E_far=True)
    D11 = _d11(rng, 5, kind)
    if D11 is not None:
        model = replace(model, D11=D11)
    assert model.d11_kind == kind
    u = rng.standard_normal((3, 40, 2))
    x0 = rng.standard_normal((3, 4))
    y, xs = model.simulate(u, x0, return_states=True)
    module = model.to_torch()
    assert isinstance(module, torch.nn.Module)
    with torch.no_grad():
        yt, xT = module(torch.as_tensor(u), torch.as_tensor(x0))
    assert yt.dtype == torch.float64 and tuple(yt.shape) == (3, 40, 3)
    np.testing.assert_allclose(yt.numpy(), y, rtol=0, atol=1e-10)
    np.testing.assert_allclose(xT.numpy(), xs[:, -1], rtol=0, atol=1e-10)
    # zero initial state by default
    with torch.no_grad():
        y0 = module(torch.as_tensor(u))[0].numpy()
    np.testing.assert_allclose(y0, model.simulate(u), rtol=0, atol=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize("kind", ["zero", "acyclic", "general"])
def test_gradients_match_finite_differences(kind):
    """d sum(y) / d bv by autograd against central differences of simulate (tanh: smooth)."""
    rng = np.random.default_rng(1)
    model = random_rnn(rng, 3, 4, 1, 2, activation="tanh")
    D11 = _d11(rng, 4, kind)
    if D11 is not None:
        model = replace(model, D11=D11)
    u = rng.standard_normal((2, 25, 1))
    module = model.to_torch()
    module(torch.as_tensor(u))[0].sum().backward()
    grad = module.bv.grad.numpy()
    h = 1e-6
    fd = np.empty(4)
    for i in range(4):
        e = np.zeros(4)
        e[i] = h
        fd[i] = (replace(model, bv=model.bv + e).simulate(u).sum()
                 - replace(model, bv=model.bv - e).simulate(u).sum()) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.torch
def test_module_is_independent_and_checks_its_input():
    rng = np.random.default_rng(2)
    model = random_rnn(rng, 2, 3, 1, 1)
    module = model.to_torch()
    with torch.no_grad():
        module.C1.mul_(2.0)
    assert not np.array_equal(model.C1, module.C1.detach().numpy())
    with pytest.raises(ValueError, match="u: expected shape"):
        module(torch.zeros(5, 1))
