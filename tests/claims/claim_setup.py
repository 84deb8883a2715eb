"""What the claim tests share: the moderate log, the chapters' training settings, the oracle score."""

from __future__ import annotations

import numpy as np
import torch

from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.metrics import oracle_gap_closed
from ranking.simulate import AdLogConfig, load_or_simulate

MODERATE = AdLogConfig.preset("moderate")
"""A third of the book's impressions over a third of its ids: the same data per id, a third of the time."""
FIT = dict(epochs=8, patience=1, batch_size=4096, lr=1e-3, weight_decay=1e-4, progress=False, seed=0)
"""The training settings of chapters 3 to 5 (tasks are given per call)."""


def encoded_split(config: AdLogConfig, tasks: tuple[str, ...]):
    """The log's time split (2 validation, 2 test days): the frames, the encoder and the three tensor dicts."""
    torch.set_num_threads(1)
    logs = load_or_simulate(config, seed=0)
    frames = time_split(logs.impressions, valid_days=2, test_days=2)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=tasks)).fit(frames[0])
    return logs, frames, encoder, [encoder.transform(frame) for frame in frames]


def oracle_gap(test: dict, probs: np.ndarray, task: str, prior: float, rows: np.ndarray | None = None) -> float:
    """Share of the base-rate -> oracle gap closed, in expected log loss, on ``rows`` of the test days."""
    rows = np.ones(len(probs), dtype=bool) if rows is None else rows
    return oracle_gap_closed(test[f"oracle_{task}"].numpy()[rows], probs[rows], prior)
