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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy import stats

VERDICTS = ("holds", "no effect", "reverses", "mixed")
CONFIDENCE = 0.95
ACRONYMS = {"dnn": "DNN", "gbdt": "GBDT", "mmoe": "MMoE", "dcn": "DCN", "v2": "V2",
            "platt": "Platt", "auc": "AUC", "bottoms": "bottom's"}
"""How the words of a test's name are written on the page."""
VERDICT_COLORS = {"holds": "tab:green", "no effect": "tab:grey", "reverses": "tab:red",
                  "mixed": "tab:orange"}


@dataclass(frozen=True)
class Interval:
    """The mean of per-world effects and its Student-t interval."""

    mean: float
    low: float
    high: float
    n_worlds: int


def interval(effects: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and ``confidence`` t-interval of ``effects`` (one per world, 2+)."""
    values = np.asarray(effects, dtype=float)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError("effects must be at least 2 numbers, one per world, "
                         f"got {len(values)}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"effects must be finite, got {values.tolist()}")
    mean = float(values.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
                 * values.std(ddof=1) / np.sqrt(len(values)))
    return Interval(mean, mean - half, mean + half, len(values))


def verdict(low: float, high: float, threshold: float) -> str:
    """The verdict of an interval [low, high] against the margin ``threshold``."""
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
        raise ValueError(f"test_verdicts must be verdicts from {VERDICTS}, "
                         f"got {list(test_verdicts)}")
    if len(set(test_verdicts)) == 1:
        return test_verdicts[0]
    if "holds" not in test_verdicts and "reverses" in test_verdicts:
        return "reverses"
    return "mixed"


def worlds_agreeing(effects: Sequence[float], threshold: float) -> int:
    """On how many worlds the effect alone is past the margin (the test passed)."""
    return int(np.sum(np.asarray(effects, dtype=float) > threshold))


def short_name(test_id: str, claim: int | str) -> str:
    """A claim test's id as words: 'tests/...py::test_claim7_the_dial' -> 'the dial'."""
    name = test_id.split("::")[-1].removeprefix("test_").removeprefix(f"claim{claim}_")
    return " ".join(ACRONYMS.get(word, word) for word in name.split("_"))


def verdict_table(record: dict, claims: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per claim test of a five-world record (``experiments/claim_verdicts.py``)."""
    rows = []
    for number, claim in record["claims"].items():
        if claims is not None and int(number) not in claims:
            continue
        for test_id, test in claim["tests"].items():
            rows.append({"claim": int(number), "test": short_name(test_id, number),
                         "kind": test["kind"], "mean": test["mean"], "low": test["low"],
                         "high": test["high"], "margin": test["threshold"],
                         "worlds past margin": f"{test['worlds_past_margin']} of "
                                               f"{len(test['effects'])}",
                         "verdict": test["verdict"], "claim verdict": claim["verdict"],
                         "effects": list(test["effects"].values())})
    return pd.DataFrame(rows)


def plot_effects(record: dict, claims: Sequence[int]) -> plt.Figure:
    """Per claim test, one panel: the effect on each world (dots), their mean and
    95% interval (diamond and bar, coloured by verdict) and the margin (|)."""
    table = verdict_table(record, claims)
    fig, axes = plt.subplots(len(table), 1, figsize=(9, 0.75 * len(table) + 0.6), squeeze=False)
    for ax, row in zip(axes[:, 0], table.itertuples()):
        sns.stripplot(x=row.effects, color="grey", size=5, ax=ax, zorder=1, jitter=0.15)
        ax.errorbar(row.mean, 0, xerr=[[row.mean - row.low], [row.high - row.mean]], fmt="D",
                    color=VERDICT_COLORS[row.verdict], capsize=4, zorder=2)
        ax.plot([row.margin], [0], "|", color="black", ms=16, zorder=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks([0], [f"claim {row.claim}: {row.test[:56]}"])
        ax.set_ylim(-0.5, 0.5)
        ax.text(1.01, 0.5, row.verdict, transform=ax.transAxes, va="center",
                color=VERDICT_COLORS[row.verdict], fontweight="bold")
    axes[-1, 0].set_xlabel("effect on each world (positive: the claim's direction); "
                           "| the margin")
    fig.tight_layout()
    return fig


def describe(record: dict, claim: int) -> str:
    """A sentence for the page: a claim's verdict over the worlds, and each test's."""
    table = verdict_table(record, [claim])
    parts = "; ".join(f"{row['test']}: {row['verdict']} ({row['worlds past margin']} "
                      "worlds past the margin)" for row in table.to_dict("records"))
    return (f"Over {len(record['worlds'])} worlds, claim {claim}: "
            f"{table['claim verdict'].iloc[0].upper()}. {parts[0].upper()}{parts[1:]}")
