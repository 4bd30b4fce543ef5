"""Input checking shared by the whole package: float64 conversion with clear errors."""
from __future__ import annotations

import numpy as np


def as_float_array(value, name: str, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Convert ``value`` to a float64 array, rejecting NaN/inf and wrong dimensionality.

    Lists, integer and float32 arrays are accepted and converted; the guarantee-relevant
    arithmetic of the package is always carried out on the float64 result.

    Parameters
    ----------
    value : array_like
    name : str
        The name used in error messages.
    ndim : int or tuple of int, optional
        The allowed numbers of dimensions.

    Returns
    -------
    numpy.ndarray
        A new float64 array.

    Raises
    ------
    TypeError
        Complex, boolean, string, bytes or structured data, or something not convertible.
    ValueError
        The wrong number of dimensions, NaN or inf, or a number beyond float64's range.
    """
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raw = None
    if raw is not None and raw.dtype.kind in "cbUSV":
        what = {"c": "complex", "b": "boolean", "U": "string", "S": "bytes", "V": "structured"}[raw.dtype.kind]
        raise TypeError(f"{name}: expected an array of real numbers, got a {what} array (dtype {raw.dtype})")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected an array of real numbers, got {type(value).__name__} ({exc})") from None
    except OverflowError:  # a Python int beyond float64's range (e.g. 400 digits in a JSON file)
        raise ValueError(f"{name}: holds a number too large for float64 (beyond {np.finfo(np.float64).max:.3g})") \
            from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name}: expected a {want} array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    return arr


def check_scalar(value, name: str, *, low: float | None = None, low_inclusive: bool = False,
                 high: float | None = None) -> float:
    """A finite real scalar with optional bounds, or a clear error.

    Parameters
    ----------
    value : float
    name : str
        The name used in error messages.
    low : float, optional
        Lower bound (exclusive unless ``low_inclusive``).
    low_inclusive : bool
    high : float, optional
        Upper bound (inclusive).

    Returns
    -------
    float

    Raises
    ------
    TypeError
        Not convertible to a float.
    ValueError
        Not finite, or outside the bounds.
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a real number, got {value!r}") from None
    if not np.isfinite(x):
        raise ValueError(f"{name}: expected a finite number, got {x}")
    if low is not None and (x < low or (x == low and not low_inclusive)):
        rel = ">=" if low_inclusive else ">"
        raise ValueError(f"{name}: expected a value {rel} {low}, got {x}")
    if high is not None and x > high:
        raise ValueError(f"{name}: expected a value <= {high}, got {x}")
    return x


def check_integer(value, name: str, *, low: int = 1, expected: str | None = None) -> int:
    """An integer of at least ``low`` (an int, a numpy integer or an integral float; not a bool),
    or a clear error.

    Parameters
    ----------
    value : int
    name : str
        The name used in error messages.
    low : int
        Smallest value allowed.
    expected : str, optional
        What the message says was expected (default: "a positive integer" for ``low`` 1, else
        "an integer of at least <low>").

    Returns
    -------
    int

    Raises
    ------
    ValueError
        Not an integer, or below ``low``: "<name>: expected <expected>, got <value>".
    """
    ok = (not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
          and bool(np.isfinite(value)) and int(value) == value and value >= low)
    if not ok:
        what = expected or ("a positive integer" if low == 1 else f"an integer of at least {low}")
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return int(value)


def check_state_space(A, B, C=None, D=None, names=("A", "B", "C", "D")):
    """Validate a state-space quadruple ``x+ = A x + B u, y = C x + D u`` (float64 arrays).

    C defaults to the identity (output = state) and D to zeros; errors name the argument (via
    ``names``), the expected and the received shape.

    Parameters
    ----------
    A : array_like, shape (n, n)
    B : array_like, shape (n, m)
    C : array_like, shape (p, n), optional
    D : array_like, shape (p, m), optional
    names : tuple of str
        The names used in error messages.

    Returns
    -------
    A, B, C, D : numpy.ndarray

    Raises
    ------
    ValueError
        Inconsistent shapes, NaN or inf.
    TypeError
        Non-numeric data.
    """
    nA, nB, nC, nD = names
    A = as_float_array(A, nA, ndim=2)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"{nA}: expected a square (n, n) matrix, got shape {A.shape}")
    n = A.shape[0]
    B = as_float_array(B, nB, ndim=2)
    if B.shape[0] != n:
        raise ValueError(f"{nB}: expected shape ({n}, m), got {B.shape}")
    C = np.eye(n) if C is None else as_float_array(C, nC, ndim=2)
    if C.shape[1] != n:
        raise ValueError(f"{nC}: expected shape (p, {n}), got {C.shape}")
    D = np.zeros((C.shape[0], B.shape[1])) if D is None else as_float_array(D, nD, ndim=2)
    if D.shape != (C.shape[0], B.shape[1]):
        raise ValueError(f"{nD}: expected shape {(C.shape[0], B.shape[1])}, got {D.shape}")
    return A, B, C, D


def paired_sequences(u, y, names=("u", "y")) -> tuple[np.ndarray, np.ndarray]:
    """Input/output sequences as float64 (batch, T, m) and (batch, T, p) arrays.

    (T, channels) arrays are taken as one sequence; batch and length must agree.

    Parameters
    ----------
    u, y : array_like, 2-D or 3-D
    names : tuple of str
        The names used in error messages.

    Returns
    -------
    U, Y : numpy.ndarray
        Shapes (batch, T, m) and (batch, T, p).

    Raises
    ------
    ValueError
        The wrong number of dimensions, different (batch, T), or NaN/inf.
    """
    U = as_float_array(u, names[0], ndim=(2, 3))
    Y = as_float_array(y, names[1], ndim=(2, 3))
    U = U[None] if U.ndim == 2 else U
    Y = Y[None] if Y.ndim == 2 else Y
    if U.shape[:2] != Y.shape[:2]:
        raise ValueError(f"{names[0]}, {names[1]}: expected the same (batch, T), got {U.shape[:2]} and {Y.shape[:2]}")
    return U, Y


def initial_states(x0, batch: int, n: int, what: str = "") -> np.ndarray:
    """``x0`` as a writable (batch, n) float64 array.

    Parameters
    ----------
    x0 : array_like or None
        None gives zeros; shape (n,), (1, n) or (batch, n) is broadcast.
    batch, n : int
    what : str
        Describes the state in the error (e.g. "h and c stacked").

    Returns
    -------
    numpy.ndarray, shape (batch, n)

    Raises
    ------
    ValueError
        Another shape, NaN or inf.
    """
    if x0 is None:
        return np.zeros((batch, n))
    x0 = as_float_array(x0, "x0", ndim=(1, 2))
    if x0.shape not in {(n,), (1, n), (batch, n)}:
        raise ValueError(f"x0: expected shape ({n},) or ({batch}, {n})" + (f" ({what})" if what else "")
                         + f", got {x0.shape}")
    return np.broadcast_to(x0, (batch, n)).copy()
