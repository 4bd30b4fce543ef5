"""Empirical robustness analysis: a Lipschitz lower bound by gradient ascent and the generalisation study.

* :func:`lipschitz_lower_bound` — the paper's empirical incremental gain (DESIGN.md section 5):
  ``gamma_hat = max ||S(u) - S(v)|| / ||u - v||`` over input pairs of a fixed horizon (the
  authors used 500), both trajectories from the zero initial state, by gradient ascent from
  several random starts. For a certified model ``gamma_hat <= gamma`` must hold.
* :func:`generalisation_study` — the paper's generalisation experiment: NSE against the input
  width (0.5 to 10.5, 21 levels) on many realisations of the true mass-spring-damper system started
  from random states, with a washout.

Gradients are exact: for an :class:`~rrnn_convex.ImplicitRNN` the adjoint (back-propagation
through time) of :meth:`~rrnn_convex.ImplicitRNN.simulate` is written out in numpy
(:func:`implicit_rnn_vjp`); any other simulator needs a vector-Jacobian product or must accept
casadi symbols. Finite differences are never used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._validation import as_float_array, check_scalar
from .model import ImplicitRNN

__all__ = ["implicit_rnn_vjp", "LipschitzBound", "lipschitz_lower_bound", "GeneralisationStudy",
           "generalisation_data", "generalisation_study", "DEFAULT_WIDTHS"]


# --------------------------------------------------------------------- adjoint of simulate
def implicit_rnn_vjp(model: ImplicitRNN, u, cotangent, x0=None):
    """Simulate and back-propagate: returns ``(y, J' g)`` with J = dy/du and g = ``cotangent``.

    ``u`` and ``cotangent`` shaped (T, m)/(T, p) or (batch, T, m)/(batch, T, p). Adjoint of the
    explicit recursion (A = E^-1 F, B1h = E^-1 B1, B2h = E^-1 B2)::

        lam_T = 0
        gw_t  = D21' g_t + B1h' lam_{t+1},    gv_t = sigma'(v_t) * gw_t
        gu_t  = D22' g_t + B2h' lam_{t+1} + D12' gv_t
        lam_t = C2' g_t + A' lam_{t+1} + C1' gv_t

    with v_t = C1 x_t + D12 u_t + bv. At the kinks of relu the right derivative is used (a
    valid element of the Clarke subdifferential; the set of inputs hitting a kink has measure zero).
    """
    if not isinstance(model, ImplicitRNN):
        raise TypeError(f"model: expected an ImplicitRNN, got {type(model).__name__}")
    ub, batched = model.check_input(u)
    g = as_float_array(cotangent, "cotangent", ndim=(2, 3))
    g = g if g.ndim == 3 else g[None]
    if g.shape != ub.shape[:2] + (model.p,):
        want = ub.shape[:2] + (model.p,) if batched else (ub.shape[1], model.p)
        raise ValueError(f"cotangent: expected shape {want} (like y), got {np.shape(cotangent)}")
    y, xs = model.simulate(ub, x0, return_states=True)
    gu = _rnn_backward(model, ub, xs, g)
    if not batched:
        return y[0], gu[0]
    return y, gu


def rnn_adjoint(model: ImplicitRNN, ub, xs, g):
    """The adjoint recursion of :func:`implicit_rnn_vjp` for the output cotangent ``g`` (batch, T, p)
    given the simulated states ``xs``: returns ``(LN, GV, lam_0)`` with ``LN[:, t] = lam_{t+1}``
    (batch, T, n), ``GV[:, t] = gv_t`` (batch, T, q) and ``lam_0`` = dL/dx_0 (batch, n). Input and
    weight gradients are contractions of these (:func:`implicit_rnn_vjp`,
    :func:`rrnn_convex.baselines.barrier.simulation_gradient`)."""
    A, B1h, _, _ = model._explicit_matrices()
    B, T = ub.shape[:2]
    v = xs[:, :T] @ model.C1.T + ub @ model.D12.T + model.bv
    dsig = model.activation.derivative(v)
    gw_y = g @ model.D21  # D21' g_t
    lam_y = g @ model.C2  # C2' g_t
    lam = np.zeros((B, model.n))
    LN = np.empty((B, T, model.n))
    GV = np.empty((B, T, model.q))
    C1 = model.C1
    for t in range(T - 1, -1, -1):
        LN[:, t] = lam
        gv = dsig[:, t] * (gw_y[:, t] + lam @ B1h)  # row form: (B1h' lam)'
        GV[:, t] = gv
        lam = lam_y[:, t] + lam @ A + gv @ C1
    return LN, GV, lam


def _rnn_backward(model: ImplicitRNN, ub, xs, g):
    """J' g of :func:`implicit_rnn_vjp` given the simulated states ``xs``."""
    LN, GV, _ = rnn_adjoint(model, ub, xs, g)
    _, _, B2h, _ = model._explicit_matrices()
    return g @ model.D22 + LN @ B2h + GV @ model.D12


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
            self._backward = lambda U, xs, G: _rnn_backward(obj, U, xs, G)
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


class _Adam:
    def __init__(self, shape, lr, b1=0.9, b2=0.999, eps=1e-12):
        self.m1 = np.zeros(shape)
        self.m2 = np.zeros(shape)
        self.lr, self.b1, self.b2, self.eps, self.k = lr, b1, b2, eps, 0

    def step(self, grad, scale=1.0):
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
    opt_u, opt_w, opt_s = _Adam(u.shape, lr), _Adam(w.shape, lr), _Adam(s.shape, lr)
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


# --------------------------------------------------------------------- generalisation study
#: the paper's 21 input widths, 0.5 to 10.5
DEFAULT_WIDTHS = np.linspace(0.5, 10.5, 21)


@dataclass(frozen=True, eq=False)
class GeneralisationStudy:
    """NSE of a model against the true system, per input width: ``nse[i, j]`` for width i, realisation j."""

    widths: np.ndarray
    nse: np.ndarray
    washout: int
    horizon: int
    seed: int | None

    def as_dict(self) -> dict:
        """width -> array of NSE values (one per realisation), ready for a box plot."""
        return {float(w): self.nse[i].copy() for i, w in enumerate(self.widths)}

    def median(self) -> np.ndarray:
        return np.median(self.nse, axis=1)


def generalisation_data(widths=None, realisations: int = 20, horizon: int = 1000, seed: int | None = 0, *,
                        system=None, x0_range: float = 5.0, period: int = 100) -> dict:
    """Data of the generalisation study: width -> :class:`~rrnn_convex.datasets.SequenceData`.

    For every width, ``realisations`` sequences of ``horizon`` samples of the true system
    (:class:`~rrnn_convex.datasets.MassSpringDamper`, noise included) driven by the paper's
    random piecewise-constant input of that width and started from states uniform on
    ``[-x0_range, x0_range]`` (``x0_known`` False, the states kept in ``x0_true``). Every width
    has its own stream ``SeedSequence([seed, i])``; all sequences are integrated as one batch.
    Compute it once and pass it to :func:`generalisation_study` to compare several models.
    """
    from .datasets import MassSpringDamper, SequenceData, random_hold_input
    system = MassSpringDamper() if system is None else system
    widths = DEFAULT_WIDTHS if widths is None else as_float_array(widths, "widths", ndim=1)
    if widths.size == 0 or np.any(widths < 0):
        raise ValueError(f"widths: expected non-negative input widths, got {widths}")
    R = _count(realisations, "realisations")
    T = _count(horizon, "horizon")
    x0_range = check_scalar(x0_range, "x0_range", low=0.0, low_inclusive=True)
    if seed is None:  # fresh entropy
        rngs = [np.random.default_rng(ss) for ss in np.random.SeedSequence().spawn(widths.size)]
    else:
        rngs = [np.random.default_rng(np.random.SeedSequence([int(seed), 1000 + i]))
                for i in range(widths.size)]
    U = np.concatenate([random_hold_input(T, float(w), r, batch=R, period=period)
                        for w, r in zip(widths, rngs)])
    X0 = np.concatenate([r.uniform(-x0_range, x0_range, size=(R, system.n)) for r in rngs])
    X = system.states(U, X0)
    out = {}
    for i, (w, r) in enumerate(zip(widths, rngs)):
        sl = slice(i * R, (i + 1) * R)
        y = X[sl, :, -2:-1] + system.noise_std * r.standard_normal((R, T, 1))
        out[float(w)] = SequenceData(u=U[sl], y=y, ts=system.Ts, name=f"generalisation width {w:g}",
                                     x0_known=False, x0_true=X0[sl], meta={"width": float(w), "seed": seed})
    return out


def generalisation_study(model_or_simulator, widths=None, realisations: int = 20, horizon: int = 1000,
                         washout: int = 200, seed: int | None = 0, *, data: dict | None = None,
                         batched: bool = False, **data_options) -> GeneralisationStudy:
    """The paper's generalisation experiment: NSE against the input width.

    For each width (default :data:`DEFAULT_WIDTHS`, 0.5 to 10.5 in 21 levels) the model,
    simulated from its zero initial state (it does not know the true system's random initial
    state), is compared with ``realisations`` noisy records of the true system
    (:func:`generalisation_data`); the first ``washout`` samples are dropped and
    :func:`~rrnn_convex.metrics.nse` (``||y_hat - y|| / ||y - mean(y)||`` over the remaining
    samples) is computed per realisation (averaged over the output channels when p > 1). (The
    authors' script normalised by ``||y||`` without removing the mean; the package uses the
    paper's NSE throughout.)

    ``model_or_simulator``: an ImplicitRNN (simulated as one batch) or a callable
    ``u (T, m) -> y (T, p)`` (with ``batched=True``: ``(batch, T, m) -> (batch, T, p)``, one call
    per width). Pass ``data`` (from :func:`generalisation_data`) to reuse the
    same records for several models; otherwise ``widths``, ``realisations``, ``horizon``,
    ``seed`` and ``data_options`` (``system``, ``x0_range``, ``period``) generate them. Defaults
    are modest (20 realisations of 1000 samples; the authors used 300).
    """
    from .metrics import nse
    if data is None:
        data = generalisation_data(widths, realisations, horizon, seed, **data_options)
    elif widths is not None or data_options:
        raise ValueError("data: pass either data=... or the options that generate it "
                         "(widths, system, ...), not both")
    if not isinstance(data, dict) or not data:
        raise TypeError("data: expected a non-empty dict width -> SequenceData (from generalisation_data)")
    washout = _count(washout, "washout", low=0)
    ws = np.array(sorted(data))
    rows = []
    for w in ws:
        d = data[w]
        if washout >= d.T:
            raise ValueError(f"washout: expected fewer than T = {d.T} samples, got {washout}")
        if isinstance(model_or_simulator, ImplicitRNN):
            y_hat = model_or_simulator.simulate(d.u)
        elif callable(model_or_simulator) and batched:
            y_hat = as_float_array(model_or_simulator(d.u), "simulator(u)")
        elif callable(model_or_simulator):
            y_hat = np.stack([np.reshape(as_float_array(model_or_simulator(u), "simulator(u)"), d.y.shape[1:])
                              for u in d.u])
        else:
            raise TypeError(f"model_or_simulator: expected an ImplicitRNN or a callable, got "
                            f"{type(model_or_simulator).__name__}")
        if y_hat.shape != d.y.shape:
            raise ValueError(f"model_or_simulator: output shape {y_hat.shape} does not match "
                             f"the data {d.y.shape}")
        rows.append(np.asarray(nse(y_hat, d.y, init=washout)).reshape(d.batch, -1).mean(axis=1))
    first = data[ws[0]]
    return GeneralisationStudy(widths=ws, nse=np.array(rows), washout=washout, horizon=first.T,
                               seed=first.meta.get("seed"))
