"""The paper's training method as a baseline: a log-det barrier on the lifted LMI, Adam, and a
backtracking line search that keeps every iterate strictly feasible.

Decision variables (the ``free_C1`` parametrisation of :mod:`rrnn_convex.sets`, alpha = 0):
E, F, B1, B2, bx, Ct = Lambda C1, Dt = Lambda D12 (Theta_gamma; for Theta, whose LMI does not
involve D12, D12 itself), bv, C2, D21, D22, by, P, lambda, and one initial state per training
sequence. The model is ``C1 = Lambda^-1 Ct`` (``D12 = Lambda^-1 Dt``). Each step minimises, on a
minibatch of sequences (one, as the authors did),

    J = mean_{t, outputs} (y_hat - y)^2  +  (1 / w) * (-logdet M)

where M is :func:`rrnn_convex.lmi.lifted_lmi` of the variables (Theta or Theta_gamma, minus
``margin * I``) and w the *barrier weight* (the authors' ``mu``): the barrier's influence
DEcreases as w grows, so the iterates may approach the boundary of the set. Exact gradients:
the loss by the adjoint of the simulation (:func:`simulation_gradient`, through A = E^-1 F ...
and C1 = Ct / lambda), the barrier by ``d(-logdet M) = -tr(M^-1 dM)`` through the affine map
``theta -> M`` (its partial derivatives are evaluated once, :func:`lmi_basis`). After the Adam
step the step is halved until ``M`` has a Cholesky factor (strict feasibility), as the
authors' ``stochastic_nlsdp`` did. Schedule (the authors' implementation): Adam lr 1e-3; when the
validation NSE has not improved (by ``tol``) for ``patience`` = 10 epochs, w is multiplied by 10
and the learning rate by 0.25; the run stops once w exceeds ``max_weight`` = 1e6 (or on the epoch
or time budget). The returned model is the best by validation NSE, certified by
:func:`~rrnn_convex.certify.certify`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from .. import solvers as _solvers
from .._estimator import ParamsMixin, check_fitted
from .._validation import check_scalar, paired_sequences
from ..activations import get_activation
from ..adjoint import rnn_adjoint
from ..analysis import Adam
from ..certify import certificate_from, certify
from ..fit import RobustRNNRegressor
from ..lmi import lifted_lmi
from ..metrics import nse
from ..model import ImplicitRNN
from ..sets import ModelSet

__all__ = ["BarrierSGD", "simulation_gradient", "lifted_point", "Variables", "lmi_basis"]

_MAT = ("E", "F", "B1", "B2", "C1", "D12", "C2", "D21", "D22")
_BIAS = ("bx", "bv", "by")


# ---------------------------------------------------------------------- the loss gradient
def simulation_gradient(model: ImplicitRNN, u, y, x0=None):
    """Mean squared simulation error and its exact gradient (adjoint / back-propagation in time).

    ``L = mean((y_hat - y)^2)`` over sequences, times and outputs for ``u`` (B, T, m), ``y``
    (B, T, p) from ``x0`` (B, n) (zeros by default). Returns ``(L, grads, g_x0)`` with
    ``grads[name]`` = dL/d(weight) for every matrix and bias of the model and ``g_x0`` (B, n).
    Adjoint of the explicit recursion (A = E^-1 F, B1h, B2h, bxh), lam_t = dL/dx_t::

        gv_t  = sigma'(v_t) * (D21' g_t + B1h' lam_{t+1})
        lam_t = C2' g_t + A' lam_{t+1} + C1' gv_t,     g_t = 2 (y_hat_t - y_t) / N

    then dL/dF = E^-T sum lam_{t+1} x_t', ..., dL/dE = -(G_F A' + G_B1 B1h' + G_B2 B2h' + g_bx bxh').

    Parameters
    ----------
    model : ImplicitRNN
        The model to simulate.
    u : array_like, shape (B, T, m) or (T, m)
        Inputs; a 2-D array is one sequence.
    y : array_like, shape (B, T, p) or (T, p)
        Measured outputs, with the same (B, T) as ``u``.
    x0 : array_like, shape (n,), (1, n) or (B, n), optional
        Initial states; zeros by default.

    Returns
    -------
    loss : float
        ``mean((y_hat - y)^2)``.
    grads : dict of str to numpy.ndarray
        dL/d(weight) for ``"E"``, ``"F"``, ``"B1"``, ``"B2"``, ``"bx"``, ``"C1"``, ``"D12"``,
        ``"bv"``, ``"C2"``, ``"D21"``, ``"D22"``, ``"by"``, each shaped like the weight.
    g_x0 : numpy.ndarray, shape (B, n)
        dL/dx0.

    Raises
    ------
    ValueError
        ``u`` and ``y`` of a wrong number of dimensions or different (B, T), inputs whose
        channels do not match the model, a bad ``x0``, or NaN/inf; a model with a nonzero D11.
    TypeError
        Non-numeric ``u`` or ``y``.
    """
    # the barrier's variables and LMI have no equilibrium term, and w below is evaluated without it
    model.require_zero_d11("simulation_gradient (the barrier baseline)")
    U, Y = paired_sequences(u, y)
    yh, xs = model.simulate(U, x0, return_states=True)
    B, T, _ = U.shape
    g = 2.0 * (yh - Y) / yh.size
    loss = float(np.mean((yh - Y) ** 2))
    A, B1h, B2h, bxh = model._explicit_matrices()
    X = xs[:, :T]
    w = model.activation(X @ model.C1.T + U @ model.D12.T + model.bv)
    LN, GV, lam = rnn_adjoint(model, U, xs, g)  # lam_{t+1} and gv_t for every t, lam = dL/dx_0

    def outer(a, b):
        return np.einsum("bti,btj->ij", a, b)

    EinvT = np.linalg.inv(model.E).T
    G = {"F": EinvT @ outer(LN, X), "B1": EinvT @ outer(LN, w), "B2": EinvT @ outer(LN, U),
         "bx": EinvT @ LN.sum(axis=(0, 1)),
         "C1": outer(GV, X), "D12": outer(GV, U), "bv": GV.sum(axis=(0, 1)),
         "C2": outer(g, X), "D21": outer(g, w), "D22": outer(g, U), "by": g.sum(axis=(0, 1))}
    G["E"] = -(G["F"] @ A.T + G["B1"] @ B1h.T + G["B2"] @ B2h.T + np.outer(G["bx"], bxh))
    return loss, G, lam


# ---------------------------------------------------------------------- the decision variables
@dataclass(frozen=True)
class Variables:
    """Layout of the barrier method's decision vector (without the initial states).

    The vector is the concatenation of the raveled blocks ``E, F, B1, B2, bx, Ct, Dt`` (or
    ``D12`` without the gain), ``bv, C2, D21, D22, by, P, lam`` in that order.

    Parameters
    ----------
    names : tuple of str
        The block names, in order.
    shapes : tuple of tuple of int
        Their shapes.
    gain : bool
        Theta_gamma (``Dt = Lambda D12`` is the variable) rather than Theta (``D12`` itself).
    """

    names: tuple
    shapes: tuple
    gain: bool

    @classmethod
    def for_dims(cls, dims: dict, gain: bool) -> "Variables":
        """The layout for a model of the given sizes.

        Parameters
        ----------
        dims : dict
            With the keys ``"n"``, ``"q"``, ``"m"`` and ``"p"`` (as :attr:`ImplicitRNN.dims`).
        gain : bool
            Theta_gamma (True) or Theta (False).

        Returns
        -------
        Variables
        """
        n, q, m, p = (dims[k] for k in ("n", "q", "m", "p"))
        spec = [("E", (n, n)), ("F", (n, n)), ("B1", (n, q)), ("B2", (n, m)), ("bx", (n,)),
                ("Ct", (q, n)), ("Dt" if gain else "D12", (q, m)), ("bv", (q,)),
                ("C2", (p, n)), ("D21", (p, q)), ("D22", (p, m)), ("by", (p,)), ("P", (n, n)), ("lam", (q,))]
        return cls(tuple(k for k, _ in spec), tuple(s for _, s in spec), gain)

    @property
    def size(self) -> int:
        """The length of the decision vector (sum of the blocks' sizes)."""
        return int(sum(np.prod(s) for s in self.shapes))

    def unpack(self, z) -> dict:
        """Split a decision vector into its blocks.

        Parameters
        ----------
        z : numpy.ndarray, shape (size,)
            Not checked; a longer vector's tail is ignored.

        Returns
        -------
        dict of str to numpy.ndarray
            Each block reshaped; these are views of ``z`` (writing to them changes ``z``).
        """
        out, k = {}, 0
        for name, shape in zip(self.names, self.shapes):
            size = int(np.prod(shape))
            out[name] = z[k:k + size].reshape(shape)
            k += size
        return out

    def pack(self, values: dict) -> np.ndarray:
        """Concatenate blocks into a decision vector (the inverse of :meth:`unpack`).

        Parameters
        ----------
        values : dict of str to array_like
            One entry per name in :attr:`names` (further entries are ignored).

        Returns
        -------
        numpy.ndarray, shape (size,)
            float64.

        Raises
        ------
        KeyError
            A name of the layout is missing from ``values``.
        """
        return np.concatenate([np.asarray(values[k], dtype=np.float64).ravel() for k in self.names])

    def from_model(self, model: ImplicitRNN, P, lam) -> np.ndarray:
        """The decision vector of a model's weights and a lifted point (P, lam).

        Parameters
        ----------
        model : ImplicitRNN
            Its weights give every block but ``P`` and ``lam``; ``Ct = diag(lam) C1`` (and
            ``Dt = diag(lam) D12`` with the gain).
        P : array_like, shape (n, n)
        lam : array_like, shape (q,)
            The multipliers (the diagonal of Lambda).

        Returns
        -------
        numpy.ndarray, shape (size,)
        """
        lam = np.asarray(lam, dtype=np.float64)
        vals = {k: getattr(model, k) for k in _MAT + _BIAS} | {"P": P, "lam": lam, "Ct": lam[:, None] * model.C1}
        if self.gain:
            vals["Dt"] = lam[:, None] * model.D12
        return self.pack(vals)

    def to_model(self, z, activation) -> ImplicitRNN:
        """The model of a decision vector: ``C1 = Ct / lam`` (and ``D12 = Dt / lam`` with the gain).

        Parameters
        ----------
        z : numpy.ndarray, shape (size,)
            ``lam`` must have no zero entry.
        activation : str, dict or Activation
            The model's activation.

        Returns
        -------
        ImplicitRNN

        Raises
        ------
        ValueError
            From :class:`ImplicitRNN`: e.g. NaN/inf weights (a zero multiplier) or a singular ``E``.
        """
        v = self.unpack(z)
        lam = v["lam"]
        kw = {k: v[k] for k in ("E", "F", "B1", "B2", "C2", "D21", "D22") + _BIAS}
        kw["C1"] = v["Ct"] / lam[:, None]
        kw["D12"] = v["Dt"] / lam[:, None] if self.gain else v["D12"]
        return ImplicitRNN(**kw, activation=activation)

    def lmi(self, z, act, gamma, margin: float = 0.0) -> np.ndarray:
        """The symmetrised lifted LMI (Theta or Theta_gamma) at ``z``, minus ``margin * I``.

        Parameters
        ----------
        z : numpy.ndarray, shape (size,)
        act : Activation
            Gives the slope bounds alpha, beta.
        gamma : float or None
            The gain bound (used only when :attr:`gain` is True).
        margin : float

        Returns
        -------
        numpy.ndarray
            Symmetric, of size ``2n + q`` (Theta) or ``2n + q + m + p`` (Theta_gamma).
        """
        v = self.unpack(z)
        extra = dict(B2=v["B2"], LD12=v["Dt"], C2=v["C2"], D21=v["D21"], D22=v["D22"], gamma=gamma) \
            if self.gain else {}
        M = lifted_lmi(E=v["E"], F=v["F"], B1=v["B1"], P=v["P"], Lam=np.diag(v["lam"]), LC1=v["Ct"],
                       alpha=act.alpha, beta=act.beta, **extra)
        return 0.5 * (M + M.T) - margin * np.eye(M.shape[0])

    def loss_gradient(self, z, grads: dict) -> np.ndarray:
        """Chain rule from the model's weight gradients to the decision variables
        (C1 = Ct / lam, D12 = Dt / lam; P does not enter the model).

        Parameters
        ----------
        z : numpy.ndarray, shape (size,)
            The point (its ``Ct``, ``Dt`` and ``lam`` enter the chain rule).
        grads : dict of str to numpy.ndarray
            The weight gradients of :func:`simulation_gradient`.

        Returns
        -------
        numpy.ndarray, shape (size,)
            The gradient with respect to the decision vector (zero in the ``P`` block).
        """
        v = self.unpack(z)
        lam = v["lam"]
        out = {k: grads[k] for k in ("E", "F", "B1", "B2", "C2", "D21", "D22") + _BIAS}
        out["P"] = np.zeros_like(v["P"])
        out["Ct"] = grads["C1"] / lam[:, None]
        g_lam = -np.sum(grads["C1"] * v["Ct"], axis=1) / lam ** 2
        if self.gain:
            out["Dt"] = grads["D12"] / lam[:, None]
            g_lam = g_lam - np.sum(grads["D12"] * v["Dt"], axis=1) / lam ** 2
        else:
            out["D12"] = grads["D12"]
        out["lam"] = g_lam
        return self.pack(out)


def lmi_basis(var: Variables, act, gamma) -> np.ndarray:
    """The linear part of the affine map ``z -> M(z)``: row k is ``vec(M(e_k) - M(0))``.

    Built once by evaluating :meth:`Variables.lmi` at unit vectors, so the barrier gradient
    ``d(-logdet M)/dz = -basis @ vec(M^-1)`` uses exactly the matrix the feasibility check uses.

    Parameters
    ----------
    var : Variables
        The layout.
    act : Activation
        Gives the slope bounds.
    gamma : float or None
        The gain bound (Theta_gamma) or None (Theta).

    Returns
    -------
    numpy.ndarray, shape (var.size, N * N)
        N is the size of the LMI.
    """
    M0 = var.lmi(np.zeros(var.size), act, gamma)
    basis = np.empty((var.size, M0.size))
    e = np.zeros(var.size)
    for k in range(var.size):
        e[k] = 1.0
        basis[k] = (var.lmi(e, act, gamma) - M0).ravel()
        e[k] = 0.0
    return basis


def barrier(var: Variables, basis: np.ndarray | None, z, act, gamma, margin: float = 0.0):
    """``(-logdet M, d(-logdet M)/dz)`` at ``z`` (the gradient None when ``basis`` is None), or
    ``(inf, None)`` when M (minus margin I) is not positive definite (no Cholesky factor).

    Parameters
    ----------
    var : Variables
        The layout.
    basis : numpy.ndarray or None
        :func:`lmi_basis` of the same layout, activation and gamma; None skips the gradient.
    z : numpy.ndarray, shape (var.size,)
        The point (without initial states).
    act : Activation
    gamma : float or None
    margin : float
        The matrix checked is ``M - margin I``.

    Returns
    -------
    value : float
        ``-logdet(M - margin I)``, or ``inf`` outside the set.
    gradient : numpy.ndarray, shape (var.size,), or None
        Its gradient with respect to ``z``.
    """
    M = var.lmi(z, act, gamma, margin)
    try:
        L = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return np.inf, None
    if basis is None:
        return -2.0 * float(np.sum(np.log(np.diag(L)))), None
    Linv = np.linalg.solve(L, np.eye(M.shape[0]))  # triangular; M^-1 = Linv' Linv
    Minv = Linv.T @ Linv
    return -2.0 * float(np.sum(np.log(np.diag(L)))), -(basis @ Minv.ravel())


# ---------------------------------------------------------------------- the starting point
def lifted_point(model: ImplicitRNN, gamma: float | None = None, solver: str | None = "CLARABEL"):
    """The max-margin (P, lam, t) with which the model's fixed weights satisfy the lifted LMI:
    maximise t s.t. M(P, lam) >= t I (Theta when gamma is None). t <= 0: the weights are not in
    the lifted set in this representation.

    Parameters
    ----------
    model : ImplicitRNN
        The fixed weights.
    gamma : float, optional
        The gain bound (Theta_gamma); None: Theta.
    solver : str, optional
        The SDP solver (no fallback to others); ``"CLARABEL"`` by default, also for None.

    Returns
    -------
    P : numpy.ndarray, shape (n, n), or None
        Symmetrised.
    lam : numpy.ndarray, shape (q,), or None
    t : float
        The margin, capped at 1 by a constraint; ``(None, None, -inf)`` when the solver does not
        report an optimal or optimal_inaccurate status.

    Raises
    ------
    ValueError
        An unknown solver name (from :func:`rrnn_convex.solvers.solver_sequence`).
    rrnn_convex.errors.SolverUnavailable
        A known solver that cannot run here.
    """
    act = model.activation
    n, q = model.n, model.q
    P, lam, t = cp.Variable((n, n), symmetric=True), cp.Variable(q), cp.Variable()
    Lam = cp.diag(lam)
    extra = dict(B2=model.B2, LD12=Lam @ model.D12, C2=model.C2, D21=model.D21, D22=model.D22,
                 gamma=gamma) if gamma is not None else {}
    M = lifted_lmi(E=model.E, F=model.F, B1=model.B1, P=P, Lam=Lam, LC1=Lam @ model.C1,
                   alpha=act.alpha, beta=act.beta, **extra)
    prob = cp.Problem(cp.Maximize(t), [0.5 * (M + M.T) >> t * np.eye(M.shape[0]), t <= 1.0])
    att = _solvers.run(prob, _solvers.solver_sequence(solver, fallback=False)[0])
    if att.status not in ("optimal", "optimal_inaccurate") or t.value is None:
        return None, None, -np.inf
    Pv = np.asarray(P.value, dtype=np.float64)
    return 0.5 * (Pv + Pv.T), np.asarray(lam.value, dtype=np.float64), float(t.value)


def _start(model: ImplicitRNN, gamma, margin, solver):
    """A representation of ``model`` and a strictly feasible (P, lam) for its lifted LMI.

    As in :class:`rrnn_convex.fit.RobustRNNRegressor` ("re-represent"): when the given
    representation is not in the lifted set, the same model in the certificate's metric
    (``E -> E'Q E``, ``F -> E'Q F``, ...) is, with P = E'QE (the relaxation is tight there).
    """
    P, lam, t = lifted_point(model, gamma, solver)
    if t > margin and np.all(lam > 0):
        return model, P, lam, t
    cert = certify(model, gamma=gamma, solver=solver) if gamma is not None else \
        certify(model, solver=solver, contraction_only=True)
    if not cert.certified:
        raise ValueError(f"init_model: not in the set ({cert.reason})")
    model = model.transform(model.E.T @ cert.Q)
    P, lam, t = lifted_point(model, gamma, solver)
    if not (t > margin and np.all(lam > 0)):
        raise RuntimeError(f"BarrierSGD: no strictly feasible lifted point for the initial model (margin t = {t:.3g})")
    return model, P, lam, t


# ---------------------------------------------------------------------- the trainer
class BarrierSGD(ParamsMixin):
    """The authors' training method: log-det barrier + Adam + feasibility line search.

    The parameters are stored as given, each as the attribute of the same name; ``fit`` does
    the work; ``get_params`` / ``set_params`` read and change them.

    Parameters
    ----------
    n_states, n_neurons : int
        Model size, used when ``fit`` builds the start itself (like
        :meth:`RobustRNNRegressor.initial_model`).
    model_set : {"theta_gamma", "theta"}
        The registered sets with the lifted LMI (``ModelSet.names_where(uses_multiplier=True)``);
        ``"theta_gamma"`` needs ``gamma``.
    gamma : float, optional
        The gain bound of ``"theta_gamma"`` (refused with ``"theta"``).
    activation : str, dict or Activation
        Used when ``fit`` builds the start; the free-C1 parametrisation needs slope bounds with
        ``alpha * beta = 0`` (e.g. relu or tanh).
    lr : float
        Adam learning rate (1e-3).
    batch_size : int
        Sequences per step (1); values below 1 are taken as 1.
    barrier_weight0 : float
        Initial barrier weight w (the authors' mu0 = 10); the barrier term is
        ``(-logdet M) / w``.
    weight_factor, lr_factor : float
        After ``patience`` epochs whose validation NSE did not beat the best by ``tol``,
        ``w *= weight_factor`` (10) and ``lr *= lr_factor`` (0.25).
    patience : int
        Epochs without improvement before that change (10).
    tol : float
        The improvement that counts (1e-4).
    max_weight : float
        Stop once w exceeds it (1e6).
    max_epochs : int
        Epoch budget (1000).
    time_budget : float, optional
        Time budget in seconds, counted from the start of ``fit`` (None: none).
    margin : float
        The LMI checked is ``M - margin I > 0`` (0: strict feasibility); must be >= 0.
    clip : float, optional
        Inf-norm clipping of the gradient (the authors clipped at 0.5-1; None: off).
    learn_x0 : bool
        Learn one initial state per training sequence (the authors did).
    eval_every : int, optional
        Also record the validation NSE every k steps (None: per epoch only).
    seed : int
        Minibatch order and the random neurons of the start.
    solver : str
        The SDP solver (start point, certificate).
    progress : bool
        Print one line per epoch.

    Attributes
    ----------
    model_ : ImplicitRNN
        The best model by validation NSE (by training loss without validation data).
    certificate_ : Certificate
        Its certificate, rigorously verified.
    history_ : list of dict
        One record at the start, one per epoch and one every ``eval_every`` steps, with the
        keys epoch, step, seconds_since_start, loss, val_nse, barrier_weight, lr, min_eig
        (smallest eigenvalue of the LMI, without the margin), line_search (halvings) and
        epoch_end (True for the records at the end of an epoch; every record has every key).
    x0_ : numpy.ndarray, shape (batch, n)
        The learnt initial states of the training sequences of the best iterate (zeros without
        ``learn_x0``).
    init_model_ : ImplicitRNN
        The start in the representation used.
    lifted_ : dict
        ``{"P": (n, n) array, "lam": (q,) array}``, the lifted point of the best iterate.
    setup_seconds_ : float
        Start point and set-up, included in seconds_since_start.
    n_steps_ : int
        The number of Adam steps taken.
    stop_reason_ : str
        ``"time budget"``, ``"barrier weight"`` or ``"max_epochs"``.
    """

    def __init__(self, n_states: int = 10, n_neurons: int = 10, *, model_set: str = "theta_gamma",
                 gamma: float | None = None, activation="relu", lr: float = 1e-3, batch_size: int = 1,
                 barrier_weight0: float = 10.0, weight_factor: float = 10.0, lr_factor: float = 0.25,
                 patience: int = 10, tol: float = 1e-4, max_weight: float = 1e6, max_epochs: int = 1000,
                 time_budget: float | None = None, margin: float = 0.0, clip: float | None = None,
                 learn_x0: bool = True, eval_every: int | None = None, seed: int = 0,
                 solver: str = "CLARABEL", progress: bool = False):
        self.n_states = n_states
        self.n_neurons = n_neurons
        self.model_set = model_set
        self.gamma = gamma
        self.activation = activation
        self.lr = lr
        self.batch_size = batch_size
        self.barrier_weight0 = barrier_weight0
        self.weight_factor = weight_factor
        self.lr_factor = lr_factor
        self.patience = patience
        self.tol = tol
        self.max_weight = max_weight
        self.max_epochs = max_epochs
        self.time_budget = time_budget
        self.margin = margin
        self.clip = clip
        self.learn_x0 = learn_x0
        self.eval_every = eval_every
        self.seed = seed
        self.solver = solver
        self.progress = progress

    def _gamma(self):
        """The gain bound of ``model_set`` (None for Theta), validated."""
        lifted = ModelSet.names_where(uses_multiplier=True)
        if self.model_set not in lifted:
            raise ValueError(f"model_set: expected {' or '.join(repr(k) for k in lifted)}, got {self.model_set!r}")
        return ModelSet.from_name(self.model_set, gamma=self.gamma).gamma

    def fit(self, u, y, validation=None, *, init_model: ImplicitRNN | None = None) -> "BarrierSGD":
        """Train on ``u`` (batch, T, m), ``y`` (batch, T, p); ``validation`` = (u, y) (zero initial
        state) for the schedule and model selection. ``init_model`` must be in the set (default:
        the SCP trainer's N4SID start on the training data). Returns self.

        Parameters
        ----------
        u : array_like, shape (batch, T, m) or (T, m)
            Training inputs.
        y : array_like, shape (batch, T, p) or (T, p)
            Training outputs, with the same (batch, T).
        validation : tuple of array_like, optional
            ``(u, y)`` of the validation sequences, simulated from zero. Without it the schedule
            and the model selection use the mean training loss of the epoch.
        init_model : ImplicitRNN, optional
            The start; when its representation is not in the lifted set, the same model in its
            certificate's metric is used (:attr:`init_model_`).

        Returns
        -------
        BarrierSGD
            self, fitted.

        Raises
        ------
        ValueError
            An unknown ``model_set``, a missing or unexpected ``gamma``, a negative ``margin``,
            an activation with ``alpha * beta != 0``, an ``init_model`` that is not in the set,
            or invalid sequences (wrong dimensions, different (batch, T), NaN/inf).
        TypeError
            A non-numeric ``margin`` or sequence.
        RuntimeError
            No strictly feasible lifted point for the start, or the final model could not be
            certified.
        """
        t_start = time.perf_counter()
        gamma = self._gamma()
        U, Y = paired_sequences(u, y)
        val = None if validation is None else paired_sequences(*validation, names=("validation u", "validation y"))
        margin = check_scalar(self.margin, "margin", low=0.0, low_inclusive=True)
        if init_model is None:
            scp = RobustRNNRegressor(self.n_states, self.n_neurons, model_set=self.model_set, gamma=gamma,
                                     activation=self.activation, seed=self.seed, solver=self.solver, progress=False)
            init_model = scp.initial_model(U, Y)
        act = get_activation(init_model.activation)
        if act.alpha * act.beta != 0.0:
            raise ValueError(f"activation: the free-C1 parametrisation needs alpha * beta = 0, got {act.name}")
        model0, P0, lam0, _ = _start(init_model, gamma, margin, self.solver)
        var = Variables.for_dims(model0.dims, gamma is not None)
        basis = lmi_basis(var, act, gamma)
        Bn, nth = U.shape[0], var.size
        z = np.concatenate([var.from_model(model0, P0, lam0), np.zeros(Bn * model0.n)])
        if not np.isfinite(barrier(var, basis, z[:nth], act, gamma, margin)[0]):
            raise RuntimeError("BarrierSGD: the starting point fails the Cholesky check")
        adam = Adam(z.shape, float(self.lr), eps=1e-8)
        rng = np.random.default_rng(self.seed)
        w = float(self.barrier_weight0)
        bs = max(1, int(self.batch_size))

        def val_nse(mdl):
            return float("nan") if val is None else float(np.mean(nse(mdl.simulate(val[0]), val[1])))

        model = model0
        best = {"score": val_nse(model0), "z": z.copy(), "model": model0}
        self.setup_seconds_ = time.perf_counter() - t_start
        history = [{"epoch": 0, "step": 0, "seconds_since_start": self.setup_seconds_, "loss": float("nan"),
                    "val_nse": best["score"], "barrier_weight": w, "lr": adam.lr,
                    "min_eig": float(np.linalg.eigvalsh(var.lmi(z[:nth], act, gamma))[0]), "line_search": 0,
                    "epoch_end": False}]
        step, stall, stop = 0, 0, ""
        for epoch in range(1, int(self.max_epochs) + 1):
            order = rng.permutation(Bn)
            losses, halvings = [], 0
            for start in range(0, Bn, bs):
                idx = order[start:start + bs]
                X0 = z[nth:].reshape(Bn, -1)[idx] if self.learn_x0 else None
                loss, grads, g_x0 = simulation_gradient(model, U[idx], Y[idx], X0)
                _, g_bar = barrier(var, basis, z[:nth], act, gamma, margin)
                grad = np.zeros_like(z)
                grad[:nth] = var.loss_gradient(z[:nth], grads) + g_bar / w
                if self.learn_x0:
                    grad[nth:].reshape(Bn, -1)[idx] = g_x0
                if self.clip is not None:
                    grad *= min(1.0, float(self.clip) / max(np.max(np.abs(grad)), 1e-300))
                d = -adam.step(grad)
                for ls in range(60):  # backtracking: halve the step until strictly feasible
                    cand = z + d
                    Pc = var.unpack(cand[:nth])["P"]  # a view: keep P exactly symmetric
                    Pc[:] = 0.5 * (Pc + Pc.T)
                    if np.isfinite(barrier(var, None, cand[:nth], act, gamma, margin)[0]):
                        break
                    d *= 0.5
                else:
                    cand, ls = z, 60  # no feasible step: stay
                halvings += ls
                z = cand
                model = var.to_model(z[:nth], act)
                losses.append(loss)
                step += 1
                timed_out = self.time_budget is not None and time.perf_counter() - t_start > self.time_budget
                if self.eval_every and step % int(self.eval_every) == 0 and not timed_out:
                    self._record(history, epoch, step, t_start, np.mean(losses), val_nse(model), w, adam.lr,
                                 var, z[:nth], act, gamma, ls)
                if timed_out:
                    stop = "time budget"
                    break
            v = val_nse(model)
            self._record(history, epoch, step, t_start, float(np.mean(losses)), v, w, adam.lr, var, z[:nth],
                         act, gamma, halvings, epoch_end=True)
            score = v if val is not None else float(np.mean(losses))
            if score < best["score"] - float(self.tol) or not np.isfinite(best["score"]):
                best, stall = {"score": score, "z": z.copy(), "model": model}, 0
            else:
                stall += 1
            if self.progress:
                print(f"barrier epoch {epoch:4d}  loss {np.mean(losses):.5g}  val_nse {v:.4f}  w {w:.3g}  "
                      f"lr {adam.lr:.3g}  halvings {halvings}")
            if stop:
                break
            if stall >= int(self.patience):
                stall = 0
                w *= float(self.weight_factor)
                adam.lr *= float(self.lr_factor)
                if w > float(self.max_weight):
                    stop = "barrier weight"
                    break
        self.stop_reason_ = stop or "max_epochs"
        self.history_ = history
        self.n_steps_ = step
        self.init_model_ = model0
        self.x0_ = best["z"][nth:].reshape(Bn, -1).copy()
        self.model_ = best["model"]
        v = var.unpack(best["z"][:nth])
        self.lifted_ = {"P": v["P"].copy(), "lam": v["lam"].copy()}
        self.certificate_ = self._certificate(self.model_, gamma)
        return self

    def _certificate(self, model, gamma):
        """certify() on the final weights; should the solver miss, the constructive certificate
        of the lifted point (Q = P^-1 on E x) — either way rigorously verified."""
        cert = certify(model, gamma=gamma, solver=self.solver) if gamma is not None else \
            certify(model, solver=self.solver)
        if not cert.certified:
            alt = certificate_from(model, np.linalg.inv(self.lifted_["P"]), self.lifted_["lam"], gamma,
                                   how="lifted point of the barrier method")
            cert = alt if alt.certified else cert
        if not (cert.certified and cert.verify(model).ok):
            raise RuntimeError(f"BarrierSGD: the final model could not be certified ({cert.reason})")
        return cert

    @staticmethod
    def _record(history, epoch, step, t_start, loss, v, w, lr, var, zt, act, gamma, ls, epoch_end=False):
        history.append({"epoch": epoch, "step": step, "seconds_since_start": time.perf_counter() - t_start,
                        "loss": float(loss), "val_nse": float(v), "barrier_weight": float(w), "lr": float(lr),
                        "min_eig": float(np.linalg.eigvalsh(var.lmi(zt, act, gamma))[0]), "line_search": int(ls),
                        "epoch_end": epoch_end})

    def simulate(self, u, x0=None):
        """Simulate the fitted model on ``u`` from ``x0`` (zero by default).

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)
        x0 : array_like, shape (n,), (1, n) or (batch, n), optional

        Returns
        -------
        numpy.ndarray
            Shape (T, p) or (batch, T, p), like ``u``.

        Raises
        ------
        NotFitted
            Before ``fit``.
        ValueError
            Invalid ``u`` or ``x0`` (see :meth:`ImplicitRNN.simulate`).
        """
        check_fitted(self, "simulate")
        return self.model_.simulate(u, x0)
