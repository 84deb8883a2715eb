"""Claim 4: a shared bottom with one tower per data source beats one tower on the mixed sources.

Chapter 5's comparison at the ``book`` scale with one seed: at smaller scales
the smallest surface has too few rows for its own tower to pay off (measured on
a third of the log: the towers were 0.2 to 0.9 points behind). Both models have
the same layers (embeddings, a 256-128 bottom, a 64-unit tower); the
multi-tower model has one tower per surface. Each surface is scored against the
oracle with the expected log loss on its test impressions. The log's generator
seed is ``RANKING_CLAIM_SEED`` (0 unless set; the numbers noted are seed 0's), the
model seed stays 0; each surface's lift is recorded, because the lifts are a point
or two and their signs can differ between logs.
"""

import pytest
import torch

from claim_setup import FIT, encoded_split, oracle_gap, record
from ranking.nn.multitask import SharedBottom
from ranking.nn.towers import MultiTower
from ranking.simulate import SURFACES, AdLogConfig
from ranking.train import fit, predict

pytestmark = pytest.mark.claim(4)


@pytest.fixture(scope="module")
def gaps() -> dict:
    """{(model, surface): gap closed on the test days}."""
    _, _, encoder, (train, valid, test) = encoded_split(AdLogConfig.preset("book"), ("click",))
    builds = {"one tower": lambda: SharedBottom(encoder.cardinalities, encoder.n_dense, tasks=("click",)),
              "one tower per surface": lambda: MultiTower(encoder.cardinalities, encoder.n_dense)}
    results = {}
    for name, build in builds.items():
        torch.manual_seed(0)
        model = build()
        fit(model, train, valid, tasks=("click",), **FIT)
        probs = predict(model, test)["click"]
        for code, surface in enumerate(SURFACES):
            prior = float(train["label_click"].numpy()[train["surface"].numpy() == code].mean())
            results[name, surface] = oracle_gap(test, probs, "click", prior, test["surface"].numpy() == code)
    return results


def _lifts(gaps) -> dict:
    """{surface: gap closed with a tower per surface - with one tower}."""
    return {surface: gaps["one tower per surface", surface] - gaps["one tower", surface] for surface in SURFACES}


def test_towers_beat_one_tower_most_on_the_smallest_surface(gaps, record_property):
    # measured (seed 0), towers minus one tower: home feed +0.002, related pins +0.005, search +0.017
    lifts = _lifts(gaps)
    record(record_property, lifts["search"], 0.008,
           **{f"effect_{surface}": lift for surface, lift in lifts.items()},
           **{f"gap_{name.replace(' ', '_')}_{surface}": value for (name, surface), value in gaps.items()})
    assert lifts["search"] > 0.008, gaps
    assert lifts["search"] == max(lifts.values()), lifts


def test_towers_do_not_cost_the_largest_surface(gaps, record_property):
    # measured (seed 0): home feed 0.289 with a tower per surface, 0.287 with one tower
    record(record_property, _lifts(gaps)["home_feed"], -0.01, kind="no worse than")
    assert gaps["one tower per surface", "home_feed"] > gaps["one tower", "home_feed"] - 0.01, gaps
