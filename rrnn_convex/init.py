"""Embeddings of other model classes into Theta, with constructive certificates (the paper's
expressivity results, docs/design.md section 3.10).

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

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ._validation import as_float_array, check_state_space, paired_sequences
from .certify import Certificate, certificate_from
from .model import ImplicitRNN


def from_lti(A, B, C, D=None, *, neurons: int = 1, activation="relu") -> tuple[ImplicitRNN, Certificate]:
    """The stable LTI system ``x+ = A x + B u, y = C x + D u`` as an implicit RNN in Theta.

    Returns the model (E = X, F = X A, B2 = X B, B1 = 0, ``neurons`` inactive neurons) and its
    constructive contraction certificate (Lyapunov metric, rigorously verified). The smallest
    gamma is ``certify(model).gamma``, the H-infinity norm of the system.

    Parameters
    ----------
    A : array_like, shape (n, n)
        Schur stable (spectral radius < 1).
    B : array_like, shape (n, m)
        Input matrix.
    C : array_like, shape (p, n)
        Output matrix (required).
    D : array_like, shape (p, m), optional
        Zeros by default.
    neurons : int
        Number of (inactive) neurons of the implicit RNN, at least 1.
    activation : str or Activation
        The neurons' activation (they do not act: B1 = 0, C1 = 0, D21 = 0).

    Returns
    -------
    model : ImplicitRNN
        E = X, F = X A, B2 = X B, C2 = C, D22 = D, every neuron weight zero.
    certificate : Certificate
        Contraction with the metric ``Q = X^-1`` on ``E x`` (X the Lyapunov matrix).

    Raises
    ------
    ValueError
        A not stable, C missing, ``neurons < 1`` or inconsistent shapes.
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

    Parameters
    ----------
    A, B, C, D : array_like
        The linear system (C defaults to the identity, D to zeros).
    u : array_like, shape (batch, T, m) or (T, m)
        The input the embedding must reproduce (required).
    headroom : float
        The factor (> 1) on the largest state magnitude used for the shift c.

    Returns
    -------
    ImplicitRNN
        A ReLU Elman RNN (E = I, F = 0, B1 = I) with ``by = -C c``.

    Raises
    ------
    ValueError
        ``u`` missing or of the wrong shape, ``headroom <= 1``, inconsistent shapes.
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

    Parameters
    ----------
    E, W : array_like, shape (n, n)
        The left-hand matrix and the recurrent weight.
    U : array_like, shape (n, m)
        The input weight.
    b : array_like, shape (n,), optional
        The neurons' bias (zeros).
    C : array_like, shape (p, n), optional
        The identity by default.
    D : array_like, shape (p, m), optional
        Feedthrough (zeros).
    P : array_like, shape (n,) or (n, n), optional
        The diagonal ci-RNN certificate, positive.
    activation : str or Activation
        ``"relu"`` by default.

    Returns
    -------
    model : ImplicitRNN
        The ci-RNN as an implicit RNN (n = q).
    certificate : Certificate or None
        None when ``P`` is not given; "not certified" (with the reason) when the constructive
        certificate does not pass the rigorous check.

    Raises
    ------
    ValueError
        A P that is not diagonal or not positive, or inconsistent shapes.
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
    """The constructive Theta certificate (Q = I, Lambda = I) of an Elman RNN with ``||W||_2 < 1``.

    Parameters
    ----------
    model : ImplicitRNN
        An Elman RNN (``ImplicitRNN.from_elman``).

    Returns
    -------
    Certificate
        Verified rigorously; "not certified" with the reason when the check fails.
    """
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
    on data from known systems. :func:`n4sid_models` returns several orders at once, with the
    initial states.

    Parameters
    ----------
    u : array_like, shape (T, m) or (batch, T, m)
        Inputs.
    y : array_like, shape (T, p) or (batch, T, p)
        Outputs.
    order : int
        The model order, ``1 <= order < horizon * p``.
    horizon : int, optional
        Block rows of the Hankel matrices.
    stable : bool
        Move eigenvalues of A inside ``max_radius``.
    max_radius : float
        The largest eigenvalue magnitude kept.

    Returns
    -------
    A, B, C, D : numpy.ndarray
        The state-space matrices, shapes (order, order), (order, m), (p, order), (p, m).

    Raises
    ------
    ValueError
        As :func:`n4sid_models`.
    """
    A, B, C, D, _ = n4sid_models(u, y, [order], horizon, stable=stable, max_radius=max_radius)[0]
    return A, B, C, D


def n4sid_models(u, y, orders, horizon: int | None = None, *, stable: bool = True,
                 max_radius: float = 0.995) -> list[tuple[np.ndarray, ...]]:
    """:func:`n4sid` for several orders from one subspace decomposition.

    Returns one ``(A, B, C, D, x0)`` per order, in the order given; ``x0`` (batch, order) holds
    the least-squares initial state of each sequence. The default horizon is
    ``max(2 * max(orders), 10)`` for all orders (a lower order's model from the same SVD is
    its leading part).

    Parameters
    ----------
    u, y, horizon, stable, max_radius
        As in :func:`n4sid`.
    orders : iterable of int
        The model orders.

    Returns
    -------
    list of tuple
        ``(A, B, C, D, x0)`` per order.

    Raises
    ------
    ValueError
        No order given, an order outside ``1 <= order < horizon * p``, sequences too short for
        the horizon, or inconsistent data.
    """
    U, Y = paired_sequences(u, y)
    orders = [int(k) for k in orders]
    if not orders:
        raise ValueError("orders: expected at least one model order, got none")
    Bn, T, m = U.shape
    p = Y.shape[2]
    top = max(orders)
    i = int(horizon) if horizon is not None else max(2 * top, 10)
    bad = [k for k in orders if k < 1 or i <= k // max(p, 1)]
    if bad:
        raise ValueError(f"order: expected 1 <= order < horizon * p, got order {bad[0]}, horizon {i}")
    cols = T - 2 * i + 1
    if cols < (2 * m + 2 * p) * i:
        raise ValueError(f"u: sequences of length {T} are too short for horizon {i}")
    Us, s = _subspace(U, Y, i, cols)
    out = []
    for k in orders:
        Gam = Us[:, :k] * np.sqrt(s[:k])
        C = Gam[:p]
        A = np.linalg.lstsq(Gam[:-p], Gam[p:], rcond=None)[0]
        if stable:
            A = _reflect_unstable(A, max_radius)
        B, D, x0 = _fit_BD(A, C, U, Y)
        out.append((A, B, C, D, x0))
    return out


def _subspace(U, Y, i, cols):
    """Left singular vectors and singular values of the weighted projection of the future outputs
    on the past (``i`` block rows, ``cols`` columns per sequence)."""
    Bn, _, m = U.shape
    p = Y.shape[2]

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
    return Us, s


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


def _input_responses(A, U):
    """Z[b, t, j] = sum_{k < t} A^(t-1-k) u[b, k, j] (an (n, n) matrix per input channel j): the
    state at time t of x+ = A x + e_i u_j, column i, from zero state. Shape (batch, T, m, n, n)."""
    Bn, T, m = U.shape
    n = A.shape[0]
    Z = np.zeros((Bn, T, m, n, n))
    z = np.zeros((Bn, m, n, n))
    eye = np.eye(n)
    for t in range(T - 1):
        z = A @ z + U[:, t, :, None, None] * eye
        Z[:, t + 1] = z
    return Z


def _fit_BD(A, C, U, Y):
    """B, D and one initial state per sequence by least squares for given A, C.

    y = C A^t x0 + sum C A^(t-k-1) B u_k + D u_t is linear in (B, D, x0); each sequence's x0 is
    eliminated by projecting onto the complement of range(O), O = [C A^t], then recovered.
    Returns (B, D, x0) with x0 of shape (batch, n).
    """
    Bn, T, m = U.shape
    p, n = C.shape
    Z = _input_responses(A, U)  # (Bn, T, m, n, n): state columns for B = e_i e_j'
    # output for B = e_i e_j' is C Z[.., j][:, i]: basis index i * m + j (row-major B)
    PhiB = np.einsum("pk,btjki->btpij", C, Z).reshape(Bn, T, p, n * m)
    PhiD = np.zeros((Bn, T, p, p, m))
    for r in range(p):
        PhiD[:, :, r, r, :] = U
    Phi = np.concatenate([PhiB, PhiD.reshape(Bn, T, p, p * m)], axis=3).reshape(Bn, T * p, -1)
    Obs = np.empty((T, p, n))
    At = np.eye(n)
    for t in range(T):
        Obs[t] = C @ At
        At = A @ At
    Obs = Obs.reshape(T * p, n)
    Qo, _ = np.linalg.qr(Obs)
    Yv = Y.reshape(Bn, T * p)
    proj = lambda V: V - Qo @ (Qo.T @ V)  # noqa: E731
    lhs = np.concatenate([proj(Phi[b]) for b in range(Bn)], axis=0)
    rhs = np.concatenate([proj(Yv[b]) for b in range(Bn)], axis=0)
    theta = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    x0 = np.stack([np.linalg.lstsq(Obs, Yv[b] - Phi[b] @ theta, rcond=None)[0] for b in range(Bn)])
    return theta[:n * m].reshape(n, m), theta[n * m:n * m + p * m].reshape(p, m), x0


def whitened_coordinates(A, B, C, x0, U):
    """The same LTI system in coordinates where its states along the data have unit covariance.

    The states are simulated from ``x0`` (batch, n) on the inputs ``U`` (batch, T, m); with
    their covariance ``S = mean(x x') = L L'`` (Cholesky, computed on the correlation matrix
    for accuracy) the new state is ``z = L^-1 x``: ``A_z = L^-1 A L``, ``B_z = L^-1 B``,
    ``C_z = C L``, ``x0_z = L^-1 x0``. In these coordinates every state has the data's own
    amplitude and the output map is of the size of the outputs, so the Jacobians of a fit are
    balanced (an N4SID basis of measured data can mix states of amplitude 1e-4 with output
    weights of 1e3, which made J'J span 16 decades on Cascaded Tanks). A lower-triangular L keeps
    zero output columns zero (padded states last).

    Parameters
    ----------
    A, B, C : array_like
        The linear system.
    x0 : array_like, shape (batch, n)
        Initial states of the sequences.
    U : array_like, shape (batch, T, m)
        Inputs.

    Returns
    -------
    A_z, B_z, C_z, x0_z, L : numpy.ndarray
        The system and initial states in the new coordinates, and the factor L.

    Raises
    ------
    ValueError
        The state covariance is singular (some states stay constant along the data).
    """
    A, B, C, _ = check_state_space(A, B, C)
    n = A.shape[0]
    x0 = as_float_array(x0, "x0", ndim=2)
    S = _state_covariance(A, B, x0, U)
    d = np.sqrt(np.diag(S))
    try:
        if not np.all(d > 0):
            raise np.linalg.LinAlgError
        L = d[:, None] * np.linalg.cholesky(S / np.outer(d, d))
    except np.linalg.LinAlgError:
        raise ValueError(f"A: the data leave some states of this order-{n} model constant "
                         f"(singular state covariance)") from None
    Az = scipy.linalg.solve_triangular(L, A @ L, lower=True)
    Bz = scipy.linalg.solve_triangular(L, B, lower=True)
    x0z = scipy.linalg.solve_triangular(L, x0.T, lower=True).T
    return Az, Bz, C @ L, x0z, L


def excitation_ratio(A, B, C, x0, U) -> float:
    """Smallest over largest eigenvalue of ``W_o S``: S the state covariance along the data, W_o
    the observability Gramian (``A'W_oA - W_o = -C'C``). The eigenvalues do not depend on the
    state basis; a tiny ratio means a state direction that the data do not excite or the
    output does not see, i.e. an order the data cannot identify.

    Parameters
    ----------
    A, B, C, x0, U
        As in :func:`whitened_coordinates`.

    Returns
    -------
    float
        In [0, 1]; 0 when the product is zero.
    """
    A, B, C, _ = check_state_space(A, B, C)
    # in a diagonally balanced basis (the ratio does not depend on it; the Lyapunov solve does)
    A, T = scipy.linalg.matrix_balance(A, permute=False)
    t = np.diag(T)
    B, C = B / t[:, None], C * t[None, :]
    S = _state_covariance(A, B, as_float_array(x0, "x0", ndim=2) / t[None, :], U)
    Wo = scipy.linalg.solve_discrete_lyapunov(A.T, C.T @ C)
    ev = np.abs(np.linalg.eigvals(Wo @ S))
    return float(ev.min() / ev.max()) if ev.max() > 0 else 0.0


def _state_covariance(A, B, x0, U):
    n = A.shape[0]
    xs = _lti_response(A, B, np.eye(n), np.zeros((n, B.shape[1])), U, x0).reshape(-1, n)
    S = xs.T @ xs / xs.shape[0]
    return 0.5 * (S + S.T)


def pad_states(A, B, C, n: int, x0=None, *, seed=0):
    """Pad a stable LTI system ``(A, B, C)`` of order k <= n to n states.

    The k..n-1 extra states are first-order filters of the input, ``z_i+ = a_i z_i + b_i' u``,
    with poles ``a_i = exp(-1/tau_i)`` for time constants log-spaced between 1 sample and the
    slowest time constant of A, and ``b_i`` a random unit vector times ``sqrt(1 - a_i^2)`` (unit
    variance for white unit inputs). Their output columns are zero, so the padded system has
    the same input-output behaviour; they give the fit state features with a gradient
    (zero-filled states would sit at a saddle). Block-diagonal, it keeps A's stability
    (``|a_i| < 1``). ``x0`` (batch, k), if given, is padded with zero initial states for the
    filters.

    Parameters
    ----------
    A, B, C : array_like
        The system of order k.
    n : int
        The number of states wanted, at least k.
    x0 : array_like, shape (batch, k), optional
        Initial states of the system.
    seed : int
        For the random input directions of the filters.

    Returns
    -------
    A, B, C, x0 : numpy.ndarray or None
        The padded system (``x0`` None when not given).

    Raises
    ------
    ValueError
        ``n`` below the system's order, or inconsistent shapes.
    """
    A, B, C, _ = check_state_space(A, B, C)
    k, m = B.shape
    if n < k:
        raise ValueError(f"n: expected at least the system order {k}, got {n}")
    extra = n - k
    if extra == 0:
        return A, B, C, x0
    rho = float(np.max(np.abs(np.linalg.eigvals(A)))) if k else 0.5
    tau_max = max(-1.0 / np.log(min(max(rho, 0.5), 0.999)), 2.0)
    tau = np.geomspace(1.0, tau_max, extra)
    a = np.exp(-1.0 / tau)
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((extra, m))
    b *= (np.sqrt(1.0 - a ** 2) / np.maximum(np.linalg.norm(b, axis=1), 1e-300))[:, None]
    Ap = scipy.linalg.block_diag(A, np.diag(a))
    Bp = np.vstack([B, b])
    Cp = np.hstack([C, np.zeros((C.shape[0], extra))])
    x0p = None if x0 is None else np.hstack([x0, np.zeros((x0.shape[0], extra))])
    return Ap, Bp, Cp, x0p


#: an N4SID order whose excitation ratio (:func:`excitation_ratio`) is at most this is not used
MIN_EXCITATION = 1e-10


@dataclass(frozen=True)
class LinearStart:
    """The linear model a fit starts from (:func:`linear_start`): padded to the requested number
    of states and in coordinates whose states have unit covariance along the training data.

    ``A, B, C, D``: the state-space matrices; ``x0`` (batch, n): the initial state of each data
    sequence; ``order``: the N4SID order used (the remaining states are input filters, see
    :func:`pad_states`); ``scores``: order -> training simulation RMSE (mean over channels,
    from the least-squares initial states) of every usable order; ``failed``: order -> why an
    order could not be used.

    Parameters
    ----------
    A, B, C, D : numpy.ndarray
        The state-space matrices, shapes (n, n), (n, m), (p, n), (p, m).
    x0 : numpy.ndarray, shape (batch, n)
        The initial state of each data sequence.
    order : int
        The N4SID order used.
    scores : dict
        Order -> training simulation RMSE of every usable order.
    failed : dict
        Order -> why it could not be used.
    """

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    x0: np.ndarray
    order: int
    scores: dict
    failed: dict

    def to_model(self, neurons: int, activation="relu", *, seed: int = 0) -> ImplicitRNN:
        """The start as an implicit RNN in Theta: the Lyapunov embedding of :func:`from_lti`
        (E = X with ``A'XA - X = -I``, F = X A, B2 = X B; X is well conditioned in these
        coordinates) with random neurons (the paper's remark: C1 ~ N(0, 1/n), D12 ~ N(0, 1),
        B1 = D21 = 0, so the neurons do not act yet).

        Parameters
        ----------
        neurons : int
            Number of neurons q.
        activation : str or Activation
            The neurons' activation.
        seed : int
            For the random neurons.

        Returns
        -------
        ImplicitRNN
            Contracting: B1 = D21 = 0, so the neurons do not act and the state follows the
            stable A.

        Raises
        ------
        ValueError
            ``neurons < 1``, an unknown activation, or an A that is not stable.
        """
        rng = np.random.default_rng(seed)
        lti, _ = from_lti(self.A, self.B, self.C, self.D, neurons=neurons, activation=activation)
        n, m = self.B.shape
        return ImplicitRNN(**(lti.weights() | {"C1": rng.standard_normal((neurons, n)) / np.sqrt(n),
                                               "D12": rng.standard_normal((neurons, m))}),
                           activation=lti.activation)

    def report(self) -> dict:
        """A JSON-safe summary (for a fit's history).

        Returns
        -------
        dict
            ``order``, ``n_states``, ``train_rmse_by_order`` and ``failed_orders`` (orders as
            string keys).
        """
        return {"order": int(self.order), "n_states": int(self.A.shape[0]),
                "train_rmse_by_order": {str(k): float(v) for k, v in self.scores.items()},
                "failed_orders": {str(k): v for k, v in self.failed.items()}}


def linear_start(u, y, n: int, orders=None, *, seed: int = 0, max_radius: float = 0.995) -> LinearStart:
    """N4SID models of the given orders (default 1..n), each scored by its training simulation
    error from least-squares initial states; the best one padded to n states
    (:func:`pad_states`) in unit-covariance coordinates (:func:`whitened_coordinates`).

    The order-n model is not always the best start on measured data: a high-order N4SID model
    of a noisy record can simulate far worse than a low-order one (Cascaded Tanks: order 8 from
    raw data simulated with 11,730 V RMSE, order 4 with 37.8 V), so the order is chosen by the
    error it is meant to reduce. Orders with state directions the data do not excite or the
    output does not see (:func:`excitation_ratio` <= ``MIN_EXCITATION``) are skipped and reported
    in ``failed``.

    Parameters
    ----------
    u, y : array_like, shape (T, c) or (batch, T, c)
        Training data, ideally normalised.
    n : int
        The number of states of the start (>= 1).
    orders : iterable of int, optional
        Orders to try, within 1..n (default all).
    seed : int
        For the padding filters.
    max_radius : float
        N4SID poles are moved inside this radius (:func:`n4sid`).

    Returns
    -------
    LinearStart
        The order with the smallest training simulation RMSE, padded and whitened.

    Raises
    ------
    ValueError
        ``n < 1``, orders outside 1..n, or no order gave a usable model (with every order's
        reason).
    """
    U, Y = paired_sequences(u, y)
    n = int(n)
    if n < 1:
        raise ValueError(f"n: expected a positive number of states, got {n}")
    orders = list(range(1, n + 1)) if orders is None else sorted({int(k) for k in orders})
    if not orders or orders[0] < 1 or orders[-1] > n:
        raise ValueError(f"orders: expected orders in 1..{n}, got {orders}")
    scores, failed, best = {}, {}, None
    for k, (A, B, C, D, x0) in zip(orders, n4sid_models(U, Y, orders, max_radius=max_radius)):
        with np.errstate(all="ignore"):
            err = _lti_response(A, B, C, D, U, x0) - Y
            score = float(np.mean(np.sqrt(np.mean(err ** 2, axis=(0, 1)))))
        if not np.isfinite(score):
            failed[k] = "the simulated output is not finite"
            continue
        try:
            ratio = excitation_ratio(A, B, C, x0, U)
            if not ratio > MIN_EXCITATION:
                raise ValueError(f"the data do not identify all {k} states (excitation ratio {ratio:.2g} "
                                 f"<= {MIN_EXCITATION:g})")
            Ap, Bp, Cp, x0p = pad_states(A, B, C, n, x0, seed=seed)
            coords = whitened_coordinates(Ap, Bp, Cp, x0p, U)
        except (ValueError, np.linalg.LinAlgError) as exc:
            failed[k] = str(exc)
            continue
        scores[k] = score
        if best is None or score < best[0]:
            best = (score, k, coords, D)
    if best is None:
        raise ValueError(f"u, y: no N4SID order in {orders} gave a usable linear model ({failed})")
    _, k, (Az, Bz, Cz, x0z, _), D = best
    return LinearStart(Az, Bz, Cz, D, x0z, k, scores, failed)


def _lti_response(A, B, C, D, U, x0):
    """Outputs (batch, T, p) of x+ = A x + B u, y = C x + D u (simulated as an ImplicitRNN
    with one inactive neuron)."""
    n = A.shape[0]
    lti = ImplicitRNN(F=A, B1=np.zeros((n, 1)), B2=B, C1=np.zeros((1, n)), C2=C, D22=D)
    return lti.simulate(U, x0)
