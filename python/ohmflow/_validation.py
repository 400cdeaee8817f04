"""Input validation shared by the public API: one place for array coercion."""

from __future__ import annotations

import numpy as np

from ._core import InvalidNetworkError


def float_array(x: object, what: str, *, ndim: int = 1, length: int | None = None) -> np.ndarray:
    """A contiguous float64 array of the given rank; NaN and inf are rejected."""
    try:
        a = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidNetworkError(f"{what}: not numeric ({e})") from None
    if a.ndim == 0 and ndim == 1:
        a = a.reshape(1)
    if a.ndim != ndim:
        raise InvalidNetworkError(f"{what}: expected a {ndim}-d array, got shape {a.shape}")
    if length is not None and a.shape[0] != length:
        raise InvalidNetworkError(f"{what}: expected {length} values, got {a.shape[0]}")
    bad = ~np.isfinite(a)
    if bad.any():
        i = tuple(int(x) for x in np.argwhere(bad)[0])
        raise InvalidNetworkError(f"{what}{list(i)} is {a[i]} (must be finite)")
    return a


def positive_array(x: object, what: str, *, length: int | None = None) -> np.ndarray:
    a = float_array(x, what, length=length)
    bad = a <= 0
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidNetworkError(f"{what}[{i}] = {a[i]} (must be > 0)")
    return a


def check_positive(x: float, what: str) -> float:
    x = float(x)
    if not (np.isfinite(x) and x > 0):
        raise InvalidNetworkError(f"{what} = {x} (must be finite and > 0)")
    return x


def check_finite(x: float, what: str) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise InvalidNetworkError(f"{what} must be a number, got {x!r}") from None
    if not np.isfinite(x):
        raise InvalidNetworkError(f"{what} = {x} (must be finite)")
    return x
