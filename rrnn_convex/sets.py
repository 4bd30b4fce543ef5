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
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

from ._validation import as_float_array, check_scalar
from .activations import Activation, get_activation
from .lmi import lifted_lmi
from .model import ImplicitRNN, _MATRIX_SHAPES

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
        """The model at the solved values (call after the problem has been solved)."""
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
    """Base class: subclasses define :meth:`lmi_constraints` on top of the shared variables."""

    gain = False

    def __init__(self, margin: float = 1e-6, parametrization: str = "fixed_C1"):
        self.margin = check_scalar(margin, "margin", low=0.0, low_inclusive=True)
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization: expected one of {PARAMETRIZATIONS}, got {parametrization!r}")
        self.parametrization = parametrization

    # ------------------------------------------------------------------ variables
    def build(self, dims: dict, activation, fixed: dict | None = None) -> SetVariables:
        """Variables for every weight not in ``fixed``, certificate variables and constraints.

        ``dims``: {"n", "q", "m", "p"}. ``fixed``: weights held at given arrays (e.g. C1, D12 in
        the ``fixed_C1`` parametrisation, which requires them).
        """
        act = get_activation(activation)
        try:
            n, q, m, p = (int(dims[k]) for k in ("n", "q", "m", "p"))
        except (KeyError, TypeError):
            raise ValueError(f"dims: expected a dict with keys n, q, m, p, got {dims!r}") from None
        shapes = {"n": n, "q": q, "m": m, "p": p}
        fixed = dict(fixed or {})
        unknown = set(fixed) - set(MATRIX_NAMES)
        if unknown:
            raise ValueError(f"fixed: unknown weight names {sorted(unknown)}; expected some of {MATRIX_NAMES}")
        params, free = {}, []
        for name, r, c in _MATRIX_SHAPES:
            shape = (shapes[r], shapes[c])
            if name in fixed:
                arr = as_float_array(fixed[name], f"fixed[{name!r}]", ndim=2)
                if arr.shape != shape:
                    raise ValueError(f"fixed[{name!r}]: expected shape {shape}, got {arr.shape}")
                params[name] = arr
            elif name == "C1" and self.parametrization == "free_C1":
                params[name] = None
            elif name == "D12" and self.parametrization == "free_C1" and self.gain:
                params[name] = None
            elif name in ("C1", "D12") and self.parametrization == "fixed_C1":
                raise ValueError(f"fixed: the fixed_C1 parametrisation needs {name} in `fixed` "
                                 "(or use parametrization='free_C1')")
            else:
                params[name] = cp.Variable(shape, name=name)
                free.append(name)
        lam = cp.Variable(q, nonneg=True, name="lam")
        Lam = cp.diag(lam)
        extra = {}
        if self.parametrization == "free_C1":
            if act.alpha * act.beta != 0.0:
                raise ValueError(
                    f"parametrization: free_C1 needs alpha * beta == 0 (activation {act.name} has "
                    f"[{act.alpha}, {act.beta}]); fix C1 and D12 instead")
            extra["Ct"] = cp.Variable((q, n), name="Ct") if "C1" not in fixed else Lam @ params["C1"]
            if self.gain:  # Theta does not involve D12: it stays an ordinary free variable there
                extra["Dt"] = cp.Variable((q, m), name="Dt") if "D12" not in fixed else Lam @ params["D12"]
            LC1, LD12 = extra["Ct"], extra.get("Dt")
        else:
            LC1, LD12 = Lam @ params["C1"], Lam @ params["D12"]
        cert = {"P": cp.Variable((n, n), symmetric=True, name="P"), "lam": lam}
        constraints = self.lmi_constraints(params, cert, Lam, LC1, LD12, act, dims=shapes)
        return SetVariables(params, cert, constraints, tuple(free), extra)

    def lmi_constraints(self, params, cert, Lam, LC1, LD12, act: Activation, dims) -> list:
        raise NotImplementedError

    def _lmi(self, params, cert, Lam, LC1, LD12, act, gamma=None):
        M = lifted_lmi(E=params["E"], F=params["F"], B1=params["B1"], B2=params["B2"],
                       P=cert["P"], Lam=Lam, LC1=LC1, LD12=LD12, C1=params["C1"], D12=params["D12"],
                       C2=params["C2"], D21=params["D21"], D22=params["D22"], gamma=gamma,
                       alpha=act.alpha, beta=act.beta)
        N = M.shape[0]
        return [0.5 * (M + M.T) - self.margin * np.eye(N) >> 0]


class Contracting(ModelSet):
    """Theta: the contracting implicit RNNs (DESIGN.md section 3, contraction LMI > margin I)."""

    def lmi_constraints(self, params, cert, Lam, LC1, LD12, act, dims):
        return self._lmi(params, cert, Lam, LC1, LD12, act, gamma=None)


class GainBounded(ModelSet):
    """Theta_gamma: incremental l2 gain <= gamma. ``gamma=None`` makes gamma a variable
    (``cert["gamma"]``) that the caller may minimise."""

    gain = True

    def __init__(self, gamma: float | None = None, margin: float = 1e-6, parametrization: str = "fixed_C1"):
        super().__init__(margin, parametrization)
        self.gamma = None if gamma is None else check_scalar(gamma, "gamma", low=0.0)

    def lmi_constraints(self, params, cert, Lam, LC1, LD12, act, dims):
        g = cp.Variable(name="gamma") if self.gamma is None else self.gamma
        cert["gamma"] = g
        return self._lmi(params, cert, Lam, LC1, LD12, act, gamma=g)
