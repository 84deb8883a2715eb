"""Utility-weighted ranking: the weighted sum, the top slots of each request, and their share."""

import numpy as np
import pandas as pd
import pytest

from ranking.utility import feed_requests, top_slot_share, top_slots, utility


def test_utility_is_the_weighted_sum_of_the_probabilities():
    probs = {"click": np.array([0.1, 0.2]), "save": np.array([0.0, 0.5]), "hide": np.array([0.3, 0.0])}
    scores = utility(probs, {"click": 1.0, "save": 2.0, "hide": -3.0})
    np.testing.assert_allclose(scores, [0.1 - 0.9, 0.2 + 1.0])
    np.testing.assert_allclose(utility(probs, {"click": 1.0}), probs["click"])   # unweighted actions are ignored


def test_top_slots_keeps_the_k_best_of_each_request():
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.8, 0.2, 0.7])
    requests = np.array([1, 1, 1, 2, 2, 2, 3])
    np.testing.assert_array_equal(top_slots(scores, requests, k=2), [True, False, True, True, True, False, True])
    ties = top_slots(np.array([0.5, 0.5, 0.5]), np.array([0, 0, 0]), k=2)
    assert ties.sum() == 2


def test_raising_a_weight_moves_flagged_candidates_into_the_top_slots():
    rng = np.random.default_rng(0)
    n = 2_000
    is_video = rng.random(n) < 0.3
    probs = {"click": rng.uniform(0.01, 0.05, n) * np.where(is_video, 0.8, 1.0),
             "save": rng.uniform(0.0, 0.02, n) * np.where(is_video, 2.0, 1.0)}
    requests = np.repeat(np.arange(n // 20), 20)
    shares = [top_slot_share(utility(probs, {"click": 1.0, "save": w}), requests, is_video, k=3)
              for w in (0.0, 1.0, 5.0)]
    assert shares[0] < shares[1] < shares[2]


@pytest.mark.parametrize("call, match", [
    (lambda: utility({"click": [0.1]}, {}), "weights is empty"),
    (lambda: utility({"click": [0.1]}, {"save": 1.0}), "save"),
    (lambda: utility({"click": [0.1], "save": [0.1, 0.2]}, {"click": 1.0, "save": 1.0}), "length"),
    (lambda: top_slots([0.1, 0.2], [1], k=1), "same length"),
    (lambda: top_slots([0.1, 0.2], [1, 1], k=0), "k must be"),
    (lambda: top_slot_share([0.1, 0.2], [1, 1], [True], k=1), "flag"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_feed_requests_groups_a_users_day_on_one_surface_and_drops_small_ones():
    day = 86_400
    frame = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 2, 1],
        "timestamp": [10, 20, 30, day + 5, 40, 50, 60],
        "surface": ["home_feed"] * 6 + ["search"],
    })
    request, ranked = feed_requests(frame, "home_feed", min_candidates=3)
    assert request.tolist() == [1000, 1000, 1000, 1001, 2000, 2000, 1000]
    # user 1's first day has 3 home-feed impressions; the search one is not in it
    assert ranked.tolist() == [True, True, True, False, False, False, False]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_feed_requests_refuses_a_bad_minimum(bad):
    frame = pd.DataFrame({"user_id": [1], "timestamp": [0], "surface": ["home_feed"]})
    with pytest.raises(ValueError, match="min_candidates"):
        feed_requests(frame, min_candidates=bad)


def test_feed_requests_names_a_surface_with_no_impressions():
    frame = pd.DataFrame({"user_id": [1], "timestamp": [0], "surface": ["home_feed"]})
    with pytest.raises(ValueError, match="'search'"):
        feed_requests(frame, "search")
