"""Gauss-Newton pieces of the simulation error: r, J'J and J'r without storing J (docs/design.md section 4.1).

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
``C1 x, D12 u, bv`` with respect to the weights themselves. Weights are vectorised row-major.
The implementation propagates ``zeta = E dx`` rather than ``dx``, and not one step at a time:
in blocks of :data:`BLOCK_STEPS` steps, each block's rows of J and the next zeta are products of
transition coefficients (one backward sweep of n x n products) with zeta at the block's start
and with the partials' features (:func:`_propagate_block`, docs/linearization.md).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ._blas import blas_threads
from ._validation import as_float_array
from .shapes import BIAS_NAMES, BIAS_SHAPES, MATRIX_SHAPES, OPTIONAL_MATRIX_NAMES, OPTIONAL_MATRIX_SHAPES, WEIGHT_FIELDS

if TYPE_CHECKING:  # the model is only an annotation here: model imports this module (through initial_state)
    from .model import ImplicitRNN

#: fields that act on the state update (their sensitivities propagate through time); the
#: equilibrium weight D11 is trainable only when a layout names it
DYNAMIC_FIELDS = ("E", "F", "B1", "B2", "bx", "C1", "D11", "D12", "bv")
#: fields that act only on the output at the same time step
OUTPUT_FIELDS = ("C2", "D21", "D22", "by")
#: every field a layout may name: the weights, then the optional D11
LAYOUT_FIELDS = WEIGHT_FIELDS + OPTIONAL_MATRIX_NAMES
_SHAPE_SYMBOLS = ({name: (r, c) for name, r, c in MATRIX_SHAPES + OPTIONAL_MATRIX_SHAPES}
                  | {name: (r,) for name, r in BIAS_SHAPES})


@dataclass(frozen=True)
class ParamLayout:
    """Which weights are trainable, in which order, and where they sit in the vector theta.

    Parameters
    ----------
    names : tuple of str
        The trainable fields, dynamic ones first (see :meth:`for_model`).
    shapes : tuple of tuple of int
        Their shapes.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def for_model(cls, model: ImplicitRNN, names=None) -> "ParamLayout":
        """Layout of ``names`` (default: every weight and bias) for the model's dimensions.

        The order is always dynamic fields first (E, F, B1, B2, bx, C1, D11, D12, bv), then
        output fields (C2, D21, D22, by), whatever order ``names`` has. The equilibrium weight
        ``D11`` (q x q) is trainable only when named: the default layout, and so every layout of
        a model without D11, is unchanged.

        Parameters
        ----------
        model : ImplicitRNN
            Gives the dimensions.
        names : iterable of str, optional
            Field names (``WEIGHT_FIELDS``, and ``"D11"``).

        Returns
        -------
        ParamLayout
            The names in that order, with their shapes from the model's dimensions.

        Raises
        ------
        ValueError
            An unknown field name.
        """
        names = WEIGHT_FIELDS if names is None else tuple(names)
        unknown = set(names) - set(LAYOUT_FIELDS)
        if unknown:
            raise ValueError(f"names: unknown weights {sorted(unknown)}; expected some of {LAYOUT_FIELDS}")
        ordered = tuple(k for k in DYNAMIC_FIELDS + OUTPUT_FIELDS if k in names)
        dims = model.dims
        return cls(ordered, tuple(tuple(dims[s] for s in _SHAPE_SYMBOLS[k]) for k in ordered))

    @property
    def sizes(self) -> tuple[int, ...]:
        """The number of entries of each trainable field."""
        return tuple(int(np.prod(s)) for s in self.shapes)

    @property
    def size(self) -> int:
        """The length P of theta."""
        return int(sum(self.sizes))

    def offsets(self) -> dict[str, slice]:
        """Field name -> its slice of theta.

        Returns
        -------
        dict of str to slice
            In the layout's order; the slices are contiguous and cover ``0 .. size``.
        """
        out, start = {}, 0
        for name, size in zip(self.names, self.sizes):
            out[name] = slice(start, start + size)
            start += size
        return out

    def flatten(self, model: ImplicitRNN) -> np.ndarray:
        """theta of ``model``.

        Parameters
        ----------
        model : ImplicitRNN
            A model with the layout's dimensions.

        Returns
        -------
        numpy.ndarray, shape (P,)
            The trainable weights, row-major, in the layout's order.
        """
        if not self.names:
            return np.zeros(0)
        return np.concatenate([np.asarray(getattr(model, k), dtype=np.float64).ravel() for k in self.names])

    def unflatten(self, theta, template: ImplicitRNN, well_posed_multiplier=None) -> ImplicitRNN:
        """The model with the trainable weights taken from ``theta``, the others from ``template``.

        Parameters
        ----------
        theta : array_like, shape (P,)
            The trainable weights, row-major, in the layout's order.
        template : ImplicitRNN
            Gives every other weight and the activation.
        well_posed_multiplier : array_like, shape (q,), optional
            A multiplier that proves a general D11 of ``theta`` well-posed (see
            :class:`~rrnn_convex.model.ImplicitRNN`); default: the template's, which the model
            replaces by its own search when it does not prove the new D11.

        Returns
        -------
        ImplicitRNN
            A new model; ``template`` is not changed.

        Raises
        ------
        ValueError
            ``theta`` of the wrong length, NaN/inf, or weights that make an invalid model (a
            D11 not known to be well-posed among them).
        """
        theta = as_float_array(theta, "theta", ndim=1)
        if theta.shape != (self.size,):
            raise ValueError(f"theta: expected shape ({self.size},), got {theta.shape}")
        kw = {k: getattr(template, k) for k in WEIGHT_FIELDS}
        for (name, shape), sl in zip(zip(self.names, self.shapes), self.offsets().values()):
            kw[name] = theta[sl].reshape(shape)
        if well_posed_multiplier is not None:
            kw["well_posed_multiplier"] = well_posed_multiplier
        return replace(template, **kw)


@dataclass(frozen=True)
class Linearization:
    """Residual and normal-equation blocks at one parameter point (see the module docstring).

    Parameters
    ----------
    y_hat : numpy.ndarray, shape (B, T, p)
        The simulated outputs.
    residual : numpy.ndarray, shape (B, T, p)
        ``y_hat - y``.
    H : numpy.ndarray, shape (P, P)
        ``J'J`` of the weights.
    g : numpy.ndarray, shape (P,)
        ``J'r``.
    Hx : numpy.ndarray, shape (B, n, n)
        Each sequence's ``J_x0' J_x0``.
    Hxt : numpy.ndarray, shape (B, n, P)
        Each sequence's ``J_x0' J``.
    gx : numpy.ndarray, shape (B, n)
        Each sequence's ``J_x0' r``.
    """

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

        Parameters
        ----------
        mu : float
            Damping of the weights.
        mu_x : float, optional
            Damping of the initial states (default ``mu``).
        marquardt : bool
            Damp by the diagonal of J'J instead of the identity.

        Returns
        -------
        H_red : numpy.ndarray, shape (P, P)
            Symmetric; includes ``mu D``.
        g_red : numpy.ndarray, shape (P,)
            The damped step solves ``H_red d = -g_red``.
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
        """The optimal initial-state steps for a parameter step ``d_theta``.

        Parameters
        ----------
        d_theta : numpy.ndarray, shape (P,)
            The weight step.
        mu, mu_x, marquardt
            As in :meth:`reduced`.

        Returns
        -------
        numpy.ndarray, shape (B, n)
            Each sequence's initial-state step, minimising the damped model for ``d_theta``.
        """
        mu_x = mu if mu_x is None else mu_x
        _, Dx = self._damping(marquardt)
        K = self.Hx + mu_x * Dx[:, :, None] * np.eye(self.Hx.shape[1])[None]
        rhs = self.gx + np.einsum("bnp,p->bn", self.Hxt, d_theta)
        return -np.linalg.solve(K, rhs[:, :, None])[:, :, 0]


def linearize(model: ImplicitRNN, u, y, x0=None, layout: ParamLayout | None = None, *,
              chunk: int = 64, threads: int | None = 1, workers: int = 1,
              overlap: bool = False) -> Linearization:
    """Simulate the training sequences and return r, J'J, J'r (and the x0 blocks).

    Parameters
    ----------
    model : ImplicitRNN
        The model at which the simulation error is linearised.
    u, y : array_like
        Inputs (B, T, m) and measured outputs (B, T, p); (T, m) and (T, p) for one sequence.
    x0 : array_like, optional
        Initial states (B, n), or one state (n,) for every sequence; zeros by default.
    layout : ParamLayout, optional
        The trainable weights (default: all).
    chunk : int
        Time steps whose rows of J are stacked before they are folded into J'J (memory about
        ``chunk * B * p * P`` doubles).
    threads : int or None
        BLAS threads while it runs (default 1, see :mod:`rrnn_convex._blas`; None: numpy's
        default).
    workers : int
        Threads that share the sequences (each propagates its own part of the batch; the
        sums are added at the end). ``benchmarks/linearize_speed.py`` measures when it pays.
    overlap : bool
        Fold each chunk of rows into J'J in a helper thread while the next chunk is computed
        (:class:`NormalEquations` with ``background=True``; the same sums bit for bit). Pays
        when a core is free for the folds (``benchmarks/linearize_speed.py``).

    Returns
    -------
    Linearization
        Residual and normal-equation blocks, in the layout's order of weights.

    Raises
    ------
    ValueError
        Shapes that do not fit the model (naming the argument), NaN/inf, ``workers < 1`` or
        ``chunk < 1``.
    """
    workers = int(workers)
    if workers < 1:
        raise ValueError(f"workers: expected a positive number of threads, got {workers}")
    layout = ParamLayout.for_model(model) if layout is None else layout
    ub, yb, xb = _checked(model, u, y, x0)
    parts = np.array_split(np.arange(ub.shape[0]), min(workers, ub.shape[0]))
    with blas_threads(threads):
        if len(parts) == 1:
            return _linearize(model, ub, yb, xb, layout, chunk, overlap)
        with ThreadPoolExecutor(len(parts)) as pool:  # numpy releases the GIL in its kernels
            lins = list(pool.map(lambda i: _linearize(model, ub[i], yb[i], xb[i], layout, chunk, overlap), parts))
    return Linearization(*(np.concatenate([getattr(lin, k) for lin in lins]) for k in ("y_hat", "residual")),
                         sum(lin.H for lin in lins), sum(lin.g for lin in lins),
                         *(np.concatenate([getattr(lin, k) for lin in lins]) for k in ("Hx", "Hxt", "gx")))


#: windows per thread below which sharing them between threads does not pay (see :func:`thread_plan`)
MIN_WINDOWS_PER_WORKER = 8


def thread_plan(windows: int, jobs: int) -> tuple[int, bool]:
    """How :func:`linearize` should use ``jobs`` threads on ``windows`` training windows.

    Two ways to use a second thread: share the windows (``workers``) or fold the rows of J into
    J'J in the background (``overlap``). Each thread's time loop makes a few numpy calls per
    block of :data:`BLOCK_STEPS` steps; with few windows per thread those calls are small and
    the threads mostly wait for each other, so a second thread then folds instead. Measured
    on 2 cores, paper-sized windows (1000 samples, 462 weights): up to 12 windows one
    propagating thread plus a folding one was fastest, from 16 on the two were equal on an idle
    machine and sharing was 20% faster with the other core busy (25 windows: 0.59 s against
    0.72 s).

    Parameters
    ----------
    windows : int
        Training windows in the batch.
    jobs : int
        Threads available (at least 1).

    Returns
    -------
    workers : int
        Threads sharing the windows: ``jobs`` when every one gets at least
        ``MIN_WINDOWS_PER_WORKER`` windows, else as many as do (at least 1).
    overlap : bool
        Fold in the background: when a thread is left over (``jobs > workers``).

    Raises
    ------
    ValueError
        ``jobs < 1`` or ``windows < 1``.
    """
    if int(jobs) < 1 or int(windows) < 1:
        raise ValueError(f"thread_plan: expected windows >= 1 and jobs >= 1, got windows={windows}, jobs={jobs}")
    workers = max(1, min(int(jobs), int(windows) // MIN_WINDOWS_PER_WORKER))
    return workers, int(jobs) > workers


def _checked(model: ImplicitRNN, u, y, x0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, y, x0) as float64 arrays (B, T, m), (B, T, p), (B, n), each checked against the model."""
    ub, _ = model.check_input(u)
    yb = as_float_array(y, "y", ndim=(2, 3))
    if yb.ndim == 2:
        yb = yb[None]
    Bn, T, _ = ub.shape
    n, p = model.n, model.p
    if yb.shape != (Bn, T, p):
        raise ValueError(f"y: expected shape ({Bn}, {T}, {p}) to match u and the model's p={p}, got {yb.shape}")
    if x0 is None:
        return ub, yb, np.zeros((Bn, n))
    x = as_float_array(x0, "x0", ndim=(1, 2))
    x = np.broadcast_to(x, (Bn, n)).copy() if x.shape in {(n,), (1, n)} else x
    if x.shape != (Bn, n):
        raise ValueError(f"x0: expected shape ({Bn}, {n}), got {np.shape(x0)}")
    return ub, yb, x


def casadi_step(model: ImplicitRNN, layout: ParamLayout | None = None):
    """The model's recursion as a casadi Function ``(x, u, theta) -> (x+, y)``.

    ``theta`` is the layout's vector of trainable weights (default: all); the other weights are
    the model's, as constants. With it the implicit RNN runs through the casadi engine
    :func:`rrnn_convex.baselines.casadi_linearize` as the LSTM baseline does; the package's
    own :func:`linearize` derives the same blocks in closed form (the tests compare the two, and
    ``benchmarks/linearize_speed.py`` times them).

    Parameters
    ----------
    model : ImplicitRNN
        Gives the dimensions, the activation and the weights not in ``layout``.
    layout : ParamLayout, optional
        The trainable weights (default: all).

    Returns
    -------
    casadi.Function
        Inputs ``x`` (n), ``u`` (m), ``theta`` (P); outputs ``x_next`` (n), ``y`` (p).

    Raises
    ------
    ValueError
        A general (cyclic) D11, whose equilibrium has no explicit formula.

    Notes
    -----
    An acyclic D11 whose neurons form L levels (:attr:`ImplicitRNN.neuron_levels
    <rrnn_convex.model.ImplicitRNN.neuron_levels>`) is evaluated by 2L sweeps of
    ``w <- sigma(v0 + D11 w)`` from ``w = 0``: the first L reach the equilibrium (level k is
    exact after k sweeps), and the last L, all at the equilibrium, make the derivative exact as
    well (``(diag(sigma') D11)^L = 0``), also with respect to entries of a trainable D11
    outside its current pattern.
    """
    import casadi as ca
    if model.d11_kind == "general":
        raise ValueError("model: casadi_step supports a zero or acyclic D11 only (an equilibrium with a cycle "
                         "of D11 entries has no explicit formula); got a general D11 (max |D11| = "
                         f"{float(np.max(np.abs(model.D11))):.3g}); use linearize, which handles it")
    layout = ParamLayout.for_model(model) if layout is None else layout
    x, u, th = ca.SX.sym("x", model.n), ca.SX.sym("u", model.m), ca.SX.sym("theta", layout.size)
    W = {k: ca.DM(np.atleast_2d(np.asarray(getattr(model, k))).reshape(-1, 1) if k in BIAS_NAMES
                  else getattr(model, k)) for k in WEIGHT_FIELDS + ("D11",)}
    for name, shape, sl in zip(layout.names, layout.shapes, layout.offsets().values()):
        r, c = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], 1)
        W[name] = ca.reshape(th[sl.start:sl.stop], c, r).T  # row-major, like numpy's ravel
    v0 = W["C1"] @ x + W["D12"] @ u + W["bv"]
    w = model.activation.casadi(v0)
    if model.d11_kind == "acyclic" or "D11" in layout.names:
        w = ca.SX.zeros(model.q)
        for _ in range(2 * len(model.neuron_levels)):
            w = model.activation.casadi(v0 + W["D11"] @ w)
    x_next = ca.solve(W["E"], W["F"] @ x + W["B1"] @ w + W["B2"] @ u + W["bx"])
    y = W["C2"] @ x + W["D21"] @ w + W["D22"] @ u + W["by"]
    return ca.Function("implicit_rnn_step", [x, u, th], [x_next, y], ["x", "u", "theta"], ["x_next", "y"])


class NormalEquations:
    """Accumulates J'J, J'r and the per-sequence initial-state blocks from the rows of J.

    The rows of one time step are written into :meth:`rows` (for all B sequences at once),
    then :meth:`commit` files them; every ``chunk`` time steps they are folded into the sums,
    J'J by a symmetric rank-k update (BLAS syrk). Shared by :func:`linearize` and
    :func:`rrnn_convex.baselines.casadi_linearize`.

    With ``background=True`` a chunk is folded in a helper thread while the caller fills the
    next one into a second buffer (BLAS releases the GIL, so the fold and the caller's Python
    loop overlap on two cores). The chunks are still folded one after another in time order,
    so the sums are bit for bit those of ``background=False``. Use it as a context manager (or
    call :meth:`finish`, which waits for the helper thread); :meth:`close` stops the thread.

    Parameters
    ----------
    batch : int
        Number of sequences B.
    n_params : int
        Number of weights P.
    n_states : int
        State dimension n (the initial-state blocks).
    n_outputs : int
        Output dimension p.
    chunk : int
        Time steps buffered before they are folded into the sums.
    background : bool
        Fold in a helper thread (default False: in the calling thread).

    Raises
    ------
    ValueError
        ``chunk < 1``.
    """

    def __init__(self, batch: int, n_params: int, n_states: int, n_outputs: int, chunk: int = 64,
                 background: bool = False):
        chunk = int(chunk)
        if chunk < 1:
            raise ValueError(f"chunk: expected a positive number of time steps, got {chunk}")
        B, P, n, p = batch, n_params, n_states, n_outputs
        self.shape = (B, P, n, p)
        self.chunk, self.k = chunk, 0
        self.H = np.zeros((P, P))
        self.g = np.zeros(P)
        self.Hx, self.Hxt, self.gx = np.zeros((B, n, n)), np.zeros((B, n, P)), np.zeros((B, n))
        # rows of J (weights; the sequence's own initial state) and residuals, by time step and
        # sequence: one buffer, or two used in turn when folding in the background
        self._buffers = [_RowBuffer.zeros(chunk, B, p, P, n) for _ in range(2 if background else 1)]
        self._active = 0
        self._pool = ThreadPoolExecutor(1) if background else None
        self._pending = None

    def __enter__(self) -> "NormalEquations":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Wait for a fold in progress and stop the helper thread (if any)."""
        self._wait()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    @property
    def space(self) -> int:
        """Time steps that still fit into the current buffer before it is folded (at least 1)."""
        return self.chunk - self.k

    def rows(self, steps: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Buffers for this time step's rows of J and residuals (or for the next ``steps`` time steps).

        Parameters
        ----------
        steps : int, optional
            With it, views for that many consecutive time steps (at most :attr:`space`), each
            with a leading time axis.

        Returns
        -------
        rows_theta : numpy.ndarray, shape (B, p, P)
            The rows of J for the weights, to be written in place ((steps, B, p, P) with ``steps``).
        rows_x0 : numpy.ndarray, shape (B, p, n)
            The rows of J for each sequence's own initial state.
        residual : numpy.ndarray, shape (B, p)
            The residuals ``y_hat - y`` of this time step.

        Raises
        ------
        ValueError
            ``steps`` outside ``1 .. space``.

        Notes
        -----
        The buffers are views into the accumulator, reused after every ``chunk`` time steps:
        fill all three before :meth:`commit`.
        """
        buf = self._buffers[self._active]
        if steps is None:
            return buf.theta[self.k], buf.state[self.k], buf.res[self.k]
        if not 1 <= steps <= self.space:
            raise ValueError(f"steps: expected 1 .. {self.space} (the room left in the buffer), got {steps}")
        sl = slice(self.k, self.k + steps)
        return buf.theta[sl], buf.state[sl], buf.res[sl]

    def commit(self, steps: int = 1) -> None:
        """File the rows written into :meth:`rows` (folded into the sums whenever the buffer is full).

        Parameters
        ----------
        steps : int
            How many time steps of rows were written (1, or the ``steps`` given to :meth:`rows`).
        """
        if not 1 <= steps <= self.space:
            raise ValueError(f"steps: expected 1 .. {self.space} (the room left in the buffer), got {steps}")
        self.k += steps
        if self.k == self.chunk:
            self._flush()

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises an error of the helper thread

    def _flush(self, last: bool = False) -> None:
        k, self.k = self.k, 0
        if k == 0:
            return
        buf = self._buffers[self._active]
        self._wait()  # the previous chunk is folded first: the same order of sums as in one thread
        if self._pool is None or last:
            self._fold(buf, k)
            return
        self._pending = self._pool.submit(self._fold, buf, k)
        self._active = 1 - self._active

    def _fold(self, buf: "_RowBuffer", k: int) -> None:
        B, P, n, p = self.shape
        Jt = buf.theta[:k].reshape(-1, P)
        # H += Jt' Jt: numpy recognises the product of a matrix with its own transpose and calls
        # BLAS syrk (filling in the other triangle), and, unlike scipy's dsyrk wrapper, releases
        # the GIL while it runs, so that a background fold overlaps the caller's loop
        self.H += Jt.T @ Jt
        self.g += Jt.T @ buf.res[:k].reshape(-1)
        Jtb = buf.theta[:k].transpose(1, 0, 2, 3).reshape(B, k * p, P)
        Jxb_T = buf.state[:k].transpose(1, 3, 0, 2).reshape(B, n, k * p)
        rb = buf.res[:k].transpose(1, 0, 2).reshape(B, k * p, 1)
        self.Hx += Jxb_T @ Jxb_T.transpose(0, 2, 1)
        self.Hxt += Jxb_T @ Jtb
        self.gx += (Jxb_T @ rb)[:, :, 0]

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The sums once every row is filed.

        Returns
        -------
        H, g, Hx, Hxt, gx : numpy.ndarray
            As in :class:`Linearization`; H symmetric and C-ordered.
        """
        self._flush(last=True)
        self._wait()
        return self.H, self.g, self.Hx, self.Hxt, self.gx


class _RowBuffer(NamedTuple):
    """``chunk`` time steps of rows of J: weights (chunk, B, p, P), the sequence's own initial
    state (chunk, B, p, n) and residuals (chunk, B, p)."""

    theta: np.ndarray
    state: np.ndarray
    res: np.ndarray

    @classmethod
    def zeros(cls, chunk: int, B: int, p: int, P: int, n: int) -> "_RowBuffer":
        return cls(np.zeros((chunk, B, p, P)), np.zeros((chunk, B, p, n)), np.zeros((chunk, B, p)))


#: how each dynamic weight enters the equations, by group (see :class:`_Injection`):
#: weights acting on E x+ (their unit injection into zeta = E dx) with the feature they multiply,
_STATE_INJECTED = (("E", "-x+"), ("F", "x"), ("B1", "w"), ("B2", "u"), ("bx", "1"))
#: and weights acting on the neurons' input v (injected through B1 diag(sigma'(v)) into zeta)
_NEURON_INJECTED = (("C1", "x"), ("D11", "w"), ("D12", "u"), ("bv", "1"))
#: output weights (row i of the output, times the feature)
_OUTPUT_DIRECT = (("C2", "x"), ("D21", "w"), ("D22", "u"), ("by", "1"))

#: time steps whose sensitivities are propagated together (see :func:`_propagate_block`); on the
#: paper's model (25 windows of 1000 samples) 8, 12, 16, 24 and 32 took 0.43-0.52 s, within the
#: run-to-run spread of each other; longer blocks do more zero products, shorter ones more calls
BLOCK_STEPS = 16


@dataclass(frozen=True)
class _Injection:
    """A group of weights whose partial derivatives share one direction per row.

    For a weight matrix M (rows x cols) multiplying the feature f (M f, or M = bias with
    f = 1), the partial derivative with respect to M[i, j] is (direction of row i) * f_j. The
    weights of a group are stored interleaved by row, ``columns = start + i * width + j`` with
    the features of its trainable fields concatenated (width in all), so that one product of
    (row coefficients) x (features) gives the whole group's columns.
    """

    fields: tuple[str, ...]
    features: tuple[str, ...]
    widths: tuple[int, ...]
    rows: int
    start: int

    @classmethod
    def of(cls, table, layout: "ParamLayout", dims: dict, rows: int, start: int) -> "_Injection":
        width_of = {"x": dims["n"], "-x+": dims["n"], "w": dims["q"], "u": dims["m"], "1": 1}
        picked = [(name, feat) for name, feat in table if name in layout.names]
        return cls(tuple(n for n, _ in picked), tuple(f for _, f in picked),
                   tuple(width_of[f] for _, f in picked), rows, start)

    @property
    def width(self) -> int:
        return int(sum(self.widths))

    @property
    def stop(self) -> int:
        return self.start + self.rows * self.width

    def layout_columns(self, offsets: dict) -> np.ndarray:
        """Column in the layout's theta of each of the group's internal columns."""
        cols = np.empty((self.rows, self.width), dtype=np.intp)
        j0 = 0
        for name, w in zip(self.fields, self.widths):
            cols[:, j0:j0 + w] = offsets[name].start + np.arange(self.rows * w).reshape(self.rows, w)
            j0 += w
        return cols.ravel()

    def fill_features(self, out: np.ndarray, values: dict) -> np.ndarray:
        """Write the group's features, concatenated along the last axis, into ``out`` (..., width)
        and return it (``values``: feature name -> array (..., its width), or the scalar 1.0)."""
        j0 = 0
        for f, w in zip(self.features, self.widths):
            out[..., j0:j0 + w] = values[f]
            j0 += w
        return out

    def add_responses(self, out: np.ndarray, coefficients: np.ndarray, features: np.ndarray) -> None:
        """Add the group's columns to ``out`` (B, R, ...): ``coefficients`` (k, B, R, rows) is the
        response of each of the R target rows to a unit injection into row i of the group at each
        of k time steps, ``features`` (B, k, width) the group's features at those steps."""
        k, Bn, R, rows = coefficients.shape
        G = coefficients.transpose(1, 2, 3, 0).reshape(Bn, R * rows, k)
        out[:, :, self.start:self.stop] += (G @ features).reshape(Bn, R, rows * self.width)


def _equilibrium_gain(BDd: np.ndarray, d: np.ndarray, D11: np.ndarray) -> None:
    """``BDd`` (..., r, q), holding ``[B1; D21] diag(d)``, times ``(I - D11 diag(d))^-1``, in place
    (``d``: (..., q), the same leading axes).

    With ``v = C1 x + D11 w + ...`` and ``dw = diag(d) dv``, a change ``dv0`` of the direct
    input of the neurons moves them by ``dw = K dv0``, ``K = (I - diag(d) D11)^-1 diag(d)
    = diag(d) (I - D11 diag(d))^-1`` (invertible for slopes in [0, 1] when the model is well
    posed; unit lower triangular up to a permutation for an acyclic D11). So the slope-dependent
    part ``[B1; D21] K`` is ``BDd (I - D11 diag(d))^-1``, one batched solve of size q.
    """
    q = D11.shape[0]
    M = np.eye(q) - D11 * d[..., None, :]  # I - D11 diag(d), per sequence and time
    # X M^-1 = (M^-T X')'
    BDd[:] = np.swapaxes(np.linalg.solve(np.swapaxes(M, -1, -2), np.swapaxes(BDd, -1, -2)), -1, -2)


@dataclass(frozen=True)
class _Sensitivity:
    """What the sensitivity propagation needs of the model, in zeta = E dx coordinates.

    ``zeta_{t+1} = M_t zeta_t + injections`` and ``J_t = R_t zeta_t + direct terms``, with
    ``[M_t; R_t] = [F; C2] E^-1 + [B1; D21] K_t C1 E^-1`` and ``K_t = diag(sigma'(v_t))`` (times
    ``(I - D11 diag(sigma'(v_t)))^-1`` with D11).
    """

    BD: np.ndarray  # (n + p, q) = [B1; D21]
    FC: np.ndarray  # (n + p, n) = [F; C2] E^-1
    C1z: np.ndarray  # (q, n) = C1 E^-1
    D11: np.ndarray | None  # None: no D11

    @classmethod
    def of(cls, model: ImplicitRNN) -> "_Sensitivity":
        Einv = np.linalg.inv(model.E)
        return cls(np.concatenate([model.B1, model.D21]), np.concatenate([model.F, model.C2]) @ Einv,
                   model.C1 @ Einv, None if model.d11_kind == "zero" else model.D11)

    def matrices(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Ms, BDd)`` for the slopes ``d`` (B, k, q): ``Ms`` (B, k, n + p, n) = [M_t; R_t] and
        ``BDd`` (B, k, n + p, q) = [B1; D21] K_t, the direction of a unit change of each
        neuron's direct input (into zeta_{t+1}, rows :n, and into y_t, rows n:)."""
        BDd = self.BD * d[:, :, None, :]
        if self.D11 is not None:
            _equilibrium_gain(BDd, d, self.D11)
        return BDd @ self.C1z + self.FC, BDd


def _propagate_block(zeta: np.ndarray, Ms: np.ndarray, BDd: np.ndarray, groups, features) -> np.ndarray:
    """The rows of J of k time steps and the next zeta, from zeta at the block's first step.

    Inside a block the sensitivities are not propagated one step at a time. Each target row —
    the p rows of J at each step ``tau`` of the block, and the n rows of zeta after the block —
    is a linear function of zeta at the block's start and of the injections made at each step
    ``j``. Its coefficients ``a_{tau, j} = R_tau M_{tau-1} ... M_j`` (zero for j > tau) come from
    one backward sweep of small n x n products; then each group's columns are one product of
    those coefficients with the group's features of the k steps (docs/linearization.md).

    Parameters
    ----------
    zeta : numpy.ndarray, shape (B, n, Pd + n)
        Sensitivities (weights of the dynamic groups, then the own initial state) at the first step.
    Ms, BDd : numpy.ndarray
        From :meth:`_Sensitivity.matrices` for the block's k steps.
    groups : tuple of _Injection
        The state group (unit injections) and the neuron group (injected along ``BDd``).
    features : tuple of numpy.ndarray
        Their features (B, k, width) at the block's steps.

    Returns
    -------
    numpy.ndarray, shape (B, k * p + n, Pd + n)
        Rows :k*p: J at the block's steps (time-major, then output); the last n rows: zeta after it.
    """
    Bn, k, r, n = Ms.shape
    p = r - n
    R = k * p + n
    # coef[j] (B, R, n): every target row's response to a unit change of zeta at step j of the block
    coef = np.zeros((k + 1, Bn, R, n))
    coef[k, :, k * p:] = np.eye(n)
    for j in range(k - 1, -1, -1):
        np.matmul(coef[j + 1], Ms[:, j, :n], out=coef[j])
        coef[j, :, j * p:(j + 1) * p] = Ms[:, j, n:]
    out = coef[0] @ zeta
    state, neuron = groups
    # an injection after step j enters zeta_{j+1}: state rows with unit directions,
    state.add_responses(out, coef[1:], features[0])
    # neuron rows along BDd[:, j, :n], and into J at step j itself along BDd[:, j, n:]
    BDt = BDd.transpose(1, 0, 2, 3)  # (k, B, n + p, q)
    ncoef = coef[1:] @ BDt[:, :, :n]  # (k, B, R, q)
    steps = np.arange(k)
    ncoef[:, :, :k * p].reshape(k, Bn, k, p, neuron.rows)[steps, :, steps] = BDt[:, :, n:]
    neuron.add_responses(out, ncoef, features[1])
    return out


def _linearize(model: ImplicitRNN, ub: np.ndarray, yb: np.ndarray, x: np.ndarray, layout: ParamLayout,
               chunk: int, overlap: bool) -> Linearization:
    """:func:`linearize` of checked arrays (see :func:`_checked`) in the calling thread."""
    Bn, T, _ = ub.shape
    n, q, p = model.n, model.q, model.p
    # the trajectory (the model's own simulation), then every step's slopes at once
    y_hat, xs, w = model.trajectory(ub, x)
    v = xs[:, :T] @ model.C1.T + ub @ model.D12.T + model.bv
    if model.d11_kind != "zero":
        v += w @ model.D11.T
    slopes = model.activation.derivative(v)  # (B, T, q)

    offs, dims = layout.offsets(), model.dims
    state = _Injection.of(_STATE_INJECTED, layout, dims, n, 0)
    neuron = _Injection.of(_NEURON_INJECTED, layout, dims, q, state.stop)
    Pd = neuron.stop
    output = _Injection.of(_OUTPUT_DIRECT, layout, dims, p, Pd)
    P = layout.size
    # internal column c holds the layout's weight perm[c]; the x0 sensitivities follow the weights
    perm = np.concatenate([g.layout_columns(offs) for g in (state, neuron, output)])
    sens = _Sensitivity.of(model)

    # zeta = E dx for the dynamic weights, then E dx/dx0 (own sequence)
    zeta = np.zeros((Bn, n, Pd + n))
    zeta[:, :, Pd:] = model.E
    t0 = 0
    with NormalEquations(Bn, P, n, p, chunk, background=overlap) as acc:
        while t0 < T:
            k = min(BLOCK_STEPS, T - t0, acc.space)
            t1 = t0 + k
            feats = {"x": xs[:, t0:t1], "-x+": -xs[:, t0 + 1:t1 + 1], "w": w[:, t0:t1], "u": ub[:, t0:t1], "1": 1.0}
            Ms, BDd = sens.matrices(slopes[:, t0:t1])
            f_groups = tuple(g.fill_features(np.empty((Bn, k, g.width)), feats) for g in (state, neuron))
            out = _propagate_block(zeta, Ms, BDd, (state, neuron), f_groups)
            zeta = out[:, k * p:]

            rows_t, rows_x, res = acc.rows(k)  # (k, B, p, ...)
            J = out[:, :k * p].reshape(Bn, k, p, Pd + n).transpose(1, 0, 2, 3)
            rows_t[..., :Pd] = J[..., :Pd]
            rows_x[:] = J[..., Pd:]
            rows_t[..., Pd:] = 0.0
            for i in range(p):  # output weights: row i of y, times the features
                cols = slice(Pd + i * output.width, Pd + (i + 1) * output.width)
                output.fill_features(rows_t[:, :, i, cols].transpose(1, 0, 2), feats)
            res[:] = (y_hat[:, t0:t1] - yb[:, t0:t1]).transpose(1, 0, 2)
            acc.commit(k)
            t0 = t1
        H, g, Hx, Hxt, gx = acc.finish()
    # back to the layout's order of weights
    H_out = np.empty_like(H)
    H_out[np.ix_(perm, perm)] = H
    g_out = np.empty_like(g)
    g_out[perm] = g
    Hxt_out = np.empty_like(Hxt)
    Hxt_out[:, :, perm] = Hxt
    return Linearization(y_hat, y_hat - yb, H_out, g_out, Hx, Hxt_out, gx)
