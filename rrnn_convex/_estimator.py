"""Estimator conventions shared by the trainers, without a scikit-learn dependency.

The trainers (:class:`~rrnn_convex.fit.RobustRNNRegressor`, the LSTM and barrier baselines) follow
scikit-learn's conventions: every constructor argument is stored, unchanged, as an attribute of
the same name, the constructor does no work, and what ``fit`` learns goes into attributes whose
names end with an underscore. On that basis :class:`ParamsMixin` reads the parameters from the
signature of ``__init__`` (``get_params``, ``set_params``), so that scikit-learn's
``sklearn.base.clone`` works on the trainers, and :func:`clone` does the same here without
scikit-learn. :func:`check_fitted` raises :class:`~rrnn_convex.errors.NotFitted` for a method
that needs a fitted estimator.
"""
from __future__ import annotations

import copy
import inspect

from .errors import NotFitted

__all__ = ["ParamsMixin", "clone", "check_fitted"]


class ParamsMixin:
    """``get_params`` / ``set_params`` from the constructor's signature.

    A class using it must store every argument of ``__init__`` as an attribute of the same name,
    as given (no ``*args``; a ``**kwargs`` catch-all is not a parameter).
    """

    @classmethod
    def _param_names(cls) -> tuple[str, ...]:
        """The names of the constructor's parameters, in signature order."""
        names = []
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.kind is p.VAR_POSITIONAL:
                raise TypeError(f"{cls.__name__}: an estimator's __init__ names every parameter (no *args), "
                                f"got *{p.name}")
            if p.name != "self" and p.kind is not p.VAR_KEYWORD:
                names.append(p.name)
        return tuple(names)

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters and their current values.

        Parameters
        ----------
        deep : bool
            Also list the parameters of parameters that are estimators themselves, as
            ``"<parameter>__<its parameter>"``.

        Returns
        -------
        dict
            Parameter name -> value (the stored objects, not copies).
        """
        out = {}
        for name in self._param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params(deep=True).items())
            out[name] = value
        return out

    def set_params(self, **params):
        """Set constructor parameters (``"<parameter>__<its parameter>"`` for a parameter's own).

        Parameters
        ----------
        **params
            Parameter names and their new values; they are stored as given (validated by
            ``fit``, as the constructor's are).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            If a name is not a parameter of the estimator (the message lists the valid ones).
        """
        valid = self._param_names()
        nested: dict = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"set_params: {type(self).__name__} has no parameter {name!r}; "
                                 f"expected one of {valid}")
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self


def clone(estimator):
    """A new, unfitted estimator with the same parameters (deep copies of them), like
    ``sklearn.base.clone``.

    Parameters
    ----------
    estimator : ParamsMixin
        An estimator with ``get_params``.

    Returns
    -------
    object
        ``type(estimator)(**params)``; parameters that are estimators are cloned in turn.

    Raises
    ------
    TypeError
        If ``estimator`` has no ``get_params``.
    RuntimeError
        If the constructor does not store a parameter as given.
    """
    if not hasattr(estimator, "get_params") or isinstance(estimator, type):
        raise TypeError(f"estimator: expected an estimator instance with get_params, got {estimator!r}")
    params = {k: clone(v) if hasattr(v, "get_params") and not isinstance(v, type) else copy.deepcopy(v)
              for k, v in estimator.get_params(deep=False).items()}
    new = type(estimator)(**params)
    stored = new.get_params(deep=False)
    for name, value in params.items():
        if stored[name] is not value:
            raise RuntimeError(f"{type(estimator).__name__}: the constructor does not store parameter {name!r} "
                               f"as given, so the estimator cannot be cloned")
    return new


def check_fitted(estimator, method: str, attribute: str = "model_") -> None:
    """Raise :class:`~rrnn_convex.errors.NotFitted` unless ``estimator`` has been fitted.

    Parameters
    ----------
    estimator : object
        The estimator.
    method : str
        The method that needs a fitted estimator (named in the message).
    attribute : str
        The attribute that ``fit`` sets.

    Raises
    ------
    NotFitted
        ``"<method>: call fit first"``.
    """
    if not hasattr(estimator, attribute):
        raise NotFitted(f"{method}: call fit first")
