"""Slope-restricted activations and their sector bounds (docs/design.md section 2.3).

An activation ``sigma`` is slope-restricted in [alpha, beta] when
``alpha <= (sigma(a) - sigma(b)) / (a - b) <= beta`` for all a != b. These bounds are what
the incremental quadratic constraint of the LMIs uses; a certificate is valid for every
activation with the same bounds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import check_scalar


@dataclass(frozen=True)
class Activation:
    """An elementwise activation with slope bounds ``[alpha, beta]``.

    Use :func:`get_activation` (``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"leaky_relu"``,
    ``"identity"``) or :func:`leaky_relu` rather than constructing this directly.

    Parameters
    ----------
    name : {"relu", "tanh", "sigmoid", "leaky_relu", "identity"}
        The function.
    alpha, beta : float
        The slope bounds a certificate assumes. They must contain the function's true slopes;
        wider bounds are allowed (a weaker assumption).
    slope : float
        The negative-side slope of leaky_relu (unused otherwise).

    Raises
    ------
    ValueError
        An unknown name, a non-finite or non-numeric bound, ``alpha > beta``, or bounds that do
        not contain the function's true slopes.

    Notes
    -----
    Calling the object applies the function elementwise to a numpy array.
    """

    name: str
    alpha: float
    beta: float
    slope: float = 0.0  # negative-side slope of leaky_relu; unused otherwise

    def __post_init__(self):
        # The slope bounds are the assumption every certificate rests on: they must contain the
        # function's true slopes (wider bounds are conservative and allowed, narrower ones would
        # certify models that are not contracting).
        true = _true_bounds(self.name, self.slope)
        for k in ("alpha", "beta", "slope"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v):
                raise ValueError(f"activation {self.name!r}: {k} must be a finite number, got {v!r}")
        if not self.alpha <= self.beta:
            raise ValueError(f"activation {self.name!r}: expected alpha <= beta, got [{self.alpha}, {self.beta}]")
        if not (self.alpha <= true[0] and true[1] <= self.beta):
            raise ValueError(f"activation {self.name!r}: slope bounds [{self.alpha}, {self.beta}] do not contain "
                             f"its true slopes [{true[0]}, {true[1]}]; a certificate would not hold")

    def __call__(self, v: np.ndarray) -> np.ndarray:
        if self.name == "relu":
            return np.maximum(v, 0.0)
        if self.name == "leaky_relu":
            return np.where(v >= 0.0, v, self.slope * v)
        if self.name == "tanh":
            return np.tanh(v)
        if self.name == "sigmoid":
            return 0.5 * (1.0 + np.tanh(0.5 * v))  # overflow-free logistic function
        if self.name == "identity":
            return np.asarray(v, dtype=np.float64).copy()
        raise ValueError(f"activation: unknown name {self.name!r}")

    def derivative(self, v: np.ndarray) -> np.ndarray:
        """Elementwise derivative (the right derivative at the kinks of relu / leaky_relu).

        Parameters
        ----------
        v : numpy.ndarray
            Pre-activations, any shape.

        Returns
        -------
        numpy.ndarray
            float64, shaped like ``v``.
        """
        if self.name == "relu":
            return (v >= 0.0).astype(np.float64)
        if self.name == "leaky_relu":
            return np.where(v >= 0.0, 1.0, self.slope)
        if self.name == "tanh":
            return 1.0 - np.tanh(v) ** 2
        if self.name == "sigmoid":
            s = self(v)
            return s * (1.0 - s)
        if self.name == "identity":
            return np.ones_like(v, dtype=np.float64)
        raise ValueError(f"activation: unknown name {self.name!r}")

    def casadi(self, v):
        """The activation of a casadi expression ``v``.

        Elementwise; relu's derivative at 0 is casadi's, the numpy :meth:`derivative` takes the
        right one.

        Parameters
        ----------
        v : casadi.SX or casadi.MX
            Pre-activations.

        Returns
        -------
        casadi expression
            Of ``v``'s type and shape.
        """
        import casadi as ca
        if self.name == "relu":
            return ca.fmax(v, 0.0)
        if self.name == "leaky_relu":
            return ca.if_else(v >= 0.0, v, self.slope * v)
        if self.name == "tanh":
            return ca.tanh(v)
        if self.name == "sigmoid":
            return 0.5 * (1.0 + ca.tanh(0.5 * v))
        if self.name == "identity":
            return v
        raise ValueError(f"activation: unknown name {self.name!r}")

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (read back by :func:`get_activation`).

        Returns
        -------
        dict
            ``{"name": ..., "alpha": ..., "beta": ..., "slope": ...}``.
        """
        return {"name": self.name, "alpha": self.alpha, "beta": self.beta, "slope": self.slope}


def _true_bounds(name: str, slope: float) -> tuple[float, float]:
    """The exact slope range of a named activation."""
    if name in ("relu", "tanh"):
        return 0.0, 1.0
    if name == "sigmoid":
        return 0.0, 0.25
    if name == "identity":
        return 1.0, 1.0
    if name == "leaky_relu":
        if isinstance(slope, bool) or not isinstance(slope, (int, float, np.floating, np.integer)) \
                or not np.isfinite(slope):
            raise ValueError(f"activation 'leaky_relu': slope must be a finite number, got {slope!r}")
        return min(float(slope), 1.0), max(float(slope), 1.0)
    raise ValueError(f"activation: unknown name {name!r}; expected relu, tanh, sigmoid, leaky_relu or identity")


RELU = Activation("relu", 0.0, 1.0)
TANH = Activation("tanh", 0.0, 1.0)
SIGMOID = Activation("sigmoid", 0.0, 0.25)
IDENTITY = Activation("identity", 1.0, 1.0)


def leaky_relu(slope: float = 0.01) -> Activation:
    """Leaky ReLU ``max(v, slope*v)`` with 0 <= slope <= 1: slope bounds [slope, 1].

    Parameters
    ----------
    slope : float
        The slope for negative arguments, in [0, 1].

    Returns
    -------
    Activation
        ``Activation("leaky_relu", slope, 1.0, slope)``.

    Raises
    ------
    ValueError
        ``slope`` outside [0, 1] or not finite.
    TypeError
        ``slope`` is not a number.
    """
    s = check_scalar(slope, "slope", low=0.0, low_inclusive=True, high=1.0)
    return Activation("leaky_relu", s, 1.0, s)


_NAMED = {"relu": RELU, "tanh": TANH, "sigmoid": SIGMOID, "identity": IDENTITY}


def get_activation(spec) -> Activation:
    """Resolve ``spec`` (an :class:`Activation`, a name, or a dict from ``to_dict``).

    A dict with ``alpha`` and ``beta`` (both needed) is that exact activation, checked to
    contain its true slopes, so a saved model loads back with the bounds it was saved with; a
    dict with just a ``name`` (and a leaky_relu ``slope``) is the named default.

    Parameters
    ----------
    spec : Activation, str or dict
        A name (case-insensitive): relu, tanh, sigmoid, leaky_relu, identity.

    Returns
    -------
    Activation
        ``spec`` itself for an Activation; the module's instances ``RELU``, ``TANH``,
        ``SIGMOID`` and ``IDENTITY`` for those names.

    Raises
    ------
    ValueError
        An unknown name, a malformed dict, or bounds that do not contain the true slopes.
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, dict):
        name = spec.get("name")
        unknown = sorted(set(spec) - {"name", "alpha", "beta", "slope"})
        if unknown or not isinstance(name, str):
            raise ValueError(f"activation: expected a dict with a name and optionally alpha, beta, slope, got {spec!r}")
        if "alpha" in spec or "beta" in spec:
            return Activation(name, spec.get("alpha"), spec.get("beta"), spec.get("slope", 0.0))
        if name == "leaky_relu":
            return leaky_relu(spec.get("slope", 0.01))
        return get_activation(name)
    if isinstance(spec, str):
        key = spec.lower()
        if key == "leaky_relu":
            return leaky_relu()
        if key in _NAMED:
            return _NAMED[key]
    raise ValueError(
        f"activation: expected one of {sorted(list(_NAMED) + ['leaky_relu'])} or an Activation, got {spec!r}")
