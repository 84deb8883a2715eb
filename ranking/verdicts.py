"""Verdicts from intervals: is an effect measured on several generator worlds a finding?

A claim test measures one number per generator world, its ``effect``: signed so
that positive is the claim's direction, and, where two models are compared, a
paired difference on the same world. Over the worlds the effects give a mean
and a 95% Student-t interval, and the interval, not one draw, gives the verdict:

- **holds**: the whole interval is past the claim's margin (``threshold``);
- **reverses**: the whole interval is on the other side of zero (for a change
  the claim calls harmless, whose margin is negative: below that margin);
- **no effect**: the interval contains zero;
- **mixed**: anything else, e.g. an effect in the claimed direction whose
  interval reaches below the margin.

A claim with several tests holds when all of them hold; when they disagree it
is mixed, unless none holds and one reverses, then it reverses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

VERDICTS = ("holds", "no effect", "reverses", "mixed")
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """The mean of per-world effects and its Student-t interval."""

    mean: float
    low: float
    high: float
    n_worlds: int


def interval(effects: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and ``confidence`` t-interval of ``effects`` (one per world, at least 2)."""
    values = np.asarray(effects, dtype=float)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"effects must be at least 2 numbers, one per world, got {len(values)}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"effects must be finite, got {values.tolist()}")
    mean = float(values.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
                 * values.std(ddof=1) / np.sqrt(len(values)))
    return Interval(mean, mean - half, mean + half, len(values))


def verdict(low: float, high: float, threshold: float) -> str:
    """The verdict of an interval [low, high] against the claim's margin ``threshold``."""
    if low > high:
        raise ValueError(f"low must not exceed high, got [{low}, {high}]")
    if low > threshold:
        return "holds"
    if high < min(threshold, 0.0):
        return "reverses"
    if low <= 0.0 <= high:
        return "no effect"
    return "mixed"


def claim_verdict(test_verdicts: Sequence[str]) -> str:
    """One verdict for a claim from its tests' verdicts."""
    unknown = set(test_verdicts) - set(VERDICTS)
    if not test_verdicts or unknown:
        raise ValueError(f"test_verdicts must be verdicts from {VERDICTS}, got {list(test_verdicts)}")
    if len(set(test_verdicts)) == 1:
        return test_verdicts[0]
    if "holds" not in test_verdicts and "reverses" in test_verdicts:
        return "reverses"
    return "mixed"


def worlds_agreeing(effects: Sequence[float], threshold: float) -> int:
    """On how many worlds the effect alone is past the margin (the test passed)."""
    return int(np.sum(np.asarray(effects, dtype=float) > threshold))
