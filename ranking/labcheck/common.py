"""Helpers shared by the labs' checks and their catalogues of known mistakes.

Calling the reader's function, comparing numbers, printing success, one hint out of
several, the log loss and entropy that several labs' reference answers use, and
``mistake``, the decorator that files a wrong answer in a lab's catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


def call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the reader's function; a stub that still raises becomes a failed check."""
    name = getattr(fn, "__name__", "your function")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(
            f"{name} is not implemented yet: replace the line "
            f"`raise NotImplementedError(...)` with your code, run that cell, then this one."
        ) from None


def as_float(value: Any, name: str) -> float:
    """The reader's answer as one number, or a failed check saying why it is not one."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise AssertionError(
            f"{name} should return a single number, got {type(value).__name__}: {value!r}"
        ) from None
    if math.isnan(result):
        raise AssertionError(f"{name} returned NaN: look for a division by zero or log(0).")
    return result


def close(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-9) -> bool:
    """Whether two numbers agree to rounding."""
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def correct(message: str) -> None:
    """Print the one line a check prints when every case matches."""
    print(f"Correct: {message}")


def hint(hints: list[str], fallback: str) -> str:
    """One hint, or every hint that fits when several mistakes give the same answer."""
    hints = list(dict.fromkeys(hints))
    if not hints:
        return fallback
    if len(hints) == 1:
        return hints[0]
    return "More than one mistake gives this answer: " + " ".join(
        f"({number}) {text}" for number, text in enumerate(hints, start=1))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean log loss of probabilities ``p`` for labels ``y``."""
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def entropy(rate: float) -> float:
    """Log loss of predicting ``rate`` for every row when ``rate`` is the base rate."""
    return float(-(rate * np.log(rate) + (1 - rate) * np.log1p(-rate)))


# ------------------------------------------------------------------- known mistakes
@dataclass(frozen=True)
class Mistake:
    """A wrong answer to an exercise, and the hint a reader who gives it should see.

    ``hint`` is None for a mistake that the check's own tests (of type, shape, NaN,
    inputs changed in place) catch with a message of their own.
    """

    exercise: str                  # the name of the function the reader writes
    hint: str | None
    function: Callable

    @property
    def name(self) -> str:
        return self.function.__name__


def mistake(exercise: str, hint: str | None = None) -> Callable[[Callable], Mistake]:
    """Decorator: file the function below as a known wrong answer to ``exercise``."""
    def file(function: Callable) -> Mistake:
        return Mistake(exercise, hint, function)
    return file
