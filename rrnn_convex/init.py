"""Embeddings of other model classes into Theta, with constructive certificates (the paper's
expressivity results, DESIGN.md section 3).

* :func:`from_lti` — every stable LTI system is in Theta: with X > 0 solving the Lyapunov
  equation ``A'XA - X = -I``, take E = X, F = X A, B2 = X B, B1 = 0; the metric ``Q = X^-1`` on
  ``E x`` makes the storage ``x'Xx`` and the contraction LMI reads ``X - A'XA = I > 0``.
* :func:`from_cirnn` — every contracting implicit RNN ``E x+ = sigma(W x + U u + b)`` with a
  diagonal ci-RNN certificate P is in Theta with ``Q = P^-1`` and ``Lambda = P^-1``: the
  dissipation LMI's Schur complement is ``E'P^-1 E - W'P^-1 W``, which the ci-RNN LMI
  ``[[E + E' - P, W'], [W, P]] > 0`` bounds below using ``E'P^-1 E >= E + E' - P``.
* :func:`srnn_certificate` — an Elman RNN with ``||W||_2 < 1`` is in Theta with Q = I, Lambda = I.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from ._validation import as_float_array, check_state_space
from .certify import Certificate, certificate_from
from .model import ImplicitRNN


def from_lti(A, B, C, D=None, *, neurons: int = 1, activation="relu") -> tuple[ImplicitRNN, Certificate]:
    """The stable LTI system ``x+ = A x + B u, y = C x + D u`` as an implicit RNN in Theta.

    Returns the model (E = X, F = X A, B2 = X B, B1 = 0, ``neurons`` inactive neurons) and its
    constructive contraction certificate (Lyapunov metric, rigorously verified). Raises a
    ValueError if A is not Schur stable. The smallest gamma is ``certify(model).gamma``, the
    H-infinity norm of the system.
    """
    if C is None:
        raise ValueError("C: the output matrix is required")
    A, B, C, D = check_state_space(A, B, C, D)
    rho = float(np.max(np.abs(np.linalg.eigvals(A))))
    if not rho < 1.0:
        raise ValueError(f"A: the system must be stable (spectral radius < 1), got {rho:.6g}")
    n, m, p = A.shape[0], B.shape[1], C.shape[0]
    X = scipy.linalg.solve_discrete_lyapunov(A.T, np.eye(n))  # A' X A - X + I = 0
    X = 0.5 * (X + X.T)
    q = int(neurons)
    if q < 1:
        raise ValueError(f"neurons: expected at least 1, got {neurons}")
    model = ImplicitRNN(E=X, F=X @ A, B1=np.zeros((n, q)), B2=X @ B, C1=np.zeros((q, n)),
                        D12=np.zeros((q, m)), C2=C, D21=np.zeros((p, q)), D22=D, activation=activation)
    Q = np.linalg.inv(X)
    return model, certificate_from(model, Q, np.ones(q), how="Lyapunov metric of A")


def from_cirnn(E, W, U, b=None, C=None, D=None, P=None, activation="relu") -> tuple[ImplicitRNN, Certificate | None]:
    """The ci-RNN ``E x+ = sigma(W x + U u + b)``, ``y = C x + D u`` as an ImplicitRNN.

    F = 0, B1 = I, B2 = 0, C1 = W, D12 = U, bv = b, C2 = C, D21 = 0, D22 = D. If the diagonal
    ci-RNN certificate ``P`` (vector or diagonal matrix) is given, also returns the constructive
    Theta certificate Q = Lambda = P^-1 (verified rigorously); otherwise None.
    """
    E = as_float_array(E, "E", ndim=2)
    n = E.shape[0]
    W = as_float_array(W, "W", ndim=2)
    U = as_float_array(U, "U", ndim=2)
    C = np.eye(n) if C is None else C
    model = ImplicitRNN(E=E, F=np.zeros((n, n)), B1=np.eye(n), B2=np.zeros((n, U.shape[1])), C1=W, D12=U,
                        bv=b, C2=C, D22=D, activation=activation)
    if P is None:
        return model, None
    P = as_float_array(P, "P", ndim=(1, 2))
    if P.ndim == 2:
        if not np.array_equal(P, np.diag(np.diag(P))):
            raise ValueError("P: the ci-RNN certificate must be diagonal")
        P = np.diag(P)
    if P.shape != (n,) or np.any(P <= 0):
        raise ValueError(f"P: expected {n} positive diagonal entries, got shape {P.shape}, min {P.min():.3g}")
    return model, certificate_from(model, np.diag(1.0 / P), 1.0 / P, how="ci-RNN certificate P")


def srnn_certificate(model: ImplicitRNN) -> Certificate:
    """The constructive Theta certificate (Q = I, Lambda = I) of an Elman RNN with ||W||_2 < 1."""
    return certificate_from(model, np.eye(model.n), np.ones(model.q), how="SRNN: Q = I, Lambda = I")
