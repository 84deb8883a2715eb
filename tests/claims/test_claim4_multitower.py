"""Claim 4: a shared bottom with one tower per data source beats one tower on the mixed sources.

Chapter 5's comparison at the ``book`` scale with one seed: at smaller scales
the smallest surface has too few rows for its own tower to pay off (measured on
a third of the log: the towers were 0.2 to 0.9 points behind). Both models have
the same layers (embeddings, a 256-128 bottom, a 64-unit tower); the
multi-tower model has one tower per surface. Each surface is scored against the
oracle with the expected log loss on its test impressions.
"""

import numpy as np
import pytest
import torch

from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.metrics import expected_logloss, gap_closed
from ranking.nn.multitask import SharedBottom
from ranking.nn.towers import MultiTower
from ranking.simulate import SURFACES, AdLogConfig, load_or_simulate
from ranking.train import fit, predict

CONFIG = AdLogConfig.preset("book")
FIT = dict(tasks=("click",), epochs=8, patience=1, batch_size=4096, lr=1e-3, weight_decay=1e-4,
           progress=False, seed=0)


@pytest.fixture(scope="module")
def gaps() -> dict:
    """{(model, surface): gap closed on the test days}."""
    torch.set_num_threads(1)
    logs = load_or_simulate(CONFIG, seed=0)
    train_frame, valid_frame, test_frame = time_split(logs.impressions, valid_days=2, test_days=2)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",))).fit(train_frame)
    train, valid, test = (encoder.transform(frame) for frame in (train_frame, valid_frame, test_frame))
    builds = {"one tower": lambda: SharedBottom(encoder.cardinalities, encoder.n_dense, tasks=("click",)),
              "one tower per surface": lambda: MultiTower(encoder.cardinalities, encoder.n_dense)}
    results = {}
    for name, build in builds.items():
        torch.manual_seed(0)
        model = build()
        fit(model, train, valid, **FIT)
        probs = predict(model, test)["click"]
        for code, surface in enumerate(SURFACES):
            rows = test["surface"].numpy() == code
            truth = test["oracle_click"].numpy()[rows]
            prior = train["label_click"].numpy()[train["surface"].numpy() == code].mean()
            base = expected_logloss(truth, np.full(rows.sum(), prior))
            results[name, surface] = gap_closed(expected_logloss(truth, probs[rows]), base,
                                                expected_logloss(truth, truth))
    return results


def test_towers_beat_one_tower_most_on_the_smallest_surface(gaps):
    # measured (seed 0), towers minus one tower: home feed +0.002, related pins +0.005, search +0.017
    lifts = {surface: gaps["one tower per surface", surface] - gaps["one tower", surface] for surface in SURFACES}
    assert lifts["search"] > 0.008, gaps
    assert lifts["search"] == max(lifts.values()), lifts


def test_towers_do_not_cost_the_largest_surface(gaps):
    # measured (seed 0): home feed 0.289 with a tower per surface, 0.287 with one tower
    assert gaps["one tower per surface", "home_feed"] > gaps["one tower", "home_feed"] - 0.01, gaps
