"""The stabilising solution of a discrete algebraic Riccati equation, and the KYP metric from it.

:func:`dare` is the extended symplectic-pencil / ordered-QZ method (the method of scipy's
``solve_discrete_are``) that also reports the pencil's unit-circle eigenvalues: there the
frequency inequality of the KYP lemma is singular. :func:`kyp_metric` uses it to turn fixed
multipliers of a KYP inequality into a metric (:mod:`rrnn_convex.kyp`).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla


def _pencil(A, B, Qw, R, S) -> tuple[np.ndarray, np.ndarray]:
    """The extended pencil ``H - z J`` of the DARE (size 2n + k)."""
    n, k = A.shape[0], B.shape[1]
    H = np.zeros((2 * n + k, 2 * n + k))
    H[:n, :n] = A
    H[:n, 2 * n:] = B
    H[n:2 * n, :n] = -Qw
    H[n:2 * n, n:2 * n] = np.eye(n)
    H[n:2 * n, 2 * n:] = -S
    H[2 * n:, :n] = S.T
    H[2 * n:, 2 * n:] = R
    J = np.zeros_like(H)
    J[:n, :n] = np.eye(n)
    J[n:2 * n, n:2 * n] = A.T
    J[2 * n:, n:2 * n] = -B.T
    return H, J


def _balance(H, J, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Benner's symplectic balancing of the pencil: (H, J, the scaling) (unscaled when not needed)."""
    Mb = np.abs(H) + np.abs(J)
    np.fill_diagonal(Mb, 0.0)
    _, (sca, _) = sla.matrix_balance(Mb, separate=1, permute=0)
    if np.allclose(sca, np.ones_like(sca)):
        return H, J, np.ones(2 * n + k)
    sca = np.log2(sca)
    s = np.round((sca[n:2 * n] - sca[:n]) / 2)
    sca = 2 ** np.r_[s, -s, sca[2 * n:]]
    el = sca[:, None] * np.reciprocal(sca)
    return H * el, J * el, sca


def dare(A, B, Qw, R, S, unit_tol: float = 1e-6):
    """Stabilising solution X of ``A'XA - X - (A'XB + S)(R + B'XB)^-1 (B'XA + S') + Qw = 0``.

    The extended-pencil / ordered-QZ method of scipy's ``solve_discrete_are`` (Van Dooren 1981,
    with Benner's symplectic balancing), which here also returns the pencil's eigenvalues: when
    some lie on the unit circle the frequency inequality is singular there and there is no
    stabilising solution.

    Parameters
    ----------
    A : numpy.ndarray, shape (n, n)
    B : numpy.ndarray, shape (n, k)
    Qw : numpy.ndarray, shape (n, n)
    R : numpy.ndarray, shape (k, k)
    S : numpy.ndarray, shape (n, k)
        The equation's data.
    unit_tol : float
        How close to the unit circle an eigenvalue counts as on it.

    Returns
    -------
    tuple
        (X or None, angles of the unit-circle eigenvalues in [0, pi]).
    """
    n, k = A.shape[0], B.shape[1]
    H, J = _pencil(A, B, Qw, R, S)
    H, J, sca = _balance(H, J, n, k)
    qq, _ = np.linalg.qr(H[:, -k:], mode="complete")
    H = qq[:, k:].T @ H[:, :2 * n]
    J = qq[:, k:].T @ J[:, :2 * n]
    try:
        _, _, alpha, beta, _, U = sla.ordqz(H, J, sort="iuc", output="real", check_finite=False)
    except (ValueError, np.linalg.LinAlgError):
        return None, np.array([])
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = alpha / beta
    on_circle = np.isfinite(lam) & (np.abs(np.abs(lam) - 1.0) < unit_tol)
    angles = np.unique(np.round(np.abs(np.angle(lam[on_circle])), 12))
    if angles.size or np.sum(np.abs(lam) < 1.0) != n:
        return None, angles
    u00, u10 = U[:n, :n], U[n:2 * n, :n]
    try:
        X = np.linalg.solve(u00.T, u10.T).T
    except np.linalg.LinAlgError:
        return None, angles
    X *= sca[:n, None] * sca[:n]
    if not np.all(np.isfinite(X)):
        return None, angles
    return 0.5 * (X + X.T), angles


def kyp_metric(M0, A, Bz, eps_d: float, gain: bool):
    """Qx with ``M(Qx) >= eps_d I`` from the DARE of the KYP inequality, or (None, angles).

    ``M(Qx) = J'QxJ - G'QxG + M0`` with ``G = [A Bz 0]`` on the rows (x, z, y): the LMI of
    :mod:`rrnn_convex.kyp` at fixed multipliers, whose rows y (when ``gain``) are eliminated by
    their Schur complement first.

    Parameters
    ----------
    M0 : numpy.ndarray
        The LMI at Qx = 0 (rows x, z, then y when ``gain``).
    A : numpy.ndarray, shape (n, n)
    Bz : numpy.ndarray, shape (n, nz)
        The explicit dynamics of x and its input z.
    eps_d : float
        The margin.
    gain : bool
        Whether M0 has the output rows y.

    Returns
    -------
    tuple
        (Qx or None, the angles of :func:`dare`).
    """
    n = A.shape[0]
    k = n + Bz.shape[1]
    Pi = M0[:k, :k] - eps_d * np.eye(k)
    if gain:  # eliminate the y-block: Schur complement of (g - eps_d) I
        Myy = M0[k:, k:] - eps_d * np.eye(M0.shape[0] - k)
        Pi = Pi - M0[:k, k:] @ np.linalg.solve(Myy, M0[k:, :k])
        Pi = 0.5 * (Pi + Pi.T)
    X, angles = dare(A, Bz, Pi[:n, :n], Pi[n:, n:], Pi[:n, n:])
    if X is None:
        return None, angles
    return -X, angles


__all__ = ["dare", "kyp_metric"]
