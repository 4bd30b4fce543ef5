"""Empirical robustness analysis: a Lipschitz lower bound by gradient ascent.

:func:`lipschitz_lower_bound` — the paper's empirical incremental gain (docs/design.md section 5):
``gamma_hat = max ||S(u) - S(v)|| / ||u - v||`` over input pairs of a fixed horizon (the
authors used 500), both trajectories from the zero initial state, by gradient ascent from
several random starts. For a certified model ``gamma_hat <= gamma`` must hold.

Gradients are exact: for an :class:`~rrnn_convex.ImplicitRNN` the adjoint (back-propagation
through time) of :meth:`~rrnn_convex.ImplicitRNN.simulate` is written out in numpy
(:mod:`rrnn_convex.adjoint`); any other simulator needs a vector-Jacobian product or must accept
casadi symbols. Finite differences are never used.

Moved (issue 17), still importable from here for now: the adjoint (:func:`implicit_rnn_vjp`,
:func:`rnn_adjoint`) to :mod:`rrnn_convex.adjoint`; the mass-spring-damper generalisation study
(:func:`generalisation_study`, :func:`generalisation_data`, :class:`GeneralisationStudy`,
``DEFAULT_WIDTHS``) to :mod:`rrnn_convex.experiments.generalisation`, loaded on first access
only: this module does not import the experiments layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._validation import as_float_array, check_scalar
from .adjoint import implicit_rnn_vjp, rnn_adjoint, rnn_input_vjp
from .model import ImplicitRNN

#: public names that moved to rrnn_convex.experiments.generalisation; served by __getattr__
_MOVED_TO_EXPERIMENTS = ("GeneralisationStudy", "generalisation_data", "generalisation_study",
                         "DEFAULT_WIDTHS")

__all__ = ["implicit_rnn_vjp", "rnn_adjoint", "LipschitzBound", "lipschitz_lower_bound",
           *_MOVED_TO_EXPERIMENTS]


def __getattr__(name: str):
    """The generalisation study's names, from their new home, on first access (PEP 562)."""
    if name in _MOVED_TO_EXPERIMENTS:
        from .experiments import generalisation
        return getattr(generalisation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------- simulator adapters
class _Adapter:
    """Batched simulate + VJP over a list of (T, m) inputs, whatever the simulator."""

    def __init__(self, obj, T, m, vjp):
        self.T = T
        if isinstance(obj, ImplicitRNN):
            if m is not None and int(m) != obj.m:
                raise ValueError(f"m: the model has m={obj.m} inputs, got m={m}")
            if vjp is not None:
                raise ValueError("vjp: not used for an ImplicitRNN (its exact adjoint is built in); "
                                 "pass vjp=None")
            self.m, self.kind = obj.m, "implicit_rnn"
            self._sim = lambda U: obj.simulate(U)
            self._forward = lambda U: obj.simulate(U, return_states=True)
            self._backward = lambda U, xs, G: rnn_input_vjp(obj, U, xs, G)
            return
        if not callable(obj):
            raise TypeError("model_or_simulator: expected an ImplicitRNN or a callable u (T, m) -> y (T, p), "
                            f"got {type(obj).__name__}")
        if m is None:
            m = getattr(obj, "m", None)
            try:
                import casadi as ca
                if isinstance(obj, ca.Function):
                    m = obj.size2_in(0)
            except ImportError:  # pragma: no cover - casadi is a dependency
                pass
        if m is None:
            raise ValueError("m: the number of inputs is needed for a generic simulator (pass m=...)")
        self.m = int(m)
        if vjp is not None:
            if not callable(vjp):
                raise TypeError(f"vjp: expected a callable (u, cotangent) -> J(u)' cotangent, "
                                f"got {type(vjp).__name__}")
            self.kind = "callable+vjp"
            self._one_sim, self._one_vjp = obj, vjp
        else:
            self.kind = "casadi"
            self._one_sim, self._one_vjp = self._casadi(obj)
        self._sim = lambda U: np.stack([self._y(self._one_sim(u), "simulator(u)") for u in U])
        self._forward = lambda U: (self._sim(U), None)
        self._backward = lambda U, cache, G: self._pair(U, G)[1]

    def _y(self, y, what):
        y = as_float_array(y, what, ndim=(1, 2))
        y = y[:, None] if y.ndim == 1 else y
        if y.shape[0] != self.T:
            raise ValueError(f"{what}: expected an output of shape ({self.T}, p) "
                             f"for an input of {self.T} samples, "
                             f"got {y.shape}")
        return y

    def _pair(self, U, G):
        Y, GU = [], []
        for u, g in zip(U, G):
            if self.kind == "casadi":
                y, gu = self._one_vjp(u, g)
            else:
                y = self._y(self._one_sim(u), "simulator(u)")
                gu = self._one_vjp(u, g)
            gu = as_float_array(gu, "vjp(u, cotangent)")
            if gu.size != self.T * self.m:
                raise ValueError(f"vjp(u, cotangent): expected shape ({self.T}, {self.m}) (like u), "
                                 f"got {gu.shape}")
            Y.append(self._y(y, "simulator(u)"))
            GU.append(gu.reshape(self.T, self.m))
        return np.stack(Y), np.stack(GU)

    def _casadi(self, obj):
        import casadi as ca
        T, m = self.T, self.m
        usym = ca.MX.sym("u", T, m)
        try:
            ysym = obj(usym)
        except Exception as exc:
            raise TypeError(
                "model_or_simulator: a generic simulator needs its gradient: pass vjp=(u, cotangent) -> "
                "J(u)' cotangent, or make the simulator accept casadi symbols (an MX of shape (T, m)). "
                f"Calling it with a casadi MX failed: {type(exc).__name__}: {exc}. "
                "(Finite differences are deliberately not used.)") from None
        if isinstance(ysym, (list, tuple)) and len(ysym) == 1:
            ysym = ysym[0]
        if not isinstance(ysym, (ca.MX, ca.SX, ca.DM)):
            raise TypeError(
                "model_or_simulator: a generic simulator needs its gradient: pass vjp=(u, cotangent) -> "
                "J(u)' cotangent, or make the simulator casadi-compatible; called with a casadi MX it "
                f"returned {type(ysym).__name__}. (Finite differences are deliberately not used.)")
        if ysym.shape[0] != T:
            if ysym.shape[1] == T:
                ysym = ysym.T
            else:
                raise ValueError(f"simulator(u): expected an output with {T} rows, "
                                 f"got casadi shape {ysym.shape}")
        ysym = ca.MX(ysym) if not isinstance(ysym, ca.MX) else ysym
        gsym = ca.MX.sym("g", ysym.shape[0], ysym.shape[1])
        F = ca.Function("S", [usym], [ysym])
        V = ca.Function("S_vjp", [usym, gsym], [ysym, ca.jtimes(ysym, usym, gsym, True)])

        def sim(u):
            return np.array(F(u), dtype=np.float64)

        def vjp(u, g):
            y, gu = V(u, g)
            return np.array(y, dtype=np.float64), np.array(gu, dtype=np.float64)

        return sim, vjp

    def simulate(self, U):
        """Outputs (batch, T, p) for inputs (batch, T, m)."""
        return self._sim(U)

    def forward(self, U):
        """Outputs and whatever the backward pass needs."""
        return self._forward(U)

    def backward(self, U, cache, G):
        """J(U)' G per sequence, (batch, T, m)."""
        return self._backward(U, cache, G)


# --------------------------------------------------------------------- Lipschitz lower bound
@dataclass(frozen=True, eq=False)
class LipschitzBound:
    """Result of :func:`lipschitz_lower_bound`.

    ``value`` is ``||S(u) - S(v)|| / ||u - v||`` recomputed by two fresh simulations of the
    returned pair ``(u, v)`` (each (horizon, m), zero initial state): a measured ratio, hence a
    true lower bound on the incremental l2 gain. ``history`` holds the measured ratio at every
    iteration of every start (starts, steps + 1); ``start_values`` the best of each start.

    ``float(bound)`` is ``bound.value``.

    Parameters
    ----------
    value : float
        The measured ratio of the returned pair.
    u, v : numpy.ndarray, shape (horizon, m)
        The pair of inputs.
    history : numpy.ndarray, shape (starts, steps + 1)
        The ratio at every iteration of every start.
    start_values : numpy.ndarray, shape (starts,)
        The best ratio of each start.
    horizon : int
        Samples per input.
    method : {"implicit_rnn", "callable+vjp", "casadi"}
        How the gradients were obtained.
    seed : int or None
        The seed of the random starts.
    info : dict
        The settings: ``steps``, ``starts``, ``lr``, ``scale``.
    """

    value: float
    u: np.ndarray
    v: np.ndarray
    history: np.ndarray
    start_values: np.ndarray
    horizon: int
    method: str
    seed: int | None = None
    info: dict = field(default_factory=dict)

    def __float__(self):
        return float(self.value)


def _count(value, name, low=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


class Adam:
    """The Adam update (bias-corrected first and second moments), for an ascent or a descent.

    Shared by :func:`lipschitz_lower_bound` and the barrier baseline
    (:mod:`rrnn_convex.baselines.barrier`).

    Parameters
    ----------
    shape : tuple of int
        Shape of the variable (and of every gradient passed to :meth:`step`).
    lr : float
        Learning rate.
    b1, b2 : float
        Decay rates of the first and second moments.
    eps : float
        Added to the root of the second moment.

    Attributes
    ----------
    lr : float
        The learning rate; may be changed between steps (the barrier baseline's schedule).
    k : int
        Steps taken (for the bias correction).
    m1, m2 : numpy.ndarray
        The first and second moment estimates.
    """

    def __init__(self, shape, lr, b1=0.9, b2=0.999, eps=1e-12):
        self.m1 = np.zeros(shape)
        self.m2 = np.zeros(shape)
        self.lr, self.b1, self.b2, self.eps, self.k = lr, b1, b2, eps, 0

    def step(self, grad, scale=1.0):
        """The step for ``grad`` (to be added for an ascent, subtracted for a descent).

        Parameters
        ----------
        grad : numpy.ndarray
            The gradient, of the variable's shape.
        scale : float
            Multiplies the learning rate for this step.

        Returns
        -------
        numpy.ndarray
            ``scale * lr * m_hat / (sqrt(v_hat) + eps)``.
        """
        self.k += 1
        self.m1 = self.b1 * self.m1 + (1 - self.b1) * grad
        self.m2 = self.b2 * self.m2 + (1 - self.b2) * grad ** 2
        mh = self.m1 / (1 - self.b1 ** self.k)
        vh = self.m2 / (1 - self.b2 ** self.k)
        return scale * self.lr * mh / (np.sqrt(vh) + self.eps)



def lipschitz_lower_bound(model_or_simulator, horizon: int = 500, starts: int = 4, steps: int = 300,
                          seed: int | None = 0, m: int | None = None, *, vjp: Callable | None = None,
                          scale: float = 1.0, lr: float = 0.05) -> LipschitzBound:
    """Empirical incremental l2 gain: gradient ascent on ``||S(u) - S(v)|| / ||u - v||``.

    ``model_or_simulator``: an :class:`~rrnn_convex.ImplicitRNN` (exact adjoint, all starts run as
    one batch), or any callable ``u (T, m) -> y (T, p)`` simulating from its zero / nominal
    initial state, with either ``vjp(u, g) -> J(u)' g`` (shape (T, m)) or casadi-compatible code
    (called with an MX of shape (T, m); reverse mode gives the gradient). A generic callable
    with neither raises TypeError: finite differences are never used. ``m`` is the number of
    inputs (taken from the model, ``simulator.m`` or a casadi Function when not given).

    Parametrisation ``v = u + exp(s) w / ||w||``: the ascent is on ``log ratio`` with Adam
    (normalised steps; learning rate ``lr * scale`` for u and ``lr`` for the direction w and the
    log-size s, decayed to a tenth over the run), from ``starts`` random starts
    ``u ~ scale N(0, 1)``, ``||u - v||`` log-uniform between 1 % and 100 % of ``scale sqrt(T m)``.
    The best pair seen is re-simulated at the end and its ratio returned (:class:`LipschitzBound`).

    Parameters
    ----------
    model_or_simulator : ImplicitRNN or callable
        The model, or a simulator ``u (T, m) -> y (T, p)`` (see above).
    horizon : int
        Samples per input sequence, >= 1.
    starts : int
        Random starts, >= 1.
    steps : int
        Ascent steps per start, >= 0.
    seed : int or None
        Seed of the random starts.
    m : int, optional
        Number of inputs of a generic simulator.
    vjp : callable, optional
        ``vjp(u, g) -> J(u)' g`` of a generic simulator (not for an ImplicitRNN).
    scale : float
        Scale of the inputs, > 0.
    lr : float
        Learning rate, > 0.

    Returns
    -------
    LipschitzBound
        The measured ratio of the best pair, the pair and the ascent history.

    Raises
    ------
    ValueError
        If a count or ``scale`` / ``lr`` is out of range, ``m`` is missing or contradicts the
        model, ``vjp`` is given for an ImplicitRNN, or a simulator's output has the wrong shape.
    TypeError
        If ``model_or_simulator`` is neither an ImplicitRNN nor a callable, or a generic
        callable has neither ``vjp`` nor casadi-compatible code.
    """
    T = _count(horizon, "horizon")
    starts = _count(starts, "starts")
    steps = _count(steps, "steps", low=0)
    scale = check_scalar(scale, "scale", low=0.0)
    lr = check_scalar(lr, "lr", low=0.0)
    sim = _Adapter(model_or_simulator, T, m, vjp)
    m = sim.m
    rng = np.random.default_rng(seed)
    u = scale * rng.standard_normal((starts, T, m))
    w = rng.standard_normal((starts, T, m))
    s = np.log(scale * np.sqrt(T * m) * 10.0 ** rng.uniform(-2.0, 0.0, size=starts))
    opt_u, opt_w, opt_s = Adam(u.shape, lr), Adam(w.shape, lr), Adam(s.shape, lr)
    history = np.full((starts, steps + 1), np.nan)
    best_val = np.full(starts, -np.inf)
    best_u = u.copy()
    best_v = u.copy()
    ax = (1, 2)
    for k in range(steps + 1):
        wn = np.sqrt(np.sum(w ** 2, axis=ax, keepdims=True))
        what = w / wn
        delta = np.exp(s)[:, None, None] * what
        v = u + delta
        UV = np.concatenate([u, v])
        y, cache = sim.forward(UV)
        r = y[starts:] - y[:starts]  # S(v) - S(u)
        N = np.sum(r ** 2, axis=ax)
        dn = np.sqrt(np.sum((v - u) ** 2, axis=ax))
        ratio = np.sqrt(N) / dn
        history[:, k] = ratio
        better = ratio > best_val
        best_val[better] = ratio[better]
        best_u[better], best_v[better] = u[better], v[better]
        if k == steps:
            break
        Nsafe = np.where(N > 0, N, 1.0)[:, None, None]
        G = np.concatenate([-r, r]) / np.concatenate([Nsafe, Nsafe])
        gUV = sim.backward(UV, cache, G)
        g_u = gUV[:starts] + gUV[starts:]  # d(0.5 log N)/du: u moves both trajectories
        g_delta = gUV[starts:]
        g_s = np.exp(s) * np.sum(what * g_delta, axis=ax) - 1.0  # minus d log||delta|| / ds
        radial = np.sum(what * g_delta, axis=ax, keepdims=True)
        g_w = (np.exp(s)[:, None, None] / wn) * (g_delta - what * radial)
        dead = N <= 0  # identical outputs: no gradient information; restart that direction
        if np.any(dead):
            w[dead] = rng.standard_normal((int(dead.sum()), T, m))
            g_u[dead], g_w[dead], g_s[dead] = 0.0, 0.0, 1.0
        decay = 1.0 - 0.9 * k / max(steps, 1)
        u = u + opt_u.step(g_u, scale * decay)
        w = w + opt_w.step(g_w, decay)
        s = s + opt_s.step(g_s, decay)
    i = int(np.argmax(best_val))
    ub, vb = best_u[i], best_v[i]
    yb = sim.simulate(np.stack([ub, vb]))
    value = float(np.linalg.norm(yb[1] - yb[0]) / np.linalg.norm(vb - ub))
    return LipschitzBound(value=value, u=ub, v=vb, history=history, start_values=best_val, horizon=T,
                          method=sim.kind, seed=seed, info={"steps": steps, "starts": starts, "lr": lr,
                                                            "scale": scale})
