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
  ``lambda_min(M_exact) >= c - ||Delta||_2 - ||dB||_2 - u max|b_ii| - (underflow term)``,
  the same argument as Rump, "Verification of positive definiteness", BIT 46 (2006).
  Every error term below is computed in floating point and then doubled, which more than
  covers the relative rounding error (< (N + 3) u) made in evaluating the bounds themselves.

**Underflow.** ``|fl(a op b) - a op b| <= u |a op b|`` fails for results below the normal range
(``2^-1022``): a product or quotient that underflows loses up to ``eta/2`` absolutely,
``eta = 2^-1074`` the smallest subnormal. Every bound here uses Demmel's model of gradual
underflow (J. Demmel, "Underflow and the reliability of numerical software", SIAM J. Sci. Stat.
Comput. 5 (1984)): ``fl(a * b) = a b (1 + d) + e`` with ``|d| <= u``, ``|e| <= eta/2``, while a sum
or difference that underflows is exact (``fl(a + b) = (a + b)(1 + d)``). A dot product of length k
in any order (fused multiply-adds included) therefore has
``|fl(x'y) - x'y| <= gamma_k |x|'|y| + k eta/2 (1 + gamma_{k-1}) <= gamma_k |x|'|y| + k eta`` --
the absolute term of Rump's bounds (S. M. Rump, "Verification methods: rigorous results using
floating-point arithmetic", Acta Numerica 19 (2010), section 3). The same absolute term is added
for each product computed while evaluating the error bounds themselves (a bound like
``u |x|`` underflows too), see :func:`_underflow_slack`. Because these terms are absolute,
:func:`prove_pd` first scales the matrix by exact powers of two to unit diagonal, so the slack is
negligible unless entries are far below the matrix's own scale, and it refuses a proven margin
that is itself below the normal range (no margin float64 can prove).

The proven lower bound on the smallest eigenvalue is returned with the verdict. The argument is
written out in docs/design.md section 7.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

U = 2.0 ** -53  # unit roundoff of float64
ETA = 2.0 ** -1074  # smallest positive subnormal
TINY = 2.0 ** -1022  # smallest positive normal number


def gamma_k(k: int) -> float:
    """Higham's ``gamma_k = k u / (1 - k u)``.

    Parameters
    ----------
    k : int
        The length of the inner products (or the number of operations) bounded.

    Returns
    -------
    float
        ``gamma_k`` for ``u = 2^-53``.

    Raises
    ------
    ValueError
        ``k u >= 1/2``: the bound would be useless.
    """
    if k * U >= 0.5:
        raise ValueError(f"gamma_k: dimension {k} too large for a useful rounding bound")
    return k * U / (1.0 - k * U)


def _underflow_slack(k: int) -> float:
    """Absolute allowance for underflow in one entry of a length-k product and of its error bound.

    Demmel's model (module docstring): each product that underflows is off by at most eta/2,
    sums that underflow are exact. One entry of :func:`_matmul` computes at most 9 dot products of
    length k (4 in the value's split, 5 in its error bound) and 3 scalar products, i.e. at most
    9 k + 3 products, each off by <= eta/2 absolutely; the sums carrying them only add relative
    error, covered by the final doubling in :func:`prove_pd`. ``5 (k + 1) eta`` covers that.
    """
    return 5.0 * (k + 1) * ETA


def scaled_by_power_of_two(X, k) -> "Bounded":
    """``X * 2^k`` as a :class:`Bounded`.

    Exact unless an entry lands below the normal range (then it is off by <= eta/2, Demmel's
    model) or overflows (inf, refused by :func:`prove_pd`).

    Parameters
    ----------
    X : array_like
        The values (converted to float64).
    k : int or array_like of int
        The exponent, an integer or an integer array broadcasting with X.

    Returns
    -------
    Bounded
        The scaled values, with error ``eta`` on the entries that became subnormal.
    """
    X = np.asarray(X, dtype=np.float64)
    val = np.ldexp(X, np.asarray(k, dtype=np.int64))
    inexact = (X != 0) & (np.abs(val) < TINY)
    return Bounded(val, np.where(inexact, ETA, 0.0))


def power_of_two_exponent(x: float) -> int:
    """``e`` with ``|x| 2^-e`` in [0.5, 1).

    Parameters
    ----------
    x : float
        Any number.

    Returns
    -------
    int
        frexp's exponent of x; 0 for x = 0 or a non-finite x.
    """
    x = float(x)
    if x == 0.0 or not np.isfinite(x):
        return 0
    return int(np.frexp(x)[1])


class Bounded:
    """A float64 array ``val`` with an entrywise error bound ``err`` (``|exact - val| <= err``).

    Supports ``@``, ``+``, ``-``, unary ``-``, ``*`` (by floats or Bounded scalars), ``.T`` and
    block assembly, which is everything :mod:`rrnn_convex.lmi` needs, so the same block-building
    code produces the solver's constraint and the rigorous check. Every operation's bound includes
    the absolute underflow term of Demmel's model (module docstring).

    Parameters
    ----------
    val : array_like
        The computed values (converted to float64). A plain array is taken as exact.
    err : array_like, optional
        The entrywise bound on ``|exact - val|`` (default: zeros, i.e. exact).

    Attributes
    ----------
    val : numpy.ndarray
        The values, float64.
    err : numpy.ndarray
        The error bounds, float64, shaped like ``val``.
    """

    __array_ufunc__ = None  # make numpy defer to our reflected operators

    def __init__(self, val, err=None):
        self.val = np.asarray(val, dtype=np.float64)
        self.err = np.zeros_like(self.val) if err is None else np.asarray(err, dtype=np.float64)

    @staticmethod
    def wrap(x) -> "Bounded":
        """``x`` itself if it is a :class:`Bounded`, else ``Bounded(x)`` (taken as exact).

        Parameters
        ----------
        x : Bounded or array_like
            A bounded array, or values taken as exact.

        Returns
        -------
        Bounded
            ``x`` itself (not a copy), or a new Bounded with zero error.
        """
        return x if isinstance(x, Bounded) else Bounded(x)

    @property
    def shape(self):
        """The shape of ``val``."""
        return self.val.shape

    @property
    def T(self) -> "Bounded":
        """The transpose (exact)."""
        return Bounded(self.val.T, self.err.T)

    def __neg__(self):
        return Bounded(-self.val, self.err)

    def __add__(self, other):
        # a sum that underflows is exact; the bound's own product u |val| may lose eta/2
        o = Bounded.wrap(other)
        val = self.val + o.val
        return Bounded(val, self.err + o.err + U * np.abs(val) + ETA)

    __radd__ = __add__

    def __sub__(self, other):
        return self + (-Bounded.wrap(other))

    def __rsub__(self, other):
        return Bounded.wrap(other) + (-self)

    def __mul__(self, other):
        o = Bounded.wrap(other)
        val = self.val * o.val
        err = (self.err * np.abs(o.val) + np.abs(self.val) * o.err + self.err * o.err
               + U * np.abs(val) + _underflow_slack(0))
        return Bounded(val, err)

    __rmul__ = __mul__

    def __matmul__(self, other):
        o = Bounded.wrap(other)
        return _matmul(self, o)

    def __rmatmul__(self, other):
        return _matmul(Bounded.wrap(other), self)

    @staticmethod
    def block(rows) -> "Bounded":
        """Block matrix from nested lists of blocks, like :func:`numpy.block` (exact).

        Parameters
        ----------
        rows : list of list
            Blocks (Bounded or arrays, the latter taken as exact).

        Returns
        -------
        Bounded
            The assembled values and error bounds (assembly adds no error).
        """
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
    a common power of two) -- except that a product below the normal range is rounded to a
    multiple of eta (off by <= eta/2, Demmel's model; the partial sums stay exact), which
    :func:`_underflow_slack` covers. The remaining terms are small: their classical bound
    ``gamma_k |A_i| |B_j|`` is about 2^-21 of the plain product's.

    Parameters
    ----------
    A : numpy.ndarray, shape (r, k)
        The left factor, float64, finite.
    B : numpy.ndarray, shape (k, c)
        The right factor, float64, finite.

    Returns
    -------
    value : numpy.ndarray, shape (r, c)
        The computed product.
    error : numpy.ndarray, shape (r, c)
        An entrywise bound on ``|A B - value|`` (exact A and B).
    """
    k = A.shape[-1]
    rho = int(np.ceil((53 + np.log2(max(k, 2))) / 2)) + 1
    with np.errstate(over="ignore", invalid="ignore"):
        A1, A2 = _split(A, 1, rho)
        B1, B2 = _split(B, 0, rho)
    if not (np.all(np.isfinite(A1)) and np.all(np.isfinite(B1))):
        val = A @ B
        return val, gamma_k(max(k, 1)) * (np.abs(A) @ np.abs(B)) + _underflow_slack(k)
    exact = A1 @ B1
    rest = A1 @ B2 + A2 @ B1 + A2 @ B2
    val = exact + rest
    aA1, aA2, aB1, aB2 = np.abs(A1), np.abs(A2), np.abs(B1), np.abs(B2)
    err = gamma_k(k + 3) * (aA1 @ aB2 + aA2 @ aB1 + aA2 @ aB2) + U * np.abs(val) + _underflow_slack(k)
    return val, err


def _matmul(a: Bounded, b: Bounded) -> Bounded:
    if a.val.ndim == 2 and b.val.ndim == 2:
        val, err = accurate_matmul(a.val, b.val)
    else:
        val = a.val @ b.val
        k = a.val.shape[-1] if a.val.ndim else 1
        err = gamma_k(max(k, 1)) * (np.abs(a.val) @ np.abs(b.val)) + _underflow_slack(k)
    abs_a, abs_b = np.abs(a.val), np.abs(b.val)
    if a.err.any():
        err = err + a.err @ (abs_b + b.err)
    if b.err.any():
        err = err + abs_a @ b.err
    return Bounded(val, err)


@dataclass(frozen=True)
class PDProof:
    """Outcome of :func:`prove_pd`. ``ok`` means ``lambda_min(M_exact) >= lower_bound > 0``.

    Parameters
    ----------
    ok : bool
        Whether positive definiteness was proven. The object is truthy exactly then.
    lower_bound : float
        The proven lower bound on the exact matrix's smallest eigenvalue (nan if none).
    estimate : float
        A floating-point estimate of the smallest eigenvalue (eigvalsh), for information.
    error_bound : float
        The total rounding allowance subtracted in the proof, in the matrix's units.
    reason : str
        Why the proof failed ("" on success, or a note).
    """

    ok: bool
    lower_bound: float  # proven lower bound on lambda_min of the exact matrix (nan if none)
    estimate: float  # floating-point estimate of lambda_min (eigvalsh), for information
    error_bound: float  # total rounding allowance subtracted in the proof (in M's units)
    reason: str = ""

    def __bool__(self):
        return self.ok


def _scaled_norm2_bound(X: np.ndarray) -> float:
    """An upper bound on ``||X||_2`` by the Frobenius norm, scaled by max|X| first so that the
    squares neither overflow nor underflow to a value that is too small (LAPACK's dnrm2 idea):
    squares that underflow are below ``TINY`` relative to the largest, covered by the doubling."""
    top = float(np.max(np.abs(X))) if X.size else 0.0
    if top == 0.0 or not np.isfinite(top):
        return top
    return top * float(np.sqrt(np.sum((np.abs(X) / top) ** 2)))


def _lambda_min_estimate(S: np.ndarray) -> float:
    """eigvalsh's smallest eigenvalue of S, computed on ``2^-e S`` (exact scaling) so that LAPACK
    never sees entries near overflow; nan if it does not converge."""
    e = power_of_two_exponent(np.max(np.abs(S)))
    try:
        return float(np.ldexp(np.linalg.eigvalsh(np.ldexp(S, -e))[0], e))
    except np.linalg.LinAlgError:
        return float("nan")


def _cholesky_proof(T: Bounded) -> tuple[float, float, float]:
    """(proven lower bound on lambda_min(T_exact) or nan, allowance, estimate) for a finite
    symmetric T of unit scale (diagonal entries in [0.5, 2) or max |t_ij| in [0.5, 1))."""
    N = T.val.shape[0]
    diag = np.diag(T.val)
    try:
        estimate = float(np.linalg.eigvalsh(T.val)[0])
    except np.linalg.LinAlgError:
        estimate = float("nan")
    g = gamma_k(N + 1)
    e_build = _scaled_norm2_bound(T.err)  # ||Delta||_2 <= ||Delta||_F
    max_diag = float(np.max(np.abs(diag)))
    trace_bound = float(np.sum(np.abs(diag))) * (1.0 + 2 * N * U)  # >= trace(B) for any c >= 0
    e_chol = g / (1.0 - g) * trace_bound
    e_under = 4.0 * N * (2 * (N + 2) + max_diag) * ETA
    err_total = 2.0 * (e_build + e_chol + U * max_diag + e_under)
    if not np.isfinite(err_total):
        return float("nan"), err_total, estimate
    # try a large shift first (a better proven bound), then the minimal one
    shifts = [2.0 * err_total]
    if estimate > 4.0 * err_total:
        shifts.insert(0, 0.5 * estimate)
    for c in shifts:
        # the diagonal subtraction's rounding (<= u |b_ii|) is covered by U * max_diag above
        # because |b_ii| <= |s_ii| + c and c is counted separately below
        B = T.val - c * np.eye(N)
        try:
            scipy.linalg.cholesky(B, lower=False, check_finite=False)
        except np.linalg.LinAlgError:
            continue
        lower = c - err_total - U * c
        if lower > 0:
            return lower, err_total, estimate
    return float("nan"), err_total, estimate


def prove_pd(M) -> PDProof:
    """Prove that the exact symmetric matrix represented by ``M`` is positive definite.

    ``M`` is a :class:`Bounded` (or a float array, taken as exact). The exact matrix is assumed
    symmetric (the LMIs are); the computed one is symmetrised with its rounding tracked.

    The proof runs on ``T = D S D`` with D diagonal of exact powers of two (S the symmetrised M),
    ``T_exact > 0`` iff ``S_exact > 0`` and ``lambda_min(S_exact) >= lambda_min(T_exact) /
    max_i d_i^2``. Two choices of D are tried: a multiple of I bringing max|S| to [0.5, 1)
    (the plain test, scale-free) and the equilibration ``d_i^2 s_ii`` in [0.5, 2) (van der Sluis),
    which makes rows of very different scales -- a gain block gamma = 1e15 beside a contraction
    block of 1e-3 -- provable. Scaling is exact except for entries that land below the normal
    range: each of those is off by <= eta/2, added to the error bound. A proven margin below the
    normal range (2^-1022) is refused: it is not a margin float64 can prove.

    Parameters
    ----------
    M : Bounded or array_like, shape (N, N)
        The matrix and the bound on its construction error.

    Returns
    -------
    PDProof
        The verdict, the proven lower bound on the smallest eigenvalue, the float estimate, the
        rounding allowance and, on failure, the reason (a non-positive diagonal entry, non-finite
        entries, a failed Cholesky factorisation, an overflowing bound or a margin below the
        normal range).

    Raises
    ------
    ValueError
        ``M`` is not a square matrix.
    """
    M = Bounded.wrap(M)
    if M.val.ndim != 2 or M.val.shape[0] != M.val.shape[1]:
        raise ValueError(f"M: expected a square matrix, got shape {M.val.shape}")
    N = M.val.shape[0]
    if N == 0:
        return PDProof(True, np.inf, np.inf, 0.0, "empty matrix")
    if not (np.all(np.isfinite(M.val)) and np.all(np.isfinite(M.err))):
        return PDProof(False, np.nan, np.nan, np.inf, "matrix has non-finite entries")
    with np.errstate(over="ignore"):
        S = M * 0.5 + M.T * 0.5  # halves first: M + M' could overflow near the float64 maximum
    if not (np.all(np.isfinite(S.val)) and np.all(np.isfinite(S.err))):
        return PDProof(False, np.nan, np.nan, np.inf, "matrix has non-finite entries")
    estimate = _lambda_min_estimate(S.val)
    diag = np.diag(S.val)
    if not np.all(diag > 0):
        i = int(np.argmin(diag))
        return PDProof(False, np.nan, estimate, float("nan"),
                       f"diagonal entry {i} is {diag[i]:.3e} <= 0 (smallest eigenvalue estimate "
                       f"{estimate:.3e})")
    uniform = np.full(N, -power_of_two_exponent(np.max(np.abs(S.val))))
    equilibrate = -(np.frexp(diag)[1] // 2)  # d_i^2 s_ii in [0.5, 2)
    allowance, best = float("nan"), float("nan")
    for exps in (uniform, equilibrate):
        E2 = exps[:, None] + exps[None, :]
        with np.errstate(over="ignore"):
            T = scaled_by_power_of_two(S.val, E2)
            T.err = T.err + np.ldexp(S.err, E2) + np.where(S.err > 0, ETA, 0.0)  # err rounded up
        if not (np.all(np.isfinite(T.val)) and np.all(np.isfinite(T.err))):
            continue  # |s_ij| >> sqrt(s_ii s_jj): not positive definite, the other scaling decides
        lower_t, err_t, _ = _cholesky_proof(T)
        # back in S's units: the allowance as a perturbation of S, the bound through max d_i^2
        if not np.isfinite(allowance):
            allowance = float(np.ldexp(err_t, -2 * int(exps.min()))) if np.isfinite(err_t) else float(err_t)
        if np.isfinite(lower_t):
            lower = float(np.ldexp(lower_t, -2 * int(exps.max())))
            best = lower if not np.isfinite(best) else max(best, lower)
            if best >= TINY:  # (an estimate below the proven bound is rounding noise: use the bound)
                best = min(best, np.finfo(np.float64).max)
                return PDProof(True, best, best if not estimate >= best else estimate, allowance)
    if np.isfinite(best):
        return PDProof(False, np.nan, estimate, allowance,
                       f"the proven margin {best:.3e} is below float64's normal range ({TINY:.3e}): "
                       f"not a margin float64 can prove")
    if not np.isfinite(allowance):
        return PDProof(False, np.nan, estimate, allowance, "error bound overflowed")
    return PDProof(False, np.nan, estimate, allowance,
                   f"Cholesky of M - c I failed (smallest eigenvalue estimate {estimate:.3e}, "
                   f"rounding allowance {allowance:.3e})")
