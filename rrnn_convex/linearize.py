"""Gauss-Newton pieces of the simulation error: r, J'J and J'r without storing J (DESIGN.md s. 4).

For training sequences b = 1..B with unknown initial states x0_b, the residual is
``r = y_hat(theta, x0) - y`` stacked over sequences, times and outputs, and ``J`` its Jacobian
with respect to the model parameters theta (the fields named by a :class:`ParamLayout`) and the
initial states. ``J`` has B*T*p rows; only the blocks of the normal equations are formed:

* ``H = J_theta' J_theta`` (P x P) and ``g = J_theta' r`` (P),
* per sequence ``Hx[b] = J_x0b' J_x0b`` (n x n), ``Hxt[b] = J_x0b' J_theta`` (n x P) and
  ``gx[b] = J_x0b' r_b`` (n) — each initial state touches only its own sequence, so the x0
  blocks are eliminated by a Schur complement (:meth:`Linearization.reduced`).

Forward sensitivities are propagated for all sequences at once: with
``A = E^-1 F``, ``B1h = E^-1 B1`` and ``D_t = diag(sigma'(v_t))``,

    S_{t+1} = A S_t + B1h D_t (C1 S_t + dv_direct) + E^-1 (dx_direct - (dE) x_{t+1})

where the direct terms are the Kronecker-structured partials of ``F x, B1 w, B2 u, bx`` and
``C1 x, D12 u, bv`` with respect to the weights themselves. Every product over the batch is one
matrix product (states stored as (n, B, P)). Weights are vectorised row-major.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import dsyrk

from ._blas import blas_threads
from ._validation import as_float_array
from .model import ImplicitRNN, WEIGHT_FIELDS, _BIAS_SHAPES, _MATRIX_SHAPES

#: fields that act on the state update (their sensitivities propagate through time)
DYNAMIC_FIELDS = ("E", "F", "B1", "B2", "bx", "C1", "D12", "bv")
#: fields that act only on the output at the same time step
OUTPUT_FIELDS = ("C2", "D21", "D22", "by")
_SHAPE_SYMBOLS = {name: (r, c) for name, r, c in _MATRIX_SHAPES} | {name: (r,) for name, r in _BIAS_SHAPES}


@dataclass(frozen=True)
class ParamLayout:
    """Which weights are trainable, in which order, and where they sit in the vector theta."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def for_model(cls, model: ImplicitRNN, names=None) -> "ParamLayout":
        """Layout of ``names`` (default: every weight and bias) for the model's dimensions.

        The order is always dynamic fields first (E, F, B1, B2, bx, C1, D12, bv), then output
        fields (C2, D21, D22, by), whatever order ``names`` has.
        """
        names = WEIGHT_FIELDS if names is None else tuple(names)
        unknown = set(names) - set(WEIGHT_FIELDS)
        if unknown:
            raise ValueError(f"names: unknown weights {sorted(unknown)}; expected some of {WEIGHT_FIELDS}")
        ordered = tuple(k for k in DYNAMIC_FIELDS + OUTPUT_FIELDS if k in names)
        dims = model.dims
        return cls(ordered, tuple(tuple(dims[s] for s in _SHAPE_SYMBOLS[k]) for k in ordered))

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(s)) for s in self.shapes)

    @property
    def size(self) -> int:
        return int(sum(self.sizes))

    def offsets(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes):
            out[name] = slice(start, start + size)
            start += size
        return out

    def flatten(self, model: ImplicitRNN) -> np.ndarray:
        """theta of ``model`` (float64 vector)."""
        if not self.names:
            return np.zeros(0)
        return np.concatenate([np.asarray(getattr(model, k), dtype=np.float64).ravel() for k in self.names])

    def unflatten(self, theta, template: ImplicitRNN) -> ImplicitRNN:
        """The model with the trainable weights taken from ``theta``, the others from ``template``."""
        theta = as_float_array(theta, "theta", ndim=1)
        if theta.shape != (self.size,):
            raise ValueError(f"theta: expected shape ({self.size},), got {theta.shape}")
        kw = {k: getattr(template, k) for k in WEIGHT_FIELDS}
        for (name, shape), sl in zip(zip(self.names, self.shapes), self.offsets().values()):
            kw[name] = theta[sl].reshape(shape)
        return ImplicitRNN(**kw, activation=template.activation)


@dataclass(frozen=True)
class Linearization:
    """Residual and normal-equation blocks at one parameter point (see the module docstring)."""

    y_hat: np.ndarray  # (B, T, p)
    residual: np.ndarray  # (B, T, p) = y_hat - y
    H: np.ndarray  # (P, P)
    g: np.ndarray  # (P,)
    Hx: np.ndarray  # (B, n, n)
    Hxt: np.ndarray  # (B, n, P)
    gx: np.ndarray  # (B, n)

    @property
    def loss(self) -> float:
        """Sum of squared residuals ||r||^2."""
        return float(np.sum(self.residual ** 2))

    def _damping(self, marquardt: bool):
        """Diagonal damping matrices (theta part, per-sequence x0 parts)."""
        P, n = self.H.shape[0], self.Hx.shape[1]
        if not marquardt:
            return np.ones(P), np.ones((self.Hx.shape[0], n))
        dt = np.diag(self.H).copy()
        dx = np.diagonal(self.Hx, axis1=1, axis2=2).copy()
        floor = 1e-9 * max(float(dt.mean()) if P else 0.0, float(dx.mean()) if dx.size else 0.0, 1e-300)
        return np.maximum(dt, floor), np.maximum(dx, floor)

    def reduced(self, mu: float, mu_x: float | None = None, *, marquardt: bool = False):
        """(H_red, g_red) of ``min ||r + J_theta d + J_x dx||^2 + mu d'D d + mu_x dx'D_x dx`` after
        minimising over every dx in closed form (Schur complement); H_red includes mu D.

        D = I, or with ``marquardt=True`` the diagonal of J'J (Marquardt's scaling, which makes
        the damped step independent of how each weight is scaled). The initial-state steps then
        follow from :meth:`x0_step` (same arguments).
        """
        mu_x = mu if mu_x is None else mu_x
        Dt, Dx = self._damping(marquardt)
        K = self.Hx + mu_x * Dx[:, :, None] * np.eye(self.Hx.shape[1])[None]
        sol = np.linalg.solve(K, np.concatenate([self.Hxt, self.gx[:, :, None]], axis=2))
        KiHxt, Kigx = sol[:, :, :-1], sol[:, :, -1]
        H_red = self.H + mu * np.diag(Dt) - np.einsum("bnp,bnq->pq", self.Hxt, KiHxt)
        g_red = self.g - np.einsum("bnp,bn->p", self.Hxt, Kigx)
        return 0.5 * (H_red + H_red.T), g_red

    def x0_step(self, d_theta, mu: float, mu_x: float | None = None, *, marquardt: bool = False) -> np.ndarray:
        """The optimal initial-state steps (B, n) for a parameter step ``d_theta``."""
        mu_x = mu if mu_x is None else mu_x
        _, Dx = self._damping(marquardt)
        K = self.Hx + mu_x * Dx[:, :, None] * np.eye(self.Hx.shape[1])[None]
        rhs = self.gx + np.einsum("bnp,p->bn", self.Hxt, d_theta)
        return -np.linalg.solve(K, rhs[:, :, None])[:, :, 0]


def linearize(model: ImplicitRNN, u, y, x0=None, layout: ParamLayout | None = None, *,
              chunk: int = 64, threads: int | None = 1) -> Linearization:
    """Simulate the training sequences and return r, J'J, J'r (and the x0 blocks).

    ``u`` (B, T, m), ``y`` (B, T, p), ``x0`` (B, n) (zeros by default). ``layout``: the
    trainable weights (default: all). ``chunk``: time steps whose output sensitivities are
    stacked before they are folded into J'J (memory ~ chunk * B * p * P doubles).
    ``threads``: BLAS threads while it runs (default 1, see :mod:`rrnn_convex._blas`; None:
    numpy's default). J'J is accumulated by symmetric rank-k updates (BLAS ``dsyrk``).
    """
    with blas_threads(threads):
        return _linearize(model, u, y, x0, layout, chunk)


def _linearize(model, u, y, x0, layout, chunk) -> Linearization:
    if layout is None:
        layout = ParamLayout.for_model(model)
    ub, _ = model.check_input(u)
    yb = as_float_array(y, "y", ndim=(2, 3))
    if yb.ndim == 2:
        yb = yb[None]
    Bn, T, m = ub.shape
    n, q, p = model.n, model.q, model.p
    if yb.shape != (Bn, T, p):
        raise ValueError(f"y: expected shape ({Bn}, {T}, {p}) to match u and the model's p={p}, got {yb.shape}")
    if x0 is None:
        x = np.zeros((Bn, n))
    else:
        x = as_float_array(x0, "x0", ndim=(1, 2))
        x = np.broadcast_to(x, (Bn, n)).copy() if x.shape in {(n,), (1, n)} else x
        if x.shape != (Bn, n):
            raise ValueError(f"x0: expected shape ({Bn}, {n}), got {np.shape(x0)}")
    Einv = np.linalg.inv(model.E)
    A = Einv @ model.F
    B1h, B2h, bxh = Einv @ model.B1, Einv @ model.B2, Einv @ model.bx
    C1, D12, bv = model.C1, model.D12, model.bv
    C2, D21, D22, by = model.C2, model.D21, model.D22, model.by
    sigma = model.activation

    offs = layout.offsets()
    dyn = [k for k in layout.names if k in DYNAMIC_FIELDS]
    Pd = sum(offs[k].stop - offs[k].start for k in dyn)
    P = layout.size

    S = np.zeros((Bn, n, Pd))  # dx_t / d theta_dyn, per sequence
    X = np.broadcast_to(np.eye(n)[None], (Bn, n, n)).copy()  # dx_t / dx0_b (own sequence)
    H = np.zeros((P, P), order="F")  # upper triangle accumulated in place by dsyrk
    g = np.zeros(P)
    Hx = np.zeros((Bn, n, n))
    Hxt = np.zeros((Bn, n, P))
    gx = np.zeros((Bn, n))
    y_hat = np.empty((Bn, T, p))
    rows_t = np.zeros((chunk, Bn, p, P))  # J rows, grouped by time step and sequence
    rows_x = np.empty((chunk, Bn, p, n))
    res_c = np.empty((chunk, Bn, p))

    def flush(k):
        if k == 0:
            return
        Jt = rows_t[:k].reshape(-1, P)
        # upper triangle of H += Jt' Jt (Jt.T is Fortran-ordered: no copy)
        out = dsyrk(1.0, Jt.T, beta=1.0, c=H, trans=0, lower=0, overwrite_c=1)
        if out is not H:  # (in place for a Fortran-ordered float64 H, as here)
            H[:] = out
        g[:] += Jt.T @ res_c[:k].reshape(-1)
        Jtb = rows_t[:k].transpose(1, 0, 2, 3).reshape(Bn, k * p, P)
        Jxb = rows_x[:k].transpose(1, 0, 2, 3).reshape(Bn, k * p, n)
        rb = res_c[:k].transpose(1, 0, 2).reshape(Bn, k * p)
        Jxb_T = Jxb.transpose(0, 2, 1)
        Hx[:] += Jxb_T @ Jxb
        Hxt[:] += Jxb_T @ Jtb
        gx[:] += (Jxb_T @ rb[:, :, None])[:, :, 0]

    cols = {}
    col = 0
    for name in dyn:
        size = offs[name].stop - offs[name].start
        cols[name] = slice(col, col + size)
        col += size
    eye_p = np.eye(p)
    k = 0
    for t in range(T):
        ut = ub[:, t]
        v = x @ C1.T + ut @ D12.T + bv
        w = sigma(v)
        d = sigma.derivative(v)  # (B, q)
        yt = x @ C2.T + w @ D21.T + ut @ D22.T + by
        y_hat[:, t] = yt
        x_next = x @ A.T + w @ B1h.T + ut @ B2h.T + bxh
        # per-sequence linearisation: dx+ = Mx dx + Bd dv_direct, dy = My dx + Dd dv_direct
        Bd = B1h[None] * d[:, None, :]  # (B, n, q) = B1h diag(d)
        Dd = D21[None] * d[:, None, :]  # (B, p, q)
        Mx = A[None] + Bd @ C1  # (B, n, n)
        My = C2[None] + Dd @ C1  # (B, p, n)

        # ---- output rows of J at time t
        r_t = yt - yb[:, t]
        res_c[k] = r_t
        out = rows_t[k]  # (B, p, P)
        if Pd:
            out[:, :, :Pd] = My @ S
            if "C1" in cols:  # dv_i / dC1[i, j] = x_j
                out[:, :, cols["C1"]] += (Dd[:, :, :, None] * x[:, None, None, :]).reshape(Bn, p, q * n)
            if "D12" in cols:
                out[:, :, cols["D12"]] += (Dd[:, :, :, None] * ut[:, None, None, :]).reshape(Bn, p, q * m)
            if "bv" in cols:
                out[:, :, cols["bv"]] += Dd
        for name, feat in (("C2", x), ("D21", w), ("D22", ut)):
            if name in offs:
                out[:, :, offs[name]] = (eye_p[None, :, :, None] * feat[:, None, None, :]).reshape(Bn, p, -1)
        if "by" in offs:
            out[:, :, offs["by"]] = eye_p[None]
        rows_x[k] = My @ X
        k += 1
        if k == chunk:
            flush(k)
            k = 0

        # ---- propagate to t + 1
        if Pd:
            S = Mx @ S
            for name, sl in cols.items():
                blk = S[:, :, sl]
                if name == "E":
                    blk -= (Einv[None, :, :, None] * x_next[:, None, None, :]).reshape(Bn, n, n * n)
                elif name == "F":
                    blk += (Einv[None, :, :, None] * x[:, None, None, :]).reshape(Bn, n, n * n)
                elif name == "B1":
                    blk += (Einv[None, :, :, None] * w[:, None, None, :]).reshape(Bn, n, n * q)
                elif name == "B2":
                    blk += (Einv[None, :, :, None] * ut[:, None, None, :]).reshape(Bn, n, n * m)
                elif name == "bx":
                    blk += Einv[None]
                elif name == "C1":
                    blk += (Bd[:, :, :, None] * x[:, None, None, :]).reshape(Bn, n, q * n)
                elif name == "D12":
                    blk += (Bd[:, :, :, None] * ut[:, None, None, :]).reshape(Bn, n, q * m)
                elif name == "bv":
                    blk += Bd
        X = Mx @ X
        x = x_next
    flush(k)
    H = np.triu(H)
    H = H + np.triu(H, 1).T
    return Linearization(y_hat, y_hat - yb, np.ascontiguousarray(H), g, Hx, Hxt, gx)
