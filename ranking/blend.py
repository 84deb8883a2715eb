"""Tuning the blend: the utility weights that earn the most true value per top slot.

Chapter 4 blends calibrated action probabilities into one score with weights
set by hand. The Closeup write-up warns that "failing to properly tune the
blending weights can lead to suboptimal engagement". On the synthetic log every
slot's true expected outcome is known, so a blend can be scored exactly (an
offline A/B test without replay bias): the value of the top slots is
sum over actions of value_t * (true expected actions_t per 1,000 slots).

``tune_blend`` searches the weights at random around the hand-set ones (a few
hundred trials of a 3-dimensional search: random search does as well as a
Bayesian optimizer here, with nothing to install), keeping the best blend whose
clicks stay above a floor the product team sets: a share of the clicks the
click-only ranking gets.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from . import checks
from .utility import top_slots, utility

VALUES = {"click": 1.0, "save": 3.0, "hide": -20.0, "conversion": 30.0}
"""What the product team says each action is worth, in clicks: the hand-set weights."""


def expected_actions(p_click: np.ndarray, p_save: np.ndarray, p_hide: np.ndarray,
                     p_conversion_per_click: np.ndarray) -> dict[str, np.ndarray]:
    """Expected actions per impression: a conversion needs a click first."""
    return {"click": np.asarray(p_click), "save": np.asarray(p_save),
            "hide": np.asarray(p_hide),
            "conversion": np.asarray(p_click) * np.asarray(p_conversion_per_click)}


def slot_outcome(scores: np.ndarray, requests: np.ndarray,
                 truth: Mapping[str, np.ndarray], k: int) -> dict[str, float]:
    """True expected actions per 1,000 top-``k`` slots when each request is ranked by ``scores``."""
    top = top_slots(scores, requests, k)
    return {action: 1000.0 * float(np.asarray(values)[top].mean())
            for action, values in truth.items()}


def slot_value(outcome: Mapping[str, float], values: Mapping[str, float] = VALUES) -> float:
    """The value of 1,000 slots: sum of value_t * actions_t per 1,000 slots."""
    return float(sum(values[action] * outcome[action] for action in values))


def evaluate_blend(weights: Mapping[str, float], probs: Mapping[str, np.ndarray],
                   truth: Mapping[str, np.ndarray], requests: np.ndarray, k: int,
                   values: Mapping[str, float] = VALUES) -> dict[str, float]:
    """Rank by the model's ``utility(probs, weights)``; score the top slots with the truth."""
    outcome = slot_outcome(utility(probs, weights), requests, truth, k)
    return {**outcome, "value": slot_value(outcome, values)}


def random_weights(rng: np.random.Generator, values: Mapping[str, float],
                   spread: float = 10.0) -> dict[str, float]:
    """The hand-set weights, each but the click's scaled by a log-uniform factor in [1/spread, spread]."""
    factors = np.exp(rng.uniform(-np.log(spread), np.log(spread), len(values)))
    return {action: value if action == "click" else value * factor
            for (action, value), factor in zip(values.items(), factors)}


def tune_blend(probs: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray],
               requests: np.ndarray, *, k: int = 3,
               values: Mapping[str, float] = VALUES, min_click_share: float = 0.95,
               trials: int = 200, seed: int = 0
               ) -> tuple[dict[str, float], pd.DataFrame]:
    """The weights with the most true value per slot among those meeting the floor.

    The floor: clicks per 1,000 slots at least ``min_click_share`` times the
    click-only ranking's. Trial 0 is the hand-set blend (``values`` as
    weights); the rest are ``random_weights``. Returns the best weights and
    every trial (weights, outcome, value, whether it meets the floor).
    """
    checks.positive_int("trials", trials)
    if not 0.0 <= min_click_share <= 1.0:
        raise ValueError("min_click_share must be in [0, 1], "
                         f"got {min_click_share!r}")
    if "click" not in values:
        raise ValueError("values must include the click: the floor is in clicks")
    click_only = evaluate_blend({"click": 1.0}, probs, truth, requests, k, values)
    floor = min_click_share * click_only["click"]
    rng = np.random.default_rng(seed)
    rows = []
    for trial in range(trials):
        weights = dict(values) if trial == 0 else random_weights(rng, values)
        measured = evaluate_blend(weights, probs, truth, requests, k, values)
        rows.append({**{f"weight_{a}": w for a, w in weights.items()}, **measured,
                     "meets_floor": measured["click"] >= floor})
    table = pd.DataFrame(rows)
    allowed = table[table["meets_floor"]]
    if allowed.empty:
        raise ValueError(f"no trial keeps {min_click_share:.0%} of the click-only"
                         " ranking's clicks: lower the floor or search nearer"
                         " the click")
    best = allowed["value"].idxmax()
    weights = {action: float(table.loc[best, f"weight_{action}"])
               for action in values}
    return weights, table
