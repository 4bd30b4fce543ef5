"""Code that does not model D11 yet refuses a model with D11 instead of returning wrong numbers."""
from dataclasses import replace

import numpy as np
import pytest

from rrnn_convex.baselines.barrier import simulation_gradient

from conftest import random_rnn


@pytest.fixture
def stacked():
    rng = np.random.default_rng(0)
    model = random_rnn(rng, 3, 4, 1, 1, activation="relu", scale=0.5)
    D11 = np.tril(0.5 * rng.standard_normal((4, 4)), -1)  # strictly lower triangular: two-layer-like
    return model, replace(model, D11=D11)


def test_the_d11_model_differs(stacked):
    """The guard matters: the same weights without D11 simulate differently."""
    plain, with_d11 = stacked
    u = np.random.default_rng(1).uniform(-1, 1, (50, 1))
    assert np.max(np.abs(plain.simulate(u) - with_d11.simulate(u))) > 1e-3


# linearize, casadi_step (acyclic D11) and the adjoint model D11 now (tests/test_linearize_d11.py);
# the barrier baseline, whose LMI has no D11 term, still refuses it
@pytest.mark.parametrize("call", [
    lambda m, u: simulation_gradient(m, u, m.simulate(u)),
])
def test_refused_with_a_clear_error(stacked, call):
    plain, with_d11 = stacked
    u = np.random.default_rng(1).uniform(-1, 1, (20, 1))
    call(plain, u)  # D11 = 0: works as before
    with pytest.raises(ValueError, match=r"model: .* supports D11 = 0 only so far, got a nonzero D11 \(kind 'acyclic'"):
        call(with_d11, u)
