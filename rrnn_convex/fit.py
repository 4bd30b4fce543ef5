"""Fitting by sequential convex programming with exact SDP feasibility (DESIGN.md section 4).

Iteration k, from a certified model theta_k with initial states x0_k:

1. :func:`~rrnn_convex.linearize.linearize` gives r, J'J, J'r and the initial-state blocks;
   the initial states are eliminated by a Schur complement (never storing J);
2. the convex problem ``min ||r + J d||^2 + mu ||d||^2  s.t.  theta_k + d in the model set``
   (the set's LMI with a margin, certificate variables free) is solved with cvxpy; it is built
   once and re-solved with new Parameter values;
3. the step is accepted when the true loss decreases by a fraction of the predicted decrease
   (ratio test) and the new model passes :func:`~rrnn_convex.certify.certify` (the rigorous
   check); mu follows the Levenberg-Marquardt rule.

So every accepted iterate — and therefore the returned model — carries a verified certificate.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cvxpy as cp
import numpy as np

from . import solvers as _solvers
from ._io import atomic_path
from ._validation import check_scalar, paired_sequences
from .activations import get_activation
from .certify import Certificate, certify
from .init import elman_from_lti, from_lti, n4sid
from .linearize import ParamLayout, linearize
from .metrics import nse
from .model import ImplicitRNN
from .project import project
from .sets import CIRNNSet, Contracting, ElmanSet, GainBounded, ModelSet, SRNNSet, Unconstrained

SET_NAMES = ("theta", "theta_gamma", "cirnn", "srnn", "elman", "unconstrained")
BIASES = ("bx", "bv", "by")


@dataclass
class _StepProblem:
    """The convex step ``min ||R theta + c||^2 (+ prox) s.t. the set's constraints``, built once.

    ``theta`` is the vector of trainable model weights (layout order) as an affine cvxpy
    expression of the set's variables. With the free-C1 parametrisation (Ct = Lambda C1,
    Dt = Lambda D12) the model's C1 = Lambda^-1 Ct is not affine in (Ct, lambda); theta then
    holds its linearisation at the current point, ``C1_k + Lambda_k^-1 (Ct - diag(lambda) C1_k)``
    (exact at the current point, first-order around it), and a proximal term keeps lambda near
    lambda_k. The candidate model uses the exact C1 = Ct / lambda.
    """

    problem: cp.Problem
    sv: object
    layout: ParamLayout
    theta: cp.Expression
    R: cp.Parameter
    c: cp.Parameter
    biases: dict = field(default_factory=dict)
    free_c1: dict = field(default_factory=dict)  # name -> (variable, Parameter C_k, Parameter G_k)
    lam_ref: cp.Parameter | None = None
    prox: tuple | None = None
    warm: bool = False

    def set_point(self, model: ImplicitRNN, lam: np.ndarray | None, prox: float = 0.0) -> None:
        """Parameters of the linearisation of C1 = Ct / lambda at the current model, and the
        weight of the proximal term ``prox * ||lambda / lambda_k - 1||^2``."""
        if not self.free_c1:
            return
        lam = np.asarray(lam, dtype=np.float64)
        self.lam_ref.value = lam
        self._inv.value = 1.0 / lam
        self.prox[0].value = np.sqrt(prox) / lam
        self.prox[1].value = np.full(lam.shape, np.sqrt(prox))
        for name, (_, Ck, Gk) in self.free_c1.items():
            Ck.value = getattr(model, name)
            Gk.value = getattr(model, name) / lam[:, None]

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
        return self.layout.unflatten(np.concatenate(vals), template)

    def multipliers(self) -> np.ndarray | None:
        return None if not self.free_c1 else np.asarray(self.sv.cert["lam"].value, dtype=np.float64)


def _build_step(model_set: ModelSet, template: ImplicitRNN, fixed: dict, train_biases: bool) -> _StepProblem:
    sv = model_set.build(template.dims, template.activation, fixed=fixed)
    names = list(sv.free)
    free_c1 = {}
    q = template.q
    for name, extra in (("C1", "Ct"), ("D12", "Dt")):
        if sv.params.get(name, 0) is None:  # recovered from Ct = Lambda C1 (free_C1)
            shape = getattr(template, name).shape
            free_c1[name] = (sv.extra[extra], cp.Parameter(shape, name=f"{name}_k"),
                             cp.Parameter(shape, name=f"{name}_over_lam_k"))
            names.append(name)
    biases = {}
    if train_biases:
        for b in BIASES:
            biases[b] = cp.Variable(getattr(template, b).shape, name=b)
            names.append(b)
    layout = ParamLayout.for_model(template, names)
    lam_ref = prox = None
    extra_obj = 0
    if free_c1:
        lam = sv.cert["lam"]
        lam_ref = cp.Parameter(q, pos=True, name="lam_k")
        inv = cp.Parameter(q, pos=True, name="inv_lam_k")
        # prox * ||lam / lam_k - 1||^2 written DPP-style: ||w * lam - s||^2, w = sqrt(prox) / lam_k
        prox = (cp.Parameter(q, nonneg=True, name="prox_w"), cp.Parameter(q, nonneg=True, name="prox_s"))
        extra_obj = cp.sum_squares(cp.multiply(prox[0], lam) - prox[1])
    parts, links = [], []
    for name in layout.names:
        if name in free_c1:
            var, Ck, Gk = free_c1[name]
            cols = getattr(template, name).shape[1]
            lam_mat = cp.reshape(sv.cert["lam"], (q, 1), order="C") @ np.ones((1, cols))
            inv_mat = cp.reshape(inv, (q, 1), order="C") @ np.ones((1, cols))
            # a variable for the linearised C1 keeps R @ theta DPP (R times a parameter-free vector):
            # C1_lin = C1_k + Lambda_k^-1 (Ct - diag(lam) C1_k)
            lin = cp.Variable(Ck.shape, name=f"{name}_lin")
            links.append(lin == Ck + cp.multiply(inv_mat, var) - cp.multiply(lam_mat, Gk))
            parts.append(cp.vec(lin, order="C"))
        else:
            var = biases.get(name, sv.params.get(name))
            parts.append(cp.vec(var, order="C"))
    theta = cp.hstack(parts)
    P = layout.size
    R = cp.Parameter((P, P), name="R")
    c = cp.Parameter(P, name="c")
    problem = cp.Problem(cp.Minimize(cp.sum_squares(R @ theta + c) + extra_obj), sv.constraints + links)
    step = _StepProblem(problem, sv, layout, theta, R, c, biases, free_c1, lam_ref, prox)
    if free_c1:
        step._inv = inv
    return step


def _default_fixed(model: ImplicitRNN, model_set: ModelSet) -> dict:
    """Weights held fixed: C1, D12 for the LMI sets' fixed_C1 parametrisation."""
    if model_set.uses_multiplier and model_set.parametrization == "fixed_C1":
        return {"C1": model.C1, "D12": model.D12}
    return {}


class RobustRNNRegressor:
    """Fit an implicit RNN in a model set by sequential convex programming (DESIGN.md s. 4).

    Parameters (stored as given; ``fit`` does the work, scikit-learn style):

    n_states, n_neurons : model size (n, q).
    model_set : "theta" (contracting), "theta_gamma" (needs ``gamma``), "cirnn", "srnn",
        "elman" (plain Elman RNN, no constraint), "unconstrained" (any implicit RNN); ``gamma`` given with model_set "theta" means "theta_gamma".
    activation : "relu" (default), "tanh", ... (see :mod:`rrnn_convex.activations`).
    parametrization : for Theta / Theta_gamma, "free_C1" (default: the neurons' input weights
        are trained through Ct = Lambda C1, Dt = Lambda D12, as the authors did; needs alpha = 0)
        or "fixed_C1" (random neurons C1, D12 stay fixed).
    margin : LMI margin of the step problems (the certificate is re-checked rigorously).
    max_iter, time_budget : iteration and wall-time budgets (seconds, None = no limit).
    patience : stop after this many accepted steps without a better validation NSE (only with
        validation data).
    mu0 : initial Levenberg-Marquardt damping (with "identity": relative to the mean diagonal of J'J).
    damping : "marquardt" (default: mu d' diag(J'J) d, independent of how each weight is scaled;
        on the paper's data it reached validation NSE .0526 for Theta_10 in 30 steps where
        "identity" reached .1183 in 40) or "identity" (mu ||d||^2).
    batch_size : sequences per step (None = all); a new random minibatch at each step.
    learn_x0 : learn one initial state per training sequence (else zero initial states).
    seed : for the random neurons (C1, D12), minibatches; fits are reproducible.
    checkpoint, checkpoint_every : path (``.npz``) written atomically every k iterations, at the
        end, and on KeyboardInterrupt (SIGINT: the state at the start of the interrupted
        iteration); ``fit(..., resume=path)`` continues exactly from it.
    progress : show a tqdm progress bar (loss, validation NSE, mu, margin).
    gamma_path, path_iter : continuation in gamma for Theta_gamma. ``gamma_path=(10, 5)`` with
        ``gamma=3`` first fits Theta_10 from the N4SID start (``path_iter`` iterations), projects
        that model onto Theta_5 and fits it (``path_iter`` iterations), then projects onto
        Theta_3 and fits the final model (``max_iter`` iterations). A small gamma well below the
        data's gain otherwise tends to stall in a poor local minimum near the projected LTI start
        (paper data, gamma = 5: validation NSE .196 from the N4SID start, .109 through gamma 10).
        ``time_budget`` covers all stages; each stage is recorded in ``path_``; ``resume``
        continues the final stage only (the stages before it are short and not checkpointed).

    Fitted attributes: ``model_``, ``certificate_`` (verified; None for "unconstrained" unless
    the final model happens to certify), ``history_`` (one dict per iteration: loss, val_nse,
    mu, accepted, margin, seconds), ``x0_`` (learned initial states), ``n_iter_``, ``path_``
    (one dict per ``gamma_path`` stage: gamma, iterations, val_nse, seconds).
    """

    def __init__(self, n_states: int = 10, n_neurons: int = 10, *, model_set: str = "theta",
                 gamma: float | None = None, activation="relu", parametrization: str = "free_C1",
                 margin: float = 1e-6,
                 max_iter: int = 50, time_budget: float | None = None, patience: int = 10,
                 mu0: float = 1e-3, damping: str = "marquardt", batch_size: int | None = None,
                 learn_x0: bool = True,
                 train_biases: bool = True, seed: int = 0, solver: str | None = None,
                 checkpoint=None, checkpoint_every: int = 5, progress: bool = True,
                 gamma_path=(), path_iter: int = 15):
        self.n_states = n_states
        self.n_neurons = n_neurons
        self.model_set = model_set
        self.gamma = gamma
        self.activation = activation
        self.parametrization = parametrization
        self.margin = margin
        self.max_iter = max_iter
        self.time_budget = time_budget
        self.patience = patience
        self.mu0 = mu0
        self.damping = damping
        self.batch_size = batch_size
        self.learn_x0 = learn_x0
        self.train_biases = train_biases
        self.seed = seed
        self.solver = solver
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.gamma_path = gamma_path
        self.path_iter = path_iter

    # ------------------------------------------------------------------ helpers
    def _set(self) -> ModelSet:
        name = self.model_set
        if name not in SET_NAMES:
            raise ValueError(f"model_set: expected one of {SET_NAMES}, got {name!r}")
        if name == "theta_gamma" or (name == "theta" and self.gamma is not None):
            if self.gamma is None:
                raise ValueError("gamma: model_set 'theta_gamma' needs gamma")
            return GainBounded(gamma=check_scalar(self.gamma, "gamma", low=0.0), margin=self.margin,
                               parametrization=self.parametrization)
        if self.gamma is not None:
            raise ValueError(f"gamma: only meaningful with model_set 'theta_gamma', got model_set {name!r}")
        return {"theta": lambda: Contracting(margin=self.margin, parametrization=self.parametrization), "cirnn": lambda: CIRNNSet(margin=self.margin),
                "srnn": lambda: SRNNSet(), "elman": ElmanSet, "unconstrained": Unconstrained}[name]()

    def _certify(self, model: ImplicitRNN, model_set: ModelSet, final: bool = False) -> Certificate | None:
        """The certificate an iterate needs: gamma for Theta_gamma, contraction otherwise (the
        final model of Theta and the structured sets also gets its smallest gamma)."""
        if isinstance(model_set, (Unconstrained, ElmanSet)):
            return None
        gamma = getattr(model_set, "gamma", None)
        if gamma is not None:
            return certify(model, gamma=gamma, solver=self.solver)
        if final:
            return certify(model, solver=self.solver)
        return certify(model, solver=self.solver, contraction_only=True)

    def initial_model(self, u, y, model_set: ModelSet) -> ImplicitRNN:
        """N4SID of order n on (u, y) embedded in the set (DESIGN.md s. 4), with random neurons."""
        rng = np.random.default_rng(self.seed)
        n, q = int(self.n_states), int(self.n_neurons)
        A, B, C, D = n4sid(u, y, n)
        act = get_activation(self.activation)
        m = B.shape[1]
        if isinstance(model_set, (SRNNSet, CIRNNSet, ElmanSet)):
            if q != n:
                raise ValueError(f"n_neurons: the {model_set.name} needs n_neurons == n_states, got {q} and {n}")
            if isinstance(model_set, ElmanSet) and act.name == "relu":
                # unconstrained ReLU RNN: the N4SID model itself, by a state shift (init.elman_from_lti)
                return elman_from_lti(A, B, C, D, u=u)
            # the constrained Elman-like sets have no linear path: start from small random weights
            W = rng.standard_normal((n, n)) * 0.5 / np.sqrt(n)
            return ImplicitRNN.from_elman(W, 0.5 * rng.standard_normal((n, m)), C=C, D=D, activation=act)
        lti, _ = from_lti(A, B, C, D, neurons=q, activation=act)
        # random neurons (the paper's remark): C1 ~ N(0, 1/n), D12 ~ N(0, 1), B1 = D21 = 0
        model = ImplicitRNN(**(lti.weights() | {"C1": rng.standard_normal((q, n)) / np.sqrt(n),
                                               "D12": rng.standard_normal((q, m))}), activation=act)
        gamma = getattr(model_set, "gamma", None)
        if gamma is not None and not certify(model, gamma=gamma, solver=self.solver).certified:
            model = project(model, gamma=gamma, solver=self.solver, norm="implicit").model
        return model

    def _gamma_path(self, model_set: ModelSet) -> tuple[float, ...]:
        path = tuple(check_scalar(g, "gamma_path", low=0.0) for g in (self.gamma_path or ()))
        if not path:
            return ()
        gamma = getattr(model_set, "gamma", None)
        if gamma is None:
            raise ValueError(f"gamma_path: only for model_set 'theta_gamma', got {self.model_set!r}")
        steps = path + (gamma,)
        if any(a <= b for a, b in zip(steps, steps[1:])):
            raise ValueError(f"gamma_path: expected gammas decreasing towards gamma={gamma:g}, got {list(path)}")
        if int(self.path_iter) < 1:
            raise ValueError(f"path_iter: expected a positive integer, got {self.path_iter!r}")
        return path

    def _run_path(self, path, U, Y, val, init_model, model_set, t_start) -> ImplicitRNN:
        """Fit each stage of ``gamma_path`` from the previous stage's model; return the last one
        projected onto ``model_set`` (the start of the final stage)."""
        model = init_model
        for g in path:
            stage = copy.copy(self)
            budget = None if self.time_budget is None else max(self.time_budget - (time.perf_counter() - t_start), 0.0)
            stage.__dict__.update(gamma=g, model_set="theta_gamma", gamma_path=(), max_iter=int(self.path_iter),
                                  time_budget=budget, checkpoint=None)
            t0 = time.perf_counter()
            start = None if model is None else self._into(model, stage._set())
            stage.fit(U, Y, validation=None if val is None else val, init_model=start)
            model = stage.model_
            self.path_.append({"gamma": float(g), "iterations": stage.n_iter_,
                               "val_nse": min((h["val_nse"] for h in stage.history_), default=float("nan")),
                               "seconds": time.perf_counter() - t0})
        return self._into(model, model_set)

    def _into(self, model: ImplicitRNN, model_set: ModelSet) -> ImplicitRNN:
        """``model`` if it certifies in ``model_set`` (a Theta_gamma), else its projection."""
        gamma = model_set.gamma
        if certify(model, gamma=gamma, solver=self.solver).certified:
            return model
        proj = project(model, gamma=gamma, solver=self.solver, norm="implicit")
        if proj.certificate is None or not proj.certificate.certified:
            raise RuntimeError(f"gamma_path: projecting the stage model onto Theta_{gamma:g} gave no certified model")
        return proj.model

    def _lifted_multipliers(self, model: ImplicitRNN, model_set: ModelSet) -> np.ndarray | None:
        """Multipliers lambda > 0 with which the current weights satisfy the set's lifted LMI
        (a feasibility SDP with every weight fixed and P, lambda free), or None if there are none."""
        fixed = {k: v for k, v in model.weights().items() if v.ndim == 2}
        probe = copy.copy(model_set)
        probe.margin, probe.parametrization = 0.0, "free_C1"
        sv = probe.build(model.dims, model.activation, fixed=fixed)
        lam = sv.cert["lam"]
        prob = cp.Problem(cp.Minimize(0), sv.constraints + [lam >= 1e-9])
        att = _solvers.run(prob, _solvers.solver_sequence(self.solver, fallback=False)[0])
        if att.status == "optimal" and lam.value is not None and np.min(lam.value) > 0:
            return np.asarray(lam.value, dtype=np.float64)
        return None

    # ------------------------------------------------------------------ fitting
    def fit(self, u, y, validation=None, *, init_model: ImplicitRNN | None = None, resume=None):
        """Fit to training sequences ``u`` (batch, T, m), ``y`` (batch, T, p); returns self.

        ``validation``: (u_val, y_val) simulated from zero initial state for early stopping.
        ``init_model``: start here instead of the N4SID initialisation (it must be in the set).
        ``resume``: a checkpoint written by a previous fit with the same settings and data.
        """
        t_start = time.perf_counter()
        U, Y = paired_sequences(u, y)
        val = None if validation is None else paired_sequences(*validation, names=("validation u", "validation y"))
        if self.damping not in ("identity", "marquardt"):
            raise ValueError(f"damping: expected 'identity' or 'marquardt', got {self.damping!r}")
        model_set = self._set()
        path = self._gamma_path(model_set)
        rng = np.random.default_rng(self.seed)
        Bn = U.shape[0]
        self.path_ = []
        if path and resume is None:
            init_model = self._run_path(path, U, Y, val, init_model, model_set, t_start)

        if resume is not None:
            state = _load_checkpoint(resume)
            model, x0 = state["model"], state["x0"]
            mu, history, rng_state = state["mu"], state["history"], state["rng"]
            rng.bit_generator.state = rng_state
            best_model, best_val, best_x0 = state["best_model"], state["best_val"], state["best_x0"]
            stall = state["stall"]
            lam_k = state["lam"]
        else:
            model = init_model if init_model is not None else self.initial_model(U, Y, model_set)
            x0 = np.zeros((Bn, model.n))
            mu, history = None, []
            best_model, best_val, best_x0, stall = model, np.inf, x0, 0
            lam_k = None
        cert = self._certify(model, model_set)
        if cert is not None and not cert.certified:
            raise ValueError(f"init_model: the starting model is not in the {model_set.name} set "
                             f"({cert.reason}); project it first")
        lam_k0 = None
        if cert is not None and model_set.uses_multiplier and not history:
            lam_k0 = self._lifted_multipliers(model, model_set)
            if lam_k0 is None:
                # The step problems use the lifted LMI (E, P free), which holds for the current
                # weights only in a suitable representation. In the certificate's metric, E = E'QE
                # (= Qx, symmetric), F = E'Q F, ..., it holds at P = Qx exactly (the relaxation
                # E + E' - P <= E'P^-1 E is tight when P = E). A change of representation only.
                # (cert is the set's max-margin certificate: contraction alone for Theta, the fixed
                # gamma for Theta_gamma; a former branch for a minimal-gamma Theta certificate was
                # unreachable and is gone)
                rep = cert
                model = model.transform(model.E.T @ rep.Q)
                cert = self._certify(model, model_set)
                if not cert.certified:
                    raise RuntimeError(f"fit: the re-represented starting model lost its certificate ({cert.reason})")
                best_model = model
                lam_k0 = rep.lam if np.all(rep.lam > 0) else self._lifted_multipliers(model, model_set)
        if model.dims["m"] != U.shape[2] or model.dims["p"] != Y.shape[2]:
            raise ValueError(f"u, y: the model has m={model.m}, p={model.p}; data has {U.shape[2]}, {Y.shape[2]}")
        if x0.shape != (Bn, model.n):
            raise ValueError(f"resume: the checkpoint has {x0.shape[0]} initial states, the data {Bn} sequences")

        step = _build_step(model_set, model, _default_fixed(model, model_set), self.train_biases)
        layout = step.layout
        if step.free_c1 and lam_k is None:
            if lam_k0 is None:
                raise RuntimeError("fit: no multipliers put the starting weights in the lifted LMI")
            lam_k = np.asarray(lam_k0, dtype=np.float64)
        # steps use one solver: when it fails, a larger mu (a better-conditioned step) is the remedy,
        # not a first-order fallback at tight tolerances; certification keeps its own fallbacks
        sequence = _solvers.solver_sequence(self.solver, fallback=False)

        def val_nse(m):
            if val is None:
                return float("nan")
            return float(np.mean(nse(m.simulate(val[0]), val[1])))

        def loss_of(m, xs, idx):
            with np.errstate(over="ignore", invalid="ignore"):  # a diverging candidate: inf, rejected
                L = float(np.sum((m.simulate(U[idx], xs[idx]) - Y[idx]) ** 2))
            return L if np.isfinite(L) else np.inf

        if not history:
            best_val = val_nse(model)
        bar = _progress(self.progress, self.max_iter, len(history))
        snapshot = None
        try:
            for it in range(len(history), int(self.max_iter)):
                if self.time_budget is not None and time.perf_counter() - t_start > self.time_budget:
                    break
                # the state at the start of this iteration: what an interrupt saves, so that a
                # resumed fit repeats this iteration exactly as the uninterrupted one would
                snapshot = (model, x0, mu, list(history), copy.deepcopy(rng.bit_generator.state), best_model,
                            best_val, best_x0, stall, lam_k)
                t_it = time.perf_counter()
                idx = np.arange(Bn) if not self.batch_size or self.batch_size >= Bn else \
                    np.sort(rng.choice(Bn, size=int(self.batch_size), replace=False))
                lin = linearize(model, U[idx], Y[idx], x0[idx] if self.learn_x0 else np.zeros((len(idx), model.n)),
                                layout)
                L0 = lin.loss
                marq = self.damping == "marquardt"
                scale = 1.0 if marq else (float(np.mean(np.diag(lin.H))) or 1.0)
                if mu is None:
                    mu = self.mu0 * scale
                theta_k = layout.flatten(model)
                accepted, new_cert, info = False, cert, ""
                for _ in range(8):  # inner LM loop: raise mu until a step is accepted
                    mu_x = mu if self.learn_x0 else 1e300
                    Hr, gr = lin.reduced(mu, mu_x, marquardt=marq)
                    Rm = np.linalg.cholesky(Hr).T  # Hr = R'R
                    c = np.linalg.solve(Rm.T, gr)  # ||R d + c||^2 = d'Hr d + 2 g'd + const
                    w = 1.0 / np.sqrt(max(L0, 1e-300))  # objective of order one: better solver scaling
                    step.R.value = w * Rm
                    step.c.value = w * (c - Rm @ theta_k)
                    if step.free_c1:
                        step.set_point(model, lam_k, prox=w * w * mu * (float(np.mean(np.diag(lin.H))) if marq else 1.0))
                    att = None
                    for name in sequence:
                        if not step.warm:
                            # the first solve of a freshly built problem canonicalises along another
                            # path (data differ in the last bits); canonicalising once up front makes
                            # every step go through the cached path, so a resumed fit reproduces the
                            # uninterrupted one exactly
                            step.problem.get_problem_data(name)
                            step.warm = True
                        att = _solvers.run(step.problem, name, warm_start=False)
                        if att.status in ("optimal", "optimal_inaccurate"):
                            break
                    if att is None or att.status not in ("optimal", "optimal_inaccurate"):
                        info = f"step problem: {att.status if att else 'no solver'}"
                        mu *= 10.0
                        continue
                    try:
                        cand = step.model_at_solution(model)
                    except ValueError as exc:
                        info, mu = str(exc), mu * 10.0
                        continue
                    d = layout.flatten(cand) - theta_k
                    dx = lin.x0_step(d, mu, mu_x, marquardt=marq) if self.learn_x0 else np.zeros((len(idx), model.n))
                    # predicted decrease of the Gauss-Newton model (without the damping terms)
                    quad = d @ lin.H @ d + 2 * np.einsum("bn,bnp,p->", dx, lin.Hxt, d) + \
                        np.einsum("bn,bnm,bm->", dx, lin.Hx, dx)
                    lin_term = 2 * (lin.g @ d + np.sum(lin.gx * dx))
                    pred = -(lin_term + quad)
                    x0_new = x0.copy()
                    if self.learn_x0:
                        x0_new[idx] = x0[idx] + dx
                    L1 = loss_of(cand, x0_new, idx)
                    ratio = (L0 - L1) / pred if pred > 0 else -np.inf
                    if ratio > 1e-3 and L1 < L0:
                        c_new = self._certify(cand, model_set)
                        if c_new is None or c_new.certified:
                            accepted, new_cert = True, c_new
                            model, x0 = cand, x0_new
                            if step.free_c1:
                                lam_k = step.multipliers()
                            mu = mu * (1 / 3 if ratio > 0.75 else (1.0 if ratio > 0.25 else 2.0))
                            break
                        info = f"candidate not certified ({c_new.reason})"
                        mu *= 4.0
                        continue
                    mu *= 4.0
                    info = f"ratio {ratio:.3g}"
                cert = new_cert
                v = val_nse(model)
                if v < best_val - 1e-12:
                    best_val, best_model, best_x0, stall = v, model, x0.copy(), 0
                elif accepted and val is not None:  # early stopping needs validation data
                    stall += 1
                if val is None:
                    best_model, best_x0 = model, x0
                history.append({"iteration": it, "loss": loss_of(model, x0, np.arange(Bn)) if idx.size != Bn else
                                (L1 if accepted else L0), "val_nse": v, "mu": float(mu), "accepted": accepted,
                                "margin": float(cert.margin) if cert is not None else float("nan"),
                                "seconds": time.perf_counter() - t_it, "info": info})
                bar.update(history[-1])
                if self.checkpoint and (it + 1) % int(self.checkpoint_every) == 0:
                    _save_checkpoint(self.checkpoint, model, x0, mu, history, rng, best_model, best_val, best_x0,
                                     stall, lam_k)
                if stall >= self.patience or mu > 1e12 * max(scale, 1e-300):
                    break
        except KeyboardInterrupt:
            if self.checkpoint and snapshot is not None:
                m_, x_, mu_, h_, rs_, bm_, bv_, bx_, st_, lk_ = snapshot
                r_ = np.random.default_rng()
                r_.bit_generator.state = rs_
                _save_checkpoint(self.checkpoint, m_, x_, mu_, h_, r_, bm_, bv_, bx_, st_, lk_)
            raise
        finally:
            bar.close()
        self.model_ = best_model
        self.x0_ = best_x0
        self.history_ = history
        self.n_iter_ = len(history)
        self.certificate_ = self._certify(best_model, model_set, final=True)
        if self.certificate_ is None:
            c_info = certify(best_model, solver=self.solver)
            self.certificate_ = c_info if c_info.certified else None
        if self.checkpoint:
            _save_checkpoint(self.checkpoint, model, x0, mu, history, rng, best_model, best_val, best_x0, stall, lam_k)
        return self

    def simulate(self, u, x0=None):
        """Simulate the fitted model (zero initial state by default); does not change state."""
        if not hasattr(self, "model_"):
            raise RuntimeError("simulate: call fit first")
        return self.model_.simulate(u, x0)

    def save(self, path) -> Path:
        """Write the fitted model (``.npz``) and its certificate (``.json`` beside it), atomically."""
        if not hasattr(self, "model_"):
            raise RuntimeError("save: call fit first")
        out = self.model_.save(path)
        if self.certificate_ is not None:
            self.certificate_.to_json(out.with_suffix(".cert.json"))
        return out


# ---------------------------------------------------------------------- checkpoints
def _save_checkpoint(path, model, x0, mu, history, rng, best_model, best_val, best_x0, stall, lam_k=None):
    path = Path(path)
    payload = {f"model_{k}": v for k, v in model.weights().items()}
    payload |= {f"best_{k}": v for k, v in best_model.weights().items()}
    payload["x0"], payload["best_x0"] = x0, best_x0
    meta = {"mu": mu, "history": history, "rng": rng.bit_generator.state, "best_val": best_val,
            "stall": stall, "activation": model.activation.to_dict(), "version": 1,
            "lam": None if lam_k is None else [float(v) for v in lam_k]}
    payload["meta"] = np.array(json.dumps(meta, default=float))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **payload)


def _load_checkpoint(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"resume: no checkpoint at {str(path)!r}")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        act = meta["activation"]
        model = ImplicitRNN(**{k[6:]: data[k] for k in data.files if k.startswith("model_")}, activation=act)
        best = ImplicitRNN(**{k[5:]: data[k] for k in data.files if k.startswith("best_") and k != "best_x0"},
                           activation=act)
        return {"model": model, "x0": data["x0"].copy(), "mu": meta["mu"], "history": meta["history"],
                "rng": meta["rng"], "best_model": best, "best_val": meta["best_val"],
                "best_x0": data["best_x0"].copy(), "stall": meta["stall"],
                "lam": None if meta.get("lam") is None else np.array(meta["lam"], dtype=np.float64)}


class _NoBar:
    def update(self, entry):
        pass

    def close(self):
        pass


def _progress(enabled: bool, total: int, initial: int):
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


__all__ = ["RobustRNNRegressor"]
