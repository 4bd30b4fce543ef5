"""Rigorous float64 positive-definiteness proofs.

Two pieces:

* :class:`Bounded` — a float64 array carrying an entrywise bound on its distance to the exact
  (real-arithmetic) value of the expression that produced it. Matrix products, sums and scalar
  products propagate the standard a-priori bounds of floating-point arithmetic
  (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 3.13:
  ``|fl(AB) - AB| <= gamma_k |A||B|`` with ``gamma_k = k u / (1 - k u)``, ``u = 2^-53``), so the
  LMI block matrix built from the actual weights comes with a bound ``Delta`` such that
  ``|M_exact - M_computed| <= Delta`` entrywise. Products use an error-free split
  (:func:`accurate_matmul`) so that cancellation, as in ``E'QE`` for an ill-conditioned E, does
  not inflate the bound.
* :func:`prove_pd` — proves ``M_exact > 0``: with ``B = fl(M_computed - c I)``, a successful
  floating-point Cholesky factorisation ``R'R = B + dB`` has
  ``|dB| <= gamma_{N+1} |R'||R|`` (Demmel 1989; Higham Thm 10.3, valid for any order of the
  inner products, so for LAPACK's blocked ``potrf`` too), hence
  ``||dB||_2 <= gamma_{N+1} / (1 - gamma_{N+1}) * trace(B)``. Therefore
  ``lambda_min(M_exact) >= c - ||Delta||_F - ||dB||_2 - u max|b_ii| - (underflow term)``,
  the same argument as Rump, "Verification of positive definiteness", BIT 46 (2006).
  Every error term below is computed in floating point and then doubled, which more than
  covers the relative rounding error (< (N + 3) u) made in evaluating the bounds themselves.

The proven lower bound on the smallest eigenvalue is returned with the verdict.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

U = 2.0 ** -53  # unit roundoff of float64
ETA = 2.0 ** -1074  # smallest positive subnormal


def gamma_k(k: int) -> float:
    """Higham's ``gamma_k = k u / (1 - k u)``."""
    if k * U >= 0.5:
        raise ValueError(f"gamma_k: dimension {k} too large for a useful rounding bound")
    return k * U / (1.0 - k * U)


class Bounded:
    """A float64 array ``val`` with an entrywise error bound ``err`` (``|exact - val| <= err``).

    Supports ``@``, ``+``, ``-``, unary ``-``, ``*`` (by floats or Bounded scalars), ``.T`` and
    block assembly, which is everything :mod:`rrnn_convex.lmi` needs, so the same block-building
    code produces the solver's constraint and the rigorous check.
    """

    __array_ufunc__ = None  # make numpy defer to our reflected operators

    def __init__(self, val, err=None):
        self.val = np.asarray(val, dtype=np.float64)
        self.err = np.zeros_like(self.val) if err is None else np.asarray(err, dtype=np.float64)

    @staticmethod
    def wrap(x) -> "Bounded":
        return x if isinstance(x, Bounded) else Bounded(x)

    @property
    def shape(self):
        return self.val.shape

    @property
    def T(self) -> "Bounded":
        return Bounded(self.val.T, self.err.T)

    def __neg__(self):
        return Bounded(-self.val, self.err)

    def __add__(self, other):
        o = Bounded.wrap(other)
        val = self.val + o.val
        return Bounded(val, self.err + o.err + U * np.abs(val))

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-Bounded.wrap(other))

    def __rsub__(self, other):
        return Bounded.wrap(other) + (-self)

    def __mul__(self, other):
        o = Bounded.wrap(other)
        val = self.val * o.val
        err = (self.err * np.abs(o.val) + np.abs(self.val) * o.err + self.err * o.err
               + U * np.abs(val))
        return Bounded(val, err)

    __rmul__ = __mul__

    def __matmul__(self, other):
        o = Bounded.wrap(other)
        return _matmul(self, o)

    def __rmatmul__(self, other):
        return _matmul(Bounded.wrap(other), self)

    @staticmethod
    def block(rows) -> "Bounded":
        rows = [[Bounded.wrap(b) for b in row] for row in rows]
        val = np.block([[b.val for b in row] for row in rows])
        err = np.block([[b.err for b in row] for row in rows])
        return Bounded(val, err)


def _split(A: np.ndarray, axis: int, rho: int) -> tuple[np.ndarray, np.ndarray]:
    """Error-free split A = A1 + A2 (Ozaki et al. 2012): A1 keeps the leading bits of each row
    (axis=1) or column (axis=0), as multiples of 2^(ceil(log2 max|.|) + rho - 52)."""
    mu = np.max(np.abs(A), axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):
        e = np.where(mu > 0, np.ceil(np.log2(np.where(mu > 0, mu, 1.0))), 0.0)
    sigma = np.ldexp(1.0, (e + rho).astype(int))
    A1 = (A + sigma) - sigma
    return A1, A - A1


def accurate_matmul(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A @ B`` with an error bound that is small even when the product cancels.

    A = A1 + A2 and B = B1 + B2 are split so that A1 @ B1 is computed exactly by any floating-
    point matrix product (each row of A1 and column of B1 carries at most 52 - rho bits with
    2 (52 - rho) + log2(k) <= 51, so every partial sum is an exactly representable multiple of
    a common power of two). The remaining terms are small: their classical bound
    gamma_k |A_i||B_j| is about 2^-21 of the plain product's. Returns (value, error bound).
    """
    k = A.shape[-1]
    rho = int(np.ceil((53 + np.log2(max(k, 2))) / 2)) + 1
    with np.errstate(over="ignore", invalid="ignore"):
        A1, A2 = _split(A, 1, rho)
        B1, B2 = _split(B, 0, rho)
    if not (np.all(np.isfinite(A1)) and np.all(np.isfinite(B1))):
        val = A @ B
        return val, gamma_k(max(k, 1)) * (np.abs(A) @ np.abs(B))
    exact = A1 @ B1
    rest = A1 @ B2 + A2 @ B1 + A2 @ B2
    val = exact + rest
    aA1, aA2, aB1, aB2 = np.abs(A1), np.abs(A2), np.abs(B1), np.abs(B2)
    err = gamma_k(k + 3) * (aA1 @ aB2 + aA2 @ aB1 + aA2 @ aB2) + U * np.abs(val)
    return val, err


def _matmul(a: Bounded, b: Bounded) -> Bounded:
    if a.val.ndim == 2 and b.val.ndim == 2:
        val, err = accurate_matmul(a.val, b.val)
    else:
        val = a.val @ b.val
        k = a.val.shape[-1] if a.val.ndim else 1
        err = gamma_k(max(k, 1)) * (np.abs(a.val) @ np.abs(b.val))
    abs_a, abs_b = np.abs(a.val), np.abs(b.val)
    if a.err.any():
        err = err + a.err @ (abs_b + b.err)
    if b.err.any():
        err = err + abs_a @ b.err
    return Bounded(val, err)


@dataclass(frozen=True)
class PDProof:
    """Outcome of :func:`prove_pd`. ``ok`` means ``lambda_min(M_exact) >= lower_bound > 0``."""

    ok: bool
    lower_bound: float  # proven lower bound on lambda_min of the exact matrix (nan if none)
    estimate: float  # floating-point estimate of lambda_min (eigvalsh), for information
    error_bound: float  # total rounding allowance subtracted in the proof
    reason: str = ""

    def __bool__(self):
        return self.ok


def prove_pd(M) -> PDProof:
    """Prove that the exact symmetric matrix represented by ``M`` is positive definite.

    ``M`` is a :class:`Bounded` (or a float array, taken as exact). The exact matrix is assumed
    symmetric (the LMIs are); the computed one is symmetrised with its rounding tracked.
    """
    M = Bounded.wrap(M)
    if M.val.ndim != 2 or M.val.shape[0] != M.val.shape[1]:
        raise ValueError(f"M: expected a square matrix, got shape {M.val.shape}")
    N = M.val.shape[0]
    if N == 0:
        return PDProof(True, np.inf, np.inf, 0.0, "empty matrix")
    if not (np.all(np.isfinite(M.val)) and np.all(np.isfinite(M.err))):
        return PDProof(False, np.nan, np.nan, np.inf, "matrix has non-finite entries")
    S = (M + M.T) * 0.5
    diag = np.diag(S.val)
    estimate = float(np.linalg.eigvalsh(S.val)[0])
    g = gamma_k(N + 1)
    e_build = float(np.linalg.norm(S.err, "fro"))  # ||Delta||_2 <= ||Delta||_F
    max_diag = float(np.max(np.abs(diag)))
    trace_bound = float(np.sum(np.abs(diag))) * (1.0 + 2 * N * U)  # >= trace(B) for any c >= 0
    e_chol = g / (1.0 - g) * trace_bound
    e_under = 4.0 * N * (2 * (N + 2) + max_diag) * ETA
    err_total = 2.0 * (e_build + e_chol + U * max_diag + e_under)
    if not np.isfinite(err_total):
        return PDProof(False, np.nan, estimate, err_total, "error bound overflowed")
    # try a large shift first (a better proven bound), then the minimal one
    shifts = [2.0 * err_total]
    if estimate > 4.0 * err_total:
        shifts.insert(0, 0.5 * estimate)
    for c in shifts:
        # the diagonal subtraction's rounding (<= u |b_ii|) is covered by U * max_diag above
        # because |b_ii| <= |s_ii| + c and c is counted separately below
        B = S.val - c * np.eye(N)
        try:
            scipy.linalg.cholesky(B, lower=False, check_finite=False)
        except np.linalg.LinAlgError:
            continue
        lower = c - err_total - U * c
        if lower > 0:
            return PDProof(True, lower, estimate, err_total)
    return PDProof(False, np.nan, estimate, err_total,
                   f"Cholesky of M - c I failed (smallest eigenvalue estimate {estimate:.3e}, "
                   f"rounding allowance {err_total:.3e})")
