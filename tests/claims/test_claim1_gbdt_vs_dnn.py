"""Claim 1: GBDT plateaus as data grows, a DNN with embeddings keeps improving.

Chapter 3's experiment at a moderate, fixed-seed scale (the log's generator
seed is ``RANKING_CLAIM_SEED``, 0 unless set; the numbers noted are seed 0's):
chapter 2's trees (LightGBM on leakage-free historical click rates) and chapter 3's networks
(an MLP on embeddings, and DCN V2 with its cross network beside the MLP) train on the most recent 1/8, 1/2 and all of
the training days and are scored on the same test days by the share of the
base-rate -> oracle gap they close. Each assertion notes what was measured at
this scale; its margin leaves room for the run-to-run noise of a seed (about
0.01 of the gap), while a broken model, loop or feature would fail it.
"""

import numpy as np
import pytest
import torch

from claim_setup import FIT, MODERATE, encoded_split, record
from ranking.features import most_recent
from ranking.gbdt import GBDTClassifier, gbdt_features
from ranking.metrics import gap_closed, logloss
from ranking.nn import DCNv2, EmbeddingMLP
from ranking.train import fit, predict

FRACTIONS = (1 / 8, 1 / 2, 1.0)

pytestmark = pytest.mark.claim(1)


@pytest.fixture(scope="module")
def curve() -> dict:
    """Gap closed on the test days: {(model, fraction): share}."""
    logs, (train_frame, valid_frame, test_frame), encoder, (_, valid, test) = encoded_split(MODERATE, ("click",))
    prior = float(train_frame["click"].mean())
    y = test_frame["click"].to_numpy()
    base, oracle = logloss(y, np.full(len(y), prior)), logloss(y, test_frame["p_click"])

    def gap(probs: np.ndarray) -> float:
        return gap_closed(logloss(y, probs), base, oracle)

    rates = gbdt_features(logs.impressions, prior=prior)
    columns = [column for column in rates.columns if not column.endswith("_impressions")]

    results = {}
    for fraction in FRACTIONS:
        part = most_recent(train_frame, fraction)
        trees = GBDTClassifier(seed=0).fit(rates.loc[part.index, columns], part["click"],
                                           rates.loc[valid_frame.index, columns], valid_frame["click"])
        results["GBDT", fraction] = gap(trees.predict(rates.loc[test_frame.index, columns]))
        models = {"DNN": lambda: EmbeddingMLP(encoder.cardinalities, encoder.n_dense)}
        if fraction == 1.0:
            models["DCN V2"] = lambda: DCNv2(encoder.cardinalities, encoder.n_dense, structure="parallel")
        for name, build in models.items():
            torch.manual_seed(0)
            model = build()
            fit(model, encoder.transform(part), valid, tasks=("click",), **FIT)
            results[name, fraction] = gap(predict(model, test)["click"])
    return results


def _names(curve) -> dict:
    """{'gap_<model>_<fraction>': share} for record_property."""
    return {f"gap_{model.replace(' ', '_')}_{fraction:g}": share for (model, fraction), share in curve.items()}


def test_the_dnn_gains_on_the_gbdt_as_data_grows(curve, record_property):
    # measured: DNN - GBDT went from -0.161 (1/8 of the days) to -0.046 (all days): +0.115
    smallest, largest = FRACTIONS[0], FRACTIONS[-1]
    advantage_small = curve["DNN", smallest] - curve["GBDT", smallest]
    advantage_large = curve["DNN", largest] - curve["GBDT", largest]
    record(record_property, advantage_large - advantage_small, 0.05, advantage_small=advantage_small,
           advantage_large=advantage_large, **_names(curve))
    assert advantage_large - advantage_small > 0.05, curve


def test_the_gbdt_flattens_while_the_dnn_keeps_improving(curve, record_property):
    # measured, last doubling (1/2 -> all days): GBDT +0.025, DNN +0.065
    gbdt_gain = curve["GBDT", 1.0] - curve["GBDT", 0.5]
    dnn_gain = curve["DNN", 1.0] - curve["DNN", 0.5]
    record(record_property, dnn_gain - gbdt_gain, 0.03, dnn_gain=dnn_gain, gbdt_gain=gbdt_gain)
    assert dnn_gain > 0.03, curve
    assert dnn_gain > gbdt_gain + 0.03, curve


def test_both_models_learn_something_real(curve, record_property):
    # every model closes a real share of the gap, and none beats the oracle
    record(record_property, min(curve.values()), 0.05, kind="level", max_share=max(curve.values()))
    for key, share in curve.items():
        assert 0.05 < share < 1.0, (key, curve)


def test_dcn_v2_at_least_matches_the_dnn(curve, record_property):
    # measured: parallel DCN V2 0.302 vs DNN 0.300 (seed 1: 0.303 vs 0.293); seeds move either by ~0.01
    record(record_property, curve["DCN V2", 1.0] - curve["DNN", 1.0], -0.015, kind="no worse than",
           gap_DCN_V2=curve["DCN V2", 1.0], gap_DNN=curve["DNN", 1.0])
    assert curve["DCN V2", 1.0] > curve["DNN", 1.0] - 0.015, curve
