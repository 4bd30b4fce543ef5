"""Built-in example models (generated, no data files)."""
from __future__ import annotations

import numpy as np

from .model import ImplicitRNN


def example_elman(n: int = 8, m: int = 1, p: int = 1, seed: int = 0, spectral_norm: float = 0.9,
                  activation: str = "relu") -> ImplicitRNN:
    """A random Elman RNN ``h+ = sigma(W h + U u + b)``, ``y = C h`` with ``||W||_2 = spectral_norm``.

    With ``spectral_norm < 1`` and a 1-Lipschitz activation it is contracting (the SRNN
    condition), so it always has a certificate; the certified gamma is what is interesting.

    Parameters
    ----------
    n : int
        States (= neurons).
    m, p : int
        Inputs and outputs.
    seed : int
        Seed of the random weights (``numpy.random.default_rng``).
    spectral_norm : float
        ``||W||_2`` of the recurrent weight.
    activation : str
        The activation's name.

    Returns
    -------
    ImplicitRNN
        ``W`` Gaussian rescaled to the spectral norm, ``U`` Gaussian / sqrt(m), ``b`` 0.1 times
        Gaussian, ``C`` Gaussian / sqrt(n), no feedthrough.

    Raises
    ------
    ValueError
        An unknown activation.
    """
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, n))
    W *= spectral_norm / np.linalg.norm(W, 2)
    U = rng.standard_normal((n, m)) / np.sqrt(m)
    b = 0.1 * rng.standard_normal(n)
    C = rng.standard_normal((p, n)) / np.sqrt(n)
    return ImplicitRNN.from_elman(W, U, b, C, activation=activation)
