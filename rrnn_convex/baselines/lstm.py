"""An LSTM baseline (tanh cell, n hidden units, linear readout), simulable in numpy and casadi.

With gates in torch's order (input i, forget f, cell g, output o) and the state x = (h, c)::

    z[t]  = W u[t] + U h[t-1] + b                       (4n)
    i, f, o = sigmoid(z_i, z_f, z_o),   g = tanh(z_g)
    c[t]  = f * c[t-1] + i * g,          h[t] = o * tanh(c[t])
    y[t]  = C h[t] + by

so y[t] depends on u[t] through the gates (torch's ``nn.LSTM`` followed by ``nn.Linear``). The
state has 2n entries; ``x0 = (h[-1], c[-1])``. The weights are one flat vector ``theta`` (W, U,
b, C, by, each row-major) for the trainers; :meth:`LSTM.casadi_step` is the same recursion as a
casadi Function ``(x, u, theta) -> (x+, y)``, from which the trainer and :meth:`LSTM.vjp` take
exact derivatives.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import casadi as ca
import numpy as np

from .._estimator import ParamsMixin, check_fitted
from .._validation import as_float_array, initial_states

__all__ = ["LSTM", "LSTMRegressor"]

_FIELDS = ("W", "U", "b", "C", "by")


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # overflow-free, the same formula as in casadi


def _shapes(n: int, m: int, p: int) -> tuple[tuple[int, ...], ...]:
    return ((4 * n, m), (4 * n, n), (4 * n,), (p, n), (p,))


@lru_cache(maxsize=None)
def _step_function(n: int, m: int, p: int) -> ca.Function:
    """The LSTM step ``(x, u, theta) -> (x+, y)`` as an SX Function (cached per size)."""
    x, u = ca.SX.sym("x", 2 * n), ca.SX.sym("u", m)
    shapes = _shapes(n, m, p)
    th = ca.SX.sym("theta", sum(int(np.prod(s)) for s in shapes))
    parts, k = [], 0
    for s in shapes:
        r, c = (s[0], s[1]) if len(s) == 2 else (s[0], 1)
        parts.append(ca.reshape(th[k:k + r * c], c, r).T)  # row-major, like numpy's ravel
        k += r * c
    W, U, b, C, by = parts
    h, c = x[:n], x[n:]
    z = W @ u + U @ h + b
    sig = lambda a: 0.5 * (1.0 + ca.tanh(0.5 * a))  # noqa: E731
    i, f, g, o = sig(z[:n]), sig(z[n:2 * n]), ca.tanh(z[2 * n:3 * n]), sig(z[3 * n:])
    c1 = f * c + i * g
    h1 = o * ca.tanh(c1)
    return ca.Function("lstm_step", [x, u, th], [ca.vertcat(h1, c1), C @ h1 + by],
                       ["x", "u", "theta"], ["x_next", "y"])


@lru_cache(maxsize=32)
def _vjp_function(n: int, m: int, p: int, T: int, batch: int) -> ca.Function:
    """``(x0, U, G, theta) -> (Y, J' G)`` for ``batch`` sequences of T samples (reverse mode)."""
    step = _step_function(n, m, p)
    P = step.size1_in(2)
    x0, U, G = ca.MX.sym("x0", 2 * n), ca.MX.sym("U", m, T), ca.MX.sym("G", p, T)
    th = ca.MX.sym("theta", P)
    _, Y = step.mapaccum("lstm_seq", T)(x0, U, ca.repmat(th, 1, T))
    f = ca.Function("lstm_vjp", [x0, U, G, th], [Y, ca.jtimes(Y, U, G, True)])
    return f.map("lstm_vjp_map", "serial", batch, [3], [])


@dataclass(frozen=True, eq=False)
class LSTM:
    """LSTM weights (float64, validated, immutable): ``W`` (4n, m), ``U`` (4n, n), ``b`` (4n,),
    ``C`` (p, n), ``by`` (p,); gate blocks of W, U, b in the order i, f, g, o.

    Parameters
    ----------
    W : array_like, shape (4n, m)
        Input weights of the gates (n >= 1).
    U : array_like, shape (4n, n)
        Recurrent weights of the gates.
    b : array_like, shape (4n,)
        Gate biases.
    C : array_like, shape (p, n)
        Readout.
    by : array_like, shape (p,)
        Readout bias.

    Raises
    ------
    ValueError
        A wrong number of dimensions or shape (naming the field), ``W`` without a multiple of 4
        rows (or none), NaN or inf.
    TypeError
        A weight that is not an array of real numbers.
    """

    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    C: np.ndarray
    by: np.ndarray

    def __post_init__(self):
        W = as_float_array(self.W, "W", ndim=2)
        C = as_float_array(self.C, "C", ndim=2)
        if W.shape[0] % 4 or W.shape[0] == 0:
            raise ValueError(f"W: expected shape (4n, m) with n >= 1, got {W.shape}")
        n, m, p = W.shape[0] // 4, W.shape[1], C.shape[0]
        for name, shape in zip(_FIELDS, _shapes(n, m, p)):
            arr = as_float_array(getattr(self, name), name, ndim=len(shape))
            if arr.shape != shape:
                raise ValueError(f"{name}: expected shape {shape} (n={n}, m={m}, p={p}), got {arr.shape}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # ------------------------------------------------------------------ sizes
    @property
    def n(self) -> int:
        """Hidden units (the state has 2n entries: h and c)."""
        return self.U.shape[1]

    @property
    def m(self) -> int:
        """Inputs."""
        return self.W.shape[1]

    @property
    def p(self) -> int:
        """Outputs."""
        return self.C.shape[0]

    @property
    def n_states(self) -> int:
        """State size, 2n (h and c)."""
        return 2 * self.n

    @property
    def n_params(self) -> int:
        """Length of :meth:`theta`: ``4n (m + n + 1) + p (n + 1)``."""
        return int(sum(np.prod(s) for s in _shapes(self.n, self.m, self.p)))

    # ------------------------------------------------------------------ construction
    @classmethod
    def random(cls, n: int, m: int, p: int, seed: int | None = 0, scale: float = 1.0) -> "LSTM":
        """torch's initialisation: every weight uniform on ``[-k, k]``, ``k = scale / sqrt(n)``,
        plus a forget-gate bias of 1 (gates start half open and remember).

        Parameters
        ----------
        n : int
            Hidden units (>= 1).
        m, p : int
            Inputs and outputs.
        seed : int, optional
            Seeds :func:`numpy.random.default_rng` (None: fresh entropy).
        scale : float
            Multiplies the range.

        Returns
        -------
        LSTM
        """
        rng = np.random.default_rng(seed)
        k = scale / np.sqrt(n)
        W, U, b, C, by = (rng.uniform(-k, k, s) for s in _shapes(n, m, p))
        b[n:2 * n] += 1.0
        return cls(W, U, b, C, by)

    def theta(self) -> np.ndarray:
        """All weights as one vector (W, U, b, C, by; row-major).

        Returns
        -------
        numpy.ndarray, shape (n_params,)
            A new array.
        """
        return np.concatenate([getattr(self, k).ravel() for k in _FIELDS])

    def with_theta(self, theta) -> "LSTM":
        """The LSTM with the weights ``theta`` (layout of :meth:`theta`).

        Parameters
        ----------
        theta : array_like, shape (n_params,)

        Returns
        -------
        LSTM
            A new LSTM of the same sizes.

        Raises
        ------
        ValueError
            ``theta`` not 1-D, of another length, or with NaN/inf.
        TypeError
            Non-numeric ``theta``.
        """
        theta = as_float_array(theta, "theta", ndim=1)
        if theta.size != self.n_params:
            raise ValueError(f"theta: expected {self.n_params} entries, got {theta.size}")
        out, k = {}, 0
        for name, shape in zip(_FIELDS, _shapes(self.n, self.m, self.p)):
            size = int(np.prod(shape))
            out[name] = theta[k:k + size].reshape(shape)
            k += size
        return LSTM(**out)

    def casadi_step(self) -> ca.Function:
        """The recursion as a casadi Function ``(x, u, theta) -> (x+, y)``, x = (h, c).

        Returns
        -------
        casadi.Function
            SX, inputs ``x`` (2n), ``u`` (m), ``theta`` (n_params), outputs ``x_next`` (2n) and
            ``y`` (p); cached per (n, m, p), shared by LSTMs of the same sizes.
        """
        return _step_function(self.n, self.m, self.p)

    # ------------------------------------------------------------------ simulation
    def check_input(self, u, name: str = "u") -> tuple[np.ndarray, bool]:
        """Inputs as a float64 (batch, T, m) array.

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)
        name : str
            The name used in error messages.

        Returns
        -------
        u : numpy.ndarray, shape (batch, T, m)
            A (T, m) input becomes batch 1.
        batched : bool
            Whether ``u`` was 3-D.

        Raises
        ------
        ValueError
            Not 2-D or 3-D, a last axis other than m, or NaN/inf.
        TypeError
            Non-numeric data.
        """
        arr = as_float_array(u, name, ndim=(2, 3))
        batched = arr.ndim == 3
        arr = arr if batched else arr[None]
        if arr.shape[2] != self.m:
            raise ValueError(f"{name}: expected the last axis to hold the model's m={self.m} inputs, "
                             f"got shape {np.shape(u)}")
        return arr, batched

    def simulate(self, u, x0=None):
        """Outputs for inputs ``u`` (T, m) or (batch, T, m) from ``x0 = (h, c)`` (zeros by default).

        Returns y shaped (T, p) or (batch, T, p); vectorised over the batch; no state change.

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)
        x0 : array_like, shape (2n,), (1, 2n) or (batch, 2n), optional
            ``(h, c)`` stacked; zeros by default.

        Returns
        -------
        numpy.ndarray
            Shape (T, p) or (batch, T, p), like ``u``.

        Raises
        ------
        ValueError
            Invalid ``u`` (see :meth:`check_input`) or ``x0`` shape, NaN or inf.
        """
        ub, batched = self.check_input(u)
        B, T, _ = ub.shape
        n = self.n
        x = initial_states(x0, B, self.n_states, "h and c stacked")
        h, c = x[:, :n], x[:, n:]
        zu = ub @ self.W.T + self.b
        hs = np.empty((B, T, n))
        for t in range(T):
            z = zu[:, t] + h @ self.U.T
            c = _sigmoid(z[:, n:2 * n]) * c + _sigmoid(z[:, :n]) * np.tanh(z[:, 2 * n:3 * n])
            h = _sigmoid(z[:, 3 * n:]) * np.tanh(c)
            hs[:, t] = h
        y = hs @ self.C.T + self.by
        return y if batched else y[0]

    def vjp(self, u, cotangent, x0=None):
        """Simulate and back-propagate to the input: ``(y, J' g)``, J = dy/du (exact, casadi
        reverse mode), shapes like :func:`rrnn_convex.adjoint.implicit_rnn_vjp`.

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)
        cotangent : array_like, shape (T, p) or (batch, T, p)
            The output cotangent g, shaped like the outputs.
        x0 : array_like, shape (2n,), (1, 2n) or (batch, 2n), optional
            ``(h, c)`` stacked; zeros by default.

        Returns
        -------
        y : numpy.ndarray
            Shape (T, p) or (batch, T, p), like ``u``.
        gu : numpy.ndarray
            ``J' g``, shaped like ``u``.

        Raises
        ------
        ValueError
            Invalid ``u`` or ``x0``, or a cotangent not shaped like the outputs.
        """
        ub, batched = self.check_input(u)
        B, T, m = ub.shape
        g = as_float_array(cotangent, "cotangent", ndim=(2, 3))
        g = g if g.ndim == 3 else g[None]
        if g.shape != (B, T, self.p):
            raise ValueError(f"cotangent: expected shape {(B, T, self.p)} (like y), got {np.shape(cotangent)}")
        x = initial_states(x0, B, self.n_states, "h and c stacked")
        f = _vjp_function(self.n, self.m, self.p, T, B)
        Y, GU = f(x.T, ub.reshape(B * T, m).T, g.reshape(B * T, self.p).T, self.theta())
        y = np.asarray(Y).T.reshape(B, T, self.p)
        gu = np.asarray(GU).T.reshape(B, T, m)
        return (y, gu) if batched else (y[0], gu[0])

    def __call__(self, u):
        """``u`` (T, m) -> y (T, p) from the zero state; also for a casadi MX/SX ``u`` (symbolic),
        so :func:`rrnn_convex.analysis.lipschitz_lower_bound` can differentiate it.

        Parameters
        ----------
        u : array_like, shape (T, m), or casadi.MX / casadi.SX of shape (T, m)

        Returns
        -------
        numpy.ndarray or casadi.MX / casadi.SX, shape (T, p)
            With a (batch, T, m) numpy input, (batch, T, p).
        """
        if isinstance(u, (ca.MX, ca.SX)):
            T = u.shape[0]
            _, Y = self.casadi_step().mapaccum("lstm_seq", T)(
                ca.DM.zeros(self.n_states), u.T, ca.repmat(ca.DM(self.theta()), 1, T))
            return Y.T
        return self.simulate(u)


class LSTMRegressor(ParamsMixin):
    """Fit an :class:`LSTM` by Levenberg-Marquardt (:func:`~rrnn_convex.baselines.lm.train_lm`).

    Hyperparameters only in the constructor, each stored as the attribute of the same name
    (scikit-learn style: ``get_params`` / ``set_params``, ``sklearn.base.clone`` works). The
    start is :meth:`LSTM.random` with the readout (C, by) fitted by least squares to the
    training data (zero initial states).

    Parameters
    ----------
    n_hidden : int
        Hidden units n.
    max_iter, time_budget, patience, mu0, batch_size, learn_x0
        The options of :func:`~rrnn_convex.baselines.lm.train_lm` (``learn_x0``: one learned
        initial state per training sequence).
    init_scale : float
        The ``scale`` of :meth:`LSTM.random`.
    seed : int
        Initial weights and minibatches.
    progress : bool
        Print one line per iteration.

    Attributes
    ----------
    model_ : LSTM
        The fitted model (the best by validation NSE, else the last).
    x0_ : numpy.ndarray, shape (batch, 2n)
        Its initial states of the training sequences.
    history_ : list of dict
        One record per iteration (see :func:`~rrnn_convex.baselines.lm.train_lm`).
    n_iter_ : int
        The number of iterations.
    """

    def __init__(self, n_hidden: int = 10, *, max_iter: int = 50, time_budget: float | None = None,
                 patience: int = 10, mu0: float = 1e-3, batch_size: int | None = None, learn_x0: bool = True,
                 init_scale: float = 1.0, seed: int = 0, progress: bool = False):
        self.n_hidden = n_hidden
        self.max_iter = max_iter
        self.time_budget = time_budget
        self.patience = patience
        self.mu0 = mu0
        self.batch_size = batch_size
        self.learn_x0 = learn_x0
        self.init_scale = init_scale
        self.seed = seed
        self.progress = progress

    def initial_model(self, u, y) -> LSTM:
        """The start: :meth:`LSTM.random` with its readout fitted by least squares.

        The hidden trajectories from zero initial states are regressed on ``y`` for (C, by).

        Parameters
        ----------
        u : array_like, shape (batch, T, m) or (T, m)
        y : array_like, shape (batch, T, p) or (T, p)

        Returns
        -------
        LSTM

        Raises
        ------
        ValueError
            Invalid sequences (wrong dimensions, different (batch, T), NaN/inf).
        """
        from .._validation import paired_sequences
        U, Y = paired_sequences(u, y)
        lstm = LSTM.random(int(self.n_hidden), U.shape[2], Y.shape[2], seed=self.seed, scale=self.init_scale)
        # hidden trajectories with the identity readout, then least squares for (C, by)
        probe = LSTM(lstm.W, lstm.U, lstm.b, np.eye(lstm.n), np.zeros(lstm.n))
        Hs = probe.simulate(U).reshape(-1, lstm.n)
        A = np.hstack([Hs, np.ones((Hs.shape[0], 1))])
        sol = np.linalg.lstsq(A, Y.reshape(-1, Y.shape[2]), rcond=None)[0]
        return LSTM(lstm.W, lstm.U, lstm.b, sol[:-1].T, sol[-1])

    def fit(self, u, y, validation=None, *, init_model: LSTM | None = None) -> "LSTMRegressor":
        """Fit to ``u`` (batch, T, m), ``y`` (batch, T, p); ``validation`` = (u, y) for early
        stopping; ``init_model`` replaces the random start. Returns self.

        Parameters
        ----------
        u : array_like, shape (batch, T, m) or (T, m)
        y : array_like, shape (batch, T, p) or (T, p)
        validation : tuple of array_like, optional
            ``(u, y)``, simulated from the zero state.
        init_model : LSTM, optional
            The start (default: :meth:`initial_model`).

        Returns
        -------
        LSTMRegressor
            self, fitted.

        Raises
        ------
        ValueError
            Invalid sequences (wrong dimensions, different (batch, T), NaN/inf).
        """
        from .lm import train_lm
        model = init_model if init_model is not None else self.initial_model(u, y)
        res = train_lm(model, u, y, validation, learn_x0=self.learn_x0, max_iter=self.max_iter,
                       time_budget=self.time_budget, patience=self.patience, mu0=self.mu0,
                       batch_size=self.batch_size, seed=self.seed, progress=self.progress)
        self.model_, self.x0_, self.history_ = res.model, res.x0, res.history
        self.n_iter_ = len(res.history)
        return self

    def simulate(self, u, x0=None):
        """Simulate the fitted LSTM on ``u`` from ``x0`` (zero by default).

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)
        x0 : array_like, shape (2n,), (1, 2n) or (batch, 2n), optional

        Returns
        -------
        numpy.ndarray
            Shape (T, p) or (batch, T, p), like ``u``.

        Raises
        ------
        NotFitted
            Before ``fit``.
        ValueError
            Invalid ``u`` or ``x0``.
        """
        check_fitted(self, "simulate")
        return self.model_.simulate(u, x0)
