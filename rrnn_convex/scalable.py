"""Certification that scales to hundreds of neurons: KYP frequency reduction + Riccati metric.

The exact fixed-weight SDP of :func:`~rrnn_convex.certify.certify` has the full symmetric metric
Q as a variable: n(n+1)/2 unknowns in an (n+q+m+p)-size LMI, so an interior-point solver pays
~(n^2/2)^3 per iteration (and Clarabel's dense PSD-cone block alone is (N(N+1)/2)^2 entries).
This module never treats Q as an optimisation variable. For fixed multipliers (lam, gamma) the
LMI of DESIGN.md section 3 (dense form, explicit coordinates, metric Qx = E'QE)

    M(Qx, lam, g) = K(Qx) + M(0, lam, g) > 0,      K(Qx) = J'QxJ - G'QxG,  G = [A  B1h  B2h]

is a discrete-time KYP inequality in Qx. By the KYP lemma (Rantzer 1996, strict version) a Qx
with ``M(Qx) >= eps I`` exists iff the frequency-domain inequality

    Phi(w; lam, g) = T(w)* (M(0, lam, g) - eps I) T(w) > 0   for all w in [0, pi],
    T(w) = [(e^{jw} I - A)^-1 [B1h B2h]  0 ; I  0 ; 0  I]

holds (A without eigenvalues on the unit circle); ``T(w)* K(Qx) T(w) = 0`` for every Qx. So:

1. *Multipliers*: minimise gamma over (lam >= 0, gamma) subject to ``Phi(w_k) >= 0`` on a finite
   set of frequencies (a relaxation: its optimum is a lower bound on the exact optimum). Only
   q + 1 variables; each frequency is a (q+m+p)-size Hermitian LMI whose coefficient matrices
   have rank <= 2 (one neuron's sector term), so a small primal-dual interior-point method
   (:func:`_ipm`, HKM direction with Mehrotra correction) forms its Schur complement in
   O(K n^3) per iteration instead of O(n^6).
2. *Metric*: the stabilising solution of the discrete algebraic Riccati equation of the KYP
   inequality at those (lam, gamma) with margin eps/2 (:func:`_dare`, the symplectic-pencil /
   ordered-QZ method of scipy's ``solve_discrete_are``) gives Qx with ``M(Qx) >= eps/2 I`` (an
   exact identity: M - eps/2 I = [K I]'(R + B'XB)[K I] >= 0 at a DARE solution).
3. *Gamma or cutting planes*: the relaxation's multipliers usually certify a slightly larger
   gamma; the smallest such gamma within ``rtol`` (default 1e-3) of the relaxation's optimum is
   found by bisection on gamma with Riccati solves (success is monotone in gamma). Failing that,
   the frequency inequality fails between the frequencies used: the Riccati pencil has
   eigenvalues on the unit circle exactly at the frequencies where Phi is singular; they (and
   the midpoints of the violated intervals) are added and step 1 re-solved.
4. *Verification*: the candidate (Q = E^-T Qx E^-1, lam, gamma) goes through
   :func:`~rrnn_convex.certify.certificate_from` -- the same rigorous float64 check (lmi.py's
   builder with rounding bounds, then Cholesky of M - cI) as every other certificate. Nothing
   unverified is returned; a candidate that fails comes back "not certified" with the reason
   (or, for small models, the exact path of :func:`certify` is used as a fallback).

Every matrix comes from :func:`~rrnn_convex.lmi.dissipation_lmi` (the single source of the block
matrices): the constant, the per-neuron multiplier terms and the gamma terms are read off the
builder by evaluating it at Qx = 0 and unit multipliers, then factored (rank <= 2 each).

The relaxation's optimum gamma_low (``attempts[-1]["lower_bound"]``, also in the reason) and the
certified gamma bracket the exact SDP optimum (up to the margin eps ~ 1e-7 relative).

Cost (n = q, m = p = 1, K frequencies, ~20-35 interior-point iterations): O(K n^3) time and
O(K n^2) memory per iteration, plus O(n^3) per Riccati solve; measured on 2 cores: n = 64 ~2 s,
n = 128 ~30 s, n = 256 ~3 min and 0.7 GB (benchmarks/certify_scaling.py), where the exact
dense SDP needs ~2 min at n = 64 and cannot be built at n = 256.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import replace

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from . import _blas
from . import solvers as _solvers
from ._validation import check_scalar
from .certify import Certificate, certificate_from, certify, infeasible_contraction_reason
from .lmi import dissipation_lmi, model_operands
from .model import ImplicitRNN

#: name recorded in Certificate.solver / .formulation for this path
SOLVER_NAME = "KYP-IPM"
FORMULATION = "kyp"

#: the dispatch rule suggested for certify(): use this path from this many states + neurons on
#: (benchmarks/certify_scaling.py: at n = q = 16 the exact dense SDP takes 0.28 s and this
#: path 0.13 s; at n = q = 32, 9.4 s and 1.7 s)
AUTO_MIN_SIZE = 32
_TRACE = False  # print the interior-point iterations (debugging)


# ---------------------------------------------------------------------- LMI data from lmi.py
class _AffineLMI:
    """``M(Qx = 0, lam, g) = M0 + sum_i lam_i M_i + g M_g`` of the explicit model, read off lmi.py.

    ``gain=False`` is the contraction LMI (no gamma, rows dx, dw). The coefficient of each
    variable is factored as ``sum_a sig_a f_a f_a'`` (rank <= 2 for a neuron, m + p for gamma).
    """

    def __init__(self, model: ImplicitRNN, gain: bool):
        self.model = model
        self.ex = model.explicit() if not np.array_equal(model.E, np.eye(model.n)) else model
        self.gain = gain
        n, q, m, p = model.n, model.q, model.m, model.p
        self.n, self.q = n, q
        self.m, self.p = (m, p) if gain else (0, 0)
        self.nz = q + self.m  # the KYP "input" z = (w, u)
        self.N = n + self.nz + self.p
        self.A = self.ex.F
        self.Bz = np.hstack([self.ex.B1, self.ex.B2]) if gain else self.ex.B1
        self._Qzero = np.zeros((n, n))
        g0 = 0.0 if gain else None
        self.M0 = self.evaluate(np.zeros(q), g0)
        cols, sig, var = [], [], []
        for i in range(q):
            e = np.zeros(q)
            e[i] = 1.0
            F, s = _lowrank(self.evaluate(e, g0) - self.M0)
            cols.append(F), sig.append(s), var.append(np.full(len(s), i))
        if gain:
            F, s = _lowrank(self.evaluate(np.zeros(q), 1.0) - self.M0)
            cols.append(F), sig.append(s), var.append(np.full(len(s), q))
        self.F = np.hstack(cols)
        self.sig = np.concatenate(sig)
        self.var = np.concatenate(var).astype(int)
        self.nv = q + (1 if gain else 0)

    def evaluate(self, lam, g, Qx=None) -> np.ndarray:
        """The builder's matrix at (Qx, lam, g) (Qx = 0 by default), exactly symmetric."""
        ops = model_operands(self.ex, self._Qzero if Qx is None else Qx, lam)
        M = dissipation_lmi(**ops, gamma=g if self.gain else None)
        return 0.5 * (M + M.T)


def _lowrank(M: np.ndarray, rtol: float = 1e-13) -> tuple[np.ndarray, np.ndarray]:
    """``M = F diag(s) F'`` for a sparse low-rank symmetric M (randomised range finder, checked)."""
    N = M.shape[0]
    S = np.flatnonzero(np.any(M != 0.0, axis=1))
    if S.size == 0:
        return np.zeros((N, 0)), np.zeros(0)
    sub = M[np.ix_(S, S)]
    scale = np.abs(sub).max()
    k = min(S.size, 8)
    rng = np.random.default_rng(0)
    Qb, _ = np.linalg.qr(sub @ rng.standard_normal((S.size, k)))
    w, V = np.linalg.eigh(Qb.T @ sub @ Qb)
    keep = np.abs(w) > rtol * scale
    Fs = Qb @ V[:, keep]
    if k == S.size or np.abs(sub - (Fs * w[keep]) @ Fs.T).max() > 1e-12 * scale:
        w, V = np.linalg.eigh(sub)  # not low rank after all: exact factorisation
        keep = np.abs(w) > rtol * scale
        Fs = V[:, keep]
    F = np.zeros((N, Fs.shape[1]))
    F[S] = Fs
    return F, w[keep]


# ---------------------------------------------------------------------- frequency kernel
class _Kernel:
    """``X(w) = (e^{jw} I - A)^-1 Bz`` via the complex Schur form of A (O(n^2 nz) per frequency)."""

    def __init__(self, A: np.ndarray, Bz: np.ndarray):
        self.n = A.shape[0]
        self.zero = not A.any()
        self.Bz = Bz
        if not self.zero:
            T, U = sla.schur(A.astype(complex), output="complex")
            self.T, self.U, self.UB = T, U, U.conj().T @ Bz

    def X(self, w: float) -> np.ndarray:
        z = np.exp(1j * w)
        if self.zero:
            return self.Bz / z
        Xs = sla.solve_triangular(z * np.eye(self.n) - self.T, self.UB, check_finite=False)
        return self.U @ Xs


def _sandwich(data: _AffineLMI, X: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``T(w)* M T(w)`` for ``T = [[X, 0], [I, 0], [0, I]]`` (rows x, z, y)."""
    n = data.n
    Xe = np.zeros((n, data.N - n), dtype=complex)
    Xe[:, :data.nz] = X
    Mxx, Mxr, Mrr = M[:n, :n], M[:n, n:], M[n:, n:]
    XM = Xe.conj().T @ Mxr
    out = Xe.conj().T @ (Mxx @ Xe) + XM + XM.conj().T + Mrr
    return 0.5 * (out + out.conj().T)


def _kernel_gram(data: _AffineLMI, X: np.ndarray) -> np.ndarray:
    """``T(w)* T(w) = I + Xe* Xe``."""
    d = data.N - data.n
    G = np.eye(d, dtype=complex)
    G[:data.nz, :data.nz] += X.conj().T @ X
    return G


def _factors_at(data: _AffineLMI, X: np.ndarray) -> np.ndarray:
    """``T(w)* F`` for the coefficient factors F (d x r, complex)."""
    n = data.n
    Fh = data.F[n:].astype(complex)
    Fh[:data.nz] += X.conj().T @ data.F[:n]
    return Fh


# ---------------------------------------------------------------------- the small IPM
def _H(A):
    return np.swapaxes(A, -1, -2).conj()


def _herm(A):
    return 0.5 * (A + _H(A))


class _Blocks:
    """K Hermitian LMI blocks of one size d, stacked: ``C_k + sum_i y_i A_ki >= 0`` with
    ``A_ki = sum_{a: var_a = i} sig_ka f_ka f_ka*`` plus optional dense coefficients ``[(i, D_i)]``
    (D_i stacked K x d x d). Every block is scaled by a positive factor (feasibility unchanged)."""

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
        """A(y), K x d x d."""
        out = (self.Fh * (self.sig * y[self.var])[:, None, :]) @ self.FhH
        for i, D in self.dense:
            out = out + y[i] * D
        return out

    def adj(self, Y):
        """A*(Y) = sum_k A_k*(Y_k) (real part)."""
        v = np.sum(self.sig * np.real(np.sum(self.Fh.conj() * (Y @ self.Fh), axis=1)), axis=0)
        out = self.S.T @ v
        for i, D in self.dense:
            out[i] += np.real(np.vdot(D, Y))
        return out

    def schur(self, X, Zi):
        """``M_ij = sum_k Re tr(A_ki X_k A_kj Z_k^-1)``."""
        P = self.FhH @ (X @ self.Fh)
        R = self.FhH @ (Zi @ self.Fh)
        W = np.einsum("kab,kba,ka,kb->ab", P, R, self.sig, self.sig, optimize=True).real
        M = np.asarray(self.S.T @ (self.S.T @ W.T).T)
        for i, D in self.dense:  # dense variables have no factor columns: their column is A*(X D Z^-1)
            M[:, i] += self.adj(X @ D @ Zi)
        for i, _ in self.dense:
            M[i, :] = M[:, i]
        return 0.5 * (M + M.T)


def _max_step(X, dX) -> float:
    """Largest alpha with X_k + alpha dX_k >= 0 for all k (X_k > 0)."""
    Li = np.linalg.inv(np.linalg.cholesky(X))
    W = _herm(Li @ dX @ _H(Li))
    if W.shape[-1] <= 96:
        lo = float(np.linalg.eigvalsh(W)[:, 0].min())
    else:
        lo = min(sla.eigh(Wk, eigvals_only=True, subset_by_index=[0, 0], check_finite=False)[0] for Wk in W)
    return np.inf if lo >= 0 else -1.0 / lo


def _lp_step(v, dv) -> float:
    neg = dv < 0
    return np.inf if not neg.any() else float(np.min(-v[neg] / dv[neg]))


def _is_pd(B: _Blocks, y) -> bool:
    try:
        np.linalg.cholesky(B.C + B.op(y))
        return True
    except np.linalg.LinAlgError:
        return False


def _start_point(B: _Blocks, mode: str, q: int):
    """A strictly feasible y for the blocks (uniform multipliers), or None.

    ``min_gamma``: lam = l0 (1, 0.3, 3, ...) and the smallest power of two g that makes every
    block positive definite, the pair with the smallest g (doubled). Other modes: lam = 1/2 and
    t negative enough (the t-coefficient is -T*T <= -I).
    """
    y = np.zeros(q + 1)
    if mode != "min_gamma":
        y[:q] = 0.5
        for k in range(60):
            y[q] = -(2.0 ** k)
            if _is_pd(B, y):
                return y
        return None
    best = None
    for l0 in (1.0, 0.3, 3.0, 0.1, 10.0, 0.03, 30.0):
        y[:q] = l0
        for k in range(-6, 40):
            g = 2.0 ** k
            if best is not None and g >= best[1]:
                break
            y[q] = g
            if _is_pd(B, y):
                best = (l0, g)
                break
    if best is None:
        return None
    y[:q], y[q] = best[0], 2.0 * best[1]
    return y


def _ipm(B: _Blocks, G, h, c, *, tol=1e-9, max_iter=100, y0=None):
    """Primal-dual IPM for ``min c'y s.t. C_k + A_k(y) >= 0 (Hermitian blocks), h + G y >= 0``.

    Infeasible start, HKM search direction, Mehrotra predictor-corrector; the dual is
    ``max -sum <C_k, X_k> - h'x s.t. A*(X) + G'x = c, X, x >= 0``. Returns (y, info) with
    info["status"] in {"optimal", "inaccurate", "failed"}.
    """
    nv = len(c)
    G = np.asarray(G, dtype=float).reshape(-1, nv)
    h = np.asarray(h, dtype=float)
    L = len(h)
    K, d = B.K, B.d
    eye = np.broadcast_to(np.eye(d, dtype=complex), (K, d, d))
    if y0 is not None:
        # strictly feasible dual start Z = C + A(y0) (from uniform multipliers), X = I: measured
        # 16-31 iterations for n = 48..128 where the infeasible start needed 25-60
        y = np.array(y0, dtype=float)
        Z = _herm(B.C + B.op(y))
        z = h + G @ y
        X, x = eye.copy(), np.ones(L)
    else:
        y = np.zeros(nv)
        # initial primal scale: A*(xi I) ~ 3 |c| (X = I overshoots the dual equality by ~K and the
        # primal steps then stall for many iterations)
        xi = min(1.0, 3.0 * np.linalg.norm(c) / max(np.linalg.norm(B.adj(eye)), 1e-300))
        X, Z = xi * eye, eye.copy()
        x, z = xi * np.ones(L), np.ones(L)
    nu = K * d + L
    best = None
    info = {}
    for it in range(max_iter):
        Rd = B.C + B.op(y) - Z
        rdl = h + G @ y - z
        rp = c - B.adj(X) - G.T @ x
        mu = (np.real(np.vdot(X, Z)) + x @ z) / nu
        pobj = c @ y
        dobj = -np.real(np.vdot(B.C, X)) - h @ x
        gap = abs(pobj - dobj) / (1.0 + abs(pobj) + abs(dobj))
        pinf = np.linalg.norm(rp) / (1.0 + np.linalg.norm(c))
        dinf = max(np.abs(Rd).max(), np.abs(rdl).max(initial=0.0))
        info = dict(iterations=it, gap=gap, pinf=pinf, dinf=dinf, pobj=pobj, dobj=dobj, mu=mu)
        if gap < tol and pinf < tol and dinf < tol:
            return y, info | {"status": "optimal"}
        if gap < 1e-6 and pinf < 1e-6 and dinf < 1e-7:
            best = (y.copy(), info | {"status": "inaccurate"})
        if not np.all(np.isfinite(y)) or np.abs(y).max() > 1e12:
            break
        try:
            Zi = _herm(np.linalg.inv(Z))
            M = B.schur(X, Zi) + G.T @ (G * (x / z)[:, None])
            cho = sla.cho_factor(M + 1e-14 * np.abs(np.diag(M)).max() * np.eye(nv))
            XRZ = X @ Rd @ Zi
            base = -c - B.adj(_herm(XRZ)) - G.T @ (x * rdl / z)

            def direction(Cterm, cl):
                rhs = base.copy()
                if Cterm is not None:
                    CZ = Cterm @ Zi
                    rhs += B.adj(_herm(CZ)) + G.T @ (cl / z)
                dy = sla.cho_solve(cho, rhs)
                dZ = B.op(dy) + Rd
                D = -X - X @ dZ @ Zi
                if Cterm is not None:
                    D = D + CZ
                dX = _herm(D)
                dzl = G @ dy + rdl
                dxl = -x - x * dzl / z + (cl / z if cl is not None else 0.0)
                return dy, dX, dZ, dxl, dzl

            dy, dX, dZ, dxl, dzl = direction(None, None)
            ap = min(1.0, _max_step(X, dX), _lp_step(x, dxl))
            ad = min(1.0, _max_step(Z, dZ), _lp_step(z, dzl))
            mu_aff = (np.real(np.vdot(X + ap * dX, Z + ad * dZ)) + (x + ap * dxl) @ (z + ad * dzl)) / nu
            sigma = min(1.0, max(0.0, mu_aff / mu) ** 3)
            Cterm = sigma * mu * eye - dX @ dZ
            cl = sigma * mu - dxl * dzl
            dy, dX, dZ, dxl, dzl = direction(Cterm, cl)
            ap = min(1.0, 0.98 * min(_max_step(X, dX), _lp_step(x, dxl)))
            ad = min(1.0, 0.98 * min(_max_step(Z, dZ), _lp_step(z, dzl)))
            if min(ap, ad) < 0.2:
                # a short step: the corrector hurt centrality; take a well-centred step instead
                sigma = max(sigma, 0.5)
                dy2, dX2, dZ2, dxl2, dzl2 = direction(sigma * mu * eye, sigma * mu * np.ones(L))
                ap2 = min(1.0, 0.98 * min(_max_step(X, dX2), _lp_step(x, dxl2)))
                ad2 = min(1.0, 0.98 * min(_max_step(Z, dZ2), _lp_step(z, dzl2)))
                if min(ap2, ad2) > min(ap, ad):
                    dy, dX, dZ, dxl, dzl, ap, ad = dy2, dX2, dZ2, dxl2, dzl2, ap2, ad2
        except (np.linalg.LinAlgError, ValueError):
            break
        if _TRACE: print(f"it {it:3d} gap {gap:.2e} pinf {pinf:.2e} dinf {dinf:.2e} mu {mu:.2e} ap {ap:.3f} ad {ad:.3f} sigma {sigma:.2e} pobj {pobj:.8g}")
        X = X + ap * dX
        x = x + ap * dxl
        y = y + ad * dy
        Z = Z + ad * dZ
        z = z + ad * dzl
    if best is not None:
        return best
    return y, info | {"status": "failed"}


# ---------------------------------------------------------------------- Riccati metric
def _dare(A, B, Qw, R, S, unit_tol: float = 1e-6):
    """Stabilising solution X of ``A'XA - X - (A'XB + S)(R + B'XB)^-1 (B'XA + S') + Qw = 0``.

    The extended-pencil / ordered-QZ method of scipy's ``solve_discrete_are`` (Van Dooren 1981,
    with Benner's symplectic balancing), which here also returns the pencil's eigenvalues: when
    some lie on the unit circle the frequency inequality is singular there and there is no
    stabilising solution. Returns ``(X or None, angles of unit-circle eigenvalues in [0, pi])``.
    """
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
    Mb = np.abs(H) + np.abs(J)
    np.fill_diagonal(Mb, 0.0)
    _, (sca, _) = sla.matrix_balance(Mb, separate=1, permute=0)
    if not np.allclose(sca, np.ones_like(sca)):
        sca = np.log2(sca)
        s = np.round((sca[n:2 * n] - sca[:n]) / 2)
        sca = 2 ** np.r_[s, -s, sca[2 * n:]]
        el = sca[:, None] * np.reciprocal(sca)
        H *= el
        J *= el
    else:
        sca = np.ones(2 * n + k)
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


def _riccati_metric(data: _AffineLMI, lam, g, eps_d: float):
    """Qx with ``M(Qx, lam, g) >= eps_d I`` from the DARE of the KYP inequality, or (None, angles)."""
    n, nz = data.n, data.nz
    M0 = data.evaluate(lam, g)
    k = n + nz
    Pi = M0[:k, :k] - eps_d * np.eye(k)
    if data.gain:  # eliminate the y-block: Schur complement of (g - eps_d) I
        Myy = M0[k:, k:] - eps_d * np.eye(data.p)
        Pi = Pi - M0[:k, k:] @ np.linalg.solve(Myy, M0[k:, :k])
        Pi = 0.5 * (Pi + Pi.T)
    X, angles = _dare(data.A, data.Bz, Pi[:n, :n], Pi[n:, n:], Pi[:n, n:])
    if X is None:
        return None, angles
    return -X, angles


# ---------------------------------------------------------------------- grid SDPs
def _grid_problem(data: _AffineLMI, kernel: _Kernel, omegas, mode: str, eps: float, gamma=None):
    """Blocks, LP rows and objective of the frequency-gridded relaxation.

    ``min_gamma``: variables (lam, g), min g s.t. Phi(w_k) - eps T*T >= 0, lam >= 0.
    ``fixed_gamma``: variables (lam, t), max t s.t. Phi(w_k; lam, gamma) >= t T*T, lam >= 0.
    ``contraction``: variables (lam, t), max t s.t. Phi_c(w_k; lam) >= t T*T, lam >= 0,
    sum(lam) <= q (the contraction LMI is homogeneous in (Qx, lam)).
    """
    q = data.q
    nv = q + 1
    lamcols = data.var < q
    Cs, Fhs, Grams = [], [], []
    for w in omegas:
        X = kernel.X(w)
        Fh = _factors_at(data, X)
        C = _sandwich(data, X, data.M0)
        Gram = _kernel_gram(data, X)
        if mode == "min_gamma":
            C = C - eps * Gram
        elif mode == "fixed_gamma":
            gc = ~lamcols
            C = _herm(C + (Fh[:, gc] * (gamma * data.sig[gc])) @ Fh[:, gc].conj().T)
        Cs.append(C), Fhs.append(Fh), Grams.append(Gram)
    C, Fh = np.stack(Cs), np.stack(Fhs)
    if mode == "min_gamma":
        blocks = _Blocks(C, Fh, data.sig, data.var, nv)
    else:
        blocks = _Blocks(C, Fh[:, :, lamcols], data.sig[lamcols], data.var[lamcols], nv,
                         dense=[(q, -np.stack(Grams))])
    G = np.hstack([np.eye(q), np.zeros((q, 1))])
    h = np.zeros(q)
    if mode == "contraction":
        G = np.vstack([G, np.r_[-np.ones(q), 0.0]])
        h = np.r_[h, float(q)]
    c = np.zeros(nv)
    c[q] = 1.0 if mode == "min_gamma" else -1.0
    return blocks, G, h, c


def _lambda_min(data: _AffineLMI, kernel: _Kernel, w: float, lam, g, eps: float) -> float:
    """Smallest eigenvalue of ``T*(M(0, lam, g) - eps I) T`` at frequency w, relative to T*T."""
    X = kernel.X(w)
    Phi = _sandwich(data, X, data.evaluate(lam, g) - eps * np.eye(data.N))
    Gram = _kernel_gram(data, X)
    return float(sla.eigh(Phi, Gram, eigvals_only=True, subset_by_index=[0, 0])[0])


def _new_frequencies(angles, omegas, data, kernel, lam, g, eps, limit: int = 24) -> list[float]:
    """Frequencies to add: the pencil's unit-circle angles and the midpoints between them where
    the inequality is violated (worst first), else a refinement of the current grid."""
    cand = set(float(a) for a in angles)
    pts = np.unique(np.r_[0.0, np.asarray(angles, dtype=float), np.pi])
    cand.update(0.5 * (pts[:-1] + pts[1:]))
    if not angles.size:  # no information from the pencil: bisect every grid interval
        om = np.unique(np.asarray(omegas))
        cand.update(0.5 * (om[:-1] + om[1:]))
    have = np.asarray(omegas)
    cand = [w for w in cand if np.min(np.abs(have - w)) > 1e-9]
    if len(cand) > limit:
        vals = [_lambda_min(data, kernel, w, lam, g, eps) for w in cand]
        cand = [cand[i] for i in np.argsort(vals)[:limit]]
    return sorted(cand)


# ---------------------------------------------------------------------- public entry
def certify_scalable(model: ImplicitRNN, gamma: float | None = None, *, solver: str | None = None,
                     contraction_only: bool = False, margin: float = 1e-7, frequencies: int = 12,
                     max_rounds: int = 12, rtol: float = 1e-3, bisections: int = 4, fallback: bool = True,
                     tol: float = 1e-9, blas_threads: int | None = 1,
                     time_limit: float | None = None) -> Certificate:
    """Certify contraction and the smallest incremental l2 gain of a large model (see module doc).

    Same contract as :func:`~rrnn_convex.certify.certify`: ``gamma=None`` finds the smallest
    certifiable gamma, ``gamma=G`` decides whether G is certified, ``contraction_only`` only
    contraction. Every certified answer has passed :meth:`Certificate.verify`; otherwise the
    answer is ``certified == False`` with the reason.

    ``margin``: the LMI margin eps (relative to the size of the model's LMI data) imposed in the
    frequency relaxation; the Riccati metric is computed with eps/2. ``frequencies``: initial
    number of equispaced frequencies in [0, pi]; more are added where the Riccati pencil shows
    the frequency inequality failing (at most ``max_rounds`` rounds). ``rtol``: when the
    relaxation's multipliers certify a gamma within ``(1 + rtol)`` of its optimum (a lower bound),
    that gamma (tightened by ``bisections`` Riccati solves) is accepted instead of adding
    frequencies; ``rtol=0`` refines the frequencies until the lower bound itself is certified. ``fallback``: when this
    path cannot produce a verified certificate (e.g. leaky-ReLU slopes whose Riccati metric is
    indefinite), run the exact :func:`certify` with ``solver`` instead of answering "not
    certified" -- only for models small enough for it (n + q <= 2 * AUTO_MIN_SIZE).
    ``blas_threads``: BLAS threads during the call (needs ``threadpoolctl``; ``None`` leaves the
    process setting alone). The default 1 is deliberate: the interior-point method makes many
    mid-sized BLAS calls, and with a second busy process on a 2-core machine OpenBLAS's threads
    spin for a core they do not get (measured: n = 64 in 240 s with 2 threads vs 1.3 s with 1).
    ``time_limit``: overall budget in seconds (None: none), checked before every round and passed
    on to the exact fallback; when it is spent the answer is "not certified: time limit ...".
    """
    with _blas.blas_threads(blas_threads):
        return _certify_scalable(model, gamma, solver=solver, contraction_only=contraction_only,
                                 margin=margin, frequencies=frequencies, max_rounds=max_rounds, rtol=rtol,
                                 bisections=bisections, fallback=fallback, tol=tol, time_limit=time_limit)


def _certify_scalable(model, gamma, *, solver, contraction_only, margin, frequencies, max_rounds, rtol,
                      bisections, fallback, tol, time_limit) -> Certificate:
    if not isinstance(model, ImplicitRNN):
        raise TypeError(f"model: expected an ImplicitRNN, got {type(model).__name__}")
    if gamma is not None:
        gamma = check_scalar(gamma, "gamma", low=0.0)
    if contraction_only and gamma is not None:
        raise ValueError("contraction_only: give either gamma or contraction_only, not both")
    margin = check_scalar(margin, "margin", low=0.0)
    if solver is not None:
        _solvers.solver_sequence(solver)  # validate the fallback solver's name early
    if time_limit is not None:
        time_limit = check_scalar(time_limit, "time_limit", low=0.0)
    t_start = time.perf_counter()

    def time_left() -> float | None:
        return None if time_limit is None else t_start + time_limit - time.perf_counter()

    def budget() -> float | None:  # for a sub-call: it stops at once when nothing is left
        left = time_left()
        return None if left is None else max(left, 1e-3)

    attempts: list[dict] = []
    mode = "contraction" if contraction_only else ("fixed_gamma" if gamma is not None else "min_gamma")
    base = dict(model_hash=model.weights_hash(), alpha=model.activation.alpha, beta=model.activation.beta,
                formulation=FORMULATION, solver=SOLVER_NAME)

    def not_certified(reason: str) -> Certificate:
        return Certificate(**base, contracting=False, gamma=None, Q=None, lam=None, reason=reason,
                           attempts=tuple(attempts), solve_seconds=time.perf_counter() - t_start)

    def out_of_time() -> Certificate:
        return not_certified(f"not certified: time limit of {time_limit:g} s reached after {len(attempts)} "
                             f"recorded step(s) (see attempts; raise time_limit to try longer)")

    def exact_fallback(why: str) -> Certificate:
        if not fallback or model.n + model.q > 2 * AUTO_MIN_SIZE:
            return not_certified(why)
        left = time_left()
        if left is not None and left <= 0:
            return out_of_time()
        cert = certify(model, gamma, solver, formulation="dense", contraction_only=contraction_only,
                       time_limit=left)
        attempts.append({"solver": "certify", "status": "fallback", "seconds": cert.solve_seconds,
                         "mode": mode, "detail": why, "verified": cert.certified})
        return replace(cert, attempts=tuple(attempts) + tuple(cert.attempts),
                       reason=cert.reason + f"; exact fallback after: {why}",
                       solve_seconds=time.perf_counter() - t_start)

    data = _AffineLMI(model, gain=mode != "contraction")
    attempts.append({"solver": SOLVER_NAME, "status": "setup", "mode": mode,
                     "seconds": time.perf_counter() - t_start})
    A = data.A
    eig_A = np.linalg.eigvals(A)
    rho = float(np.max(np.abs(eig_A)))
    if np.any(np.abs(np.abs(eig_A) - 1.0) < 1e-9):
        return exact_fallback(f"A = E^-1 F has eigenvalues on the unit circle (spectral radius {rho:.6g})")
    if rho >= 1.0 and model.activation.alpha * model.activation.beta == 0.0:
        return not_certified(
            f"not certifiable: A = E^-1 F has spectral radius {rho:.6g} >= 1 and the activation's "
            "slope bounds contain 0, so the LMI's x-block Qx - A'QxA > 0 has no solution Qx > 0")
    kernel = _Kernel(A, data.Bz)
    scale = max(1.0, float(np.abs(data.M0).max()), float(np.abs(data.sig).max()))
    eps = margin * scale
    omegas = list(np.linspace(0.0, np.pi, max(int(frequencies), 2)))
    last = ""
    for rnd in range(max_rounds):
        left = time_left()
        if left is not None and left <= 0:
            return out_of_time()
        t0 = time.perf_counter()
        blocks, G, h, c = _grid_problem(data, kernel, omegas, mode, eps, gamma)
        y0 = _start_point(blocks, mode, data.q)
        if y0 is None and mode == "min_gamma" and rnd == 0:
            # no uniform multipliers fit: decide contraction first (its SDP always has a
            # strictly feasible start), so that a non-contracting model is not left to an
            # infeasible interior-point run
            c_cert = certify_scalable(model, contraction_only=True, margin=margin, frequencies=frequencies,
                                      max_rounds=max_rounds, fallback=False, tol=tol, time_limit=budget())
            attempts.extend(c_cert.attempts)
            if not c_cert.certified and c_cert.reason.startswith("not contracting"):
                return not_certified(c_cert.reason)
        y, info = _ipm(blocks, G, h, c, tol=tol, y0=y0)
        del blocks
        entry = {"solver": SOLVER_NAME, "status": info["status"], "seconds": time.perf_counter() - t0,
                 "mode": mode, "frequencies": len(omegas), "iterations": info["iterations"],
                 "objective": float(info["pobj"])}
        attempts.append(entry)
        if info["status"] == "failed":
            if mode == "min_gamma":
                c_cert = certify_scalable(model, contraction_only=True, margin=margin, frequencies=frequencies,
                                          max_rounds=max_rounds, fallback=False, tol=tol, time_limit=budget())
                attempts.extend(c_cert.attempts)
                if not c_cert.certified and c_cert.reason.startswith("not contracting"):
                    return not_certified(c_cert.reason)
            return exact_fallback(f"the KYP interior-point method did not converge "
                                  f"(gap {info['gap']:.2e}, infeasibility {max(info['pinf'], info['dinf']):.2e})")
        lam = np.maximum(y[:data.q], 0.0)
        if mode == "min_gamma":
            g, eps_d = float(y[data.q]), 0.5 * eps
        else:
            t = float(y[data.q])
            if t <= 0.0:
                how = f"its KYP relaxation on {len(omegas)} frequencies"
                if mode == "contraction":
                    return not_certified(infeasible_contraction_reason(t, how, model))
                return not_certified(f"gamma={gamma:.6g} is not certifiable ({how} has best margin "
                                     f"t = {t:.3e} <= 0)")
            g, eps_d = gamma, 0.5 * t
        t_ric = time.perf_counter()
        Qx, angles = _riccati_metric(data, lam, g, eps_d)
        g_low = g
        if mode == "min_gamma":
            entry["lower_bound"] = g_low
        if Qx is None and mode == "min_gamma" and rtol > 0:
            # the multipliers of the relaxation usually certify a slightly larger gamma: the
            # smallest such gamma within rtol of the lower bound (bisection; DARE success is
            # monotone in gamma), instead of another round of frequencies
            g_hi = g_low * (1.0 + rtol)
            Q_hi, _ = _riccati_metric(data, lam, g_hi, eps_d)
            if Q_hi is not None:
                lo = g_low
                for _ in range(bisections):
                    mid = 0.5 * (lo + g_hi)
                    Q_mid, _ = _riccati_metric(data, lam, mid, eps_d)
                    if Q_mid is None:
                        lo = mid
                    else:
                        g_hi, Q_hi = mid, Q_mid
                g, Qx = g_hi, Q_hi
        elif Qx is None and mode != "min_gamma":
            Qx, _ = _riccati_metric(data, lam, g, eps_d / 8)
            eps_d = eps_d / 8 if Qx is not None else eps_d
        if Qx is None:
            entry["detail"] = f"Riccati: {angles.size} unit-circle eigenvalues"
            new = _new_frequencies(angles, omegas, data, kernel, lam, g, eps_d)
            if not new:
                last = "the Riccati equation of the KYP inequality has no stabilising solution"
                break
            omegas = sorted(omegas + new)
            continue
        entry["riccati_seconds"] = time.perf_counter() - t_ric
        if not np.array_equal(model.E, np.eye(model.n)):
            Einv = np.linalg.inv(model.E)
            Qx = Einv.T @ Qx @ Einv
        how = (f"KYP: {len(omegas)} frequencies, {rnd + 1} round(s), Riccati metric with margin {eps_d:.2e}"
               + (f", relaxation lower bound {g_low:.10g}" if mode == "min_gamma" else ""))
        t_ver = time.perf_counter()
        cert = certificate_from(model, Qx, lam, g if mode != "contraction" else None, how=how)
        entry["verified"] = cert.certified
        entry["verify_seconds"] = time.perf_counter() - t_ver
        if cert.certified:
            return replace(cert, formulation=FORMULATION, solver=SOLVER_NAME, status=info["status"],
                           sdp_margin=eps_d, attempts=tuple(attempts),
                           solve_seconds=time.perf_counter() - t_start)
        last = cert.reason
        entry["detail"] = last
        if "not proven" in last and mode == "min_gamma" and eps < 1e-3 * scale:
            eps *= 100.0  # the rounding allowance beat the margin: ask for more
            continue
        break
    return exact_fallback(f"no verified KYP certificate ({last or 'round limit reached'})")


__all__ = ["certify_scalable", "AUTO_MIN_SIZE"]
