"""Fitting by sequential convex programming with exact SDP feasibility.

The fit works on normalised data (:class:`~rrnn_convex.scaling.ChannelScaling`, fitted on the
training data) and returns the model in the user's physical units; every certificate is stated
for that physical model. Iteration k, from a certified model theta_k with initial states x0_k
(one per training window):

1. :func:`~rrnn_convex.linearize.linearize` gives r, J'J, J'r and the initial-state blocks;
   the initial states are eliminated by a Schur complement (never storing J);
2. the convex problem ``min ||r + J d||^2 + mu ||d||^2  s.t.  theta_k + d in the model set`` is
   solved with cvxpy; it is built once and re-solved with new Parameter values. Its LMI margin
   is set below the current iterate's own slack (evaluated in the step problem itself), so
   ``d = 0`` with the current certificate point is always feasible;
3. the step is accepted when the true loss decreases by a fraction of the predicted decrease
   (ratio test) and the new model passes :func:`~rrnn_convex.certify.certify` (the rigorous
   check); mu follows the Levenberg-Marquardt rule. A failed or inaccurate solve is a rejected
   step with more damping, never the end of the fit. The trial steps, ratio test, mu rule and
   patience are :mod:`~rrnn_convex.levenberg`'s, shared with the LSTM baseline.

Everything an iteration changes is one frozen :class:`~rrnn_convex.fit_state.FitState`, which is
also what the checkpoint holds.

The fit stops on the iteration cap, the time budget (checked inside iterations as well), the
validation patience or convergence, and records which in ``stop_reason_``. Every accepted
iterate, and so the returned model, carries a verified certificate.
"""
from __future__ import annotations

import copy
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import cvxpy as cp
import numpy as np

from . import levenberg
from . import solvers as _solvers
from ._estimator import ParamsMixin, check_fitted, clone
from ._validation import check_integer, check_scalar, paired_sequences
from .activations import get_activation
from .certify import Certificate, certificate_from, certify
from .errors import NotCertifiable
from .fit_state import CHECKPOINT_VERSION, FitState  # noqa: F401 (CHECKPOINT_VERSION: re-exported)
from .init import elman_from_lti, linear_start, n4sid
from .levenberg import MU_MAX  # noqa: F401 (re-exported)
from .linearize import ParamLayout, linearize, thread_plan
from .metrics import nse
from .model import MIN_WELL_POSEDNESS_MARGIN, ImplicitRNN, well_posedness_margin
from .project import project
from .scaling import ChannelScaling
from .sets import ModelSet

#: the registered model set names (:meth:`ModelSet.names <rrnn_convex.sets.ModelSet.names>`), kept here
#: for compatibility
SET_NAMES = ModelSet.names()
BIASES = ("bx", "bv", "by")
STOP_REASONS = ("max_iter", "time_budget", "patience", "converged", "step_failures")
#: records up to this length are trained whole; longer ones in windows (``window="auto"``).
#: Whole records teach long-horizon behaviour (EMPS, an integrating plant, decimated to 2,485
#: samples: 3.5 mm test RMSE trained whole, 7.6 mm in 500-sample windows)
AUTO_WINDOW_MAX = 5000
#: the window length ``window="auto"`` uses for longer records
AUTO_WINDOW = 2048
#: ``batch_size="auto"``: each step linearises whole windows covering about this many samples (all
#: windows when they hold fewer). On the paper's sizes (n = q = 10, 460 weights) this makes the
#: linearisation cost about as much as the step SDP; on the paper's data (100 x 1000 samples),
#: in one run each on a shared machine, 15, 25 and 50 sequences per step reached validation NSE
#: .0289, .0293 and .0282 in 5 minutes, every sequence per step .0309 (benchmarks/fit_speed.py,
#: README "Where an iteration's time goes")
AUTO_BATCH_SAMPLES = 25_000
#: without a time budget, ``max_iter=None`` means this many iterations
DEFAULT_MAX_ITER = 50
#: iterations over which the relative loss decrease is compared with ``tol``
CONVERGENCE_WINDOW = 10
#: after an unconstrained step that left the set, this many attempts go straight to the step SDP
INTERIOR_PAUSE = 5
#: seconds for the smallest certifiable gamma of a fit's final model in a set without a gamma
#: (Theta): a barely contracting model's gamma SDP can stall Clarabel and then take SCS minutes
#: (the paper's Theta fit: 57 s, three SCS solves, for a gamma no lower than the 5-second
#: answer); past the limit the gamma proven from the contraction metric is reported
FINAL_GAMMA_TIME_LIMIT = 10.0
#: the phases of an iteration whose wall time the history records (``seconds_<phase>``)
PHASES = ("linearize", "step", "certificate", "loss")


class _PhaseTimer:
    """``with _PhaseTimer(totals, "step"):`` adds the block's wall time to ``totals["step"]``."""

    def __init__(self, totals: dict, phase: str):
        self.totals, self.phase = totals, phase

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.totals[self.phase] += time.perf_counter() - self.t0


# ---------------------------------------------------------------------- the step problem
@dataclass
class _StepProblem:
    """The convex step ``min ||R (theta - theta_k) + c||^2 (+ prox) s.t. the set's constraints``,
    built once.

    The objective is handed to the solver as a quadratic form in the step ``d = theta - theta_k``
    (a variable tied to theta by an equality): ``d' H d + 2 g' d`` with ``H = R'R``, ``g = R'c``
    (:func:`~rrnn_convex.solvers.solve_with_quadratic`). That keeps the dense R out of the
    constraint matrix: on the paper's model (462 weights) a Clarabel solve takes ~9 iterations
    instead of ~32, each an order of magnitude cheaper (``benchmarks/fit_speed.py``). Solvers that
    take no quadratic objective get the same step as ``sum_squares(R theta + c_abs)``
    (:meth:`residual_problem`, built on first use).

    ``theta`` is the vector of trainable model weights (layout order) as an affine cvxpy
    expression of the set's variables. With the free-C1 parametrisation (Ct = Lambda C1,
    Dt = Lambda D12) the model's C1 = Lambda^-1 Ct is not affine in (Ct, lambda); theta then
    holds its linearisation at the current point, ``C1_k + Lambda_k^-1 (Ct - diag(lambda) C1_k)``
    (exact at the current point, first-order around it), and a proximal term keeps lambda near
    lambda_k. The candidate model uses the exact C1 = Ct / lambda. A set built with
    ``equilibrium=True`` trains D11 the same way: its variable is Dt11 = Lambda D11, theta holds
    ``D11_k + Lambda_k^-1 (Dt11 - diag(lambda) D11_k)`` and the candidate's D11 is
    ``Dt11 / lambda``, with lambda as its proof of well-posedness (the LMI's dw block
    ``2 Lambda - Dt11 - Dt11' > 0``). ``margin`` is the LMI margin (a Parameter), set each
    iteration below the current iterate's slack.
    """

    problem: cp.Problem
    sv: object
    layout: ParamLayout
    theta: cp.Expression
    d: cp.Variable  # the step theta - theta_k
    theta_k: cp.Parameter
    g: cp.Parameter
    margin: cp.Parameter
    biases: dict = field(default_factory=dict)
    free_c1: dict = field(default_factory=dict)  # name -> (variable, Parameter C_k, Parameter G_k, lin var);
    # C1 (Ct), D12 (Dt) and D11 (Dt11) as far as the set has them as variables
    lam_ref: cp.Parameter | None = None
    inv: cp.Parameter | None = None
    prox: tuple | None = None
    warm: bool = False
    H: np.ndarray | None = None  # the quadratic form's matrix (numpy: added to the solver's data)
    R: np.ndarray | None = None  # its factor, for the residual form
    constant: np.ndarray | None = None  # c, for the residual form
    _residual: tuple | None = None  # (problem, R Parameter, c Parameter) once built
    extra_objective: object = 0  # the proximal term (free-C1 parametrisation)
    link: object = None  # the constraint d == theta - theta_k

    def set_objective(self, R: np.ndarray, c: np.ndarray, theta_k: np.ndarray) -> None:
        """The objective ``||R (theta - theta_k) + c||^2`` (plus the proximal term)."""
        self.R, self.constant = np.asarray(R, dtype=np.float64), np.asarray(c, dtype=np.float64)
        self.H = self.R.T @ self.R
        self.g.value = self.R.T @ self.constant
        self.theta_k.value = np.asarray(theta_k, dtype=np.float64)

    def solve(self, solver: str) -> _solvers.Attempt:
        """Solve the step with ``solver`` (the quadratic form; the residual form for a solver that
        takes no quadratic objective)."""
        if not self.warm:
            # canonicalise once up front: every step then goes through the cached path, so a
            # resumed fit reproduces the uninterrupted one exactly
            self.problem.get_problem_data(solver)
            self.warm = True
        att = _solvers.run(self.problem, solver, quadratic=(self.d, self.H), warm_start=False,
                           **_solvers.step_options(solver))
        if att.status == "solver_error" and "no quadratic objective" in att.detail:
            problem, R, c = self.residual_problem()
            R.value, c.value = self.R, self.constant - self.R @ self.theta_k.value
            att = _solvers.run(problem, solver, warm_start=False, **_solvers.step_options(solver))
        return att

    def residual_problem(self) -> tuple:
        """(problem, R, c): the same step as ``min ||R theta + c||^2`` with Parameters R, c."""
        if self._residual is None:
            P = self.layout.size
            R, c = cp.Parameter((P, P), name="R"), cp.Parameter(P, name="c")
            objective = cp.sum_squares(R @ self.theta + c) + self.extra_objective
            constraints = [con for con in self.problem.constraints if con is not self.link]
            self._residual = (cp.Problem(cp.Minimize(objective), constraints), R, c)
        return self._residual

    def set_point(self, model: ImplicitRNN, lam: np.ndarray | None, prox: float = 0.0) -> None:
        """Parameters of the linearisation of C1 = Ct / lambda at the current model, and the
        weight of the proximal term ``prox * ||lambda / lambda_k - 1||^2``."""
        if not self.free_c1:
            return
        lam = np.asarray(lam, dtype=np.float64)
        self.lam_ref.value = lam
        self.inv.value = 1.0 / lam
        self.prox[0].value = np.sqrt(prox) / lam
        self.prox[1].value = np.full(lam.shape, np.sqrt(prox))
        for name, (_, Ck, Gk, _) in self.free_c1.items():
            Ck.value = getattr(model, name)
            Gk.value = getattr(model, name) / lam[:, None]

    # -------------------------------------------------------------- the current point
    def load(self, model: ImplicitRNN, point: dict) -> bool:
        """Give every variable its value at ``d = 0``: the current weights and the certificate
        point ``point`` (certificate variable name -> value, as returned by :meth:`point`).
        Returns False (and loads nothing) when ``point`` lacks a certificate variable."""
        if any(v.name() not in point for v in self._cert_variables()):
            return False
        for name, var in self.sv.params.items():
            if isinstance(var, cp.Variable):
                var.value = np.asarray(getattr(model, name))
        for name, var in self.biases.items():
            var.value = np.asarray(getattr(model, name))
        for var in self._cert_variables():
            var.value = np.asarray(point[var.name()], dtype=np.float64).reshape(var.shape)
        lam = point.get("lam")
        for name, (var, _, _, lin) in self.free_c1.items():
            C = np.asarray(getattr(model, name))
            var.value = np.asarray(lam)[:, None] * C
            lin.value = C
        return True

    def _cert_variables(self) -> list:
        out = []
        for v in self.sv.cert.values():
            if isinstance(v, cp.Variable):
                out.append(v)
            elif isinstance(v, cp.Expression):
                out.extend(v.variables())
        seen, uniq = set(), []
        for v in out:
            if v.id not in seen:
                seen.add(v.id)
                uniq.append(v)
        return uniq

    def point(self) -> dict:
        """The certificate variables' values at the last solution (name -> array)."""
        return {v.name(): np.array(v.value, dtype=np.float64) for v in self._cert_variables()}

    def slack(self) -> float:
        """Smallest eigenvalue of the set's LMIs at the variables' current values, without the
        margin (>= 0: the point is in the set; the step problem then contains it)."""
        kept, self.margin.value = self.margin.value, 0.0  # evaluate M itself, not M - margin I
        worst = np.inf
        for con in self.sv.constraints:
            if isinstance(con, cp.constraints.PSD):
                M = np.asarray(con.expr.value, dtype=np.float64)
                worst = min(worst, float(np.linalg.eigvalsh(0.5 * (M + M.T))[0]))
        self.margin.value = kept
        return worst

    # -------------------------------------------------------------- the solution
    def model_at_solution(self, template: ImplicitRNN) -> ImplicitRNN:
        vals = []
        lam = None
        if self.free_c1:
            lam = np.asarray(self.sv.cert["lam"].value, dtype=np.float64)
            if np.any(lam <= 0):
                raise ValueError("lam: the step returned a non-positive multiplier; C1 = Ct / lambda undefined")
        for name in self.layout.names:
            if name in self.free_c1:
                vals.append((np.asarray(self.free_c1[name][0].value) / lam[:, None]).ravel())
                continue
            var = self.biases.get(name, self.sv.params.get(name))
            vals.append(np.asarray(var.value, dtype=np.float64).ravel())
        # a trained D11 is proved well-posed by the step's own multipliers (its LMI's dw block)
        return self.layout.unflatten(np.concatenate(vals), template,
                                     well_posed_multiplier=lam if "D11" in self.free_c1 else None)

    def multipliers(self) -> np.ndarray | None:
        return None if not self.free_c1 else np.asarray(self.sv.cert["lam"].value, dtype=np.float64)


def _build_step(model_set: ModelSet, template: ImplicitRNN, fixed: dict, train_biases: bool) -> _StepProblem:
    """The step problem of ``model_set`` for models shaped like ``template`` (see :class:`_StepProblem`);
    ``fixed`` weights are held, the biases are trained with ``train_biases``."""
    margin = cp.Parameter(nonneg=True, name="margin", value=float(model_set.margin))
    sv = model_set.replace(margin=margin).build(template.dims, template.activation, fixed=fixed)
    names = list(sv.free)
    free_c1 = _free_c1_variables(sv, template)
    names += list(free_c1)
    biases = {}
    if train_biases:
        for b in BIASES:
            biases[b] = cp.Variable(getattr(template, b).shape, name=b)
            names.append(b)
    layout = ParamLayout.for_model(template, names)
    lam_ref = inv = prox = None
    extra_obj = 0
    if free_c1:
        lam_ref, inv, prox, extra_obj = _multiplier_parameters(sv.cert["lam"], template.q)
    theta, links = _theta(layout, sv, biases, free_c1, inv, template)
    P = layout.size
    d, theta_k, g = cp.Variable(P, name="d"), cp.Parameter(P, name="theta_k"), cp.Parameter(P, name="g")
    link = d == theta - theta_k
    # a quadratic term of weight 0 makes cvxpy hand the solver a quadratic-objective matrix, to
    # which the step's H is added (solvers.solve_with_quadratic)
    zero = cp.Parameter(nonneg=True, name="zero", value=0.0)
    objective = 2 * g @ d + zero * cp.sum_squares(d) + extra_obj
    problem = cp.Problem(cp.Minimize(objective), sv.constraints + links + [link])
    return _StepProblem(problem, sv, layout, theta, d, theta_k, g, margin, biases, free_c1, lam_ref, inv, prox,
                        extra_objective=extra_obj, link=link)


def _free_c1_variables(sv, template: ImplicitRNN) -> dict:
    """name -> (variable Ct, Dt or Dt11, Parameter C_k, Parameter C_k / lambda_k, variable of the
    linearised C) for the weights the free-C1 parametrisation recovers from Ct = Lambda C1
    (Dt = Lambda D12, and Dt11 = Lambda D11 for a set with ``equilibrium=True``)."""
    free_c1 = {}
    for name, extra in (("C1", "Ct"), ("D12", "Dt"), ("D11", "Dt11")):
        # recovered from Ct = Lambda C1 (free_C1); D11 is never in params, its variable is Dt11
        if sv.params.get(name, 0) is None or (name == "D11" and extra in sv.extra):
            shape = getattr(template, name).shape
            free_c1[name] = (sv.extra[extra], cp.Parameter(shape, name=f"{name}_k"),
                             cp.Parameter(shape, name=f"{name}_over_lam_k"), cp.Variable(shape, name=f"{name}_lin"))
    return free_c1


def _multiplier_parameters(lam, q: int) -> tuple:
    """(lambda_k, 1 / lambda_k, the proximal weights, the proximal term) of the free-C1 step."""
    lam_ref = cp.Parameter(q, pos=True, name="lam_k")
    inv = cp.Parameter(q, pos=True, name="inv_lam_k")
    # prox * ||lam / lam_k - 1||^2 written DPP-style: ||w * lam - s||^2, w = sqrt(prox) / lam_k
    prox = (cp.Parameter(q, nonneg=True, name="prox_w"), cp.Parameter(q, nonneg=True, name="prox_s"))
    return lam_ref, inv, prox, cp.sum_squares(cp.multiply(prox[0], lam) - prox[1])


def _theta(layout: ParamLayout, sv, biases: dict, free_c1: dict, inv, template: ImplicitRNN) -> tuple:
    """(theta, links): the trainable weights in layout order as one affine expression, and the
    constraints that tie each linearised C1 (D12) variable to Ct (Dt) and lambda."""
    q = template.q
    parts, links = [], []
    for name in layout.names:
        if name in free_c1:
            var, Ck, Gk, lin = free_c1[name]
            cols = getattr(template, name).shape[1]
            lam_mat = cp.reshape(sv.cert["lam"], (q, 1), order="C") @ np.ones((1, cols))
            inv_mat = cp.reshape(inv, (q, 1), order="C") @ np.ones((1, cols))
            # a variable for the linearised C1 keeps R @ theta DPP (R times a parameter-free vector):
            # C1_lin = C1_k + Lambda_k^-1 (Ct - diag(lam) C1_k)
            links.append(lin == Ck + cp.multiply(inv_mat, var) - cp.multiply(lam_mat, Gk))
            parts.append(cp.vec(lin, order="C"))
        else:
            var = biases.get(name, sv.params.get(name))
            parts.append(cp.vec(var, order="C"))
    return cp.hstack(parts), links


def _default_fixed(model: ImplicitRNN, model_set: ModelSet) -> dict:
    """Weights held fixed: C1, D12 for the LMI sets' fixed_C1 parametrisation."""
    if model_set.uses_multiplier and model_set.parametrization == "fixed_C1":
        return {"C1": model.C1, "D12": model.D12}
    return {}


# ---------------------------------------------------------------------- training windows
@dataclass(frozen=True)
class Windows:
    """Training windows cut from the training sequences: window ``k`` is samples
    ``starts[k] .. starts[k] + length`` of sequence ``sequence[k]``.

    Parameters
    ----------
    length : int
        Samples per window.
    sequence : numpy.ndarray of int, shape (windows,)
        The training sequence each window is cut from.
    starts : numpy.ndarray of int, shape (windows,)
        The first sample of each window.
    """

    length: int
    sequence: np.ndarray
    starts: np.ndarray

    @classmethod
    def cut(cls, batch: int, T: int, length: int | None, stride: int | None) -> "Windows":
        """Windows of ``length`` samples every ``stride`` samples (the last one ends at T);
        ``length=None`` or ``length >= T``: the whole sequences.

        Parameters
        ----------
        batch : int
            Number of training sequences.
        T : int
            Their length.
        length : int or None
            Samples per window (not validated here: the estimator checks it).
        stride : int or None
            Samples between window starts (None: ``length``, no overlap).

        Returns
        -------
        Windows
            Sequence by sequence, the windows in the order of their starts; a last window is
            added at ``T - length`` when the stride does not reach it.
        """
        if length is None or length >= T:
            return cls(T, np.arange(batch), np.zeros(batch, dtype=int))
        stride = length if stride is None else stride
        starts = list(range(0, T - length + 1, stride))
        if starts[-1] != T - length:
            starts.append(T - length)
        seq = np.repeat(np.arange(batch), len(starts))
        return cls(int(length), seq, np.tile(np.asarray(starts, dtype=int), batch))

    @property
    def count(self) -> int:
        """The number of windows."""
        return int(self.sequence.shape[0])

    def whole(self, T: int) -> bool:
        """Whether the windows are whole sequences of length ``T``.

        Parameters
        ----------
        T : int
            The sequences' length.

        Returns
        -------
        bool
            True when every window is ``T`` samples long and starts at sample 0.
        """
        return self.length == T and not np.any(self.starts)

    def take(self, X: np.ndarray) -> np.ndarray:
        """(windows, length, channels) from (batch, T, channels).

        Parameters
        ----------
        X : numpy.ndarray, shape (batch, T, channels)
            Sequences as cut by :meth:`cut`.

        Returns
        -------
        numpy.ndarray, shape (windows, length, channels)
            A copy (fancy indexing).
        """
        idx = self.starts[:, None] + np.arange(self.length)[None, :]
        return X[self.sequence[:, None], idx]

    def states(self, model: ImplicitRNN, U: np.ndarray, x0: np.ndarray) -> np.ndarray:
        """The state at each window's start, simulating the whole sequences from ``x0``.

        Parameters
        ----------
        model : ImplicitRNN
            The model simulated.
        U : numpy.ndarray, shape (batch, T, m)
            The whole input sequences.
        x0 : numpy.ndarray, shape (batch, n)
            Their initial states (as accepted by :meth:`ImplicitRNN.simulate
            <rrnn_convex.model.ImplicitRNN.simulate>`).

        Returns
        -------
        numpy.ndarray, shape (windows, n)
            The simulated state at sample ``starts[k]`` of sequence ``sequence[k]``.
        """
        _, xs = model.simulate(U, x0, return_states=True)
        return xs[self.sequence, self.starts]

    def to_dict(self) -> dict:
        """The windows as a JSON-ready dict.

        Returns
        -------
        dict
            ``length``, ``count`` and the lists ``sequence`` and ``starts``.
        """
        return {"length": self.length, "count": self.count, "sequence": self.sequence.tolist(),
                "starts": self.starts.tolist()}


# ---------------------------------------------------------------------- the estimator
class RobustRNNRegressor(ParamsMixin):
    """Fit an implicit RNN in a model set by sequential convex programming.

    The parameters are stored as given, each as the attribute of the same name; ``fit`` does the
    work, scikit-learn style; ``get_params`` / ``set_params`` read and change them, and
    ``sklearn.base.clone`` works. They are validated by :meth:`fit`.

    Parameters
    ----------
    n_states, n_neurons : int
        Model size (n, q). The Elman-like sets (``"cirnn"``, ``"srnn"``, ``"elman"``) need
        ``n_neurons == n_states``.
    model_set : str
        A registered set name (:meth:`ModelSet.names <rrnn_convex.sets.ModelSet.names>`):
        "theta" (contracting), "theta_gamma" (needs ``gamma``), "cirnn", "srnn", "elman" (plain
        Elman RNN, no constraint), "unconstrained" (any implicit RNN); ``gamma`` given with
        model_set "theta" means "theta_gamma".
    gamma : float, optional
        The certified incremental l2 gain bound, in the data's physical units.
    activation : str, dict or Activation
        "relu" (default), "tanh", ... (see :mod:`rrnn_convex.activations`).
    parametrization : {"free_C1", "fixed_C1"}
        For Theta / Theta_gamma, "free_C1" (default: the neurons' input weights are trained
        through Ct = Lambda C1, Dt = Lambda D12, as the authors did; needs alpha = 0) or
        "fixed_C1" (random neurons C1, D12 stay fixed).
    normalize : bool
        Fit on data normalised per channel (mean 0, standard deviation 1, fitted on the
        training data; :class:`~rrnn_convex.scaling.ChannelScaling`). The returned model and
        its certificate are in physical units either way; gamma is always physical. Default True.
    window : "auto", int or None
        Train on windows of ``window`` samples (at least 2) cut every ``window_stride`` samples
        from each training sequence, each with its own learned initial state. ``"auto"``
        (default): whole sequences up to ``AUTO_WINDOW_MAX`` (5000) samples, else windows of
        ``AUTO_WINDOW`` (2048). None: whole sequences. Windows make long records cheap, but a
        window shorter than the plant's slowest time scale hides it (each window's initial
        state absorbs the drift).
    window_stride : int, optional
        Samples between window starts (default: ``window // 2``, i.e. half-overlapping).
    init_samples : int
        Samples at the start of each validation sequence used to estimate its initial
        state (:func:`~rrnn_convex.initial_state.estimate_initial_state`) and excluded from the
        validation NSE. 0 (default): zero initial state and the whole sequence (the paper's
        convention for its validation set).
    margin : float
        LMI margin of the step problems (the certificate is re-checked rigorously).
    max_iter : int, optional
        Iteration cap. None (default): no cap with a ``time_budget``, else
        ``DEFAULT_MAX_ITER`` (50).
    time_budget : float, optional
        Wall-time budget in seconds (None = no limit), checked inside iterations too.
    patience : int
        Stop after this many passes over the training data without a better validation NSE
        (only with validation data): ``patience`` accepted steps when every window is linearised
        at each step, ``patience * ceil(windows / batch)`` accepted steps with minibatches (each
        step sees a fraction of the data, and the validation NSE is noisier from step to step).
    tol : float
        Convergence: stop when the training loss fell by less than ``tol`` (relative) per
        iteration over the last ``CONVERGENCE_WINDOW`` (10) iterations, or when no damped step
        lowers it at all.
    mu0 : float
        Initial Levenberg-Marquardt damping (with "identity": relative to the mean diagonal of
        J'J).
    damping : {"marquardt", "identity"}
        "marquardt" (default: mu d' diag(J'J) d, independent of how each weight is scaled;
        on the paper's data it reached validation NSE .0526 for Theta_10 in 30 steps where
        "identity" reached .1183 in 40) or "identity" (mu ||d||^2).
    batch_size : "auto", int or None
        Training windows linearised per step, a new random minibatch at each step.
        ``"auto"`` (default): enough whole windows for about ``AUTO_BATCH_SAMPLES`` (25,000)
        samples, all of them when they hold fewer (then a fit is the same as with None). None:
        every window at every step. An integer: that many (all when it is not smaller than the
        number of windows). The step's cost grows with it, its accuracy too; ``batch_size_``
        records the count used last, each ``history_`` entry its own (``batch``).
    batch_growth : float
        At a plateau of the validation NSE (``patience`` passes over the data without a better
        one) a fit whose steps see fewer than all windows does not stop: it goes back to its
        best iterate and goes on with a minibatch this many times larger (rounded up, at most
        all windows), since a larger minibatch is a less noisy step
        (:func:`~rrnn_convex.levenberg.grown_batch`). The fit stops by patience only once the
        steps see every window. 1: no growth, stop at the first plateau (the behaviour before
        this option existed). Default 2.
    n_jobs : int
        Threads of the linearisation (default 2; -1: one per core): they share the training
        windows when the minibatch is large, else one folds the rows of J into J'J while
        another computes them (:func:`rrnn_convex.linearize.thread_plan`; measured on a 2-core
        machine, ``benchmarks/linearize_speed.py``). A fit is reproducible for a given n_jobs
        and batch size; another n_jobs can change the order of floating-point sums in J'J,
        which the step's solver can amplify (about 1e-5 relative in the first step's loss,
        measured).
    learn_x0 : bool
        Learn one initial state per training window (else zero initial states).
    train_biases : bool
        Train the biases bx, bv, by (else they keep the start model's values).
    seed : int
        For the random neurons (C1, D12), minibatches; fits are reproducible.
    solver : str, optional
        The SDP solver of the steps, projections and certificates (None: Clarabel, see
        :func:`~rrnn_convex.solvers.solver_sequence`).
    checkpoint : str or os.PathLike, optional
        A path (``.npz``) written atomically every ``checkpoint_every`` iterations, at the
        end, and on KeyboardInterrupt (SIGINT: the state at the start of the interrupted
        iteration); ``fit(..., resume=path)`` continues exactly from it.
    checkpoint_every : int
        Iterations between checkpoints.
    progress : bool
        Show a tqdm progress bar (loss, validation NSE, mu, margin).
    gamma_path : sequence of float
        Continuation in gamma for Theta_gamma, gammas decreasing towards ``gamma``.
        ``gamma_path=(10, 5)`` with ``gamma=3`` first fits Theta_10 from the N4SID start
        (``path_iter`` iterations), projects that model onto Theta_5 and fits it (``path_iter``
        iterations), then projects onto Theta_3 and fits the final model. A small gamma well
        below the data's gain otherwise tends to stall in a poor local minimum near the
        projected LTI start (paper data, gamma = 5: validation NSE .196 from the N4SID start,
        .109 through gamma 10). ``time_budget`` covers all stages; each stage is recorded in
        ``path_``; ``resume`` continues the final stage only (the stages before it are short and
        not checkpointed).
    path_iter : int
        Iterations of each ``gamma_path`` stage before the final one.
    restarts : int
        The fit is non-convex and its local minima depend on the random neurons. With
        ``restarts=k`` (k > 1), k starts with seeds ``seed``, ``seed + 1``, ... are each fitted
        for ``restart_iter`` iterations (and at most ``1 / (2k)`` of the time budget), and the
        best one (validation NSE, else training loss) is continued; or, with
        ``restart_iter=None``, each is fitted whole and the best one is the result. Recorded in ``restarts_``;
        only with the N4SID start (not with ``init_model`` or ``resume``).
    restart_iter : int or None
        Iterations of each restart before the best one is continued. None: each start is
        fitted to its own stop (patience, convergence, ``max_iter``, or its share of the time
        budget: what is left of it divided by the starts still to run), and the best of the
        finished fits is the result, not continued. Short restarts judge a start by its first
        iterations, whole ones by where it ends, at ``restarts`` times the cost (measured in
        ``benchmarks/restarts.py``; README "Several starts").
    equilibrium : bool
        Train an equilibrium weight D11 too (``v = C1 x + D11 w + D12 u + bv``, docs/design.md
        section 2.5), through the set's convex variable ``Dt11 = Lambda D11`` as for C1 (the
        sets' ``equilibrium=True``). Only for "theta" and "theta_gamma" with ``"free_C1"``.
        The start has ``D11 = 0``; a D11 with a cycle makes each simulation solve an
        equilibrium per time step (slower). Default False: exactly the fit without D11.

    Attributes
    ----------
    model_ : ImplicitRNN
        The fitted model (the best iterate by validation NSE, else the last), in physical units.
    certificate_ : Certificate or None
        Verified, for ``model_``, with the smallest certifiable gamma for the sets without a
        gamma (searched for at most ``FINAL_GAMMA_TIME_LIMIT`` seconds; past that, the gamma
        proven from the contraction metric); None for "unconstrained" and "elman" unless the
        final model happens to certify.
    history_ : list of dict
        One dict per iteration: ``iteration``, ``loss`` (normalised sum of squares), ``val_nse``,
        ``mu``, ``accepted``, ``batch`` (windows linearised), ``margin``, ``slack``, ``seconds``,
        ``info``, ``step_sdps``, ``interior_steps``, ``seconds_<phase>`` (for each of ``PHASES``) and
        ``certificate_from``.
    x0_ : numpy.ndarray, shape (windows, n)
        Learned initial states of ``model_``, one per training window (a scaling leaves the
        state unchanged).
    windows_ : Windows
        The training windows.
    batch_size_ : int or None
        Windows per step at the end of the fit (after any growth, ``batch_growth``); None: all.
    scaling_ : ChannelScaling
        The normalisation fitted on the training data.
    start_ : dict
        How the start was chosen.
    stop_reason_ : str
        One of ``STOP_REASONS``.
    stop_detail_ : str
        The stop reason in words.
    n_iter_ : int
        Iterations run (of the final stage).
    path_ : list of dict
        One dict per ``gamma_path`` stage: gamma, iterations, val_nse, seconds, stop_reason.
    restarts_ : list of dict
        One dict per restart: seed, iterations, score, scored_by, seconds, stop_reason,
        stop_detail, chosen,
        and model (its best iterate when its phase ended, physical units; the chosen one's
        ``model_`` differs only if the fit continued it).

    Notes
    -----
    The start: N4SID models of orders 1..n on the normalised training sequences, the one with
    the smallest training simulation error, padded to n states with input filters, in
    coordinates whose states have unit covariance along the data, embedded in Theta by its
    Lyapunov matrix (:func:`~rrnn_convex.init.linear_start`); random neurons; its initial
    states seed the learned ones.
    """

    def __init__(self, n_states: int = 10, n_neurons: int = 10, *, model_set: str = "theta",
                 gamma: float | None = None, activation="relu", parametrization: str = "free_C1",
                 normalize: bool = True, window="auto", window_stride: int | None = None, init_samples: int = 0,
                 margin: float = 1e-6, max_iter: int | None = None, time_budget: float | None = None,
                 patience: int = 10, tol: float = 1e-6, mu0: float = 1e-3, damping: str = "marquardt",
                 batch_size="auto", batch_growth: float = 2.0, n_jobs: int = 2,
                 learn_x0: bool = True, train_biases: bool = True, seed: int = 0, solver: str | None = None,
                 checkpoint=None, checkpoint_every: int = 5, progress: bool = True,
                 gamma_path=(), path_iter: int = 15, restarts: int = 1, restart_iter: int = 20,
                 equilibrium: bool = False):
        self.n_states = n_states
        self.n_neurons = n_neurons
        self.model_set = model_set
        self.gamma = gamma
        self.activation = activation
        self.parametrization = parametrization
        self.normalize = normalize
        self.window = window
        self.window_stride = window_stride
        self.init_samples = init_samples
        self.margin = margin
        self.max_iter = max_iter
        self.time_budget = time_budget
        self.patience = patience
        self.tol = tol
        self.mu0 = mu0
        self.damping = damping
        self.batch_size = batch_size
        self.batch_growth = batch_growth
        self.n_jobs = n_jobs
        self.learn_x0 = learn_x0
        self.train_biases = train_biases
        self.seed = seed
        self.solver = solver
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.gamma_path = gamma_path
        self.path_iter = path_iter
        self.restarts = restarts
        self.restart_iter = restart_iter
        self.equilibrium = equilibrium

    # ------------------------------------------------------------------ settings
    def _set(self, scaling: ChannelScaling | None = None) -> ModelSet:
        """The model set; Theta_gamma with ``scaling`` bounds the gain of the physical model."""
        if self.equilibrium not in (True, False):
            raise ValueError(f"equilibrium: expected True or False, got {self.equilibrium!r}")
        if not self.equilibrium:  # exactly the set of a fit without D11
            return ModelSet.from_name(self._set_name(), gamma=self.gamma, margin=self.margin,
                                      parametrization=self.parametrization, scaling=scaling)
        ms = ModelSet.from_name(self._set_name(), gamma=self.gamma, margin=self.margin,
                                parametrization=self.parametrization, scaling=scaling, equilibrium=True)
        if not getattr(ms, "equilibrium", False):
            names = " or ".join(repr(k) for k in ModelSet.names()
                                if "equilibrium" in ModelSet.registered(k).name_options)
            raise ValueError(f"equilibrium: a trainable D11 needs model_set {names}, got model_set {self.model_set!r}")
        if self.parametrization != "free_C1":
            raise ValueError(f"equilibrium: a trainable D11 needs parametrization='free_C1' (its variable is "
                             f"Dt11 = Lambda D11), got {self.parametrization!r}")
        return ms

    def _set_name(self) -> str:
        """``model_set``, where a gamma given with a set that bounds no gain names its gain-bounded
        counterpart ("theta" -> "theta_gamma")."""
        name = self.model_set
        if self.gamma is not None and name in ModelSet.names():
            name = ModelSet.registered(name).gain_bounded or name
        return name

    def _iteration_cap(self) -> int | None:
        if self.max_iter is None:
            return None if self.time_budget is not None else DEFAULT_MAX_ITER
        if isinstance(self.max_iter, bool) or int(self.max_iter) != self.max_iter or self.max_iter < 0:
            raise ValueError(f"max_iter: expected a non-negative integer or None, got {self.max_iter!r}")
        return int(self.max_iter)

    def _windows(self, batch: int, T: int) -> Windows:
        w, stride = self.window, self.window_stride
        if isinstance(w, str):
            if w != "auto":
                raise ValueError(f"window: expected 'auto', None or a number of samples, got {w!r}")
            w = None if T <= AUTO_WINDOW_MAX else AUTO_WINDOW
        if w is not None:
            w = check_integer(w, "window", low=2, expected="an integer of at least 2 samples")
        if w is not None and stride is None:
            stride = max(w // 2, 1)
        if stride is not None:
            stride = check_integer(stride, "window_stride")
        return Windows.cut(batch, T, w, stride)

    def _init_samples(self, T: int | None = None) -> int:
        k = self.init_samples
        if isinstance(k, bool) or int(k) != k or k < 0:
            raise ValueError(f"init_samples: expected a non-negative integer, got {k!r}")
        if T is not None and k >= T:
            raise ValueError(f"init_samples: expected fewer than the validation length {T}, got {k}")
        return int(k)

    def _scaling(self, U, Y) -> ChannelScaling:
        if self.normalize not in (True, False):
            raise ValueError(f"normalize: expected True or False, got {self.normalize!r}")
        return ChannelScaling.fit(U, Y) if self.normalize else ChannelScaling.identity(U.shape[2], Y.shape[2])

    # ------------------------------------------------------------------ the start
    def initial_model(self, u, y, model_set: ModelSet | None = None) -> ImplicitRNN:
        """The start of a fit on (u, y), in physical units.

        Parameters
        ----------
        u, y : array_like
            Training inputs (batch, T, m) and outputs (batch, T, p).
        model_set : ModelSet, optional
            Another set to embed the start in (:meth:`ModelSet.from_name
            <rrnn_convex.sets.ModelSet.from_name>`); default: the estimator's own set.

        Returns
        -------
        ImplicitRNN
            The N4SID start (see the class docstring) embedded in the set, in physical units.

        Raises
        ------
        ValueError
            For bad data or settings (naming the argument).
        """
        U, Y = paired_sequences(u, y)
        scaling = self._scaling(U, Y)
        model_set = self._set() if model_set is None else model_set
        model, _, _ = self._start(scaling.normalize_inputs(U), scaling.normalize_outputs(Y), model_set, scaling)
        return scaling.to_physical(model)

    def _start(self, U, Y, model_set: ModelSet, scaling: ChannelScaling, seed: int | None = None):
        """(normalised start model, initial state per sequence, report) from normalised data;
        ``seed`` (default ``self.seed``) draws the random neurons."""
        seed = self.seed if seed is None else seed
        act = get_activation(self.activation)
        if model_set.elman_structure:
            model, report = self._elman_start(U, Y, model_set, act, np.random.default_rng(seed))
            return model, None, report
        return self._linear_start(U, Y, model_set, scaling, act, seed)

    def _elman_start(self, U, Y, model_set: ModelSet, act, rng) -> tuple[ImplicitRNN, dict]:
        """(start, report) for the sets of Elman RNNs: the N4SID model itself where the set has no
        constraint and the activation is ReLU, else small random weights (no linear path)."""
        n, q = int(self.n_states), int(self.n_neurons)
        if q != n:
            raise ValueError(f"n_neurons: the {model_set.name} needs n_neurons == n_states, got {q} and {n}")
        A, B, C, D = n4sid(U, Y, n)
        report = {"order": n, "kind": model_set.name}
        if not model_set.certifies and act.name == "relu":
            # unconstrained ReLU RNN: the N4SID model itself, by a state shift (init.elman_from_lti)
            return elman_from_lti(A, B, C, D, u=U), report
        # the constrained Elman-like sets have no linear path: start from small random weights
        W = rng.standard_normal((n, n)) * 0.5 / np.sqrt(n)
        return ImplicitRNN.from_elman(W, 0.5 * rng.standard_normal((n, U.shape[2])), C=C, D=D, activation=act), report

    def _linear_start(self, U, Y, model_set: ModelSet, scaling: ChannelScaling, act, seed: int):
        """(start, initial states, report) for the implicit RNN sets: the best N4SID model padded and
        embedded (:func:`~rrnn_convex.init.linear_start`), projected onto the set's gamma when it
        does not certify it."""
        start = linear_start(U, Y, int(self.n_states), seed=seed)
        model = start.to_model(int(self.n_neurons), act, seed=seed)
        report = start.report()
        gamma = model_set.gamma
        if gamma is not None:
            phys = scaling.to_physical(model)
            if not model_set.certificate(phys, solver=self.solver).certified:
                model = scaling.to_normalized(project(phys, gamma=gamma, solver=self.solver, norm="implicit").model)
                report["projected_onto_gamma"] = float(gamma)
        return model, start.x0, report

    # ------------------------------------------------------------------ gamma path
    def _gamma_path(self, model_set: ModelSet) -> tuple[float, ...]:
        path = tuple(check_scalar(g, "gamma_path", low=0.0) for g in (self.gamma_path or ()))
        if not path:
            return ()
        gamma = model_set.gamma
        if gamma is None:
            gain_names = " or ".join(repr(k) for k in ModelSet.names_where(gain=True))
            raise ValueError(f"gamma_path: only for model_set {gain_names}, got {self.model_set!r}")
        steps = path + (gamma,)
        if any(a <= b for a, b in zip(steps, steps[1:])):
            raise ValueError(f"gamma_path: expected gammas decreasing towards gamma={gamma:g}, got {list(path)}")
        check_integer(self.path_iter, "path_iter")
        return path

    def _run_path(self, path, U, Y, val, init_model, gamma, t_start) -> ImplicitRNN:
        """Fit each stage of ``gamma_path`` from the previous stage's model; return the last one
        (physical units) in Theta_gamma (the start of the final stage)."""
        model = init_model
        for g in path:
            budget = None if self.time_budget is None else max(self.time_budget - (time.perf_counter() - t_start), 0.0)
            stage = clone(self).set_params(gamma=g, model_set=self._set_name(), gamma_path=(),
                                           max_iter=int(self.path_iter), time_budget=budget, checkpoint=None)
            t0 = time.perf_counter()
            start = None if model is None else self._into(model, g)
            stage.fit(U, Y, validation=val, init_model=start)
            model = stage.model_
            self.path_.append({"gamma": float(g), "iterations": stage.n_iter_,
                               "val_nse": min((h["val_nse"] for h in stage.history_), default=float("nan")),
                               "seconds": time.perf_counter() - t0, "stop_reason": stage.stop_reason_})
        return self._into(model, gamma)

    def _into(self, model: ImplicitRNN, gamma: float) -> ImplicitRNN:
        """``model`` if it certifies in Theta_gamma, else its projection (physical units)."""
        if certify(model, gamma=gamma, solver=self.solver).certified:
            return model
        proj = project(model, gamma=gamma, solver=self.solver, norm="implicit")
        if proj.certificate is None or not proj.certificate.certified:
            raise NotCertifiable(f"gamma_path: projecting the stage model onto Theta_{gamma:g} gave no certified model")
        return proj.model

    # ------------------------------------------------------------------ fitting
    def fit(self, u, y, validation=None, *, init_model: ImplicitRNN | None = None, resume=None):
        """Fit to training sequences ``u`` (batch, T, m), ``y`` (batch, T, p); returns self.

        ``validation``: (u_val, y_val) for early stopping, simulated from the initial state
        estimated over its first ``init_samples`` samples (zero state when ``init_samples`` is 0).
        ``init_model``: start here (physical units) instead of the N4SID start; it must be in the
        set. ``resume``: a checkpoint written by a previous fit with the same settings and data.

        Parameters
        ----------
        u : array_like, shape (batch, T, m) or (T, m)
            Training inputs, physical units.
        y : array_like, shape (batch, T, p) or (T, p)
            Training outputs.
        validation : tuple of array_like, optional
            ``(u_val, y_val)`` with the training data's channels (any batch and length).
        init_model : ImplicitRNN, optional
            The start, in physical units and in the set.
        resume : str or os.PathLike, optional
            A checkpoint to continue from (see ``checkpoint``).

        Returns
        -------
        RobustRNNRegressor
            ``self``, with the fitted attributes set.

        Raises
        ------
        ValueError
            Bad data (shapes, NaN/inf, validation channels that differ), an invalid setting
            (naming it), an ``init_model`` with other dimensions or not in the set, or a
            checkpoint that is not one or was written for other settings or data.
        TypeError
            An ``init_model`` that is not an ImplicitRNN, or a non-numeric setting.
        FileNotFoundError
            No checkpoint at ``resume``.
        NotCertifiable
            No certified start: the start has no point in the lifted LMI, or a ``gamma_path``
            stage model does not project onto the next gamma.
        SolverUnavailable
            The requested ``solver`` cannot run here.
        KeyboardInterrupt
            Re-raised after the checkpoint (if any) is written.
        """
        t_start = time.perf_counter()
        U, Y = paired_sequences(u, y)
        val = None if validation is None else paired_sequences(*validation, names=("validation u", "validation y"))
        if val is not None and (val[0].shape[2], val[1].shape[2]) != (U.shape[2], Y.shape[2]):
            raise ValueError(f"validation: expected {U.shape[2]} input and {Y.shape[2]} output channels like the "
                             f"training data, got {val[0].shape[2]} and {val[1].shape[2]}")
        if self.damping not in ("identity", "marquardt"):
            raise ValueError(f"damping: expected 'identity' or 'marquardt', got {self.damping!r}")
        cap = self._iteration_cap()
        self._jobs()
        check_scalar(self.tol, "tol", low=0.0, low_inclusive=True)
        k_init = self._init_samples(None if val is None else val[0].shape[1])
        scaling = self._scaling(U, Y)
        model_set = self._set(scaling)
        path = self._gamma_path(model_set)
        windows = self._windows(U.shape[0], U.shape[1])
        self.batch_size_ = self._batch(windows)
        self.path_ = []
        if path and resume is None:
            init_model = self._run_path(path, U, Y, val, init_model, model_set.gamma, t_start)
        self.restarts_ = []
        if self._restarts() > 1 and resume is None and init_model is None:
            run = self._explore(model_set, scaling, windows, U, Y, val, k_init, cap, t_start)
        else:
            run = _Run(self, model_set, scaling, windows, U, Y, val, k_init, cap, t_start)
            run.prepare(init_model, resume)
        if run.stop_reason is None:  # else a start fitted whole by _explore, already stopped
            run.loop()
        run.finish()
        return self

    def _batch(self, windows: Windows) -> int | None:
        """``batch_size`` as windows per step for ``windows``: None when every window is used."""
        b = self.batch_size
        if isinstance(b, str):
            if b != "auto":
                raise ValueError(f"batch_size: expected 'auto', None or a positive integer, got {b!r}")
            b = -(-AUTO_BATCH_SAMPLES // windows.length)
        elif b is not None and (isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1):
            raise ValueError(f"batch_size: expected 'auto', None or a positive integer, got {b!r}")
        return None if b is None or b >= windows.count else int(b)

    def _batch_growth(self) -> float:
        """``batch_growth``, checked: a finite number of at least 1."""
        g = self.batch_growth
        if isinstance(g, bool) or not isinstance(g, (int, float, np.integer, np.floating)) \
                or not np.isfinite(g) or g < 1:
            raise ValueError(f"batch_growth: expected a finite number of at least 1 (1: no growth), got {g!r}")
        return float(g)

    def _jobs(self) -> int:
        """``n_jobs`` as a number of threads (-1: one per core)."""
        k = self.n_jobs
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not (k >= 1 or k == -1):
            raise ValueError(f"n_jobs: expected a positive integer or -1 (one thread per core), got {k!r}")
        return int(os.cpu_count() or 1) if k == -1 else int(k)

    def _restarts(self) -> int:
        if self.restart_iter is not None:
            check_integer(self.restart_iter, "restart_iter",
                          expected="a positive integer or None (each start fitted to its own stop)")
        return check_integer(self.restarts, "restarts")

    def _explore(self, model_set, scaling, windows, U, Y, val, k_init, cap, t_start) -> "_Run":
        """``restarts`` fits from starts with different random neurons (seeds ``seed``,
        ``seed + 1``, ...); returns the best one (:meth:`_Run.score`). With an integer
        ``restart_iter`` each runs that many iterations and at most a ``1 / (2 restarts)`` share of
        the time budget, and the best is returned without a stop reason, to be continued. With
        ``restart_iter=None`` each runs to its own stop, with what is left of the budget shared
        among the starts still to run, and the best is returned stopped. Only the one returned
        writes checkpoints (from then on)."""
        k = self._restarts()
        whole = self.restart_iter is None
        best = None  # only the best run so far is kept: each holds its own copy of the training data
        for i in range(k):
            run = _Run(self, model_set, scaling, windows, U, Y, val, k_init, cap, t_start, seed=int(self.seed) + i)
            run.checkpointing = False
            run.prepare(None, None)
            t0 = time.perf_counter()
            if whole:
                share = None if run.deadline is None else (run.deadline - t0) / (k - i)
                run.loop(phase_deadline=None if share is None else t0 + share)
                if run.stop_reason is None:  # its share of the budget ran out
                    run.stop("time_budget", f"{share:.0f} s, start {i + 1}'s share of the {self.time_budget:g} s "
                                            f"budget of {k} starts")
            else:
                share = None if self.time_budget is None else float(self.time_budget) / (2 * k)
                run.loop(phase_iterations=int(self.restart_iter), phase_deadline=None if share is None else t0 + share)
            if best is None or run.score() < best.score():
                best = run
            self.restarts_.append({"seed": run.seed, "iterations": len(run.state.history), "score": run.score(),
                                   "model": scaling.to_physical(run.state.best_model),
                                   "scored_by": "validation NSE" if val is not None else "training loss",
                                   "seconds": time.perf_counter() - t0, "stop_reason": run.stop_reason,
                                   "stop_detail": run.stop_detail})
        for entry in self.restarts_:
            entry["chosen"] = entry["seed"] == best.seed
        best.checkpointing = bool(self.checkpoint)
        if not whole and best.stop_reason in ("patience", "converged", "step_failures"):
            best.stop_reason, best.stop_detail = None, ""  # its own phase ended it; the budget is the fit's
        return best

    def simulate(self, u, x0=None, *, y_init=None, init_samples=None):
        """Simulate the fitted model (physical units; zero initial state by default, or the
        state estimated from the first ``init_samples`` samples of ``y_init``); does not change
        state. See :meth:`ImplicitRNN.simulate <rrnn_convex.model.ImplicitRNN.simulate>`.

        Parameters
        ----------
        u : array_like, shape (T, m) or (batch, T, m)
            Inputs, physical units.
        x0 : array_like, shape (n,), (1, n) or (batch, n), optional
            Initial state(s); zeros by default. Excludes ``y_init``.
        y_init : array_like, optional
            Measured outputs shaped like ``u`` with p channels, to estimate the initial state
            from (with ``init_samples``).
        init_samples : int, optional
            How many leading samples of ``y_init`` the estimate uses.

        Returns
        -------
        numpy.ndarray
            The outputs, shape (T, p) or (batch, T, p) like ``u``.

        Raises
        ------
        NotFitted
            Before :meth:`fit`.
        ValueError
            Wrong shapes or NaN/inf, or an invalid combination of ``x0``, ``y_init`` and
            ``init_samples``.
        """
        check_fitted(self, "simulate")
        if y_init is None and init_samples is None:
            return self.model_.simulate(u, x0)
        return self.model_.simulate(u, x0, y_init=y_init, init_samples=init_samples)

    def save(self, path, meta: dict | None = None) -> Path:
        """Write the fitted model (``.npz``, with the scaling and ``meta`` recorded) and its
        certificate (``.cert.json`` beside it), atomically.

        Parameters
        ----------
        path : str or os.PathLike
            The model file; ``.npz`` is appended when the suffix is different.
        meta : dict, optional
            JSON-serialisable metadata, stored with ``scaling`` and ``init_samples`` (keys of
            ``meta`` replace those two).

        Returns
        -------
        pathlib.Path
            The model file written; the certificate (when ``certificate_`` is not None) is at
            ``path.with_suffix(".cert.json")``.

        Raises
        ------
        NotFitted
            Before :meth:`fit`.
        TypeError, ValueError
            ``meta`` that is not a dict or not JSON-serialisable.
        """
        check_fitted(self, "save")
        info = {"scaling": self.scaling_.to_dict(), "init_samples": int(self.init_samples)} | dict(meta or {})
        out = self.model_.save(path, meta=info)
        if self.certificate_ is not None:
            self.certificate_.to_json(out.with_suffix(".cert.json"))
        return out


# ---------------------------------------------------------------------- one fit
class _Run:
    """One run of the SCP loop: the data in normalised coordinates, the step problem, the state."""

    def __init__(self, est: RobustRNNRegressor, model_set, scaling, windows, U, Y, val, k_init, cap, t_start,
                 seed: int | None = None):
        self.est, self.model_set, self.scaling, self.windows = est, model_set, scaling, windows
        self.growth = est._batch_growth()
        self.start_batch = est._batch(windows)  # before any growth (``batch``)
        self.seed = est.seed if seed is None else int(seed)
        self.U, self.Y = U, Y  # physical
        self.Un, self.Yn = scaling.normalize_inputs(U), scaling.normalize_outputs(Y)
        self.UW, self.YW = windows.take(self.Un), windows.take(self.Yn)
        self.val = None if val is None else (scaling.normalize_inputs(val[0]), scaling.normalize_outputs(val[1]))
        self.k_init, self.cap, self.t_start = k_init, cap, t_start
        self.deadline = None if est.time_budget is None else t_start + float(est.time_budget)
        self.rng = np.random.default_rng(self.seed)
        self.checkpointing = bool(est.checkpoint)
        self.stop_reason, self.stop_detail = None, ""
        self.steps_by_kind = {"interior": 0, "sdp": 0}
        self.cert_source = ""  # where the last candidate's certificate came from
        self.phase_seconds = dict.fromkeys(PHASES, 0.0)  # cumulative wall time per phase
        self.start_report: dict = {}

    # -------------------------------------------------------------- set-up
    def prepare(self, init_model, resume) -> None:
        """Set up the run: the starting state (from the checkpoint ``resume``, from ``init_model`` or
        the estimator's start), its certificate, the step problem and the solvers."""
        est, ms = self.est, self.model_set
        if resume is not None:
            state = self.resumed_state(resume)
        else:
            state, x0_seq = self.new_state(init_model)
        self.check_dims(state.model)
        cert = ms.certificate(self.scaling.to_physical(state.model), solver=est.solver)
        if cert is not None and not cert.certified:
            raise ValueError(f"init_model: the starting model is not in the {ms.name} set "
                             f"({cert.reason}); project it first")
        if resume is None:
            state = self.embedded(state, x0_seq)
        model = state.model
        if state.x0.shape != (self.windows.count, model.n):
            raise ValueError(f"resume: the checkpoint has {state.x0.shape[0]} initial states, the data "
                             f"{self.windows.count} training windows")
        self.state, self.cert = state, cert
        self.step = _build_step(ms, model, _default_fixed(model, ms), est.train_biases)
        # steps use one solver: when it fails, a larger mu (a better-conditioned step) is the first
        # remedy; after two failures in a row the other solvers are tried too
        self.solvers = _solvers.solver_sequence(est.solver, fallback=False)
        self.fallbacks = _solvers.solver_sequence(est.solver, fallback=True)
        self.sequence = self.solvers
        if not state.history:
            self.state = replace(state, best_val=self.val_nse(model))

    def resumed_state(self, resume) -> FitState:
        """The state saved in the checkpoint ``resume`` (checked against this fit's settings and
        data); the random generator continues from it."""
        state, meta = FitState.load(resume)
        state.check_resume(resume, FitState.settings_of(self))
        if meta["scaling"] != self.scaling.to_dict() or meta["windows"]["count"] != self.windows.count:
            raise ValueError("resume: the checkpoint was written for other data or settings "
                             "(its scaling or training windows differ from this fit's)")
        self.rng.bit_generator.state = state.rng_state
        self.start_report = {"resumed_from": str(resume)}
        return state

    def new_state(self, init_model) -> tuple[FitState, np.ndarray | None]:
        """(state at the start, initial state per training sequence or None): ``init_model``
        (physical units) or the estimator's start."""
        if init_model is not None:
            if not isinstance(init_model, ImplicitRNN):
                raise TypeError(f"init_model: expected an ImplicitRNN, got {type(init_model).__name__}")
            self.check_dims(init_model)
            model = self.scaling.to_normalized(init_model)
            x0_seq, self.start_report = None, {"init_model": True}
        else:
            model, x0_seq, self.start_report = self.est._start(self.Un, self.Yn, self.model_set, self.scaling,
                                                               seed=self.seed)
            self.start_report["seed"] = self.seed
        state = FitState(model, np.zeros((self.windows.count, model.n)), {}, settings=FitState.settings_of(self))
        return state, x0_seq

    def embedded(self, state: FitState, x0_seq: np.ndarray | None) -> FitState:
        """A new fit's state with the model in the lifted form of an LMI set (and its certificate
        point), the windows' initial states simulated from ``x0_seq`` and the best model so far."""
        ms, model = self.model_set, state.model
        if ms.uses_multiplier:
            model, point = ms.lifted_form(model, self.scaling, self.est.solver)
            state = replace(state, model=model, point=point)
        if self.est.learn_x0:
            if x0_seq is None:
                x0_seq = np.zeros((self.U.shape[0], model.n))
            state = replace(state, x0=self.windows.states(model, self.Un, x0_seq))
        return replace(state, best_model=model, best_x0=state.x0.copy(), best_point=state.point)

    def check_dims(self, model: ImplicitRNN) -> None:
        if model.dims["m"] != self.U.shape[2] or model.dims["p"] != self.Y.shape[2]:
            raise ValueError(f"u, y: the model has m={model.m}, p={model.p}; data has {self.U.shape[2]}, "
                             f"{self.Y.shape[2]}")

    # -------------------------------------------------------------- measures
    def val_nse(self, model: ImplicitRNN) -> float:
        if self.val is None:
            return float("nan")
        with _PhaseTimer(self.phase_seconds, "loss"):
            return self._val_nse(model)

    def _val_nse(self, model: ImplicitRNN) -> float:
        Uv, Yv = self.val
        if self.k_init:
            from .initial_state import estimate_initial_state
            x0 = estimate_initial_state(model, Uv, Yv, self.k_init)
        else:
            x0 = None
        with np.errstate(over="ignore", invalid="ignore"):
            y = model.simulate(Uv, x0)
        if not np.all(np.isfinite(y)):
            return float("inf")
        return float(np.mean(nse(y, Yv, init=self.k_init)))

    def loss(self, model: ImplicitRNN, x0: np.ndarray, idx: np.ndarray) -> float:
        x = x0[idx] if self.est.learn_x0 else None
        with _PhaseTimer(self.phase_seconds, "loss"), np.errstate(over="ignore", invalid="ignore"):
            # a diverging candidate: inf, rejected
            L = float(np.sum((model.simulate(self.UW[idx], x) - self.YW[idx]) ** 2))
        return L if np.isfinite(L) else np.inf

    def time_left(self) -> bool:
        return self.deadline is None or time.perf_counter() < self.deadline

    # -------------------------------------------------------------- the loop
    def loop(self, phase_iterations: int | None = None, phase_deadline: float | None = None) -> None:
        """Iterate until a stop reason; with ``phase_iterations`` / ``phase_deadline`` (a
        restart's exploration phase) also return, without a stop reason, at that many
        iterations in all or at that time."""
        est = self.est
        bar = _progress(est.progress, self.cap, len(self.state.history))
        snapshot = None
        try:
            while True:
                st = self.state
                if self.cap is not None and len(st.history) >= self.cap:
                    self.stop("max_iter", f"{self.cap} iterations")
                    break
                if not self.time_left():
                    self.stop("time_budget", f"{est.time_budget:g} s")
                    break
                if (phase_iterations is not None and len(st.history) >= phase_iterations) or \
                        (phase_deadline is not None and time.perf_counter() >= phase_deadline):
                    break
                # the state this iteration starts from (states are never changed in place)
                snapshot = replace(st, rng_state=copy.deepcopy(self.rng.bit_generator.state))
                entry = self.iterate()
                bar.update(entry)
                # a plateau grows the minibatch before the checkpoint, so a resume sees the growth
                grew = self.stop_reason is None and self.state.stall >= self.patience_steps and self.grow_batch()
                st = self.state
                if self.checkpointing and len(st.history) % int(est.checkpoint_every) == 0:
                    self.save_state(st)
                if self.stop_reason is not None:
                    break
                if grew:
                    continue
                if st.stall >= self.patience_steps:
                    passes = f"{est.patience} pass{'' if est.patience == 1 else 'es'} over the training data"
                    steps = f"{self.patience_steps} accepted step{'' if self.patience_steps == 1 else 's'}"
                    self.stop("patience", f"{steps} ({passes}) without a better "
                                          "validation NSE")
                    break
                if self.converged():
                    break
        except KeyboardInterrupt:
            if self.checkpointing and snapshot is not None:
                self.save_state(snapshot)
            raise
        finally:
            bar.close()

    @property
    def batch(self) -> int | None:
        """Windows per step now (None: all): the start's minibatch after the state's growths."""
        batch = self.start_batch
        for _ in range(self.state.batch_growths):
            batch = levenberg.grown_batch(batch, self.windows.count, self.growth)
        return batch

    @property
    def patience_steps(self) -> int:
        """Accepted steps without a better validation NSE that make ``patience`` passes over the
        data with the current minibatch."""
        batch = self.batch
        return int(self.est.patience) * (1 if batch is None else -(-self.windows.count // batch))

    def grow_batch(self) -> bool:
        """At a plateau: a larger minibatch (``batch_growth``), from the best iterate so far.

        The fit goes back to the best iterate (weights, initial states, certificate point) when
        its certificate point is known and still checks rigorously against its weights; else it
        stays where it is. Returns False when the minibatch cannot grow (every window already,
        or ``batch_growth`` 1): then the plateau stops the fit."""
        grown = levenberg.grown_batch(self.batch, self.windows.count, self.growth)
        if grown == self.batch:
            return False
        st = self.state
        changes = {"batch_growths": st.batch_growths + 1, "stall": 0}
        if st.best_model is not None and st.best_model is not st.model and st.best_point:
            cert = self.iterate_certificate(st.best_model, st.best_point)
            # it was certified by this point when it was best: a check, not a search
            if cert is None or (cert.certified and self.cert_source == "step point"):
                self.cert = cert
                changes |= {"model": st.best_model, "x0": st.best_x0.copy(), "point": st.best_point}
        self.update(**changes)
        return True

    def converged(self) -> bool:
        """The loss fell by less than ``tol`` (relative) per iteration over the last
        ``CONVERGENCE_WINDOW`` iterations (records the stop)."""
        h, k = self.state.history, CONVERGENCE_WINDOW
        if len(h) <= k:
            return False
        old, new = h[-k - 1]["loss"], h[-1]["loss"]
        if not (np.isfinite(old) and old > 0):
            return False
        rate = (old - new) / old / k
        if 0.0 <= rate < float(self.est.tol):  # a rise (minibatch noise) is not convergence
            self.stop("converged", f"the training loss fell by {rate:.2g} per iteration over the last {k} "
                                   f"iterations (tol {float(self.est.tol):g})")
            return True
        return False

    def save_state(self, state: FitState) -> None:
        """Write ``state`` to the checkpoint; the current state with the generator's current state."""
        if state.rng_state is None or state is self.state:
            state = replace(state, rng_state=copy.deepcopy(self.rng.bit_generator.state))
        state.save(self.est.checkpoint, self.scaling, self.windows)

    def update(self, **changes) -> FitState:
        """Replace the state by a copy with ``changes``; returns the new state."""
        self.state = replace(self.state, **changes)
        return self.state

    def stop(self, reason: str, detail: str = "") -> None:
        self.stop_reason, self.stop_detail = reason, detail

    def iterate(self) -> dict:
        """One SCP iteration: linearise, then damped convex steps until one is accepted (at most
        ``levenberg.MAX_TRIALS``; :func:`~rrnn_convex.levenberg.iterate`); returns its history entry."""
        est = self.est
        t_it = time.perf_counter()
        phases0 = dict(self.phase_seconds)
        it = len(self.state.history)
        idx = levenberg.minibatch(self.rng, self.windows.count, self.batch)
        slack = self.set_margin(self.state.model)  # first: it may re-represent the model
        model = self.state.model
        x0_batch = self.state.x0[idx] if est.learn_x0 else np.zeros((len(idx), model.n))
        with _PhaseTimer(self.phase_seconds, "linearize"):
            workers, overlap = thread_plan(len(idx), est._jobs())
            lin = linearize(model, self.UW[idx], self.YW[idx], x0_batch, self.step.layout, workers=workers,
                            overlap=overlap)
        L0 = lin.loss
        marq = est.damping == "marquardt"
        scale = 1.0 if marq else (float(np.mean(np.diag(lin.H))) or 1.0)
        if self.state.mu is None:
            self.update(mu=est.mu0 * scale)
        theta_k = self.step.layout.flatten(model)
        before = dict(self.steps_by_kind)
        self.sequence = self.solvers
        res = levenberg.iterate(lambda mu: self.try_step(lin, mu, theta_k, idx, marq, L0), self.state.mu, L0,
                                time_left=self.time_left, after_failure=lambda f: self.after_failure(f, model))
        if res.out_of_time:
            self.stop("time_budget", f"{est.time_budget:g} s (inside iteration {it})")
        v = self.take(res)
        loss = self.loss(self.state.model, self.state.x0, np.arange(self.windows.count)) \
            if idx.size != self.windows.count else res.batch_loss
        entry = {"iteration": it, "loss": loss, "val_nse": v, "mu": float(self.state.mu), "accepted": res.accepted,
                 "batch": int(idx.size),
                 "margin": float(self.cert.margin) if self.cert is not None else float("nan"),
                 "slack": float(slack), "seconds": time.perf_counter() - t_it,
                 "info": "" if res.accepted else res.info,
                 "step_sdps": self.steps_by_kind["sdp"] - before["sdp"],
                 "interior_steps": self.steps_by_kind["interior"] - before["interior"]}
        entry |= {f"seconds_{k}": self.phase_seconds[k] - phases0[k] for k in PHASES}
        entry["certificate_from"] = self.cert_source if res.accepted else ""
        self.update(history=[*self.state.history, entry])
        self.check_stuck(res, scale)
        return entry

    def after_failure(self, failures: list, model: ImplicitRNN):
        """After two failed solves in a row: re-centre the certificate point (the margin and the
        linearisation of C1 move with it) and let the fallback solvers try too, for this iteration;
        ``levenberg.STOP`` when that re-represented ``model`` (linearise again in the next one)."""
        if failures[-2:] == ["solver", "solver"] and self.sequence is self.solvers:
            self.set_margin(self.state.model, recentre=True)
            self.sequence = self.fallbacks
            if self.state.model is not model:
                return levenberg.STOP
        return None

    def take(self, res: levenberg.Iteration) -> float:
        """Move to the accepted candidate of ``res`` (if any), record mu, the validation NSE and the
        best model so far; returns the validation NSE."""
        if res.accepted:
            cand, x0_new, self.cert, point = res.trial.candidate
            self.update(model=cand, x0=x0_new, point=point)
        st = self.update(mu=res.mu)
        v = self.val_nse(st.model)
        is_best, stall = levenberg.track_best(st.best_val, st.stall, v, res.accepted, self.val is not None)
        if is_best:
            self.update(best_val=v, best_model=st.model, best_x0=st.x0.copy(), best_point=st.point, stall=stall)
        else:
            self.update(stall=stall)
        return v

    def check_stuck(self, res: levenberg.Iteration, scale: float) -> None:
        """Stop when no damping up to ``MU_MAX`` gave an accepted step: "step_failures" if the step
        problem failed every time (with a warning), else "converged"."""
        mu = self.state.mu
        if self.stop_reason is not None or res.accepted or not mu > MU_MAX * max(scale, 1e-300):
            return
        if res.failures and all(f == "solver" for f in res.failures):
            self.stop("step_failures", f"the step problem failed at every damping up to mu = {mu:.3g} "
                                       f"(last: {res.info})")
            warnings.warn(f"fit: stopped because the step problem kept failing ({res.info})", RuntimeWarning,
                          stacklevel=5)
        else:
            self.stop("converged", f"no step decreases the loss at any damping (mu = {mu:.3g}; last: {res.info})")

    def set_margin(self, model: ImplicitRNN, recentre: bool = False) -> float:
        """Centre the step problem on the current iterate: its LMI margin below the iterate's slack
        in the step problem itself (so d = 0 is feasible) and the linearisation of C1 = Ct / lambda
        at it; returns that slack (inf for sets without an LMI, nan before a certificate point
        exists). ``recentre``: find the certificate point of largest margin for the current
        weights even when the stored one is fine."""
        step, ms = self.step, self.model_set
        if not step.load(model, self.state.point):
            return float("nan")  # no certificate point yet (the ci-RNN set before its first step)
        slack = step.slack()
        if ms.uses_multiplier and (recentre or slack < 0.5 * ms.margin):
            # the step solutions sit on the margin's boundary, up to the solver's tolerance: re-centre
            # the certificate point for the current weights rather than let the margin shrink
            model, point = ms.lifted_form(model, self.scaling, self.est.solver)
            self.update(model=model, point=point)  # the same object unless re-represented
            step.load(model, point)
            slack = step.slack()
        step.margin.value = float(max(min(ms.margin, 0.99 * slack), 0.0)) if np.isfinite(slack) else float(ms.margin)
        if step.free_c1:
            step.set_point(model, self.state.point["lam"])  # C1 = Ct / lambda linearised here
        return slack

    def try_step(self, lin, mu, theta_k, idx, marq, L0) -> levenberg.Trial:
        """Solve the damped step problem once and judge the candidate: a
        :class:`~rrnn_convex.levenberg.Trial`, accepted with candidate ``(model, x0, cert,
        point)``, or rejected with kind "solver", "ratio" or "certificate"."""
        est, st, layout = self.est, self.state, self.step.layout
        Hr, gr = levenberg.reduced_system(lin, mu, est.learn_x0, marq)
        try:
            Rm = np.linalg.cholesky(Hr).T  # Hr = R'R
        except np.linalg.LinAlgError:
            return levenberg.Trial("solver", "the damped normal matrix is not positive definite")
        c = np.linalg.solve(Rm.T, gr)  # ||R d + c||^2 = d'Hr d + 2 g'd + const
        with _PhaseTimer(self.phase_seconds, "step"):
            cand, point = self.interior_step(theta_k - np.linalg.solve(Rm, c))
        self.steps_by_kind["interior" if cand is not None else "sdp"] += 1
        if cand is None:
            w = 1.0 / np.sqrt(max(L0, 1e-300))  # objective of order one: better solver scaling
            prox = w * w * mu * (float(np.mean(np.diag(lin.H))) if marq else 1.0)
            solved = self.sdp_step(w * Rm, w * c, theta_k, prox)
            if isinstance(solved, levenberg.Trial):
                return solved
            cand, point = solved
        d = layout.flatten(cand) - theta_k
        dx = levenberg.x0_step(lin, d, mu, est.learn_x0, marq)
        x0_new = levenberg.moved_x0(st.x0, idx, dx, est.learn_x0)
        trial = levenberg.ratio_test(L0, self.loss(cand, x0_new, idx), levenberg.predicted_decrease(lin, d, dx))
        if not trial.accepted:
            return trial
        with _PhaseTimer(self.phase_seconds, "certificate"):
            cert = self.iterate_certificate(cand, point)
        if cert is not None and not cert.certified:
            return levenberg.Trial("certificate", f"candidate not certified ({cert.reason})", trial.ratio, trial.loss)
        return replace(trial, candidate=(cand, x0_new, cert, point))

    def sdp_step(self, R: np.ndarray, c: np.ndarray, theta_k: np.ndarray, prox: float):
        """Solve the step SDP ``min ||R (theta - theta_k) + c||^2`` (with the proximal weight
        ``prox`` on lambda for the free-C1 parametrisation) with the current solver sequence:
        (candidate model, certificate point), or a rejected "solver"
        :class:`~rrnn_convex.levenberg.Trial`."""
        step, st = self.step, self.state
        step.set_objective(R, c, theta_k)
        if step.free_c1:
            step.set_point(st.model, st.point["lam"], prox=prox)
        att = None
        for name in self.sequence:
            with _PhaseTimer(self.phase_seconds, "step"):
                att = step.solve(name)
            if att.status in ("optimal", "optimal_inaccurate"):
                break
        if att is None or att.status not in ("optimal", "optimal_inaccurate"):
            return levenberg.Trial("solver", f"step problem: {att.status if att else 'no solver'} "
                                             f"{att.detail if att else ''}".strip())
        try:
            cand = step.model_at_solution(st.model)
        except ValueError as exc:
            return levenberg.Trial("solver", str(exc))
        return cand, step.point()

    def iterate_certificate(self, cand: ImplicitRNN, point: dict | None) -> Certificate | None:
        """The certificate of a candidate iterate (physical units): first the step problem's own
        point (metric Q = P^-1 on E x, multipliers lambda, the set's gamma), rigorously checked
        against the candidate's weights; :func:`~rrnn_convex.certify.certify` (an SDP) only when
        that check fails or the set has no such point."""
        ms = self.model_set
        if not ms.certifies:
            return None
        phys = self.scaling.to_physical(cand)
        if point and "P" in point and "lam" in point:
            try:
                Q = np.linalg.inv(np.asarray(point["P"], dtype=np.float64))
            except np.linalg.LinAlgError:
                Q = None
            if Q is not None and np.all(np.isfinite(Q)):
                cert = certificate_from(phys, Q, point["lam"], ms.gamma,
                                        how="the step problem's certificate point")
                if cert.certified:
                    self.cert_source = "step point"
                    return cert
        self.cert_source = "certify"
        return ms.certificate(phys, solver=self.est.solver)

    def interior_step(self, theta: np.ndarray):
        """(model, certificate point) when the unconstrained minimiser ``theta`` of the step's
        objective already lies in the set (then it solves the step problem, and one small SDP for
        the certificate variables replaces the step SDP), else (None, None)."""
        ms, est = self.model_set, self.est
        lam = None
        if "D11" in self.step.free_c1:
            # a trained D11 proved well-posed by the current multipliers, as a small step's usually
            # is; otherwise the step SDP decides (rather than an SDP search for a multiplier)
            lam = self.state.point["lam"]
            D11 = theta[self.step.layout.offsets()["D11"]].reshape(self.state.model.D11.shape)
            if well_posedness_margin(D11, lam) <= MIN_WELL_POSEDNESS_MARGIN:
                return None, None
        cand = self.step.layout.unflatten(theta, self.state.model, well_posed_multiplier=lam)
        if not self.step.sv.constraints:  # no constraint at all (unconstrained, Elman baselines)
            return cand, {}
        if not ms.uses_multiplier:
            return None, None
        if self.state.interior_pause > 0:
            self.update(interior_pause=self.state.interior_pause - 1)
            return None, None
        point = ms.lifted_point(cand, est.solver, min_margin=float(self.step.margin.value))
        if point is None:
            # the constraint is active: where it is, it tends to stay (the paper's data: every
            # step), so skip the check for a few attempts rather than pay for it each time
            self.update(interior_pause=INTERIOR_PAUSE)
            return None, None
        return cand, point

    # -------------------------------------------------------------- results
    def finish(self) -> None:
        est, st = self.est, self.state
        if self.stop_reason is None:  # cannot happen: every exit of loop() sets a reason
            self.stop("max_iter")
        est.scaling_ = self.scaling
        est.windows_ = self.windows
        est.start_ = self.start_report
        est.model_ = self.scaling.to_physical(st.best_model)
        est.x0_ = st.best_x0
        est.history_ = st.history
        est.batch_size_ = self.batch
        est.n_iter_ = len(st.history)
        est.stop_reason_, est.stop_detail_ = self.stop_reason, self.stop_detail
        est.certificate_ = self.model_set.certificate(est.model_, solver=est.solver, smallest_gamma=True,
                                                      gamma_time_limit=FINAL_GAMMA_TIME_LIMIT)
        if est.certificate_ is None:
            c_info = certify(est.model_, solver=est.solver)
            est.certificate_ = c_info if c_info.certified else None
        if self.checkpointing:
            self.save_state(st)

    def score(self) -> float:
        """What a restart is judged by: the best validation NSE, else the training loss."""
        st = self.state
        if self.val is not None:
            return float(st.best_val)
        return float(st.history[-1]["loss"]) if st.history else np.inf


class _NoBar:
    def update(self, entry):
        pass

    def close(self):
        pass


def _progress(enabled: bool, total: int | None, initial: int):
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a core dependency; tolerate its absence in odd environments
        return _NoBar()

    class _Bar:
        def __init__(self):
            self.bar = tqdm(total=total, initial=initial, desc="fit", leave=False)

        def update(self, e):
            self.bar.set_postfix(loss=f"{e['loss']:.4g}", val_nse=f"{e['val_nse']:.4f}", mu=f"{e['mu']:.2g}",
                                 margin=f"{e['margin']:.1e}", ok=e["accepted"])
            self.bar.update(1)

        def close(self):
            self.bar.close()

    return _Bar()


__all__ = ["RobustRNNRegressor", "Windows", "STOP_REASONS"]
