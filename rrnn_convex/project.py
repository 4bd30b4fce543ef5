"""Projection onto a model set: the nearest certified model.

``project(model, gamma=None)`` solves

    minimise   sum_k w_k ||X_k - X_k0||_F^2      over the free weights X_k
    subject to the model set's constraints (sets.py), certificate variables free,

then re-certifies the result with the fixed-weight :func:`~rrnn_convex.certify.certify` and
returns it only if the rigorous check passes (Theta: contraction only, ``certify(...,
contraction_only=True)``; call ``certify(result.model)`` for its smallest gamma).

Size: the SDP has the weights as variables (~4n^2 unknowns, an LMI of size 2n + q (+ m + p)),
so an interior-point solve grows like n^6. From ``AUTO_MIN_SIZE`` (32) states + neurons the
default (``solver=None``) is SCS, a first-order solver (:func:`projection_solvers`), and the
re-certification takes certify's KYP path: n = q = 128 projects onto Theta in well under a
minute (``benchmarks/project_scaling.py``). The first-order solution is only a candidate; its
certificate comes from the weights alone, as always.

Which weights move: E, F, B1, B2, C2, D21, D22 (the weights the LMI of Theta / Theta_gamma is
linear in). C1 and D12 stay fixed (the neurons' input weights enter the LMI through Lambda C1, so
a Frobenius distance on C1 would not be convex); so do the biases, which do not affect
contraction or the incremental gain. More weights can be held with ``fixed=``. For the SRNN
set W = C1, U = D12, C = C2, D = D22 move and the Elman structure is kept; for the ci-RNN set
E, W = C1, U = D12, C2, D22 move.

Distances (``norm``):

* ``"implicit"`` — the weighted Frobenius distance on the weights as given.
* ``"normalized"`` (default) — the same distance after writing the model in its explicit form
  (E = I). All representations ``(S E, S F, S B1, S B2, S bx)`` of one model have the same
  explicit form, so they project to the same model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from . import solvers as _solvers
from ._validation import check_scalar
from .certify import DEFAULT_TIME_LIMIT, Certificate
from .errors import NotCertifiable
from .lmi import model_D11
from .model import ImplicitRNN
from .certify import AUTO_MIN_SIZE
from .sets import MATRIX_NAMES, Contracting, GainBounded, ModelSet

NORMS = ("normalized", "implicit")


@dataclass(frozen=True)
class Projection:
    """Result of :func:`project`: the projected model, its verified certificate, the distance.

    Parameters
    ----------
    model : ImplicitRNN
        The projected model (the given model itself when it is already in the set).
    certificate : Certificate
        Its certificate from the rigorous check (contraction only for Theta).
    distance : float
        The weighted Frobenius distance from the model as given (``norm="implicit"``) or in its
        explicit form (``norm="normalized"``) to the projection; 0 when nothing moved.
    norm : str
        The distance used, one of ``NORMS``.
    target : str
        The class name of the target set (``"Contracting"``, ``"GainBounded"``, ...).
    moved : bool
        False when the model was already in the set.
    seconds : float
        Wall time of the whole call.
    solver : str or None
        The solver whose solution passed the check (None when nothing moved).
    margin : float
        The SDP margin that gave it (0.0 when nothing moved).
    """

    model: ImplicitRNN
    certificate: Certificate
    distance: float
    norm: str
    target: str
    moved: bool
    seconds: float
    solver: str | None = None
    margin: float = 0.0


def _distance(a: ImplicitRNN, b: ImplicitRNN, names, weights) -> float:
    return float(np.sqrt(sum(weights.get(k, 1.0) * np.sum((getattr(a, k) - getattr(b, k)) ** 2) for k in names)))


def _target_set(gamma, target) -> ModelSet:
    if target is not None:
        if gamma is not None:
            raise ValueError("gamma: give either gamma or target, not both")
        return ModelSet.constrained(target, "target")
    return Contracting() if gamma is None else GainBounded(gamma=gamma)


def projection_solvers(solver: str | None, dims: dict) -> list[str]:
    """Solvers for the projection SDP, in the order tried.

    ``solver=None``: Clarabel (interior point) first below ``AUTO_MIN_SIZE`` states + neurons,
    SCS (first order) first from there on: the projection has the weights as variables, so the
    interior-point Schur complement grows like n^6 (n = q = 32: Clarabel 22 s, SCS 0.24 s; n = 128:
    SCS 4-5 s; benchmarks/project_scaling.py). SCS's inaccuracy costs nothing in rigour: every
    projected model is re-certified from its weights alone.

    Parameters
    ----------
    solver : str or None
        The solver to try first; None chooses by size as above.
    dims : dict
        The model's dimensions ``{"n", "q", "m", "p"}`` (only n + q is read).

    Returns
    -------
    list of str
        Solver names (upper case): ``solver`` (or the default) first, then the other
        installed ones.

    Raises
    ------
    ValueError
        An unknown solver name.
    SolverUnavailable
        The requested solver cannot run here, or no SDP solver is installed.
    """
    sequence = _solvers.solver_sequence(solver)
    if solver is None and dims["n"] + dims["q"] >= AUTO_MIN_SIZE and "SCS" in sequence:
        sequence = ["SCS"] + [s for s in sequence if s != "SCS"]
    return sequence


def project(model: ImplicitRNN, gamma: float | None = None, *, norm: str = "normalized", solver: str | None = None,
            target: ModelSet | None = None, fixed=(), weights: dict | None = None,
            margins=(1e-6, 1e-4, 1e-2), time_limit: float | None = DEFAULT_TIME_LIMIT) -> Projection:
    """The nearest model in Theta (``gamma=None``), Theta_gamma, or another ``target`` set.

    ``norm``: ``"normalized"`` (default) or ``"implicit"`` (see the module docstring).
    ``fixed``: names of further weights to hold fixed. ``weights``: per-weight factors of the
    squared Frobenius distance (default 1). ``margins``: SDP margins tried in turn until the
    projected model passes the rigorous check. ``time_limit``: overall budget in seconds (default
    600, None: none) shared by the membership test, the projection SDPs and the re-certification;
    when it is spent, RuntimeError ("time limit").

    A model already in the set comes back unchanged (distance 0). Raises ValueError for a
    gamma below what the fixed weights allow (naming the bound) or an infeasible problem, and
    RuntimeError if no margin gives a model that passes the rigorous check.

    Parameters
    ----------
    model : ImplicitRNN
        The model to project, in the units its gain is stated in.
    gamma : float, optional
        The gain bound (> 0) of Theta_gamma; None: Theta (contraction). Excludes ``target``.
    norm : {"normalized", "implicit"}
        The distance (see the module docstring). Ignored for the sets with a forced structure
        (SRNN, ci-RNN), whose structure is representation-specific: the model as given is used.
    solver : str, optional
        The SDP solver tried first (see :func:`projection_solvers`); also used by the
        re-certification.
    target : ModelSet, optional
        A constrained set to project onto instead (:meth:`ModelSet.constrained
        <rrnn_convex.sets.ModelSet.constrained>`); excludes ``gamma``.
    fixed : iterable of str
        Names of further weights to hold fixed (``E``, ..., ``D22``).
    weights : dict, optional
        Weight name -> positive factor of its squared Frobenius distance (default 1 each).
    margins : sequence of float
        SDP margins tried in turn.
    time_limit : float, optional
        Overall budget in seconds (> 0; None: none).

    Returns
    -------
    Projection
        The projected model, its certificate and the distance.

    Raises
    ------
    TypeError
        ``model`` is not an ImplicitRNN, or a non-numeric ``gamma``, weight factor or
        ``time_limit``.
    ValueError
        An unknown ``norm``, both ``gamma`` and ``target``, a ``target`` that is not a
        constrained set, an unknown weight name in ``fixed`` or ``weights``, a non-positive
        ``gamma``, factor or ``time_limit``, a model whose dimensions or structure the set
        refuses, ``gamma <= ||D22||_2`` with D22 fixed, a model with D11 != 0 and a target
        set without the equilibrium term (only Theta / Theta_gamma have it; D11 is then held
        fixed like C1 and D12), or a problem that the last solver reports infeasible.
    NotCertifiable
        No margin gave a model that passes the rigorous check, or the time limit was reached
        (a RuntimeError).
    SolverUnavailable
        The requested solver cannot run here.
    """
    if not isinstance(model, ImplicitRNN):
        raise TypeError(f"model: expected an ImplicitRNN, got {type(model).__name__}")
    if norm not in NORMS:
        raise ValueError(f"norm: expected one of {NORMS}, got {norm!r}")
    if gamma is not None:
        gamma = check_scalar(gamma, "gamma", low=0.0)
    target = _target_set(gamma, target)
    gamma = target.gamma
    weights = dict(weights or {})
    for k, w in weights.items():
        if k not in MATRIX_NAMES:
            raise ValueError(f"weights: unknown weight name {k!r}; expected some of {MATRIX_NAMES}")
        check_scalar(w, f"weights[{k!r}]", low=0.0)
    fixed = tuple(fixed)
    bad = set(fixed) - set(MATRIX_NAMES)
    if bad:
        raise ValueError(f"fixed: unknown weight names {sorted(bad)}; expected some of {MATRIX_NAMES}")
    if time_limit is not None:
        time_limit = check_scalar(time_limit, "time_limit", low=0.0)
    t0 = time.perf_counter()

    def time_left() -> float | None:
        left = None if time_limit is None else t0 + time_limit - time.perf_counter()
        if left is not None and left <= 0:
            raise NotCertifiable(f"project: time limit of {time_limit:g} s reached; "
                               f"raise time_limit to try longer")
        return left

    if model_D11(model) is not None and not target.uses_multiplier:
        raise ValueError(f"model: the {target.name} set has no equilibrium term, so a model with "
                         f"D11 != 0 can be neither a member nor projected onto it (D11 would be dropped)")
    base = model.explicit() if norm == "normalized" else model

    target.check_dims(model.dims)
    if target.structure(model.dims):
        target.check_structure(model)
        base = model  # the structure is representation-specific: keep the given form
    if gamma is not None and "D22" in fixed:
        bound = float(np.linalg.norm(model.D22, 2))
        if gamma <= bound:
            raise ValueError(f"gamma: {gamma:.6g} is not achievable with D22 fixed: the incremental gain is at "
                             f"least ||D22||_2 = {bound:.6g}")

    cert = target.membership(model, solver=solver, time_limit=time_left())
    if cert is not None:
        return Projection(model, cert, 0.0, norm, target.name, False, time.perf_counter() - t0)

    hold = set(fixed)
    if target.uses_multiplier:
        hold |= {"C1", "D12"}
    fixed_arrays = {k: getattr(base, k) for k in hold}
    D11 = model_D11(base)
    if D11 is not None:
        fixed_arrays["D11"] = D11  # held, like C1 and D12: Lambda D11 stays linear
    sequence = projection_solvers(solver, base.dims)
    last_reason = ""
    for margin in margins:
        sv = target.replace(margin=margin).build(base.dims, base.activation, fixed=fixed_arrays)
        obj = sum(weights.get(k, 1.0) * cp.sum_squares(sv.params[k] - getattr(base, k)) for k in sv.free)
        problem = cp.Problem(cp.Minimize(obj), sv.constraints)
        for name in sequence:
            att = _solvers.run(problem, name, time_limit=time_left())
            if att.status in ("infeasible", "infeasible_inaccurate") and name == sequence[-1]:
                raise ValueError(
                    f"gamma: the {target.name} projection is infeasible with the fixed weights "
                    f"{sorted(hold)} (gamma={gamma}); try a larger gamma or fewer fixed weights")
            if att.status not in ("optimal", "optimal_inaccurate"):
                last_reason = f"{name}: {att.status} {att.detail}".strip()
                continue
            biases = {"bx": base.bx, "bv": base.bv, "by": base.by}
            try:
                candidate = sv.to_model(base.activation, biases)
            except ValueError as exc:
                last_reason = str(exc)
                continue
            cert = target.certificate(candidate, solver=solver, time_limit=time_left())
            if cert.certified:
                dist = _distance(candidate, base, MATRIX_NAMES, weights)
                return Projection(candidate, cert, dist, norm, target.name, True, time.perf_counter() - t0,
                                  name, margin)
            last_reason = f"margin {margin:g}, {name}: projected model not certified ({cert.reason})"
            break  # a larger margin, not another solver, is what helps
    raise NotCertifiable(f"project: no margin in {tuple(margins)} gave a model that passes the rigorous check "
                       f"({last_reason})")
