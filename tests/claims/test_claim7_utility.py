"""Claim 7: calibrated heads make a utility-weighted ranking adjustable (chapter 4).

Chapter 4's dial at the ``book`` scale, as the chapter runs it (generator seed
``RANKING_CLAIM_SEED``, 0 unless set, the numbers noted are seed 0's; the model
seed stays 0). Not on the moderate log: there, before ``boost_rare_tasks``, the save
head stayed at its base rate (the standard deviation of its predictions 0.0002 to 0.0003, of the true
probabilities 0.017, an MMoE and a shared bottom alike), so the weight has
nothing to turn: videos hold 16 to 19% of the top slots at weight 0 and at 8,
a test of the moderate log's size rather than of the claim. An MMoE learns the click,
the save and the hide with chapter 4's recipe (heads start at their base rate,
losses weighted by base-rate entropy, the rare tasks four times that in training,
stopped on the entropy-weighted loss), and the
home-feed requests of the test days (one user's impressions on one day, at
least eight) are ranked by utility = P(click) + w P(save) - P(hide). Turning the
save weight w from 0 to 8, as the chapter does, should move videos (clicked
less, saved more on this log) into the top 3 slots and trade true expected
clicks for true expected saves, measured with the oracle's probabilities.
"""

import pytest
import torch

from claim_setup import encoded_split, oracle_gap, record
from ranking.nn.multitask import MMoE
from ranking.simulate import AdLogConfig
from ranking.objective import boost_rare_tasks, entropy_weights
from ranking.train import fit, predict
from ranking.utility import feed_requests, top_slot_share, top_slots, utility

RANKED = ("click", "save", "hide")
RECIPE = dict(epochs=10, patience=1, batch_size=4096, lr=1e-3, weight_decay=1e-4, progress=False,
              start_at_base_rate=True, seed=0)
"""Chapter 4's training settings for its ranking model (patience 1, as the chapter's ranker)."""
TOP = 3
SAVE_WEIGHTS = (0.0, 8.0)

pytestmark = pytest.mark.claim(7)


@pytest.fixture(scope="module")
def top_slots_by_weight() -> dict:
    """{save weight: {'video share', 'clicks', 'saves' (true expected, per 1,000 top slots)}}, and the
    save head's calibration ('save head ratio': mean prediction / mean true probability, on the ranked
    candidates) and what it learned ('save head gap closed' on every test impression)."""
    _, (_, _, test_frame), encoder, (train, valid, test) = encoded_split(AdLogConfig.preset("book"), RANKED)
    weights = entropy_weights(train, RANKED)
    torch.manual_seed(0)
    model = MMoE(encoder.cardinalities, encoder.n_dense, tasks=RANKED)
    fit(model, train, valid, tasks=RANKED, task_weights=boost_rare_tasks(weights), monitor=weights, **RECIPE)
    probs = predict(model, test)
    request, in_request = feed_requests(test_frame, "home_feed", min_candidates=8)
    requests = request[in_request]
    candidates = {task: probs[task][in_request] for task in RANKED}
    truth = {task: test_frame[f"p_{task}"].to_numpy()[in_request] for task in RANKED}
    is_video = test_frame["is_video"].to_numpy()[in_request] == 1
    results = {"save head ratio": float(candidates["save"].mean() / truth["save"].mean()),
               "save head gap closed": oracle_gap(test, probs["save"], "save", float(train["label_save"].mean()))}
    for weight in SAVE_WEIGHTS:
        scores = utility(candidates, {"click": 1.0, "save": weight, "hide": -1.0})
        top = top_slots(scores, requests, TOP)
        results[weight] = {"video share": top_slot_share(scores, requests, is_video, TOP),
                           "clicks": 1000 * float(truth["click"][top].mean()),
                           "saves": 1000 * float(truth["save"][top].mean())}
    return results


def test_claim7_the_save_weight_moves_videos_into_the_top_slots(top_slots_by_weight, record_property):
    base, turned = (top_slots_by_weight[weight] for weight in SAVE_WEIGHTS)
    growth = turned["video share"] / base["video share"] - 1
    # measured (world 0): videos take 20.1% of the top 3 slots at save weight 0, 70.0% at 8 (+248%);
    # the chapter calls the claim shown above +20%
    record(record_property, growth, 0.2, video_share_w0=base["video share"], video_share_w8=turned["video share"],
           save_head_ratio=top_slots_by_weight["save head ratio"],
           save_head_gap_closed=top_slots_by_weight["save head gap closed"])
    assert growth > 0.2, top_slots_by_weight


def test_claim7_the_dial_trades_true_clicks_for_true_saves(top_slots_by_weight, record_property):
    base, turned = (top_slots_by_weight[weight] for weight in SAVE_WEIGHTS)
    save_gain = turned["saves"] / base["saves"] - 1
    # measured (world 0), true expected actions per 1,000 top slots: saves 10.5 -> 13.9 (+33%),
    # clicks 33.9 -> 26.5
    record(record_property, save_gain, 0.1, effect_clicks=1 - turned["clicks"] / base["clicks"],
           saves_w0=base["saves"], saves_w8=turned["saves"], clicks_w0=base["clicks"], clicks_w8=turned["clicks"])
    assert save_gain > 0.1, top_slots_by_weight
    assert turned["clicks"] < base["clicks"], top_slots_by_weight
