"""Model sets as CVXPY variables and constraints (DESIGN.md section 3).

A model set turns the model's weights into cvxpy variables (or keeps some of them fixed), adds
certificate variables (P, lambda, gamma) and returns the constraints that put the model in the
set. The caller composes them with its own objective (projection, a training step, ...)::

    sv = GainBounded(gamma=5.0).build(dims, activation, fixed={"C1": C1, "D12": D12})
    objective = cp.Minimize(sum(cp.sum_squares(sv.params[k] - W[k]) for k in sv.free))
    cp.Problem(objective, sv.constraints).solve()
    model = sv.to_model(activation, biases)

Every set builds its LMI with :func:`rrnn_convex.lmi.lifted_lmi`; nothing here knows about
training. Models from a set are always re-certified with :func:`rrnn_convex.certify.certify`
before being called certified (a solver's "optimal" is not a proof).

``GainBounded(scaling=s)`` bounds the gain in physical units while the variables are the
weights of the model on normalised signals (see :mod:`rrnn_convex.scaling`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

from ._validation import as_float_array, check_scalar
from .activations import Activation, get_activation
from .lmi import cirnn_lmi, lifted_lmi, srnn_lmi
from .model import ImplicitRNN, _MATRIX_SHAPES
from .scaling import ChannelScaling

MATRIX_NAMES = tuple(name for name, _, _ in _MATRIX_SHAPES)
PARAMETRIZATIONS = ("fixed_C1", "free_C1")


@dataclass
class SetVariables:
    """What a model set returns: the weights (cvxpy expressions or fixed arrays), the
    certificate variables and the constraints. ``free`` names the weights that are variables.

    With the ``free_C1`` parametrisation the variables are ``Ct = Lambda C1`` and (for
    Theta_gamma) ``Dt = Lambda D12`` (in ``extra``), and ``params["C1"]`` (``params["D12"]``)
    is None until :meth:`to_model` recovers ``C1 = Lambda^-1 Ct``. Theta does not involve D12,
    so there it is an ordinary free variable.
    """

    params: dict
    cert: dict
    constraints: list
    free: tuple[str, ...]
    extra: dict = field(default_factory=dict)

    def value(self, name: str) -> np.ndarray:
        v = self.params[name]
        return np.asarray(v.value if isinstance(v, cp.Expression) else v, dtype=np.float64)

    def to_model(self, activation, biases: dict | None = None) -> ImplicitRNN:
        """The model at the solved values (call after the problem has been solved).

        The model is in the variables' own coordinates: for a set built with a
        :class:`~rrnn_convex.scaling.ChannelScaling` ``s`` these are the normalised ones, and
        the set's gamma is the gain of ``s.to_physical(model)`` (``biases`` likewise normalised).
        """
        vals = {}
        for name in MATRIX_NAMES:
            if self.params.get(name) is not None:
                vals[name] = self.value(name)
        if "Ct" in self.extra:
            lam = np.asarray(self.cert["lam"].value, dtype=np.float64)
            if np.any(lam <= 0):
                raise ValueError("lam: the free-C1 parametrisation needs lambda > 0 to recover C1 = Ct / lambda")
            vals["C1"] = np.asarray(self.extra["Ct"].value) / lam[:, None]
            if "Dt" in self.extra:
                vals["D12"] = np.asarray(self.extra["Dt"].value) / lam[:, None]
        return ImplicitRNN(**vals, **(biases or {}), activation=activation)


class ModelSet:
    """Base class of the model sets.

    ``build(dims, activation, fixed)`` returns :class:`SetVariables`. Subclasses set
    ``structure(dims)`` (weights the set forces to constants, e.g. the Elman form of SRNN) and
    ``add_constraints(params, dims, act)`` (certificate variables and constraints). The LMI
    sets (Theta, Theta_gamma) also support the ``free_C1`` change of variables.
    """

    gain = False
    uses_multiplier = False  # True for the sets whose LMI has the S-procedure multiplier Lambda

    def __init__(self, margin: float = 1e-6, parametrization: str = "fixed_C1"):
        self.margin = check_scalar(margin, "margin", low=0.0, low_inclusive=True)
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization: expected one of {PARAMETRIZATIONS}, got {parametrization!r}")
        self.parametrization = parametrization

    @property
    def name(self) -> str:
        return type(self).__name__

    def structure(self, dims: dict) -> dict:
        """Weights forced to constant arrays by the set's model structure (none by default)."""
        return {}

    def check_dims(self, dims: dict) -> None:
        """Raise a ValueError when the dimensions do not fit the set."""

    # ------------------------------------------------------------------ variables
    def build(self, dims: dict, activation, fixed: dict | None = None) -> SetVariables:
        """Variables for every weight not fixed, certificate variables and constraints.

        ``dims``: {"n", "q", "m", "p"}. ``fixed``: weights held at given arrays (e.g. C1, D12 in
        the ``fixed_C1`` parametrisation of Theta / Theta_gamma, which requires them).
        """
        act = get_activation(activation)
        try:
            n, q, m, p = (int(dims[k]) for k in ("n", "q", "m", "p"))
        except (KeyError, TypeError):
            raise ValueError(f"dims: expected a dict with keys n, q, m, p, got {dims!r}") from None
        shapes = {"n": n, "q": q, "m": m, "p": p}
        self.check_dims(shapes)
        fixed = dict(fixed or {})
        unknown = set(fixed) - set(MATRIX_NAMES)
        if unknown:
            raise ValueError(f"fixed: unknown weight names {sorted(unknown)}; expected some of {MATRIX_NAMES}")
        forced = self.structure(shapes)
        free_c1 = self.uses_multiplier and self.parametrization == "free_C1"
        params, free = {}, []
        for name, r, c in _MATRIX_SHAPES:
            shape = (shapes[r], shapes[c])
            if name in fixed:
                arr = as_float_array(fixed[name], f"fixed[{name!r}]", ndim=2)
                if arr.shape != shape:
                    raise ValueError(f"fixed[{name!r}]: expected shape {shape}, got {arr.shape}")
                if name in forced and not np.array_equal(arr, forced[name]):
                    raise ValueError(f"fixed[{name!r}]: the {self.name} structure requires {name} = "
                                     f"{_describe(forced[name])}")
                params[name] = arr
            elif name in forced:
                params[name] = forced[name]
            elif free_c1 and (name == "C1" or (name == "D12" and self.gain)):
                params[name] = None  # recovered from Ct = Lambda C1, Dt = Lambda D12
            elif self.uses_multiplier and not free_c1 and name in ("C1", "D12"):
                raise ValueError(f"fixed: the fixed_C1 parametrisation needs {name} in `fixed` "
                                 "(or use parametrization='free_C1')")
            else:
                params[name] = cp.Variable(shape, name=name)
                free.append(name)
        sv = SetVariables(params, {}, [], tuple(free))
        self.add_constraints(sv, shapes, act, fixed)
        return sv

    def add_constraints(self, sv: SetVariables, dims: dict, act: Activation, fixed: dict) -> None:
        raise NotImplementedError

    def contains(self, model: ImplicitRNN) -> bool:
        """Whether ``model`` has the set's structure (for the structural sets); a quick check,
        not a certificate."""
        forced = self.structure(model.dims)
        return all(np.array_equal(getattr(model, k), v) for k, v in forced.items())


class _LMISet(ModelSet):
    """Theta / Theta_gamma: DESIGN.md's lifted LMI with P, Lambda (and gamma) free."""

    uses_multiplier = True

    def __init__(self, margin: float = 1e-6, parametrization: str = "fixed_C1", scaling=None):
        super().__init__(margin, parametrization)
        if scaling is not None and not isinstance(scaling, ChannelScaling):
            raise TypeError(f"scaling: expected a ChannelScaling or None, got {type(scaling).__name__}")
        self.scaling = scaling

    def check_dims(self, dims):
        if self.scaling is not None:
            self.scaling.check_dims(dims["m"], dims["p"], "dims")

    def _gain_operands(self, params, LD12) -> dict:
        """The input/output operands of the gain LMI: the model's own weights, or with a scaling
        those of the model in physical units (constant diagonal factors: still linear)."""
        ops = {"B2": params["B2"], "LD12": LD12, "D12": params["D12"], "C2": params["C2"],
               "D21": params["D21"], "D22": params["D22"]}
        if self.gain and self.scaling is not None:
            ops.update(self.scaling.physical_weights(**ops))
        return ops

    def add_constraints(self, sv, dims, act, fixed):
        n, q, m = dims["n"], dims["q"], dims["m"]
        params = sv.params
        lam = cp.Variable(q, nonneg=True, name="lam")
        Lam = cp.diag(lam)
        if self.parametrization == "free_C1":
            if act.alpha * act.beta != 0.0:
                raise ValueError(
                    f"parametrization: free_C1 needs alpha * beta == 0 (activation {act.name} has "
                    f"[{act.alpha}, {act.beta}]); fix C1 and D12 instead")
            sv.extra["Ct"] = cp.Variable((q, n), name="Ct") if "C1" not in fixed else Lam @ params["C1"]
            if self.gain:  # Theta does not involve D12: it stays an ordinary free variable there
                sv.extra["Dt"] = cp.Variable((q, m), name="Dt") if "D12" not in fixed else Lam @ params["D12"]
            LC1, LD12 = sv.extra["Ct"], sv.extra.get("Dt")
        else:
            LC1, LD12 = Lam @ params["C1"], Lam @ params["D12"]
        sv.cert.update({"P": cp.Variable((n, n), symmetric=True, name="P"), "lam": lam})
        g = None
        if self.gain:
            g = cp.Variable(name="gamma") if self.gamma is None else self.gamma
            sv.cert["gamma"] = g
        M = lifted_lmi(E=params["E"], F=params["F"], B1=params["B1"], P=sv.cert["P"], Lam=Lam,
                       LC1=LC1, C1=params["C1"], **self._gain_operands(params, LD12), gamma=g,
                       alpha=act.alpha, beta=act.beta)
        sv.constraints.append(_psd(M, self.margin))


class Contracting(_LMISet):
    """Theta: the contracting implicit RNNs (DESIGN.md section 3, contraction LMI > margin I).

    ``scaling`` (a :class:`~rrnn_convex.scaling.ChannelScaling`) is accepted so that callers can
    treat both LMI sets alike, and ignored: rescaling inputs and outputs leaves E, F, B1, C1 and
    the state unchanged, so a model contracts in normalised units exactly when it contracts in
    physical units. Only its dimensions are checked against ``dims``.
    """


class GainBounded(_LMISet):
    """Theta_gamma: incremental l2 gain <= gamma. ``gamma=None`` makes gamma a variable
    (``cert["gamma"]``) that the caller may minimise.

    ``scaling``: None, or a :class:`~rrnn_convex.scaling.ChannelScaling` ``s``. With a scaling the
    variables are the weights of the model on normalised signals and gamma bounds the gain of
    ``s.to_physical(model)`` from ``u`` to ``y`` in physical units. The LMI is the physical
    model's, written in the normalised weights: B2, Lambda D12 (and D12 in the ``2ab`` terms)
    times Su^-1, C2 and D21 times Sy on the left, D22 as Sy D22 Su^-1 (Su, Sy the diagonal input
    and output scales). These are constant factors, so the set stays convex.
    """

    gain = True

    def __init__(self, gamma: float | None = None, margin: float = 1e-6, parametrization: str = "fixed_C1",
                 scaling=None):
        super().__init__(margin, parametrization, scaling)
        self.gamma = None if gamma is None else check_scalar(gamma, "gamma", low=0.0)


def _elman_structure(dims) -> dict:
    n, q, m, p = dims["n"], dims["q"], dims["m"], dims["p"]
    return {"E": np.eye(n), "F": np.zeros((n, n)), "B1": np.eye(n), "B2": np.zeros((n, m)),
            "D21": np.zeros((p, q))}


class _ElmanLikeSet(ModelSet):
    """Shared checks of the sets whose models have one neuron per state and |slope| <= 1."""

    def check_dims(self, dims):
        if dims["n"] != dims["q"]:
            raise ValueError(f"dims: the {self.name} needs as many neurons as states (n = q), "
                             f"got n={dims['n']}, q={dims['q']}")

    def check_activation(self, act: Activation) -> None:
        if max(abs(act.alpha), abs(act.beta)) > 1.0:
            raise ValueError(f"activation: the {self.name} needs slopes in [-1, 1], got [{act.alpha}, {act.beta}]")


class CIRNNSet(_ElmanLikeSet):
    """Contracting implicit RNNs (ci-RNN, Revay & Manchester 2020): ``E x+ = sigma(W x + U u + b)``.

    As an ImplicitRNN: F = 0, B1 = I, B2 = 0, D21 = 0 (forced), C1 = W, D12 = U, E free;
    constraint :func:`~rrnn_convex.lmi.cirnn_lmi` ``[[E + E' - P, W'], [W, P]] > margin I`` with
    P diagonal. Needs n = q and an activation with slopes in [-1, 1].
    """

    def structure(self, dims):
        s = _elman_structure(dims)
        del s["E"]
        return s

    def add_constraints(self, sv, dims, act, fixed):
        self.check_activation(act)
        p = cp.Variable(dims["n"], name="p")
        sv.cert["P"] = cp.diag(p)
        sv.cert["p"] = p
        M = cirnn_lmi(E=sv.params["E"], F=sv.params["C1"], P=sv.cert["P"])
        sv.constraints.append(_psd(M, self.margin))


class SRNNSet(_ElmanLikeSet):
    """Stable RNNs of Miller & Hardt: the Elman RNN ``h+ = sigma(W h + U u + b)`` with
    ``||W||_2 <= 1 - eps`` (:func:`~rrnn_convex.lmi.srnn_lmi`). As an ImplicitRNN: E = I, F = 0,
    B1 = I, B2 = 0, D21 = 0 (forced), C1 = W. Needs n = q and a 1-Lipschitz activation."""

    def __init__(self, eps: float = 0.01):
        super().__init__(margin=0.0)
        self.eps = check_scalar(eps, "eps", low=0.0, high=1.0)

    def structure(self, dims):
        return _elman_structure(dims)

    def add_constraints(self, sv, dims, act, fixed):
        self.check_activation(act)
        sv.constraints.append(_psd(srnn_lmi(W=sv.params["C1"], eps=self.eps), 0.0))


class ElmanSet(_ElmanLikeSet):
    """The plain Elman RNN ``h+ = sigma(W h + U u + b)``, ``y = C h + D u + b_y``: the SRNN's
    structure (E = I, F = 0, B1 = I, B2 = 0, D21 = 0, C1 = W) without any constraint. The paper's
    "RNN" baseline; nothing is certified."""

    def __init__(self):
        super().__init__(margin=0.0)

    def structure(self, dims):
        return _elman_structure(dims)

    def add_constraints(self, sv, dims, act, fixed):
        return None


class Unconstrained(ModelSet):
    """Every implicit RNN (no constraint): for baselines trained with the same optimiser."""

    def __init__(self):
        super().__init__(margin=0.0)

    def add_constraints(self, sv, dims, act, fixed):
        return None


def _psd(M, margin: float):
    N = M.shape[0]
    return 0.5 * (M + M.T) - margin * np.eye(N) >> 0


def _describe(arr: np.ndarray) -> str:
    if not arr.any():
        return f"zeros{arr.shape}"
    if arr.shape[0] == arr.shape[1] and np.array_equal(arr, np.eye(arr.shape[0])):
        return f"the identity{arr.shape}"
    return f"a fixed {arr.shape} array"
