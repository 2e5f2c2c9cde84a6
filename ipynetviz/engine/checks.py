"""One set of validators for settings: each returns the clean value or raises a :class:`SettingError` naming the fix.

Methods, labs and widgets check their settings here instead of writing their own ``if x <= 0: raise``.
Images and targets have their own checks (``engine.inputs``, ``engine.targets``); these are for numbers.

Example:
    >>> check_positive_int(3, "steps"), check_pair(8, "window"), check_probability(0.5, "p")
    (3, (8, 8), 0.5)
    >>> check_batch_size(None, default=64), check_batch_size(16)
    (64, 16)
    >>> check_positive_int(0, "steps")
    Traceback (most recent call last):
    ...
    ipynetviz.engine.errors.SettingError: steps must be a positive integer, got 0; pass steps=1 or more
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import SettingError


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An int >= ``minimum`` (1 by default); bools and floats are refused."""
    if not _is_int(value) or int(value) < minimum:
        need = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise SettingError(f"{name} must be {need}, got {value!r}; pass {name}={max(minimum, 1)} or more")
    return int(value)


def check_positive(value: Any, name: str, allow_zero: bool = False) -> float:
    """A finite float > 0 (or >= 0 with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        need = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise SettingError(f"{name} must be {need}, got {value!r}; e.g. {name}=0.05")
    return v


def check_range(value: Any, name: str, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> float:
    """A finite float in ``[low, high]`` (either end open on request)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be a number, got {value!r}") from None
    bad = (not math.isfinite(v) or v < low or v > high or (low_open and v == low) or (high_open and v == high))
    if bad:
        lo, hi = ("(" if low_open else "[") + f"{low:g}", f"{high:g}" + (")" if high_open else "]")
        raise SettingError(f"{name} must be in {lo}, {hi}, got {value!r}")
    return v


def check_probability(value: Any, name: str = "p") -> float:
    """A probability in [0, 1]."""
    return check_range(value, name, 0.0, 1.0)


def check_pair(value: Any, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints ``(height, width)``, each >= ``minimum``."""
    v = (value, value) if _is_int(value) else (tuple(value) if isinstance(value, (tuple, list)) else (value,))
    if len(v) != 2 or not all(_is_int(i) for i in v):
        raise SettingError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")
    if min(v) < minimum:
        raise SettingError(f"{name} must be at least {minimum}, got {value!r}; use e.g. {name}={max(minimum, 8)}")
    return int(v[0]), int(v[1])


def check_batch_size(batch_size: Any, default: int | None = None, name: str = "batch_size") -> int | None:
    """The one batch-size rule: ``None`` means the default; anything else must be a positive int."""
    if batch_size is None:
        return default
    return check_positive_int(batch_size, name)


def check_choice(value: Any, name: str, choices) -> Any:
    """``value`` if it is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise SettingError(f"unknown {name} {value!r}; use one of {choices}")
    return value


__all__ = ["check_positive_int", "check_positive", "check_range", "check_probability", "check_pair",
           "check_batch_size", "check_choice"]
