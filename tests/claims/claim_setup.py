"""What the claim tests share: the generator seed, the moderate log, the chapters' training settings, the oracle score.

Every claim test simulates its log(s) with ``generator_seed()``: 0 unless
``RANKING_CLAIM_SEED`` says otherwise, so ``RANKING_CLAIM_SEED=1 pytest tests/claims``
re-measures every claim on a second log (``experiments/claim_verdicts.py`` does that
per seed). Model and training seeds do not change with it.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.metrics import oracle_gap_closed
from ranking.simulate import AdLogConfig, load_or_simulate

SEED_VARIABLE = "RANKING_CLAIM_SEED"


def generator_seed() -> int:
    """The seed the claim tests simulate their logs with: ``RANKING_CLAIM_SEED``, 0 when unset or empty."""
    value = os.environ.get(SEED_VARIABLE, "").strip()
    if not value:
        return 0
    try:
        seed = int(value)
    except ValueError:
        raise ValueError(f"{SEED_VARIABLE} must be an integer generator seed (e.g. {SEED_VARIABLE}=1), "
                         f"got {value!r}") from None
    if seed < 0:
        raise ValueError(f"{SEED_VARIABLE} must be a non-negative integer, got {seed}")
    return seed


generator_seed()   # a bad value stops the run when the claim tests are collected, not in every fixture

MODERATE = AdLogConfig.preset("moderate")
"""A third of the book's impressions over a third of its ids: the same data per id, a third of the time."""
FIT = dict(epochs=8, patience=1, batch_size=4096, lr=1e-3, weight_decay=1e-4, progress=False, seed=0)
"""The training settings of chapters 3 to 5 (tasks are given per call)."""


def encoded_split(config: AdLogConfig, tasks: tuple[str, ...]):
    """The log's time split (2 validation, 2 test days): the frames, the encoder and the three tensor dicts."""
    torch.set_num_threads(1)
    logs = load_or_simulate(config, seed=generator_seed())
    frames = time_split(logs.impressions, valid_days=2, test_days=2)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=tasks)).fit(frames[0])
    return logs, frames, encoder, [encoder.transform(frame) for frame in frames]


def oracle_gap(test: dict, probs: np.ndarray, task: str, prior: float, rows: np.ndarray | None = None) -> float:
    """Share of the base-rate -> oracle gap closed, in expected log loss, on ``rows`` of the test days."""
    rows = np.ones(len(probs), dtype=bool) if rows is None else rows
    return oracle_gap_closed(test[f"oracle_{task}"].numpy()[rows], probs[rows], prior)


KINDS = ("effect", "no worse than", "level")
"""What a test's ``effect`` is. ``effect``: a difference the claim predicts, positive in the
claim's direction (its sign flipping between generator seeds makes the claim fragile).
``no worse than``: a change the claim says is harmless, positive when it helps, and allowed
down to the (negative) threshold; near zero its sign is noise. ``level``: a quantity that
must clear a bar (a model that learns at all, a ratio close enough to 1)."""


def record(record_property, effect: float, threshold: float, kind: str = "effect", **measured) -> None:
    """Record what a claim test measured, before it asserts anything (a failing test still reports its numbers).

    ``effect`` is the number the test's main assertion is about, signed so that positive
    is the claim's direction, and ``threshold`` what the assertion compares it with (the
    test passes only if ``effect > threshold``); ``measured`` the numbers behind it.
    Properties named ``effect_<what>`` are further effects of the same kind.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    record_property("kind", kind)
    record_property("effect", float(effect) + 0.0)        # + 0.0: no "-0.0"
    record_property("threshold", float(threshold))
    for name, value in measured.items():
        record_property(name, float(value) + 0.0)
