"""Claim 5, chapter 10: several kinds of user sequence each add signal, and a Transformer
mixer over the whole ranker's tokens against concatenating them.

The sequence write-up: "both sequence features had sizable gains", the search
sequence "especially for search ads". The Closeup write-up mixes its tokens with
self-attention. The log: the moderate log's ids with the search queries on
(``whole_ranker.WORLD``) and half its impressions, so the five trainings fit the
test suite (generator seed ``RANKING_CLAIM_SEED``, model seeds 0). Each variant of
``whole_ranker.ABLATIONS`` trains as chapter 10's does, for at most three epochs,
and is scored on the click of the test days against the oracle. Margins are about
half the differences measured on seed 0 (noted at each test).

Two of the claims do not hold on this log, and their tests say so: the search
sequence does not lift the click on search (the planted search intent is small
beside the run-to-run noise of a model with three sequences), and the mixer does
not beat concatenated tokens. Those tests record the effect for the verdicts over
worlds (``experiments/claim_verdicts.py``) and fail only if the part does clear
harm, past the margin.
"""

import pytest
import torch

from claim_setup import MODERATE, generator_seed, oracle_gap, record
from ranking.features import FeatureEncoder, time_split
from ranking.simulate import load_or_simulate
from ranking.train import predict
from ranking.whole_ranker import ABLATIONS, TRAINING, WORLD, encoder_spec, train_closeup

pytestmark = pytest.mark.claim(5)

CONFIG = MODERATE.with_(n_impressions=MODERATE.n_impressions // 2, **WORLD)
VARIANTS = ("the whole ranker", "without the engagement sequence",
            "without the ads sequence", "without the search sequence",
            "concatenated tokens, no mixer")


@pytest.fixture(scope="module")
def gaps(monkeypatch_module) -> dict:
    """{variant: (click gap closed, click gap closed on search)} on the test days."""
    torch.set_num_threads(1)
    monkeypatch_module.setitem(TRAINING, "epochs", 3)
    logs = load_or_simulate(CONFIG, seed=generator_seed())
    frames = time_split(logs.impressions, valid_days=2, test_days=2)
    prior = float(frames[0]["click"].mean())
    on_search = (frames[2]["surface"] == "search").to_numpy()
    results = {}
    for name in VARIANTS:
        options = ABLATIONS[name]
        encoder = FeatureEncoder(logs, encoder_spec(**options)).fit(frames[0])
        train, valid, test = (encoder.transform(frame) for frame in frames)
        model, _ = train_closeup(encoder, logs, train, valid, seed=0, **options)
        p_click = predict(model, test, history=encoder.history)["click"]
        results[name] = (oracle_gap(test, p_click, "click", prior),
                         oracle_gap(test, p_click, "click", prior, on_search))
    return results


@pytest.fixture(scope="module")
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def _lift(gaps: dict, without: str, on_search: bool = False) -> float:
    index = 1 if on_search else 0
    return gaps["the whole ranker"][index] - gaps[without][index]


def test_the_engagement_sequence_adds_signal(gaps, record_property):
    # measured (seed 0): whole ranker 0.437, without the engagement sequence 0.285
    lift = _lift(gaps, "without the engagement sequence")
    record(record_property, lift, 0.07, gap_whole=gaps["the whole ranker"][0])
    assert lift > 0.07, gaps


def test_the_ads_sequence_adds_signal(gaps, record_property):
    # measured (seed 0): without the ads sequence 0.369, 6.9 points below the whole
    lift = _lift(gaps, "without the ads sequence")
    record(record_property, lift, 0.03)
    assert lift > 0.03, gaps


def test_the_search_sequence_does_no_clear_harm_on_search(gaps, record_property):
    # measured (seed 0): on search 0.430 with it, 0.483 without (-5.3 points):
    # the claim ("especially for search ads") does not hold here
    lift = _lift(gaps, "without the search sequence", on_search=True)
    record(record_property, lift, -0.10, kind="no worse than",
           effect_overall=_lift(gaps, "without the search sequence"))
    assert lift > -0.10, gaps


def test_the_mixer_does_no_clear_harm_against_concatenation(gaps, record_property):
    # measured (seed 0): concatenated tokens 0.458, 2.1 points above the mixer:
    # the claim that the mixer beats concatenation does not hold here
    lift = _lift(gaps, "concatenated tokens, no mixer")
    record(record_property, lift, -0.05, kind="no worse than")
    assert lift > -0.05, gaps
