"""A small primal-dual interior-point method for many Hermitian LMI blocks with low-rank data.

Solves ``min c'y s.t. C_k + A_k(y) >= 0 (k = 1..K, Hermitian d x d blocks), h + G y >= 0`` where
each coefficient ``A_ki`` is a sum of a few rank-one terms (:class:`Blocks`), so the Schur
complement costs O(K d^2 r) instead of O(K d^3 nv). Infeasible start (or a strictly feasible dual
start), HKM search direction, Mehrotra predictor-corrector. Used by the KYP certification path
(:mod:`rrnn_convex.kyp`), where the blocks are a frequency-gridded KYP inequality.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

TRACE = False  # print the interior-point iterations (debugging)


def _H(A):
    return np.swapaxes(A, -1, -2).conj()


def herm(A):
    """The Hermitian part ``(A + A*) / 2`` of (a stack of) square matrices.

    Parameters
    ----------
    A : numpy.ndarray, shape (..., d, d)
        Real or complex square matrices (the last two axes).

    Returns
    -------
    numpy.ndarray, shape (..., d, d)
        ``(A + conj(A)^T) / 2`` over the last two axes.
    """
    return 0.5 * (A + _H(A))


class Blocks:
    """K Hermitian LMI blocks of one size d, stacked: ``C_k + sum_i y_i A_ki >= 0``.

    ``A_ki = sum_{a: var_a = i} sig_ka f_ka f_ka*`` plus optional dense coefficients ``[(i, D_i)]``
    (D_i stacked K x d x d). Every block is scaled by a positive factor (feasibility unchanged).

    Parameters
    ----------
    C : numpy.ndarray, shape (K, d, d)
        The constant terms.
    Fh : numpy.ndarray, shape (K, d, r)
        The factor columns f_ka of every block.
    sig : numpy.ndarray, shape (r,)
        The sign/weight of each factor column.
    var : numpy.ndarray of int, shape (r,)
        The variable each factor column belongs to.
    nv : int
        The number of variables.
    dense : sequence of (int, numpy.ndarray)
        Dense coefficients: variable index and its K x d x d stack.

    Attributes
    ----------
    C : numpy.ndarray, shape (K, d, d)
        The constant terms, each block scaled by ``1 / max(|C_k|, |coefficients|)``.
    sig : numpy.ndarray, shape (K, r)
        The factor weights with each block's scale.
    K, d : int
        The number and size of the blocks.
    S : scipy.sparse.csr_matrix, shape (r, nv)
        Factor column -> variable incidence.
    """

    def __init__(self, C, Fh, sig, var, nv, dense=()):
        K = C.shape[0]
        sc = np.maximum(np.abs(C).reshape(K, -1).max(axis=1),
                        (np.abs(sig) * np.sum(np.abs(Fh) ** 2, axis=1)).max(axis=1, initial=0.0))
        for _, D in dense:
            sc = np.maximum(sc, np.abs(D).reshape(K, -1).max(axis=1))
        s = np.where(sc > 0, 1.0 / np.where(sc > 0, sc, 1.0), 1.0)
        self.C = C * s[:, None, None]
        self.Fh = Fh
        self.FhH = _H(Fh)
        self.sig = sig[None, :] * s[:, None]  # K x r
        self.var = var
        self.dense = [(i, D * s[:, None, None]) for i, D in dense]
        self.K, self.d = K, C.shape[1]
        self.S = sp.csr_matrix((np.ones(len(var)), (np.arange(len(var)), var)), shape=(len(var), nv))

    def op(self, y):
        """A(y), K x d x d.

        Parameters
        ----------
        y : numpy.ndarray, shape (nv,)
            The variables.

        Returns
        -------
        numpy.ndarray, shape (K, d, d)
            ``sum_i y_i A_ki`` for every block (scaled as ``C``).
        """
        out = (self.Fh * (self.sig * y[self.var])[:, None, :]) @ self.FhH
        for i, D in self.dense:
            out = out + y[i] * D
        return out

    def adj(self, Y):
        """A*(Y) = sum_k A_k*(Y_k) (real part).

        Parameters
        ----------
        Y : numpy.ndarray, shape (K, d, d)
            One (Hermitian) matrix per block.

        Returns
        -------
        numpy.ndarray, shape (nv,)
            ``Re sum_k tr(A_ki Y_k)`` for each variable i.
        """
        v = np.sum(self.sig * np.real(np.sum(self.Fh.conj() * (Y @ self.Fh), axis=1)), axis=0)
        out = self.S.T @ v
        for i, D in self.dense:
            out[i] += np.real(np.vdot(D, Y))
        return out

    def schur(self, X, Zi):
        """``M_ij = sum_k Re tr(A_ki X_k A_kj Z_k^-1)``.

        Parameters
        ----------
        X : numpy.ndarray, shape (K, d, d)
            The primal blocks.
        Zi : numpy.ndarray, shape (K, d, d)
            The inverses of the dual blocks.

        Returns
        -------
        numpy.ndarray, shape (nv, nv)
            The Schur complement matrix, symmetrised.
        """
        P = self.FhH @ (X @ self.Fh)
        R = self.FhH @ (Zi @ self.Fh)
        W = np.einsum("kab,kba,ka,kb->ab", P, R, self.sig, self.sig, optimize=True).real
        M = np.asarray(self.S.T @ (self.S.T @ W.T).T)
        for i, D in self.dense:  # dense variables have no factor columns: their column is A*(X D Z^-1)
            M[:, i] += self.adj(X @ D @ Zi)
        for i, _ in self.dense:
            M[i, :] = M[:, i]
        return 0.5 * (M + M.T)


def max_step(X, dX) -> float:
    """Largest alpha with X_k + alpha dX_k >= 0 for all k (X_k > 0).

    Parameters
    ----------
    X : numpy.ndarray, shape (K, d, d)
        Positive definite Hermitian blocks.
    dX : numpy.ndarray, shape (K, d, d)
        The direction.

    Returns
    -------
    float
        ``-1 / lambda_min(L^-1 dX L^-*)`` over the blocks (``X = L L*``), or ``inf`` when
        no block decreases.

    Raises
    ------
    numpy.linalg.LinAlgError
        If a block of ``X`` is not positive definite.
    """
    Li = np.linalg.inv(np.linalg.cholesky(X))
    W = herm(Li @ dX @ _H(Li))
    if W.shape[-1] <= 96:
        lo = float(np.linalg.eigvalsh(W)[:, 0].min())
    else:
        lo = min(sla.eigh(Wk, eigvals_only=True, subset_by_index=[0, 0], check_finite=False)[0] for Wk in W)
    return np.inf if lo >= 0 else -1.0 / lo


def lp_step(v, dv) -> float:
    """Largest alpha with v + alpha dv >= 0 (v > 0).

    Parameters
    ----------
    v : numpy.ndarray, shape (L,)
        Positive entries.
    dv : numpy.ndarray, shape (L,)
        The direction.

    Returns
    -------
    float
        ``min(-v_i / dv_i)`` over the negative ``dv_i``, or ``inf`` when there is none.
    """
    neg = dv < 0
    return np.inf if not neg.any() else float(np.min(-v[neg] / dv[neg]))


def is_pd(B: Blocks, y) -> bool:
    """Whether every block ``C_k + A_k(y)`` is positive definite (Cholesky).

    Parameters
    ----------
    B : Blocks
        The LMI blocks.
    y : numpy.ndarray, shape (nv,)
        The variables.

    Returns
    -------
    bool
        True when numpy's Cholesky factorisation of every block succeeds (a floating-point
        test, not a proof).
    """
    try:
        np.linalg.cholesky(B.C + B.op(y))
        return True
    except np.linalg.LinAlgError:
        return False


@dataclass
class _Iterate:
    """Primal (X blocks, x LP slacks' duals) and dual (y, Z blocks, z LP slacks) variables."""

    y: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    x: np.ndarray
    z: np.ndarray

    def moved(self, direction, ap: float, ad: float) -> "_Iterate":
        """The iterate after a primal step ``ap`` and a dual step ``ad`` along ``direction``."""
        dy, dX, dZ, dxl, dzl = direction
        return _Iterate(y=self.y + ad * dy, X=self.X + ap * dX, Z=self.Z + ad * dZ,
                        x=self.x + ap * dxl, z=self.z + ad * dzl)


def _start(B: Blocks, G, h, c, y0, eye) -> _Iterate:
    """The starting iterate: strictly feasible dual from ``y0``, else the scaled infeasible start."""
    L = len(h)
    if y0 is not None:
        # strictly feasible dual start Z = C + A(y0) (from uniform multipliers), X = I: measured
        # 16-31 iterations for n = 48..128 where the infeasible start needed 25-60
        y = np.array(y0, dtype=float)
        return _Iterate(y=y, X=eye.copy(), Z=herm(B.C + B.op(y)), x=np.ones(L), z=h + G @ y)
    # initial primal scale: A*(xi I) ~ 3 |c| (X = I overshoots the dual equality by ~K and the
    # primal steps then stall for many iterations)
    xi = min(1.0, 3.0 * np.linalg.norm(c) / max(np.linalg.norm(B.adj(eye)), 1e-300))
    return _Iterate(y=np.zeros(len(c)), X=xi * eye, Z=eye.copy(), x=xi * np.ones(L), z=np.ones(L))


def _residuals(B: Blocks, G, h, c, pt: _Iterate, nu: int):
    """(dual block residual, dual LP residual, mu, info) of the iterate."""
    Rd = B.C + B.op(pt.y) - pt.Z
    rdl = h + G @ pt.y - pt.z
    rp = c - B.adj(pt.X) - G.T @ pt.x
    mu = (np.real(np.vdot(pt.X, pt.Z)) + pt.x @ pt.z) / nu
    pobj = c @ pt.y
    dobj = -np.real(np.vdot(B.C, pt.X)) - h @ pt.x
    gap = abs(pobj - dobj) / (1.0 + abs(pobj) + abs(dobj))
    pinf = np.linalg.norm(rp) / (1.0 + np.linalg.norm(c))
    dinf = max(np.abs(Rd).max(), np.abs(rdl).max(initial=0.0))
    return Rd, rdl, mu, dict(gap=gap, pinf=pinf, dinf=dinf, pobj=pobj, dobj=dobj, mu=mu)


class _Newton:
    """The HKM Newton system at one iterate, factored once for all the directions of a step."""

    def __init__(self, B: Blocks, G, c, pt: _Iterate, Rd, rdl):
        self.B, self.G, self.pt, self.Rd, self.rdl = B, G, pt, Rd, rdl
        nv = len(c)
        self.Zi = herm(np.linalg.inv(pt.Z))
        M = B.schur(pt.X, self.Zi) + G.T @ (G * (pt.x / pt.z)[:, None])
        self.cho = sla.cho_factor(M + 1e-14 * np.abs(np.diag(M)).max() * np.eye(nv))
        XRZ = pt.X @ Rd @ self.Zi
        self.base = -c - B.adj(herm(XRZ)) - G.T @ (pt.x * rdl / pt.z)

    def direction(self, Cterm, cl):
        """(dy, dX, dZ, dx, dz) for the complementarity targets ``Cterm`` (blocks), ``cl`` (LP)."""
        B, G, pt, Zi = self.B, self.G, self.pt, self.Zi
        rhs = self.base.copy()
        if Cterm is not None:
            CZ = Cterm @ Zi
            rhs += B.adj(herm(CZ)) + G.T @ (cl / pt.z)
        dy = sla.cho_solve(self.cho, rhs)
        dZ = B.op(dy) + self.Rd
        D = -pt.X - pt.X @ dZ @ Zi
        if Cterm is not None:
            D = D + CZ
        dX = herm(D)
        dzl = G @ dy + self.rdl
        dxl = -pt.x - pt.x * dzl / pt.z + (cl / pt.z if cl is not None else 0.0)
        return dy, dX, dZ, dxl, dzl


def _to_boundary(pt: _Iterate, direction) -> tuple[tuple[float, float], tuple[float, float]]:
    """How far the iterate can move along ``direction`` and stay feasible:
    ((primal blocks, primal LP), (dual blocks, dual LP))."""
    _, dX, dZ, dxl, dzl = direction
    return (max_step(pt.X, dX), lp_step(pt.x, dxl)), (max_step(pt.Z, dZ), lp_step(pt.z, dzl))


def _damped(limits) -> tuple[float, float]:
    """(primal, dual) step lengths 98% of the way to the boundary, at most 1."""
    primal, dual = limits
    return min(1.0, 0.98 * min(primal)), min(1.0, 0.98 * min(dual))


def _predictor_corrector(newton: _Newton, pt: _Iterate, mu: float, nu: int, eye):
    """Mehrotra's step: (direction, primal length, dual length, centring parameter sigma)."""
    affine = newton.direction(None, None)
    primal, dual = _to_boundary(pt, affine)
    ap, ad = min(1.0, *primal), min(1.0, *dual)
    _, dX, dZ, dxl, dzl = affine
    mu_aff = (np.real(np.vdot(pt.X + ap * dX, pt.Z + ad * dZ)) + (pt.x + ap * dxl) @ (pt.z + ad * dzl)) / nu
    sigma = min(1.0, max(0.0, mu_aff / mu) ** 3)
    direction = newton.direction(sigma * mu * eye - dX @ dZ, sigma * mu - dxl * dzl)
    ap, ad = _damped(_to_boundary(pt, direction))
    if min(ap, ad) < 0.2:
        # a short step: the corrector hurt centrality; take a well-centred step instead
        sigma = max(sigma, 0.5)
        centred = newton.direction(sigma * mu * eye, sigma * mu * np.ones(len(pt.x)))
        ap_c, ad_c = _damped(_to_boundary(pt, centred))
        if min(ap_c, ad_c) > min(ap, ad):
            direction, ap, ad = centred, ap_c, ad_c
    return direction, ap, ad, sigma


def ipm(B: Blocks, G, h, c, *, tol=1e-9, max_iter=100, y0=None):
    """Primal-dual IPM for ``min c'y s.t. C_k + A_k(y) >= 0 (Hermitian blocks), h + G y >= 0``.

    Infeasible start, HKM search direction, Mehrotra predictor-corrector; the dual is
    ``max -sum <C_k, X_k> - h'x s.t. A*(X) + G'x = c, X, x >= 0``.

    Parameters
    ----------
    B : Blocks
        The LMI blocks.
    G, h : array_like
        The linear inequalities ``h + G y >= 0``.
    c : array_like
        The objective.
    tol : float
        Relative gap and infeasibilities for "optimal".
    max_iter : int
        Iteration limit.
    y0 : array_like, optional
        A y with every block positive definite: a strictly feasible dual start.

    Returns
    -------
    y : numpy.ndarray, shape (nv,)
        The last iterate, or the last one that met the "inaccurate" tolerances when the
        iterations end without "optimal".
    info : dict
        ``status`` in {"optimal", "inaccurate", "failed"} and the iteration count, gap,
        infeasibilities (``pinf``, ``dinf``), objectives (``pobj``, ``dobj``) and mu of the
        returned iterate.
    """
    nv = len(c)
    G = np.asarray(G, dtype=float).reshape(-1, nv)
    h = np.asarray(h, dtype=float)
    eye = np.broadcast_to(np.eye(B.d, dtype=complex), (B.K, B.d, B.d))
    pt = _start(B, G, h, c, y0, eye)
    nu = B.K * B.d + len(h)
    best = None
    info = {}
    for it in range(max_iter):
        Rd, rdl, mu, measures = _residuals(B, G, h, c, pt, nu)
        info = dict(iterations=it) | measures
        gap, pinf, dinf = info["gap"], info["pinf"], info["dinf"]
        if gap < tol and pinf < tol and dinf < tol:
            return pt.y, info | {"status": "optimal"}
        if gap < 1e-6 and pinf < 1e-6 and dinf < 1e-7:
            best = (pt.y.copy(), info | {"status": "inaccurate"})
        if not np.all(np.isfinite(pt.y)) or np.abs(pt.y).max() > 1e12:
            break
        try:
            newton = _Newton(B, G, c, pt, Rd, rdl)
            direction, ap, ad, sigma = _predictor_corrector(newton, pt, mu, nu, eye)
        except (np.linalg.LinAlgError, ValueError):
            break
        if TRACE:
            print(f"it {it:3d} gap {gap:.2e} pinf {pinf:.2e} dinf {dinf:.2e} mu {mu:.2e} ap {ap:.3f} "
                  f"ad {ad:.3f} sigma {sigma:.2e} pobj {info['pobj']:.8g}")
        pt = pt.moved(direction, ap, ad)
    if best is not None:
        return best
    return pt.y, info | {"status": "failed"}


__all__ = ["Blocks", "ipm", "herm", "max_step", "lp_step", "is_pd"]
