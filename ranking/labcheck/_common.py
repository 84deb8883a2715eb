"""Helpers shared by the labs' checks.

Calling the reader's function, comparing numbers, printing success, and the log loss and entropy
that several labs' reference answers use.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np


def _call(fn: Callable, *args, **kwargs) -> Any:
    """Call the reader's function; a stub that still raises becomes a failed check."""
    name = getattr(fn, "__name__", "your function")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(
            f"{name} is not implemented yet: replace the line "
            f"`raise NotImplementedError(...)` with your code, run that cell, then this one."
        ) from None


def _as_float(value: Any, name: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise AssertionError(
            f"{name} should return a single number, got {type(value).__name__}: {value!r}"
        ) from None
    if math.isnan(result):
        raise AssertionError(f"{name} returned NaN: look for a division by zero or log(0).")
    return result


def _close(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _correct(message: str) -> None:
    print(f"Correct: {message}")


def _hint(hints: list[str], fallback: str) -> str:
    """One hint, or every hint that fits when several mistakes give the same answer."""
    hints = list(dict.fromkeys(hints))
    if not hints:
        return fallback
    if len(hints) == 1:
        return hints[0]
    return "More than one mistake gives this answer: " + " ".join(
        f"({number}) {hint}" for number, hint in enumerate(hints, start=1))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _entropy(rate: float) -> float:
    return float(-(rate * np.log(rate) + (1 - rate) * np.log1p(-rate)))
