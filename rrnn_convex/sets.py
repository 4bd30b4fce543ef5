"""Model sets as CVXPY variables and constraints (docs/design.md section 3.3).

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

The sets are registered by name (``"theta"``, ``"theta_gamma"``, ``"cirnn"``, ``"srnn"``,
``"elman"``, ``"unconstrained"``): :meth:`ModelSet.from_name` builds one, :meth:`ModelSet.names`
lists them, and the estimators, the sweep and the command line take their choices from there.
Each set also answers what its callers need to know about it: the certificate an iterate needs
(:meth:`ModelSet.certificate`), whether a model is already in it (:meth:`ModelSet.membership`),
whether a model has its structure (:meth:`ModelSet.check_structure`) and, for the LMI sets, the
certificate point that puts given weights in the lifted LMI (:meth:`ModelSet.lifted_form`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

from . import solvers
from ._validation import as_float_array, check_scalar
from .activations import Activation, get_activation
from .certify import Certificate, certify
from .errors import NotCertifiable
from .lmi import cirnn_lmi, lifted_lmi, model_D11, srnn_lmi
from .model import ImplicitRNN
from .scaling import ChannelScaling
from .shapes import MATRIX_NAMES, MATRIX_SHAPES

PARAMETRIZATIONS = ("fixed_C1", "free_C1")


@dataclass
class SetVariables:
    """What a model set returns: the weights (cvxpy expressions or fixed arrays), the
    certificate variables and the constraints. ``free`` names the weights that are variables.

    With the ``free_C1`` parametrisation the variables are ``Ct = Lambda C1`` and (for
    Theta_gamma) ``Dt = Lambda D12`` (in ``extra``), and ``params["C1"]`` (``params["D12"]``)
    is None until :meth:`to_model` recovers ``C1 = Lambda^-1 Ct``. Theta does not involve D12,
    so there it is an ordinary free variable.

    Attributes
    ----------
    params : dict
        Weight name (``"E"``, ``"F"``, ..., ``"D22"``) -> a cvxpy Variable of the weight's shape,
        a fixed float64 array (given in ``fixed`` or forced by the set's structure), or None
        (C1, D12 under ``free_C1``).
    cert : dict
        The certificate variables: ``"P"`` (n, n) and ``"lam"`` (q,) for Theta / Theta_gamma,
        plus ``"gamma"`` for Theta_gamma (a Variable when the set's gamma is None, else the
        number); ``"P"`` (a diagonal expression) and ``"p"`` (n,) for the ci-RNN set; empty
        for the other sets.
    constraints : list
        The cvxpy constraints that put the model in the set.
    free : tuple of str
        The names of the weights that are cvxpy Variables, in storage order.
    extra : dict
        ``"Ct"`` (q, n) and, for Theta_gamma, ``"Dt"`` (q, m) under ``free_C1``: Variables, or
        ``Lambda C1`` (``Lambda D12``) expressions when C1 (D12) is fixed. The equilibrium term
        (Theta / Theta_gamma): ``"D11"`` (q, q), the fixed array, or ``"Dt11"`` (q, q), the
        variable ``Lambda D11`` of a set built with ``equilibrium=True`` under ``free_C1``.
        Empty otherwise.
    """

    params: dict
    cert: dict
    constraints: list
    free: tuple[str, ...]
    extra: dict = field(default_factory=dict)

    def value(self, name: str) -> np.ndarray:
        """The value of one weight: a variable's solved value, or the fixed array.

        Parameters
        ----------
        name : str
            A key of ``params`` (``"E"``, ..., ``"D22"``).

        Returns
        -------
        numpy.ndarray
            float64, of the weight's shape once the problem has been solved (an unsolved
            variable, or a None entry, gives a 0-d NaN array).

        Raises
        ------
        KeyError
            If ``name`` is not a key of ``params``.
        """
        v = self.params[name]
        return np.asarray(v.value if isinstance(v, cp.Expression) else v, dtype=np.float64)

    def to_model(self, activation, biases: dict | None = None) -> ImplicitRNN:
        """The model at the solved values (call after the problem has been solved).

        The model is in the variables' own coordinates: for a set built with a
        :class:`~rrnn_convex.scaling.ChannelScaling` ``s`` these are the normalised ones, and
        the set's gamma is the gain of ``s.to_physical(model)`` (``biases`` likewise normalised).

        Parameters
        ----------
        activation : str, dict or Activation
            The model's activation (see :func:`~rrnn_convex.activations.get_activation`).
        biases : dict, optional
            ``bx`` (n,), ``bv`` (q,) and ``by`` (p,), passed to the model (None: zeros).

        Returns
        -------
        ImplicitRNN
            Every weight in ``params`` that is not None at its value; under ``free_C1``,
            ``C1 = Ct / lambda`` (and ``D12 = Dt / lambda``, ``D11 = Dt11 / lambda``) row by row;
            a fixed ``extra["D11"]`` as given.

        Raises
        ------
        ValueError
            Under ``free_C1``, if a solved lambda is not positive; or if the values do not make a
            valid :class:`~rrnn_convex.model.ImplicitRNN` (e.g. the problem was not solved).
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
            if "Dt11" in self.extra:
                vals["D11"] = np.asarray(self.extra["Dt11"].value) / lam[:, None]
                # the set's dw block 2 Lam - Dt11 - Dt11' > 0 makes lam the model's proof of well-posedness
                vals["well_posed_multiplier"] = lam
        if "D11" in self.extra:
            vals["D11"] = np.asarray(self.extra["D11"], dtype=np.float64)
        return ImplicitRNN(**vals, **(biases or {}), activation=activation)


#: registered name -> ModelSet subclass, in the order the sets are listed to users
_REGISTRY: dict = {}


def register(key: str):
    """Class decorator: register a :class:`ModelSet` subclass under ``key``.

    Parameters
    ----------
    key : str
        The name :meth:`ModelSet.from_name` and the estimators' ``model_set`` parameter accept.

    Returns
    -------
    callable
        The decorator; it sets ``cls.key`` and returns the class unchanged.

    Raises
    ------
    ValueError
        If ``key`` is already registered.
    """
    def decorate(cls):
        if key in _REGISTRY:
            raise ValueError(f"key: the model set name {key!r} is already registered "
                             f"(by {_REGISTRY[key].__name__})")
        cls.key = key
        _REGISTRY[key] = cls
        return cls

    return decorate


class ModelSet:
    """Base class of the model sets.

    ``build(dims, activation, fixed)`` returns :class:`SetVariables`. Subclasses set
    ``structure(dims)`` (weights the set forces to constants, e.g. the Elman form of SRNN) and
    ``add_constraints(sv, dims, act, fixed)`` (certificate variables and constraints). The LMI
    sets (Theta, Theta_gamma) also support the ``free_C1`` change of variables.

    The class attributes below are what callers ask instead of testing the type.

    Parameters
    ----------
    margin : float
        The constraints ask the set's LMI to be >= ``margin * I``; >= 0.
    parametrization : {"fixed_C1", "free_C1"}
        The variables of the LMI sets: C1 and D12 held fixed (given in ``build``'s ``fixed``),
        or the change of variables ``Ct = Lambda C1`` (and ``Dt = Lambda D12``) of
        docs/design.md section 3.4. The other sets ignore it.

    Attributes
    ----------
    key : str or None
        The registered name.
    gain : bool
        The set bounds the incremental gain: its name needs a ``gamma``.
    uses_multiplier : bool
        Its LMI has the S-procedure multiplier Lambda: the lifted LMI of Theta / Theta_gamma.
    certifies : bool
        Its models carry a certificate; False for the unconstrained baselines.
    elman_structure : bool
        Its models are Elman RNNs, one neuron per state.
    gamma : float or None
        The gain bound, None for the sets that bound no gain.
    structure_text : str
        The forced structure in words, for error messages ("" without one).
    name_options : tuple of str
        The constructor arguments :meth:`from_name` passes on from its ``options``.
    gain_bounded : str or None
        The registered name of the same set with a gain bound (``"theta_gamma"`` for Theta).
    margin : float
        As given.
    parametrization : str
        As given.

    Raises
    ------
    TypeError
        If ``margin`` is not a real number.
    ValueError
        If ``margin`` is negative or not finite, or ``parametrization`` is unknown.
    """

    key: str | None = None
    gain = False
    uses_multiplier = False  # True for the sets whose LMI has the S-procedure multiplier Lambda
    certifies = True
    elman_structure = False
    gamma: float | None = None
    #: the structure in words, for error messages (the sets with a forced structure)
    structure_text = ""
    #: the constructor arguments :meth:`from_name` passes on from its ``options``
    name_options: tuple[str, ...] = ()
    #: the registered name of the same set with a gain bound (Theta -> Theta_gamma), if any
    gain_bounded: str | None = None
    #: names besides the weight fields that ``build``'s ``fixed`` accepts (``"D11"`` for Theta /
    #: Theta_gamma, whose LMI has the equilibrium term)
    optional_fixed: tuple[str, ...] = ()

    def __init__(self, margin: float = 1e-6, parametrization: str = "fixed_C1"):
        self.margin = check_scalar(margin, "margin", low=0.0, low_inclusive=True)
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization: expected one of {PARAMETRIZATIONS}, got {parametrization!r}")
        self.parametrization = parametrization

    # ------------------------------------------------------------------ the registry
    @staticmethod
    def names() -> tuple[str, ...]:
        """The registered set names, in the order they are listed to users.

        Returns
        -------
        tuple of str
            ``("theta", "theta_gamma", "cirnn", "srnn", "elman", "unconstrained")`` plus any
            set registered later with :func:`register`.
        """
        return tuple(_REGISTRY)

    @staticmethod
    def registered(name: str, argument: str = "model_set") -> type:
        """The set class registered under ``name``.

        Parameters
        ----------
        name : str
            A registered name (see :meth:`names`).
        argument : str
            The argument named in the error message.

        Returns
        -------
        type
            The :class:`ModelSet` subclass.

        Raises
        ------
        ValueError
            If ``name`` is not registered (the message lists the registered names).
        """
        if not isinstance(name, str) or name not in _REGISTRY:
            raise ValueError(f"{argument}: expected one of {ModelSet.names()}, got {name!r}")
        return _REGISTRY[name]

    @staticmethod
    def names_where(**flags) -> tuple[str, ...]:
        """The registered names whose class attributes equal ``flags``, e.g.
        ``names_where(certifies=False)`` (the sets whose models carry no certificate).

        Parameters
        ----------
        **flags
            Class attribute names (``gain``, ``uses_multiplier``, ``certifies``,
            ``elman_structure``) and the values to select.

        Returns
        -------
        tuple of str
            The matching names, in registry order.

        Raises
        ------
        ValueError
            If a flag is not a class attribute of :class:`ModelSet`.
        """
        unknown = sorted(k for k in flags if not hasattr(ModelSet, k))
        if unknown:
            raise ValueError(f"flags: expected class attributes of ModelSet, got {unknown}")
        return tuple(k for k, cls in _REGISTRY.items() if all(getattr(cls, f) == v for f, v in flags.items()))

    @classmethod
    def from_name(cls, name: str, *, gamma: float | None = None, argument: str = "model_set",
                  **options) -> "ModelSet":
        """Build the set registered under ``name``.

        Parameters
        ----------
        name : str
            A registered name (:meth:`names`), e.g. ``"theta_gamma"``.
        gamma : float, optional
            The gain bound: required by the sets that bound the gain (``"theta_gamma"``),
            refused by the others.
        argument : str
            The argument named when ``name`` is not registered.
        **options
            Settings of the sets (``margin``, ``parametrization``, ``scaling``, ``equilibrium``,
            ``eps``); each set takes those in its ``name_options`` and ignores the rest, so one
            set of options serves every name.

        Returns
        -------
        ModelSet
            A new set.

        Raises
        ------
        ValueError
            For an unknown name, a missing or unexpected ``gamma``, an option no set takes, or
            an invalid option value.

        Examples
        --------
        >>> ModelSet.from_name("theta_gamma", gamma=10).gamma
        10.0
        """
        kind = cls.registered(name, argument)
        known = set().union(*(k.name_options for k in _REGISTRY.values()))
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"options: expected some of {sorted(known)}, got {unknown}")
        if kind.gain and gamma is None:
            raise ValueError(f"gamma: model_set {name!r} needs gamma")
        if not kind.gain and gamma is not None:
            gain_names = " or ".join(repr(k) for k in cls.names_where(gain=True))
            raise ValueError(f"gamma: only meaningful with model_set {gain_names}, got model_set {name!r}")
        kwargs = {k: v for k, v in options.items() if k in kind.name_options}
        if kind.gain:
            kwargs["gamma"] = gamma
        return kind(**kwargs)

    def replace(self, **changes) -> "ModelSet":
        """A copy of the set with some attributes changed, e.g. ``replace(margin=p)`` with a cvxpy
        Parameter as the margin of a problem that is re-solved.

        Parameters
        ----------
        **changes
            Attribute names of the set and their new values (not validated: a cvxpy expression
            is allowed where a number is expected).

        Returns
        -------
        ModelSet
            A shallow copy; the set itself is unchanged.

        Raises
        ------
        ValueError
            If a name is not an attribute of the set.
        """
        unknown = sorted(k for k in changes if not hasattr(self, k))
        if unknown:
            raise ValueError(f"changes: {self.name} has no attribute(s) {unknown}")
        out = copy.copy(self)
        for k, v in changes.items():
            setattr(out, k, v)
        return out

    @property
    def name(self) -> str:
        """The class name (``"GainBounded"``, ...), used in messages."""
        return type(self).__name__

    def structure(self, dims: dict) -> dict:
        """Weights forced to constant arrays by the set's model structure (none by default).

        Parameters
        ----------
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.

        Returns
        -------
        dict
            Weight name -> float64 array of the weight's shape; empty for the sets without a
            structure.
        """
        return {}

    def check_dims(self, dims: dict) -> None:
        """Raise a ValueError when the dimensions do not fit the set.

        Parameters
        ----------
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.

        Raises
        ------
        ValueError
            If the set cannot have these dimensions (never, in the base class).
        """

    # ------------------------------------------------------------------ variables
    def build(self, dims: dict, activation, fixed: dict | None = None) -> SetVariables:
        """Variables for every weight not fixed, certificate variables and constraints.

        ``dims``: {"n", "q", "m", "p"}. ``fixed``: weights held at given arrays (e.g. C1, D12 in
        the ``fixed_C1`` parametrisation of Theta / Theta_gamma, which requires them).

        Parameters
        ----------
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``: states, neurons, inputs, outputs (each
            converted with ``int``).
        activation : str, dict or Activation
            The activation; its slope bounds enter the LMI.
        fixed : dict, optional
            Weight name -> array of the weight's shape, held at that value. A weight that the
            set's structure forces may be given only at its forced value.

        Returns
        -------
        SetVariables
            A cvxpy Variable for every weight neither fixed nor forced (named in ``free``), the
            certificate variables and the constraints.

        Raises
        ------
        ValueError
            Malformed ``dims`` or dimensions the set refuses (:meth:`check_dims`), an unknown
            activation, an unknown weight name in ``fixed``, a fixed weight of the wrong shape,
            with NaN or inf or differing from the forced structure, C1 or D12 missing from
            ``fixed`` under ``fixed_C1`` (Theta, Theta_gamma), ``free_C1`` with an activation
            whose ``alpha * beta != 0``, or an activation with slopes outside [-1, 1] (ci-RNN
            and SRNN sets).
        TypeError
            A fixed weight that is not an array of real numbers.
        """
        act = get_activation(activation)
        try:
            n, q, m, p = (int(dims[k]) for k in ("n", "q", "m", "p"))
        except (KeyError, TypeError):
            raise ValueError(f"dims: expected a dict with keys n, q, m, p, got {dims!r}") from None
        shapes = {"n": n, "q": q, "m": m, "p": p}
        self.check_dims(shapes)
        fixed = dict(fixed or {})
        unknown = set(fixed) - set(MATRIX_NAMES) - set(self.optional_fixed)
        if unknown:
            raise ValueError(f"fixed: unknown weight names {sorted(unknown)}; expected some of "
                             f"{MATRIX_NAMES + self.optional_fixed}")
        forced = self.structure(shapes)
        free_c1 = self.uses_multiplier and self.parametrization == "free_C1"
        params, free = {}, []
        for name, r, c in MATRIX_SHAPES:
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
        """Add the set's certificate variables to ``sv.cert`` and its constraints to
        ``sv.constraints`` (called by :meth:`build`; each subclass implements it).

        Parameters
        ----------
        sv : SetVariables
            The weights built so far; completed in place.
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.
        act : Activation
            The activation.
        fixed : dict
            The ``fixed`` argument of :meth:`build` (the LMI sets read only its keys).

        Raises
        ------
        NotImplementedError
            Always, in the base class.
        """
        raise NotImplementedError

    def contains(self, model: ImplicitRNN) -> bool:
        """Whether ``model`` has the set's structure (for the structural sets); a quick check,
        not a certificate.

        Parameters
        ----------
        model : ImplicitRNN
            The model.

        Returns
        -------
        bool
            True when every weight the set forces has its forced value (always, for the sets
            without a structure).
        """
        return not self.structure_differences(model)

    def structure_differences(self, model: ImplicitRNN) -> list[str]:
        """The weights of ``model`` that differ from the set's forced structure (in the order of
        :meth:`structure`; empty for the sets without one).

        Parameters
        ----------
        model : ImplicitRNN
            The model.

        Returns
        -------
        list of str
            The names of the differing weights (exact comparison), ``"D11"`` last when the set
            has a structure (the Elman-like sets, which have no equilibrium term) and the
            model's D11 is nonzero.
        """
        forced = self.structure(model.dims)
        wrong = [k for k, v in forced.items() if not np.array_equal(getattr(model, k), v)]
        if forced and model_D11(model) is not None:
            wrong.append("D11")
        return wrong

    def check_structure(self, model: ImplicitRNN) -> None:
        """Refuse a model without the set's structure.

        Parameters
        ----------
        model : ImplicitRNN
            The model, in the representation it is given in (the structure is
            representation-specific: E = I for the SRNN set, say).

        Raises
        ------
        ValueError
            Naming the set, its structure and the weights that differ from it.
        """
        wrong = self.structure_differences(model)
        if wrong:
            raise ValueError(f"model: does not have the {self.name} structure ({self.structure_text}); "
                             f"these weights differ from it: {wrong}")

    # ------------------------------------------------------------------ certificates
    def certificate(self, model: ImplicitRNN, *, solver: str | None = None, smallest_gamma: bool = False,
                    gamma_time_limit: float | None = None, **certify_options) -> Certificate | None:
        """The certificate that puts ``model`` in the set: :func:`~rrnn_convex.certify.certify`
        with the set's gamma (gain-bounded sets), else of contraction alone.

        Parameters
        ----------
        model : ImplicitRNN
            The model, in the units the set's gamma is stated in (physical units).
        solver : str, optional
            The SDP solver (None: certify's default).
        smallest_gamma : bool
            For the sets without a gamma: also find the smallest certifiable gamma (about 20x the
            cost of contraction alone at n = 128), e.g. for a fit's final model.
        gamma_time_limit : float, optional
            Seconds for that search (None: certify's default). When it runs out, the answer is the
            lowest gamma verified by then, at worst the one proven from the contraction metric
            (certify's last step); should even contraction be unproven by then, contraction alone
            is certified without this limit, as membership in the set needs.
        **certify_options
            Passed on to :func:`~rrnn_convex.certify.certify` (``time_limit``, ...).

        Returns
        -------
        Certificate or None
            None for the sets whose models carry no certificate (``certifies`` False); else the
            certificate, which may say "not certified".
        """
        if not self.certifies:
            return None
        if self.gamma is not None:
            return certify(model, gamma=self.gamma, solver=solver, **certify_options)
        if smallest_gamma:
            limited = {} if gamma_time_limit is None else {"time_limit": float(gamma_time_limit)}
            cert = certify(model, solver=solver, **(certify_options | limited))
            if cert.certified or gamma_time_limit is None:
                return cert
        return certify(model, solver=solver, contraction_only=True, **certify_options)

    def membership(self, model: ImplicitRNN, *, solver: str | None = None, **certify_options) -> Certificate | None:
        """The model's certificate if it is already in the set, else None.

        Parameters
        ----------
        model : ImplicitRNN
            The model.
        solver : str, optional
            The SDP solver.
        **certify_options
            Passed on to :meth:`certificate` (``time_limit``, ...).

        Returns
        -------
        Certificate or None
            A certificate that certifies, or None: the model is not in the set, or the set
            cannot tell from a certificate of the weights (the ci-RNN set).
        """
        cert = self.certificate(model, solver=solver, **certify_options)
        return cert if cert is not None and cert.certified else None

    @staticmethod
    def constrained(obj, argument: str = "target") -> "ModelSet":
        """``obj`` if it is a set whose models carry a certificate.

        Parameters
        ----------
        obj : object
            The value to check.
        argument : str
            The argument named in the error.

        Returns
        -------
        ModelSet
            ``obj`` itself.

        Raises
        ------
        ValueError
            If ``obj`` is not a :class:`ModelSet` or certifies nothing (the message lists the
            registered constrained sets).
        """
        if not isinstance(obj, ModelSet) or not obj.certifies:
            kinds = ", ".join(_REGISTRY[k].__name__ for k in ModelSet.names_where(certifies=True))
            raise ValueError(f"{argument}: expected a constrained ModelSet ({kinds}), got {obj!r}")
        return obj


class _LMISet(ModelSet):
    """Theta / Theta_gamma: the lifted LMI of docs/design.md section 3.3 with P, Lambda (and
    gamma) free."""

    uses_multiplier = True
    optional_fixed = ("D11",)

    def __init__(self, margin: float = 1e-6, parametrization: str = "fixed_C1", scaling=None,
                 equilibrium: bool = False):
        super().__init__(margin, parametrization)
        if scaling is not None and not isinstance(scaling, ChannelScaling):
            raise TypeError(f"scaling: expected a ChannelScaling or None, got {type(scaling).__name__}")
        self.scaling = scaling
        if not isinstance(equilibrium, (bool, np.bool_)):
            raise TypeError(f"equilibrium: expected a bool, got {type(equilibrium).__name__}")
        self.equilibrium = bool(equilibrium)

    def check_dims(self, dims):
        """Check the input and output counts against the scaling, if any.

        Parameters
        ----------
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.

        Raises
        ------
        ValueError
            If ``(m, p)`` differ from the scaling's.
        """
        if self.scaling is not None:
            self.scaling.check_dims(dims["m"], dims["p"], "dims")

    def lifted_point(self, model: ImplicitRNN, solver: str | None = None, min_margin: float = 0.0) -> dict | None:
        """Certificate variables with which the weights of ``model`` satisfy the set's lifted LMI.

        An SDP with every weight fixed: maximise the margin t <= 1 over P and lambda > 0.

        Parameters
        ----------
        model : ImplicitRNN
            The model in the set's own coordinates (normalised, for a set with a scaling).
        solver : str, optional
            The SDP solver (the first of :func:`~rrnn_convex.solvers.solver_sequence`).
        min_margin : float
            The smallest margin accepted.

        Returns
        -------
        dict or None
            ``{"P": ..., "lam": ...}`` with margin greater than ``min_margin``, or None if there
            is none.
        """
        fixed = {k: v for k, v in model.weights().items() if v.ndim == 2}
        D11 = model_D11(model)
        if D11 is not None or self.equilibrium:  # the model's own D11, never a variable Dt11 here
            fixed["D11"] = model.D11
        t = cp.Variable(name="t")
        sv = self.replace(margin=t, parametrization="free_C1").build(model.dims, model.activation, fixed=fixed)
        lam = sv.cert["lam"]
        prob = cp.Problem(cp.Maximize(t), sv.constraints + [lam >= 1e-9, t <= 1.0])
        att = solvers.run(prob, solvers.solver_sequence(solver, fallback=False)[0])
        if att.status not in ("optimal", "optimal_inaccurate") or lam.value is None or not np.min(lam.value) > 0:
            return None
        # the margin the point really has (an inaccurate solve is fine if the point is good)
        tv = float(t.value)
        margin = min(float(np.linalg.eigvalsh(0.5 * (c.expr.value + c.expr.value.T))[0]) + tv
                     for c in sv.constraints if isinstance(c, cp.constraints.PSD))
        if not margin > min_margin:
            return None
        return {"P": np.asarray(sv.cert["P"].value, dtype=np.float64), "lam": np.asarray(lam.value, dtype=np.float64)}

    def lifted_form(self, model: ImplicitRNN, scaling=None, solver: str | None = None) -> tuple:
        """The model in a representation that satisfies the set's lifted LMI, with its certificate
        point.

        In the certificate's metric, E = E'QE (= Qx, symmetric), F = E'Q F, ..., the lifted LMI
        holds at P = E exactly (the relaxation E + E' - P <= E'P^-1 E is tight when P = E): a
        change of representation only.

        Parameters
        ----------
        model : ImplicitRNN
            The model in the set's coordinates.
        scaling : ChannelScaling, optional
            Maps ``model`` to the physical units its certificate is stated in (None: the same).
        solver : str, optional
            The SDP solver.

        Returns
        -------
        tuple
            ``(model, point)``: ``model`` itself when its weights already satisfy the lifted LMI,
            else the same model re-represented; ``point`` as from :meth:`lifted_point`.

        Raises
        ------
        NotCertifiable
            If no certificate point exists even in the certificate's representation.
        """
        point = self.lifted_point(model, solver)
        if point is not None:
            return model, point
        cert = self.certificate(model if scaling is None else scaling.to_physical(model), solver=solver)
        model = model.transform(model.E.T @ cert.Q)
        point = self.lifted_point(model, solver)
        if point is None:
            raise NotCertifiable("fit: no multipliers put the starting weights in the lifted LMI, even in the "
                                 "certificate's own representation")
        return model, point

    def _gain_operands(self, params, LD12) -> dict:
        """The input/output operands of the gain LMI: the model's own weights, or with a scaling
        those of the model in physical units (constant diagonal factors: still linear)."""
        ops = {"B2": params["B2"], "LD12": LD12, "D12": params["D12"], "C2": params["C2"],
               "D21": params["D21"], "D22": params["D22"]}
        if self.gain and self.scaling is not None:
            ops.update(self.scaling.physical_weights(**ops))
        return ops

    def add_constraints(self, sv, dims, act, fixed):
        """The lifted LMI >= ``margin * I``, with ``P`` (symmetric) and ``lam`` (>= 0) added to
        ``sv.cert`` (and ``gamma``, a Variable when the set's gamma is None, for Theta_gamma).

        Parameters
        ----------
        sv : SetVariables
            Completed in place (``cert``, ``constraints``, ``extra`` under ``free_C1``).
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.
        act : Activation
            Its slope bounds ``alpha``, ``beta`` enter the LMI.
        fixed : dict
            Under ``free_C1``, a fixed C1 (D12) gives ``Ct = Lambda C1`` (``Dt = Lambda D12``)
            instead of a variable. ``fixed["D11"]``: the equilibrium term held at that array
            (``Lambda D11`` is linear in Lambda under either parametrisation).

        Raises
        ------
        ValueError
            Under ``free_C1``, if ``act.alpha * act.beta != 0``; a malformed ``fixed["D11"]``;
            ``equilibrium=True`` without a fixed D11 under ``fixed_C1`` (``Lambda D11`` would be
            bilinear).

        Notes
        -----
        The equilibrium term ``v = C1 x + D11 w + D12 u + bv`` changes only the S-procedure
        blocks (:func:`~rrnn_convex.lmi.sector_blocks`): for slope bounds [0, 1] the dw block
        becomes ``2 Lambda - Lambda D11 - D11' Lambda``. As in the REN's convex
        parametrisation, the variable is ``Dt11 = Lambda D11`` (``sv.extra["Dt11"]``), so the
        set stays convex, and ``D11 = Lambda^-1 Dt11``. A set without ``equilibrium`` and
        without ``fixed["D11"]`` builds exactly the LMI of a model without D11.
        """
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
        D11, LD11 = self._equilibrium_operands(sv, fixed, Lam, q)
        sv.cert.update({"P": cp.Variable((n, n), symmetric=True, name="P"), "lam": lam})
        g = None
        if self.gain:
            g = cp.Variable(name="gamma") if self.gamma is None else self.gamma
            sv.cert["gamma"] = g
        M = lifted_lmi(E=params["E"], F=params["F"], B1=params["B1"], P=sv.cert["P"], Lam=Lam,
                       LC1=LC1, C1=params["C1"], **self._gain_operands(params, LD12), gamma=g,
                       alpha=act.alpha, beta=act.beta, LD11=LD11, D11=D11)
        sv.constraints.append(_psd(M, self.margin))

    def _equilibrium_operands(self, sv, fixed, Lam, q) -> tuple:
        """``(D11, Lambda D11)`` of the LMI: a fixed D11, the variable Dt11, or (None, None)."""
        if "D11" in fixed:
            D11 = as_float_array(fixed["D11"], "fixed['D11']", ndim=2)
            if D11.shape != (q, q):
                raise ValueError(f"fixed['D11']: expected shape {(q, q)}, got {D11.shape}")
            sv.extra["D11"] = D11
            if not np.any(D11 != 0.0):
                return None, None  # exactly the LMI without the term
            return D11, Lam @ D11
        if not self.equilibrium:
            return None, None
        if self.parametrization != "free_C1":
            raise ValueError("equilibrium: a free D11 needs parametrization='free_C1' (the variable is "
                             "Dt11 = Lambda D11); under fixed_C1 give D11 in `fixed`")
        sv.extra["Dt11"] = cp.Variable((q, q), name="Dt11")
        return None, sv.extra["Dt11"]


@register("theta")
class Contracting(_LMISet):
    """Theta: the contracting implicit RNNs (docs/design.md section 3.3, contraction LMI > margin I).

    ``scaling`` (a :class:`~rrnn_convex.scaling.ChannelScaling`) is accepted so that callers can
    treat both LMI sets alike, and ignored: rescaling inputs and outputs leaves E, F, B1, C1 and
    the state unchanged, so a model contracts in normalised units exactly when it contracts in
    physical units. Only its dimensions are checked against ``dims``.

    Parameters
    ----------
    margin : float
        The LMI is constrained to be >= ``margin * I``; >= 0.
    parametrization : {"fixed_C1", "free_C1"}
        C1 and D12 fixed in :meth:`~ModelSet.build`, or the variables ``Ct = Lambda C1`` (D12
        stays an ordinary variable: the contraction LMI does not involve it).
    scaling : ChannelScaling, optional
        Checked against the dimensions only.
    equilibrium : bool
        Models with the equilibrium term D11 as a variable (``Dt11 = Lambda D11``; needs
        ``free_C1``). A D11 given in ``build``'s ``fixed`` is used in either case.

    Raises
    ------
    TypeError
        If ``scaling`` is neither None nor a ChannelScaling, or ``margin`` is not a number.
    ValueError
        If ``margin`` is negative or not finite, or ``parametrization`` is unknown.
    """

    name_options = ("margin", "parametrization", "equilibrium")
    gain_bounded = "theta_gamma"


@register("theta_gamma")
class GainBounded(_LMISet):
    """Theta_gamma: incremental l2 gain <= gamma. ``gamma=None`` makes gamma a variable
    (``cert["gamma"]``) that the caller may minimise.

    ``scaling``: None, or a :class:`~rrnn_convex.scaling.ChannelScaling` ``s``. With a scaling the
    variables are the weights of the model on normalised signals and gamma bounds the gain of
    ``s.to_physical(model)`` from ``u`` to ``y`` in physical units. The LMI is the physical
    model's, written in the normalised weights: B2, Lambda D12 (and D12 in the ``2ab`` terms)
    times Su^-1, C2 and D21 times Sy on the left, D22 as Sy D22 Su^-1 (Su, Sy the diagonal input
    and output scales). These are constant factors, so the set stays convex.

    Parameters
    ----------
    gamma : float, optional
        The gain bound, > 0; None makes it a variable.
    margin : float
        The LMI is constrained to be >= ``margin * I``; >= 0.
    parametrization : {"fixed_C1", "free_C1"}
        C1 and D12 fixed in :meth:`~ModelSet.build`, or the variables ``Ct = Lambda C1`` and
        ``Dt = Lambda D12``.
    scaling : ChannelScaling, optional
        The physical units in which ``gamma`` bounds the gain (None: the model's own).
    equilibrium : bool
        Models with the equilibrium term D11 as a variable (``Dt11 = Lambda D11``; needs
        ``free_C1``). A D11 given in ``build``'s ``fixed`` is used in either case.

    Raises
    ------
    TypeError
        If ``scaling`` is neither None nor a ChannelScaling, or ``gamma`` or ``margin`` is not
        a number.
    ValueError
        If ``gamma`` is not positive and finite, ``margin`` is negative or not finite, or
        ``parametrization`` is unknown.
    """

    gain = True
    name_options = ("margin", "parametrization", "scaling", "equilibrium")

    def __init__(self, gamma: float | None = None, margin: float = 1e-6, parametrization: str = "fixed_C1",
                 scaling=None, equilibrium: bool = False):
        super().__init__(margin, parametrization, scaling, equilibrium)
        self.gamma = None if gamma is None else check_scalar(gamma, "gamma", low=0.0)


def _elman_structure(dims) -> dict:
    n, q, m, p = dims["n"], dims["q"], dims["m"], dims["p"]
    return {"E": np.eye(n), "F": np.zeros((n, n)), "B1": np.eye(n), "B2": np.zeros((n, m)),
            "D21": np.zeros((p, q))}


class _ElmanLikeSet(ModelSet):
    """Shared checks of the sets whose models have one neuron per state and |slope| <= 1."""

    elman_structure = True
    structure_text = "E x+ = sigma(W x + U u + b), y = C x + D u"

    def check_dims(self, dims):
        """Require as many neurons as states.

        Parameters
        ----------
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.

        Raises
        ------
        ValueError
            If ``n != q``.
        """
        if dims["n"] != dims["q"]:
            raise ValueError(f"dims: the {self.name} needs as many neurons as states (n = q), "
                             f"got n={dims['n']}, q={dims['q']}")

    def check_activation(self, act: Activation) -> None:
        """Require slope bounds within [-1, 1].

        Parameters
        ----------
        act : Activation
            The activation.

        Raises
        ------
        ValueError
            If ``max(|alpha|, |beta|) > 1``.
        """
        if max(abs(act.alpha), abs(act.beta)) > 1.0:
            raise ValueError(f"activation: the {self.name} needs slopes in [-1, 1], got [{act.alpha}, {act.beta}]")


@register("cirnn")
class CIRNNSet(_ElmanLikeSet):
    """Contracting implicit RNNs (ci-RNN, Revay & Manchester 2020): ``E x+ = sigma(W x + U u + b)``.

    As an ImplicitRNN: F = 0, B1 = I, B2 = 0, D21 = 0 (forced), C1 = W, D12 = U, E free;
    constraint :func:`~rrnn_convex.lmi.cirnn_lmi` ``[[E + E' - P, W'], [W, P]] > margin I`` with
    P diagonal. Needs n = q and an activation with slopes in [-1, 1].

    Parameters
    ----------
    margin : float
        The LMI is constrained to be >= ``margin * I``; >= 0.

    Raises
    ------
    TypeError
        If ``margin`` is not a number.
    ValueError
        If ``margin`` is negative or not finite.
    """

    name_options = ("margin",)

    def membership(self, model, *, solver=None, **certify_options):
        """None: membership needs the diagonal-P LMI, which :func:`~rrnn_convex.certify.certify`
        does not decide (a projection is always solved).

        Parameters
        ----------
        model : ImplicitRNN
            The model (unused).
        solver : str, optional
            Unused.
        **certify_options
            Unused.

        Returns
        -------
        None
        """
        return None

    def structure(self, dims):
        """The Elman structure without E: F = 0, B1 = I, B2 = 0, D21 = 0.

        Parameters
        ----------
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.

        Returns
        -------
        dict
            ``"F"`` (n, n), ``"B1"`` (n, q), ``"B2"`` (n, m) and ``"D21"`` (p, q) as float64 arrays.
        """
        s = _elman_structure(dims)
        del s["E"]
        return s

    def add_constraints(self, sv, dims, act, fixed):
        """:func:`~rrnn_convex.lmi.cirnn_lmi` >= ``margin * I`` with ``P = diag(p)``; ``P`` and
        ``p`` (n,) are added to ``sv.cert``.

        Parameters
        ----------
        sv : SetVariables
            Completed in place.
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.
        act : Activation
            Checked to have slopes in [-1, 1].
        fixed : dict
            Unused.

        Raises
        ------
        ValueError
            If the activation's slopes leave [-1, 1].
        """
        self.check_activation(act)
        p = cp.Variable(dims["n"], name="p")
        sv.cert["P"] = cp.diag(p)
        sv.cert["p"] = p
        M = cirnn_lmi(E=sv.params["E"], F=sv.params["C1"], P=sv.cert["P"])
        sv.constraints.append(_psd(M, self.margin))


@register("srnn")
class SRNNSet(_ElmanLikeSet):
    """Stable RNNs of Miller & Hardt: the Elman RNN ``h+ = sigma(W h + U u + b)`` with
    ``||W||_2 <= 1 - eps`` (:func:`~rrnn_convex.lmi.srnn_lmi`). As an ImplicitRNN: E = I, F = 0,
    B1 = I, B2 = 0, D21 = 0 (forced), C1 = W. Needs n = q and a 1-Lipschitz activation.

    Parameters
    ----------
    eps : float
        The spectral norm bound is ``1 - eps``; in (0, 1].

    Raises
    ------
    TypeError
        If ``eps`` is not a number.
    ValueError
        If ``eps`` is outside (0, 1] or not finite.
    """

    name_options = ("eps",)

    def __init__(self, eps: float = 0.01):
        super().__init__(margin=0.0)
        self.eps = check_scalar(eps, "eps", low=0.0, high=1.0)

    def membership(self, model, *, solver=None, **certify_options):
        """The certificate of a model with the Elman structure and ``||W||_2 <= 1 - eps``, else
        None (without solving anything).

        Parameters
        ----------
        model : ImplicitRNN
            The model, in physical units.
        solver : str, optional
            The SDP solver.
        **certify_options
            Passed on to :meth:`~ModelSet.certificate`.

        Returns
        -------
        Certificate or None
            The contraction certificate if it certifies; None when the structure or the norm
            bound fails (no solve), or the certificate does not certify.
        """
        if not (self.contains(model) and np.linalg.norm(model.C1, 2) <= 1 - self.eps):
            return None
        return super().membership(model, solver=solver, **certify_options)

    def structure(self, dims):
        """The Elman structure: E = I, F = 0, B1 = I, B2 = 0, D21 = 0.

        Parameters
        ----------
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.

        Returns
        -------
        dict
            ``"E"``, ``"F"`` (n, n), ``"B1"`` (n, q), ``"B2"`` (n, m) and ``"D21"`` (p, q) as
            float64 arrays.
        """
        return _elman_structure(dims)

    def add_constraints(self, sv, dims, act, fixed):
        """:func:`~rrnn_convex.lmi.srnn_lmi` of C1 = W (``||W||_2 <= 1 - eps``) as a PSD
        constraint; no certificate variables.

        Parameters
        ----------
        sv : SetVariables
            Completed in place.
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.
        act : Activation
            Checked to have slopes in [-1, 1].
        fixed : dict
            Unused.

        Raises
        ------
        ValueError
            If the activation's slopes leave [-1, 1].
        """
        self.check_activation(act)
        sv.constraints.append(_psd(srnn_lmi(W=sv.params["C1"], eps=self.eps), 0.0))


@register("elman")
class ElmanSet(_ElmanLikeSet):
    """The plain Elman RNN ``h+ = sigma(W h + U u + b)``, ``y = C h + D u + b_y``: the SRNN's
    structure (E = I, F = 0, B1 = I, B2 = 0, D21 = 0, C1 = W) without any constraint. The paper's
    "RNN" baseline; nothing is certified."""

    certifies = False

    def __init__(self):
        super().__init__(margin=0.0)

    def structure(self, dims):
        """The Elman structure: E = I, F = 0, B1 = I, B2 = 0, D21 = 0.

        Parameters
        ----------
        dims : dict
            ``{"n": n, "q": q, "m": m, "p": p}``.

        Returns
        -------
        dict
            ``"E"``, ``"F"`` (n, n), ``"B1"`` (n, q), ``"B2"`` (n, m) and ``"D21"`` (p, q) as
            float64 arrays.
        """
        return _elman_structure(dims)

    def add_constraints(self, sv, dims, act, fixed):
        """No constraint and no certificate variables.

        Parameters
        ----------
        sv, dims, act, fixed
            As for :meth:`ModelSet.add_constraints`; unused.

        Returns
        -------
        None
        """
        return None


@register("unconstrained")
class Unconstrained(ModelSet):
    """Every implicit RNN (no constraint): for baselines trained with the same optimiser."""

    certifies = False

    def __init__(self):
        super().__init__(margin=0.0)

    def add_constraints(self, sv, dims, act, fixed):
        """No constraint and no certificate variables.

        Parameters
        ----------
        sv, dims, act, fixed
            As for :meth:`ModelSet.add_constraints`; unused.

        Returns
        -------
        None
        """
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
