"""Certification that scales to hundreds of neurons: KYP frequency reduction + Riccati metric.

The exact fixed-weight SDP of :mod:`rrnn_convex.exact` has the full symmetric metric
Q as a variable: n(n+1)/2 unknowns in an (n+q+m+p)-size LMI, so an interior-point solver pays
~(n^2/2)^3 per iteration (and Clarabel's dense PSD-cone block alone is (N(N+1)/2)^2 entries).
This module never treats Q as an optimisation variable. For fixed multipliers (lam, gamma) the
LMI of docs/design.md section 3.5 (dense form, explicit coordinates, metric Qx = E'QE)

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
   (:func:`~rrnn_convex.interior_point.ipm`, HKM direction with Mehrotra correction) forms its
   Schur complement in O(K n^3) per iteration instead of O(n^6).
2. *Metric*: the stabilising solution of the discrete algebraic Riccati equation of the KYP
   inequality at those (lam, gamma) with margin eps/2 (:func:`~rrnn_convex.riccati.dare`, the
   symplectic-pencil / ordered-QZ method of scipy's ``solve_discrete_are``) gives Qx with
   ``M(Qx) >= eps/2 I`` (an exact identity: M - eps/2 I = [K I]'(R + B'XB)[K I] >= 0 at a DARE
   solution).
3. *Gamma or cutting planes*: the relaxation's multipliers usually certify a slightly larger
   gamma; the smallest such gamma within ``rtol`` (default 1e-3) of the relaxation's optimum is
   found by bisection on gamma with Riccati solves (success is monotone in gamma). Failing that,
   the frequency inequality fails between the frequencies used: the Riccati pencil has
   eigenvalues on the unit circle exactly at the frequencies where Phi is singular; they (and
   the midpoints of the violated intervals) are added and step 1 re-solved.
4. *Verification*: the candidate (Q = E^-T Qx E^-1, lam, gamma) goes through
   :func:`~rrnn_convex.certificate.certificate_from` -- the same rigorous float64 check (lmi.py's
   builder with rounding bounds, then Cholesky of M - cI) as every other certificate. Nothing
   unverified is returned; a candidate that fails comes back "not certified" with the reason
   (and :attr:`KYPSearch.fallback_reason` set, so that for small models
   :func:`~rrnn_convex.certify.certify_scalable` can run the exact path instead).

Every matrix comes from :func:`~rrnn_convex.lmi.dissipation_lmi` (the single source of the block
matrices): the constant, the per-neuron multiplier terms and the gamma terms are read off the
builder by evaluating it at Qx = 0 and unit multipliers, then factored (rank <= 2 each).

An equilibrium term D11 (``v = C1 x + D11 w + D12 u + bv``) needs nothing else: it changes only
the S-procedure blocks of ``M(0, lam, g)`` (read off the builder like the rest; neuron i's
coefficient is still a quadratic form in ``(dw_i, dv_i)``, rank <= 2), never ``K(Qx)``, so the
KYP argument and the Riccati step are unchanged. (The interior-point method may fail to converge
more often for large D11; the answer is then "not certified" with ``fallback_reason`` set.)

The relaxation's optimum gamma_low (``attempts[-1]["lower_bound"]``, also in the reason) and the
certified gamma bracket the exact SDP optimum (up to the margin eps ~ 1e-7 relative).

Cost (n = q, m = p = 1, K frequencies, ~20-35 interior-point iterations): O(K n^3) time and
O(K n^2) memory per iteration, plus O(n^3) per Riccati solve; measured on 2 cores: n = 64 ~2 s,
n = 128 ~30 s, n = 256 ~3 min and 0.7 GB (benchmarks/certify_scaling.py), where the exact
dense SDP needs ~2 min at n = 64 and cannot be built at n = 256.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import scipy.linalg as sla

from . import _blas
from .certificate import Certificate, certificate_from, infeasible_contraction_reason
from .interior_point import Blocks, herm, ipm, is_pd
from .lmi import dissipation_lmi, model_operands
from .model import ImplicitRNN
from .riccati import kyp_metric

#: name recorded in Certificate.solver / .formulation for this path
SOLVER_NAME = "KYP-IPM"
FORMULATION = "kyp"


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

    def metric(self, lam, g, eps_d: float):
        """Qx with ``M(Qx, lam, g) >= eps_d I`` from the DARE of the KYP inequality, or (None, angles)."""
        return kyp_metric(self.evaluate(lam, g), self.A, self.Bz, eps_d, gain=self.gain)


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
            C = herm(C + (Fh[:, gc] * (gamma * data.sig[gc])) @ Fh[:, gc].conj().T)
        Cs.append(C), Fhs.append(Fh), Grams.append(Gram)
    C, Fh = np.stack(Cs), np.stack(Fhs)
    if mode == "min_gamma":
        blocks = Blocks(C, Fh, data.sig, data.var, nv)
    else:
        blocks = Blocks(C, Fh[:, :, lamcols], data.sig[lamcols], data.var[lamcols], nv,
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


def _start_point(B: Blocks, mode: str, q: int):
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
            if is_pd(B, y):
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
            if is_pd(B, y):
                best = (l0, g)
                break
    if best is None:
        return None
    y[:q], y[q] = best[0], 2.0 * best[1]
    return y


# ---------------------------------------------------------------------- the search
class KYPSearch:
    """The KYP certification of one model (the procedure of the module docstring).

    Everything the rounds share lives on the object: the attempts, the frequencies, the margin
    eps and the last reason a candidate failed. The arguments are taken as already checked
    (:func:`rrnn_convex.certify.certify_scalable` checks them). :meth:`run` never falls back to
    the exact SDP itself: when this method gives up in a way the exact SDP may still decide, it
    says why in :attr:`fallback_reason` and the caller decides.

    Parameters
    ----------
    model : ImplicitRNN
        The model to certify (a non-identity E is handled through its explicit form).
    gamma : float, optional
        Decide this gain; None: the smallest certifiable one.
    contraction_only : bool
        Contraction alone.
    margin : float
        The LMI margin eps relative to the size of the model's LMI data.
    frequencies : int
        Initial number of equispaced frequencies in [0, pi].
    max_rounds : int
        Rounds of frequency refinement at the most.
    rtol : float
        Accept a gamma within ``(1 + rtol)`` of the relaxation's optimum.
    bisections : int
        Riccati solves to tighten that gamma.
    tol : float
        Tolerance of the interior-point method.
    time_limit : float, optional
        Overall budget in seconds (None: none).

    Attributes
    ----------
    attempts : list of dict
        One entry per step, as recorded in the certificate.
    fallback_reason : str
        Why this method gave up where the exact SDP may still decide ('' when its answer is final).
    """

    def __init__(self, model: ImplicitRNN, gamma: float | None = None, *, contraction_only: bool = False,
                 margin: float = 1e-7, frequencies: int = 12, max_rounds: int = 12, rtol: float = 1e-3,
                 bisections: int = 4, tol: float = 1e-9, time_limit: float | None = None):
        self.t_start = time.perf_counter()
        self.model, self.gamma = model, gamma
        self.margin, self.frequencies, self.max_rounds = margin, frequencies, max_rounds
        self.rtol, self.bisections, self.tol, self.time_limit = rtol, bisections, tol, time_limit
        self.mode = ("contraction" if contraction_only
                     else "fixed_gamma" if gamma is not None else "min_gamma")
        self.base = dict(model_hash=model.weights_hash(), alpha=model.activation.alpha,
                         beta=model.activation.beta, formulation=FORMULATION, solver=SOLVER_NAME)
        self.attempts: list[dict] = []
        self.fallback_reason = ""
        self.last = ""  # why the last candidate failed
        # set up by run(): the LMI's data, the frequency kernel, the margin eps and its scale, the grid
        self.data: _AffineLMI | None = None
        self.kernel: _Kernel | None = None
        self.scale = self.eps = 0.0
        self.omegas: list[float] = []

    # ------------------------------------------------------------------ answers
    def time_left(self) -> float | None:
        """Seconds left of the budget (None: no budget).

        Returns
        -------
        float or None
            Negative once the budget is spent.
        """
        return None if self.time_limit is None else self.t_start + self.time_limit - time.perf_counter()

    def not_certified(self, reason: str) -> Certificate:
        """The final "not certified" answer with ``reason`` and the attempts so far.

        Parameters
        ----------
        reason : str
            The certificate's reason.

        Returns
        -------
        Certificate
            Not contracting, no gamma, no metric or multipliers; solver ``SOLVER_NAME``,
            formulation ``FORMULATION``.
        """
        return Certificate(**self.base, contracting=False, gamma=None, Q=None, lam=None, reason=reason,
                           attempts=tuple(self.attempts), solve_seconds=time.perf_counter() - self.t_start)

    def out_of_time(self) -> Certificate:
        """"Not certified" because the time limit was reached.

        Returns
        -------
        Certificate
            As from :meth:`not_certified`, the reason naming the time limit.
        """
        return self.not_certified(f"not certified: time limit of {self.time_limit:g} s reached after "
                                  f"{len(self.attempts)} recorded step(s) (see attempts; raise time_limit "
                                  f"to try longer)")

    def _give_up(self, why: str) -> Certificate:
        """"Not certified" with ``why``, noted as a case the exact SDP may still decide."""
        self.fallback_reason = why
        return self.not_certified(why)

    def _no_certificate(self) -> Certificate:
        """Give up after the rounds: no candidate passed the check."""
        return self._give_up(f"no verified KYP certificate ({self.last or 'round limit reached'})")

    # ------------------------------------------------------------------ the procedure
    def run(self) -> Certificate:
        """The answer: a verified certificate, or "not certified" with the reason.

        Returns
        -------
        Certificate
            Verified (solver ``SOLVER_NAME``, formulation ``FORMULATION``), or "not certified";
            ``fallback_reason`` is set when the exact SDP may still decide.
        """
        self.data = _AffineLMI(self.model, gain=self.mode != "contraction")
        self.attempts.append({"solver": SOLVER_NAME, "status": "setup", "mode": self.mode,
                              "seconds": time.perf_counter() - self.t_start})
        answer = self._linear_part_answer()
        if answer is not None:
            return answer
        self.kernel = _Kernel(self.data.A, self.data.Bz)
        self.scale = max(1.0, float(np.abs(self.data.M0).max()), float(np.abs(self.data.sig).max()))
        self.eps = self.margin * self.scale
        self.omegas = list(np.linspace(0.0, np.pi, max(int(self.frequencies), 2)))
        for rnd in range(self.max_rounds):
            left = self.time_left()
            if left is not None and left <= 0:
                return self.out_of_time()
            answer = self.one_round(rnd)
            if answer is not None:
                return answer
        return self._no_certificate()

    def _linear_part_answer(self) -> Certificate | None:
        """The answer when A = E^-1 F alone rules this method (or any certificate) out, else None."""
        eig_A = np.linalg.eigvals(self.data.A)
        rho = float(np.max(np.abs(eig_A)))
        if np.any(np.abs(np.abs(eig_A) - 1.0) < 1e-9):
            return self._give_up(f"A = E^-1 F has eigenvalues on the unit circle (spectral radius {rho:.6g})")
        if rho >= 1.0 and self.model.activation.alpha * self.model.activation.beta == 0.0:
            return self.not_certified(
                f"not certifiable: A = E^-1 F has spectral radius {rho:.6g} >= 1 and the activation's "
                "slope bounds contain 0, so the LMI's x-block Qx - A'QxA > 0 has no solution Qx > 0")
        return None

    def one_round(self, rnd: int) -> Certificate | None:
        """One round: relaxation, Riccati metric, verification; None when another round should follow.

        Parameters
        ----------
        rnd : int
            The round's number (0 first).

        Returns
        -------
        Certificate or None
            The answer (verified, or "not certified"), or None for another round (new
            frequencies or a larger margin).
        """
        data, q = self.data, self.data.q
        t0 = time.perf_counter()
        blocks, G, h, c = _grid_problem(data, self.kernel, self.omegas, self.mode, self.eps, self.gamma)
        y0 = _start_point(blocks, self.mode, q)
        if y0 is None and self.mode == "min_gamma" and rnd == 0:
            # no uniform multipliers fit: decide contraction first (its SDP always has a
            # strictly feasible start), so that a non-contracting model is not left to an
            # infeasible interior-point run
            answer = self._not_contracting()
            if answer is not None:
                return answer
        y, info = ipm(blocks, G, h, c, tol=self.tol, y0=y0)
        del blocks
        entry = {"solver": SOLVER_NAME, "status": info["status"], "seconds": time.perf_counter() - t0,
                 "mode": self.mode, "frequencies": len(self.omegas), "iterations": info["iterations"],
                 "objective": float(info["pobj"])}
        self.attempts.append(entry)
        if info["status"] == "failed":
            return self._not_converged(info)
        lam = np.maximum(y[:q], 0.0)
        if self.mode == "min_gamma":
            g, eps_d = float(y[q]), 0.5 * self.eps
        else:
            t = float(y[q])
            if t <= 0.0:
                return self._infeasible(t)
            g, eps_d = self.gamma, 0.5 * t
        t_ric = time.perf_counter()
        g_low = g
        if self.mode == "min_gamma":
            entry["lower_bound"] = g_low
        Qx, g, eps_d, angles = self.metric(lam, g, eps_d)
        if Qx is None:
            return self._refine(angles, lam, g, eps_d, entry)
        entry["riccati_seconds"] = time.perf_counter() - t_ric
        return self._verify(Qx, lam, g, eps_d, g_low, rnd, info, entry)

    def metric(self, lam, g: float, eps_d: float):
        """The Riccati metric at the relaxation's multipliers, with the gamma it needs.

        For ``min_gamma`` a gamma within ``rtol`` of ``g`` is searched by bisection when ``g``
        itself gives none; for the other modes the margin ``eps_d`` is cut eightfold once.

        Parameters
        ----------
        lam : numpy.ndarray
            The multipliers.
        g : float
            The relaxation's gamma (``min_gamma``) or the fixed gamma.
        eps_d : float
            The margin.

        Returns
        -------
        Qx : numpy.ndarray or None
            The metric on x of the explicit form, shape (n, n); None when no Riccati solve
            succeeded.
        gamma : float
            The gamma ``Qx`` is for (``g``, or the one found by bisection).
        eps_d : float
            The margin ``Qx`` is for.
        angles : numpy.ndarray
            The Riccati pencil's unit-circle angles at (``g``, ``eps_d``) as given.
        """
        data = self.data
        Qx, angles = data.metric(lam, g, eps_d)
        if Qx is None and self.mode == "min_gamma" and self.rtol > 0:
            found = self._gamma_within_rtol(lam, g, eps_d)
            if found is not None:
                g, Qx = found
        elif Qx is None and self.mode != "min_gamma":
            Qx, _ = data.metric(lam, g, eps_d / 8)
            eps_d = eps_d / 8 if Qx is not None else eps_d
        return Qx, g, eps_d, angles

    def _gamma_within_rtol(self, lam, g_low: float, eps_d: float):
        """(gamma, Qx) of the smallest gamma within ``rtol`` of ``g_low`` the multipliers certify
        (bisection; DARE success is monotone in gamma), or None -- instead of another round of
        frequencies."""
        g_hi = g_low * (1.0 + self.rtol)
        Q_hi, _ = self.data.metric(lam, g_hi, eps_d)
        if Q_hi is None:
            return None
        lo = g_low
        for _ in range(self.bisections):
            mid = 0.5 * (lo + g_hi)
            Q_mid, _ = self.data.metric(lam, mid, eps_d)
            if Q_mid is None:
                lo = mid
            else:
                g_hi, Q_hi = mid, Q_mid
        return g_hi, Q_hi

    def _refine(self, angles, lam, g: float, eps_d: float, entry: dict) -> Certificate | None:
        """Add the frequencies where the inequality fails (None: another round), or give up."""
        entry["detail"] = f"Riccati: {angles.size} unit-circle eigenvalues"
        new = _new_frequencies(angles, self.omegas, self.data, self.kernel, lam, g, eps_d)
        if not new:
            self.last = "the Riccati equation of the KYP inequality has no stabilising solution"
            return self._no_certificate()
        self.omegas = sorted(self.omegas + new)
        return None

    def _verify(self, Qx, lam, g: float, eps_d: float, g_low: float, rnd: int, info: dict,
                entry: dict) -> Certificate | None:
        """The verified certificate of the candidate; else None with a larger margin when the
        rounding allowance beat it, or give up."""
        model = self.model
        if not np.array_equal(model.E, np.eye(model.n)):
            Einv = np.linalg.inv(model.E)
            Qx = Einv.T @ Qx @ Einv
        bound = f", relaxation lower bound {g_low:.10g}" if self.mode == "min_gamma" else ""
        how = (f"KYP: {len(self.omegas)} frequencies, {rnd + 1} round(s), Riccati metric with margin "
               f"{eps_d:.2e}{bound}")
        t_ver = time.perf_counter()
        cert = certificate_from(model, Qx, lam, g if self.mode != "contraction" else None, how=how)
        entry["verified"] = cert.certified
        entry["verify_seconds"] = time.perf_counter() - t_ver
        if cert.certified:
            return replace(cert, formulation=FORMULATION, solver=SOLVER_NAME, status=info["status"],
                           sdp_margin=eps_d, attempts=tuple(self.attempts),
                           solve_seconds=time.perf_counter() - self.t_start)
        self.last = cert.reason
        entry["detail"] = self.last
        if "not proven" in self.last and self.mode == "min_gamma" and self.eps < 1e-3 * self.scale:
            self.eps *= 100.0  # the rounding allowance beat the margin: ask for more
            return None
        return self._no_certificate()

    def _not_converged(self, info: dict) -> Certificate:
        """The answer after the interior-point method failed: "not contracting" if the contraction
        relaxation says so, else give up."""
        if self.mode == "min_gamma":
            answer = self._not_contracting()
            if answer is not None:
                return answer
        return self._give_up(f"the KYP interior-point method did not converge "
                             f"(gap {info['gap']:.2e}, infeasibility {max(info['pinf'], info['dinf']):.2e})")

    def _infeasible(self, t: float) -> Certificate:
        """The answer when the relaxation's best margin t is <= 0."""
        how = f"its KYP relaxation on {len(self.omegas)} frequencies"
        if self.mode == "contraction":
            return self.not_certified(infeasible_contraction_reason(t, how, self.model))
        return self.not_certified(f"gamma={self.gamma:.6g} is not certifiable ({how} has best margin "
                                  f"t = {t:.3e} <= 0)")

    def _not_contracting(self) -> Certificate | None:
        """"Not contracting" when this method's contraction search says so, else None; its
        attempts are added to these."""
        left = self.time_left()
        budget = None if left is None else max(left, 1e-3)  # a sub-search stops at once when nothing is left
        search = KYPSearch(self.model, contraction_only=True, margin=self.margin,
                           frequencies=self.frequencies, max_rounds=self.max_rounds, tol=self.tol,
                           time_limit=budget)
        with _blas.blas_threads(1):  # as certify_scalable's default, which this sub-search always had
            cert = search.run()
        self.attempts.extend(cert.attempts)
        if not cert.certified and cert.reason.startswith("not contracting"):
            return self.not_certified(cert.reason)
        return None


__all__ = ["KYPSearch", "SOLVER_NAME", "FORMULATION"]
