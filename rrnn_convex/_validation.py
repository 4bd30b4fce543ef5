"""Input checking shared by the whole package: float64 conversion with clear errors."""
from __future__ import annotations

import numpy as np


def as_float_array(value, name: str, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Convert ``value`` to a float64 array, rejecting NaN/inf and wrong dimensionality.

    Lists, integer and float32 arrays are accepted and converted; the guarantee-relevant
    arithmetic of the package is always carried out on the float64 result.
    """
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected an array of real numbers, got {type(value).__name__} ({exc})") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name}: expected a {want} array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}: contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    return arr


def check_shape(arr: np.ndarray, expected: tuple[int, ...], name: str) -> np.ndarray:
    """Raise a ValueError naming ``name``, the expected and the received shape if they differ."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}, got {arr.shape}")
    return arr


def check_scalar(value, name: str, *, low: float | None = None, low_inclusive: bool = False,
                 high: float | None = None) -> float:
    """A finite real scalar with optional bounds, or a clear error."""
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
