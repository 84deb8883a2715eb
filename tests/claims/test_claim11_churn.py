"""Claim 11: score regularization keeps a retrained model's ranking stable (chapter 9).

On the moderate log, one generator seed (``RANKING_CLAIM_SEED``, 0 unless set;
the numbers noted are seed 0's; the model seeds stay 0): yesterday's version trains on days 0-9, today's
on days 1-10 (the window moves by a day, as a daily retrain does). Churn is
measured on the home-feed requests of the test days (12-13): the share of the
top-3 slots whose ad changes between the two versions. Today's version with
score regularization (distillation toward yesterday's scores, weight 3)
against the same training without it. Measured: flips 0.39 -> 0.19, gap
closed 27.9% -> 25.6%.
"""

import numpy as np
import pytest
import torch

from claim_setup import generator_seed, record
from ranking.churn import top_k_flips
from ranking.features import FeatureEncoder, FeatureSpec
from ranking.metrics import oracle_gap_closed
from ranking.nn import EmbeddingMLP
from ranking.simulate import AdLogConfig, load_or_simulate
from ranking.train import fit, predict
from ranking.utility import feed_requests

FIT = dict(epochs=3, patience=1, weight_decay=1e-4, progress=False, seed=0)

pytestmark = pytest.mark.claim(11)


@pytest.fixture(scope="module")
def versions() -> dict:
    """{version: (top-3 flips against yesterday's, gap closed)} on the test days."""
    torch.set_num_threads(1)
    logs = load_or_simulate(AdLogConfig.preset("moderate"), seed=generator_seed())
    frame = logs.impressions
    day = (frame["timestamp"] // 86_400).astype(int)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",))).fit(frame[day < 10])

    def days(first: int, last: int) -> dict:
        return encoder.transform(frame[(day >= first) & (day < last)])

    test_frame = frame[day >= 12]
    test = encoder.transform(test_frame)
    requests, in_feed = feed_requests(test_frame, "home_feed", min_candidates=8)
    prior = float(frame.loc[day < 10, "click"].mean())

    def train(first: int, last: int, teacher=None, weight: float = 0.0):
        data = days(first, last)
        distillation = None
        if teacher is not None:
            data["teacher_click"] = torch.from_numpy(predict(teacher, data)["click"])
            distillation = {"click": weight}
        torch.manual_seed(0)
        model = EmbeddingMLP(encoder.cardinalities, encoder.n_dense)
        fit(model, data, days(last, last + 1), distillation=distillation, **FIT)
        return model

    yesterday = train(0, 10)
    old = predict(yesterday, test)["click"]
    results = {}
    for name, model in (("plain", train(1, 11)), ("regularized", train(1, 11, yesterday, 3.0))):
        new = predict(model, test)["click"]
        results[name] = (top_k_flips(requests[in_feed], old[in_feed], new[in_feed], k=3),
                         oracle_gap_closed(test["oracle_click"].numpy(), new, prior))
    return results


def test_claim11_score_regularization_cuts_top_3_churn(versions, record_property):
    plain_flips, _ = versions["plain"]
    regularized_flips, _ = versions["regularized"]
    # effect: the share of the plain retrain's top-3 flips that score regularization removes
    record(record_property, 1 - regularized_flips / plain_flips, 0.3, flips_plain=plain_flips,
           flips_regularized=regularized_flips)
    assert regularized_flips < 0.7 * plain_flips          # measured 0.19 against 0.39


def test_claim11_at_a_small_cost_in_gap_closed(versions, record_property):
    _, plain_gap = versions["plain"]
    _, regularized_gap = versions["regularized"]
    record(record_property, regularized_gap - plain_gap, -0.04, kind="no worse than", gap_plain=plain_gap,
           gap_regularized=regularized_gap)
    assert plain_gap - regularized_gap < 0.04             # measured 2.4 points
    assert np.isfinite(regularized_gap) and regularized_gap > 0.2
