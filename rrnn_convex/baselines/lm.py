"""Levenberg-Marquardt for unconstrained casadi-simulable models (the LSTM baseline's trainer).

A model here is anything with ``theta()`` / ``with_theta(theta)`` (its weights as one vector),
``casadi_step()`` (a casadi Function ``(x, u, theta) -> (x+, y)``), ``n_states`` and a numpy
``simulate(u, x0)`` for (batch, T, m) inputs, e.g. :class:`~rrnn_convex.baselines.LSTM`.

:func:`casadi_linearize` returns the same normal-equation blocks as
:func:`rrnn_convex.linearize.linearize` (a :class:`~rrnn_convex.linearize.Linearization`: r, J'J,
J'r and the per-sequence initial-state blocks) without storing J: casadi gives the local
Jacobians of one step, evaluated for all sequences at once (a mapped Function), and the forward
sensitivities ``S[t+1] = f_x S[t] + f_theta`` (``J[t] = g_x S[t] + g_theta``) are propagated
in numpy over the batch; the rows of J are folded into J'J every ``chunk`` time steps.
:func:`train_lm` runs the Levenberg-Marquardt loop of :mod:`rrnn_convex.levenberg` (minibatch,
predicted decrease, ratio test, mu rule, patience), which
:class:`rrnn_convex.fit.RobustRNNRegressor` runs too, with the unconstrained Gauss-Newton step in
place of the convex one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import casadi as ca
import numpy as np

from .. import levenberg
from .._validation import paired_sequences
from ..linearize import Linearization
from ..metrics import nse

__all__ = ["casadi_linearize", "train_lm", "LMResult"]


class _LocalJacobians:
    """``(x, u, theta) -> (x+, y, f_x, f_theta, g_x, g_theta)`` for a batch of states at once,
    evaluated through casadi's zero-copy buffers; the Jacobians are scattered from their
    (sparse) casadi patterns into dense (batch, rows, cols) arrays."""

    def __init__(self, step: ca.Function, batch: int):
        nx, m, P = step.size1_in(0), step.size1_in(1), step.size1_in(2)
        sym = ca.SX if step.is_a("SXFunction") else ca.MX
        x, u, th = sym.sym("x", nx), sym.sym("u", m), sym.sym("theta", P)
        xn, y = step(x, u, th)
        jacs = [ca.jacobian(xn, x), ca.jacobian(xn, th), ca.jacobian(y, x), ca.jacobian(y, th)]
        f = ca.Function("local", [x, u, th], [xn, y] + jacs)
        self.f = f.map("local_map", "serial", batch, [2], [])
        self.batch, self.nx, self.m, self.P, self.p = batch, nx, m, P, y.shape[0]
        self.patterns = [(j.sparsity().row(), j.sparsity().get_col(), j.shape) for j in jacs]
        self.buf, self.eval = self.f.buffer()
        self.x = np.zeros((batch, nx))  # column-major (nx, batch) for casadi
        self.u = np.zeros((batch, m))
        self.th = np.zeros(P)
        for i, a in enumerate((self.x, self.u, self.th)):
            self.buf.set_arg(i, memoryview(a))
        self.out = [np.zeros(self.f.nnz_out(i)) for i in range(self.f.n_out())]
        for i, a in enumerate(self.out):
            self.buf.set_res(i, memoryview(a))

    def __call__(self, x, u, theta):
        self.x[:], self.u[:], self.th[:] = x, u, theta
        self.eval()
        B = self.batch
        res = [self.out[0].reshape(B, self.nx), self.out[1].reshape(B, self.p)]
        for (rows, cols, shape), vals in zip(self.patterns, self.out[2:]):
            dense = np.zeros((B,) + shape)
            dense[:, rows, cols] = vals.reshape(B, len(rows))
            res.append(dense)
        return res


_CACHE: dict = {}


def _local(step: ca.Function, batch: int) -> _LocalJacobians:
    key = (id(step), step.name(), batch)
    if key not in _CACHE or _CACHE[key][0] is not step:
        _CACHE[key] = (step, _LocalJacobians(step, batch))
    return _CACHE[key][1]


def casadi_linearize(step: ca.Function, theta, u, y, x0=None, *, chunk: int = 64) -> Linearization:
    """r, J'J, J'r and the initial-state blocks of ``r = y_hat(theta, x0) - y`` (see the module
    docstring), as a :class:`~rrnn_convex.linearize.Linearization` (usable with its
    ``reduced`` / ``x0_step``). ``u`` (B, T, m), ``y`` (B, T, p), ``x0`` (B, nx) or None (zeros).
    Memory ~ ``chunk * B * p * P`` doubles for the J rows plus B * nx * P for the sensitivities."""
    U, Y = paired_sequences(u, y)
    B, T, _ = U.shape
    jac = _local(step, B)
    nx, P, p = jac.nx, jac.P, jac.p
    theta = np.asarray(theta, dtype=np.float64)
    x = np.zeros((B, nx)) if x0 is None else np.array(x0, dtype=np.float64).reshape(B, nx)
    S = np.zeros((B, nx, P))  # dx_t / dtheta per sequence
    X = np.broadcast_to(np.eye(nx), (B, nx, nx)).copy()  # dx_t / dx0 (own sequence)
    H, g = np.zeros((P, P)), np.zeros(P)
    Hx, Hxt, gx = np.zeros((B, nx, nx)), np.zeros((B, nx, P)), np.zeros((B, nx))
    y_hat = np.empty((B, T, p))
    rows_t, rows_x, res = np.empty((chunk, B, p, P)), np.empty((chunk, B, p, nx)), np.empty((chunk, B, p))

    def flush(k):
        Jt = rows_t[:k].reshape(-1, P)
        H[:] += Jt.T @ Jt
        g[:] += Jt.T @ res[:k].reshape(-1)
        Jtb = rows_t[:k].transpose(1, 0, 2, 3).reshape(B, k * p, P)
        Jxb_T = rows_x[:k].transpose(1, 3, 0, 2).reshape(B, nx, k * p)
        rb = res[:k].transpose(1, 0, 2).reshape(B, k * p, 1)
        Hx[:] += Jxb_T @ Jxb_T.transpose(0, 2, 1)
        Hxt[:] += np.einsum("bnk,bkp->bnp", Jxb_T, Jtb, optimize=True)  # faster than stacked matmul here
        gx[:] += (Jxb_T @ rb)[:, :, 0]

    k = 0
    for t in range(T):
        x_next, yt, fx, fth, gxx, gth = jac(x, U[:, t], theta)
        y_hat[:, t] = yt
        res[k] = yt - Y[:, t]
        rows_t[k] = gxx @ S + gth
        rows_x[k] = gxx @ X
        k += 1
        if k == chunk:
            flush(k)
            k = 0
        S = fx @ S + fth
        X = fx @ X
        x = x_next
    if k:
        flush(k)
    return Linearization(y_hat, y_hat - Y, 0.5 * (H + H.T), g, Hx, Hxt, gx)


@dataclass
class LMResult:
    """What :func:`train_lm` returns.

    Parameters
    ----------
    model : object
        The best model (by validation NSE, else the last).
    x0 : numpy.ndarray
        Its learned initial states (batch, n_states).
    history : list
        One dict per iteration (see :func:`train_lm`).
    mu : float or None
        The last damping.
    """

    model: object
    x0: np.ndarray
    history: list = field(default_factory=list)
    mu: float | None = None


def train_lm(model, u, y, validation=None, *, x0=None, learn_x0: bool = True, max_iter: int = 50,
             time_budget: float | None = None, patience: int = 10, mu0: float = 1e-3,
             batch_size: int | None = None, seed: int = 0, chunk: int = 64, progress: bool = False) -> LMResult:
    """Levenberg-Marquardt on the simulation error ``||y_hat(theta, x0) - y||^2``.

    Each iteration linearises (:func:`casadi_linearize`, all sequences or a random minibatch of
    ``batch_size``), eliminates the initial states (Schur complement) and takes the
    Marquardt-damped Gauss-Newton step ``(J'J + mu diag(J'J)) d = -J'r``; the trial steps, the
    ratio test and the mu rule are :func:`rrnn_convex.levenberg.iterate`'s (accepted when the true
    loss drops by more than 1e-3 of the predicted drop, then mu x1/3, x1 or x2 by the ratio; else
    mu x4, x10 for a singular system, and retry, up to 8 times).

    Parameters
    ----------
    model : object
        The start: ``theta()``, ``with_theta``, ``casadi_step()``, ``n_states``, ``simulate``
        (see the module docstring).
    u, y : array_like
        Training inputs (batch, T, m) and outputs (batch, T, p).
    validation : (array_like, array_like), optional
        (u, y) for early stopping, simulated from the zero state; the best model by its NSE is
        returned.
    x0 : array_like, optional
        Initial states (batch, n_states); zeros by default.
    learn_x0 : bool
        Learn one initial state per training sequence.
    max_iter : int
        Iteration cap.
    time_budget : float, optional
        Seconds, checked before each linearisation and each trial step.
    patience : int
        Stop after this many accepted steps without a better validation NSE.
    mu0 : float
        The initial damping.
    batch_size : int, optional
        Sequences per iteration (None: all).
    seed : int
        Seeds the minibatch draws.
    chunk : int
        Time steps per fold of J into J'J (:func:`casadi_linearize`).
    progress : bool
        Print one line per iteration.

    Returns
    -------
    LMResult
        The best model, its initial states, the history and the last mu. ``history`` has per
        iteration ``iteration, loss`` (training loss after the iteration), ``val_nse, mu,
        accepted, seconds`` (of the iteration) ``, seconds_since_start, info`` (why the last
        rejected trial was rejected, or "time budget"). The loop stops on ``max_iter``, the time budget, the patience or
        mu above ``levenberg.MU_MAX``.
    """
    t_start = time.perf_counter()
    U, Y = paired_sequences(u, y)
    val = None if validation is None else paired_sequences(*validation, names=("validation u", "validation y"))
    Bn = U.shape[0]
    nx = model.n_states
    x0 = np.zeros((Bn, nx)) if x0 is None else np.array(x0, dtype=np.float64).reshape(Bn, nx)
    step = model.casadi_step()
    rng = np.random.default_rng(seed)

    def val_nse(mdl):
        return float("nan") if val is None else float(np.mean(nse(mdl.simulate(val[0]), val[1])))

    def loss_of(mdl, xs, idx):
        return float(np.sum((mdl.simulate(U[idx], xs[idx]) - Y[idx]) ** 2))

    def out_of_time():
        return time_budget is not None and time.perf_counter() - t_start > time_budget

    best = (val_nse(model), model, x0.copy())
    mu, stall, history = float(mu0), 0, []
    for it in range(int(max_iter)):
        if out_of_time():
            break
        t_it = time.perf_counter()
        idx = levenberg.minibatch(rng, Bn, batch_size)
        xi = x0[idx] if learn_x0 else np.zeros((len(idx), nx))
        theta = model.theta()
        lin = casadi_linearize(step, theta, U[idx], Y[idx], xi, chunk=chunk)

        def gauss_newton(mu, lin=lin, theta=theta, idx=idx, x0=x0, model=model):
            """The damped Gauss-Newton step at ``mu``, judged by the ratio test."""
            Hr, gr = levenberg.reduced_system(lin, mu, learn_x0, marquardt=True)
            try:
                d = -np.linalg.solve(Hr, gr)
            except np.linalg.LinAlgError:
                return levenberg.Trial("solver", "singular step system")
            dx = levenberg.x0_step(lin, d, mu, learn_x0, marquardt=True)
            cand, x0_new = model.with_theta(theta + d), levenberg.moved_x0(x0, idx, dx, learn_x0)
            return levenberg.ratio_test(lin.loss, loss_of(cand, x0_new, idx), levenberg.predicted_decrease(lin, d, dx),
                                        (cand, x0_new))

        res = levenberg.iterate(gauss_newton, mu, lin.loss, time_left=lambda: not out_of_time())
        mu, accepted = res.mu, res.accepted
        info = "time budget" if res.out_of_time else res.info
        if accepted:
            model, x0 = res.trial.candidate
        v = val_nse(model)
        is_best, stall = levenberg.track_best(best[0], stall, v, accepted, val is not None)
        if is_best:
            best = (v, model, x0.copy())
        loss = res.batch_loss if len(idx) == Bn else loss_of(model, x0, np.arange(Bn))
        now = time.perf_counter()
        history.append({"iteration": it, "loss": loss, "val_nse": v, "mu": float(mu), "accepted": accepted,
                        "seconds": now - t_it, "seconds_since_start": now - t_start, "info": info})
        if progress:
            print(f"lm {it:4d}  loss {loss:.5g}  val_nse {v:.4f}  mu {mu:.2g}  {'ok' if accepted else info}")
        if stall >= patience or mu > levenberg.MU_MAX or info == "time budget":
            break
    return LMResult(best[1], best[2], history, mu)
