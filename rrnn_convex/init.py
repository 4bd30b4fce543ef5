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

from ._validation import as_float_array, check_state_space, paired_sequences
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


def elman_from_lti(A, B, C, D=None, *, u=None, headroom: float = 1.5) -> ImplicitRNN:
    """The LTI system ``x+ = A x + B u, y = C x + D u`` as a ReLU Elman RNN, exactly on a given input.

    ReLU is the identity on positive arguments, so the shifted state ``h = x + c`` with
    ``c > 0`` obeys ``h+ = relu(A h + B u + (I - A) c)`` and ``y = C h + D u - C c`` as long as
    ``h`` stays positive. ``c`` is ``headroom`` times the largest ``|x_i|`` of the zero-state
    response to ``u`` (shape (batch, T, m) or (T, m)); each state gets at least 1. Outside that
    range (or from another initial state) the neurons clip and the RNN departs from the LTI
    model: this is a starting point for training, not an equivalence.
    """
    A, B, C, D = check_state_space(A, B, C, D)
    n, m = B.shape
    if u is None:
        raise ValueError("u: the input the embedding must reproduce is required (shape (batch, T, m))")
    U = as_float_array(u, "u")
    U = U[None] if U.ndim == 2 else U
    if U.ndim != 3 or U.shape[2] != m:
        raise ValueError(f"u: expected shape (batch, T, {m}) or (T, {m}), got {np.shape(u)}")
    if not headroom > 1.0:
        raise ValueError(f"headroom: expected a number > 1, got {headroom!r}")
    states = _lti_response(A, B, np.eye(n), np.zeros((n, m)), U, None)  # x[0..T-1]: what the outputs use
    peak = np.abs(states).max(axis=(0, 1))
    c = headroom * np.maximum(peak, 1.0 / headroom)
    elman = ImplicitRNN.from_elman(A, B, (np.eye(n) - A) @ c, C, D, activation="relu")
    return ImplicitRNN(**(elman.weights() | {"by": -(C @ c)}), activation="relu")


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


def n4sid(u, y, order: int, horizon: int | None = None, *, stable: bool = True,
          max_radius: float = 0.995) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Subspace identification of ``x+ = A x + B u, y = C x + D u`` of the given order.

    A PO-MOESP variant of N4SID (Verhaegen 1994; Van Overschee & De Moor 1996): block Hankel
    matrices of past inputs/outputs and future inputs/outputs (``horizon`` block rows each,
    default ``max(2 * order, 10)``) from every sequence, an LQ factorisation (via QR) that
    projects the future outputs onto the past orthogonally to the future inputs, an SVD for
    the extended observability matrix, A and C from its shift structure, then B, D (and the
    initial states) by linear least squares on the simulated outputs.

    With ``stable`` (default) eigenvalues of A outside radius ``max_radius`` are reflected /
    clipped inside (:func:`_reflect_unstable`) and B, D re-estimated, so the model can be
    embedded in Theta. ``u``: (T, m) or (batch, T, m); ``y``: (T, p) or (batch, T, p). Hand-written in numpy/scipy
    rather than depending on ``nfoursid``, which pulls in pandas and matplotlib; it is tested
    on data from known systems.
    """
    U, Y = paired_sequences(u, y)
    order = int(order)
    Bn, T, m = U.shape
    p = Y.shape[2]
    i = int(horizon) if horizon is not None else max(2 * order, 10)
    if order < 1 or i <= order // max(p, 1):
        raise ValueError(f"order: expected 1 <= order < horizon * p, got order {order}, horizon {i}")
    cols = T - 2 * i + 1
    if cols < (2 * m + 2 * p) * i:
        raise ValueError(f"u: sequences of length {T} are too short for horizon {i}")

    def hankel(X, start):  # (rows = i blocks of channels, cols over all sequences)
        return np.concatenate([np.concatenate([X[b, start + k:start + k + cols].T for k in range(i)], axis=0)
                               for b in range(Bn)], axis=1)

    Up, Uf = hankel(U, 0), hankel(U, i)
    Yp, Yf = hankel(Y, 0), hankel(Y, i)
    Wp = np.vstack([Up, Yp])
    Hmat = np.vstack([Uf, Wp, Yf]) / np.sqrt(Uf.shape[1])
    R = scipy.linalg.qr(Hmat.T, mode="r")[0].T  # lower-triangular L of the LQ factorisation
    mi, wi = m * i, (m + p) * i
    L32 = R[mi + wi:, mi:mi + wi]
    L22 = R[mi:mi + wi, mi:mi + wi]
    # oblique/orthogonal projection of Yf on Wp along Uf, weighted: O = L32 L22^+ Wp
    O = L32 @ np.linalg.pinv(L22) @ R[mi:mi + wi, :mi + wi]
    Us, s, _ = np.linalg.svd(O, full_matrices=False)
    Gam = Us[:, :order] * np.sqrt(s[:order])
    C = Gam[:p]
    A = np.linalg.lstsq(Gam[:-p], Gam[p:], rcond=None)[0]
    if stable:
        A = _reflect_unstable(A, max_radius)
    B, D = _fit_BD(A, C, U, Y)
    return A, B, C, D


def _reflect_unstable(A: np.ndarray, max_radius: float) -> np.ndarray:
    """A with every eigenvalue outside the disc of radius ``max_radius`` moved inside: reflected
    to 1/conj(lambda) when |lambda| > 1 (which keeps the magnitude of the frequency response up to
    a constant), then clipped to ``max_radius``. Real A stays real (conjugate pairs move together)."""
    lam, V = np.linalg.eig(A)
    if np.max(np.abs(lam)) < max_radius:
        return A
    lam = np.where(np.abs(lam) > 1.0, 1.0 / np.conj(lam), lam)
    lam = np.where(np.abs(lam) > max_radius, lam * (max_radius / np.abs(lam)), lam)
    return np.real(V @ np.diag(lam) @ np.linalg.inv(V))


def _fit_BD(A, C, U, Y):
    """B, D by least squares for given A, C, with one free initial state per sequence."""
    Bn, T, m = U.shape
    p, n = C.shape
    # B, D and the initial states by least squares on y = C A^t x0 + sum C A^(t-k-1) B u_k + D u_t;
    # each sequence's x0 is eliminated by projecting onto the complement of range(O), O = [C A^t]
    basis = []
    for b_idx in range(n * m):
        Bb = np.zeros((n, m))
        Bb.flat[b_idx] = 1.0
        basis.append(_lti_response(A, Bb, C, np.zeros((p, m)), U, np.zeros((Bn, n))))
    for d_idx in range(p * m):
        Db = np.zeros((p, m))
        Db.flat[d_idx] = 1.0
        basis.append(np.einsum("pm,btm->btp", Db, U))
    Phi = np.stack(basis, axis=-1).reshape(Bn, T * p, -1)  # (batch, T p, n m + p m)
    Obs = np.empty((T, p, n))
    At = np.eye(n)
    for t in range(T):
        Obs[t] = C @ At
        At = A @ At
    Qo, _ = np.linalg.qr(Obs.reshape(T * p, n))
    Yv = Y.reshape(Bn, T * p)
    proj = lambda V: V - Qo @ (Qo.T @ V)  # noqa: E731
    lhs = np.concatenate([proj(Phi[b]) for b in range(Bn)], axis=0)
    rhs = np.concatenate([proj(Yv[b]) for b in range(Bn)], axis=0)
    theta = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    return theta[:n * m].reshape(n, m), theta[n * m:n * m + p * m].reshape(p, m)


def _lti_response(A, B, C, D, U, x0):
    """Outputs (batch, T, p) of x+ = A x + B u, y = C x + D u (simulated as an ImplicitRNN
    with one inactive neuron)."""
    n = A.shape[0]
    lti = ImplicitRNN(F=A, B1=np.zeros((n, 1)), B2=B, C1=np.zeros((1, n)), C2=C, D22=D)
    return lti.simulate(U, x0)
