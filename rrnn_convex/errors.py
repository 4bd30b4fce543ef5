"""Exception classes that say whose problem an error is.

The ``rrnn`` command maps them to exit codes: a problem the user can fix (bad input, a missing
optional dependency, an unavailable solver) is exit code 2; a fit or projection that cannot
produce a certified model is 1 ("not certified"); any other exception is a bug in the package
(exit code 3, see :mod:`rrnn_convex.cli`). Each class also derives from the built-in exception
the package raised before, so code that catches ``ImportError`` or ``RuntimeError`` keeps
working.
"""
from __future__ import annotations

__all__ = ["MissingDependency", "UnsupportedDependency", "SolverUnavailable", "NotCertifiable"]


class MissingDependency(ImportError):
    """An optional dependency (an extra: torch, matplotlib, dask, ...) is not installed; the
    message says how to install it."""


class UnsupportedDependency(RuntimeError):
    """An optional dependency is installed in a version the package cannot use; the message
    says what to do instead."""


class SolverUnavailable(RuntimeError):
    """The requested SDP solver is not installed or not licensed."""


class NotCertifiable(RuntimeError):
    """No certified model could be produced (a projection or a fit's start that the rigorous
    check refuses); the message says what was tried."""


class NotFitted(ValueError, AttributeError, RuntimeError):
    """A method that needs a fitted estimator (``simulate``, ``save``, ...) was called before
    ``fit``. A ValueError and an AttributeError, as scikit-learn's NotFittedError is, and a
    RuntimeError, which the package raised before."""


__all__ += ["NotFitted"]
