"""The generator: validation, determinism, rates and planted structure."""

import dataclasses
import math
import re
import typing

import numpy as np
import pandas as pd
import pytest

from ranking.simulate import SURFACES, AdLogConfig, simulate
from ranking.simulate.config import INFINITE_KNOBS
from ranking.simulate.logs import conversion_delays
from ranking.simulate.store import check_schema
from ranking.simulate.world import build_world

SMOKE = AdLogConfig.preset("smoke")


@pytest.fixture(scope="module")
def logs():
    return simulate(SMOKE, seed=0)


# ------------------------------------------------------------------ validation
BAD_INPUTS = [
    (dict(n_users=0), "n_users"),
    (dict(n_items=-5), "n_items"),
    (dict(n_impressions=2.5), "n_impressions"),
    (dict(n_advertisers=True), "n_advertisers"),
    (dict(n_advertisers=2_000, n_items=1_000), "n_advertisers"),
    (dict(task_correlation=1.5), "task_correlation"),
    (dict(hide_correlation=-1.01), "hide_correlation"),
    (dict(video_share=-0.1), "video_share"),
    (dict(conversion_rate=0.0), "conversion_rate"),
    (dict(save_rate=1.0), "save_rate"),
    (dict(pretrained_cosine=0.0), "pretrained_cosine"),
    (dict(sequence_purity=float("nan")), "sequence_purity"),
    (dict(surface_traffic={"home_feed": 0.5, "related_pins": 0.3, "search": 0.3}), "surface_traffic"),
    (dict(surface_traffic={"home_feed": 0.5, "related_pins": 0.3, "shopping": 0.2}), "unknown surface"),
    (dict(surface_ctr={"home_feed": 0.01, "related_pins": 0.02, "search": 1.2}), "surface_ctr"),
    (dict(delay_weights=(0.5, 0.5, 0.5)), "delay_weights"),
    (dict(delay_mean_hours=(1.0, -2.0, 3.0)), "delay_mean_hours"),
    (dict(outage_feature="query_match"), "outage_feature"),
    (dict(retrieval_current_share=0.7, retrieval_previous_share=0.5), "retrieval"),
    (dict(attribution_days=0), "attribution_days"),
    (dict(video_click_effect="-0.4"), "video_click_effect must be a number"),
    (dict(delay_mean_hours=[0.25, 24.0, 336.0]), "delay_mean_hours must be a tuple"),
    (dict(surface_popularity_effect={"home_feed": 0.3, "related_pins": 0.1, "search": None}),
     r"surface_popularity_effect\['search'\] must be a number"),
]


@pytest.mark.parametrize("changes, field_name", BAD_INPUTS)
def test_bad_config_raises_naming_the_field(changes, field_name):
    with pytest.raises(ValueError, match=field_name):
        AdLogConfig(**changes)


KNOB_TYPES = typing.get_type_hints(AdLogConfig)
FLOAT_KNOBS = [name for name, kind in KNOB_TYPES.items() if kind is float]
# (knob, key or index) of every number inside a dict or tuple knob
ENTRIES = [(name, key) for name, kind in KNOB_TYPES.items() if typing.get_origin(kind) in (dict, tuple)
           for key in (getattr(SMOKE, name) if typing.get_origin(kind) is dict
                       else range(len(getattr(SMOKE, name))))]
NON_FINITE = [math.nan, math.inf, -math.inf]
# every float knob with NaN, inf and -inf, except inf where it has a meaning
FLOAT_CASES = [(name, value) for name in FLOAT_KNOBS for value in NON_FINITE
               if not (value == math.inf and name in INFINITE_KNOBS)]


def _with_entry(config: AdLogConfig, name: str, key, value) -> dict:
    """The changes that set one entry of a dict or tuple knob."""
    old = getattr(config, name)
    if isinstance(old, dict):
        return {name: {**old, key: value}}
    return {name: old[:key] + (value,) + old[key + 1:]}


def test_every_float_and_entry_is_covered():
    assert {"video_click_effect", "attribution_days", "outage_days"} <= set(FLOAT_KNOBS)
    assert ("surface_popularity_effect", "search") in ENTRIES and ("delay_mean_hours", 2) in ENTRIES


@pytest.mark.parametrize("name, value", FLOAT_CASES, ids=[f"{n}={v}" for n, v in FLOAT_CASES])
def test_float_knob_must_be_finite(name, value):
    with pytest.raises(ValueError, match=re.escape(f"{name} must be a finite number") + f".*got {value}"):
        SMOKE.with_(**{name: value})


@pytest.mark.parametrize("value", NON_FINITE, ids=str)
@pytest.mark.parametrize("name, key", ENTRIES)
def test_dict_and_tuple_entries_must_be_finite(name, key, value):
    with pytest.raises(ValueError, match=re.escape(f"{name}[{key!r}] must be a finite number")):
        SMOKE.with_(**_with_entry(SMOKE, name, key, value))


def test_infinite_attribution_window_never_cuts_a_conversion_off():
    config = SMOKE.with_(attribution_days=math.inf)
    delays = conversion_delays(np.random.default_rng(0), config, 50_000)
    assert np.isfinite(delays).all()
    assert delays.max() > 24 * SMOKE.attribution_days


def test_unknown_preset_lists_the_choices():
    with pytest.raises(ValueError, match="unknown preset 'huge'.*book"):
        AdLogConfig.preset("huge")


def test_bad_seed_raises():
    with pytest.raises(ValueError, match="seed"):
        simulate(SMOKE, seed=-1)
    with pytest.raises(TypeError, match="AdLogConfig"):
        simulate({"n_users": 10})


def test_presets_grow_and_book_is_big_enough():
    smoke, moderate, book, gpu = (AdLogConfig.preset(n) for n in ("smoke", "moderate", "book", "gpu"))
    assert smoke.n_impressions < moderate.n_impressions < book.n_impressions < gpu.n_impressions
    # the moderate log keeps the book's data per id: a third of the impressions over a third of the ids
    assert moderate.n_impressions / moderate.n_users == pytest.approx(book.n_impressions / book.n_users, rel=0.05)
    assert book.n_impressions >= 1_000_000
    assert gpu.n_impressions >= 9 * book.n_impressions


def test_from_env_reads_the_scale(monkeypatch):
    monkeypatch.setenv("RANKING_SCALE", "smoke")
    assert AdLogConfig.from_env() == SMOKE
    monkeypatch.setenv("RANKING_SCALE", "nope")
    with pytest.raises(ValueError, match="nope"):
        AdLogConfig.from_env()


@pytest.mark.parametrize("scale, smaller", [("smoke", "smoke"), ("book", "moderate"), ("gpu", "book")])
def test_moderate_from_env_is_a_smaller_log_for_many_runs(monkeypatch, scale, smaller):
    monkeypatch.setenv("RANKING_SCALE", scale)
    assert AdLogConfig.moderate_from_env() == AdLogConfig.preset(smaller)
    monkeypatch.setenv("RANKING_SCALE", "nope")
    with pytest.raises(ValueError, match="nope"):
        AdLogConfig.moderate_from_env()


def test_fingerprint_changes_with_any_knob():
    assert SMOKE.fingerprint() == AdLogConfig.preset("smoke").fingerprint()
    assert SMOKE.fingerprint() != SMOKE.with_(task_correlation=0.5).fingerprint()


# -------------------------------------------------------------- determinism
def test_same_seed_same_frames_other_seed_differs(logs):
    again = simulate(SMOKE, seed=0)
    pd.testing.assert_frame_equal(logs.impressions, again.impressions)
    pd.testing.assert_frame_equal(logs.events, again.events)
    np.testing.assert_array_equal(logs.item_embeddings, again.item_embeddings)
    other = simulate(SMOKE, seed=1)
    assert not logs.impressions["click"].equals(other.impressions["click"])


def test_frames_match_the_stored_schema(logs):
    for table in ("impressions", "events", "users", "items", "advertisers"):
        check_schema(table, getattr(logs, table))


# ----------------------------------------------------------------- the rates
def test_rates_are_realistic(logs):
    impressions = logs.impressions
    assert 0.01 <= impressions["click"].mean() <= 0.04
    clicks = impressions[impressions["click"] == 1]
    assert 0.3 <= clicks["good_click"].mean() <= 0.5
    assert 0.01 <= clicks["true_conversion"].mean() <= 0.05
    # labels respect their funnel
    assert (impressions["good_click"] <= impressions["click"]).all()
    assert (impressions["conversion"] <= impressions["click"]).all()
    assert impressions["conversion_timestamp"].notna().sum() == impressions["conversion"].sum()


def test_surfaces_differ_in_traffic_and_base_rate(logs):
    per_surface = logs.impressions.groupby("surface", observed=True)["p_click"].agg(["size", "mean"])
    for surface in SURFACES:
        share = per_surface.loc[surface, "size"] / len(logs.impressions)
        assert share == pytest.approx(SMOKE.surface_traffic[surface], abs=0.02)
        assert per_surface.loc[surface, "mean"] == pytest.approx(SMOKE.surface_ctr[surface], rel=0.02)


def test_oracle_is_informative_but_not_separable(logs):
    from sklearn.metrics import roc_auc_score
    impressions = logs.impressions
    oracle_auc = roc_auc_score(impressions["click"], impressions["p_click"])
    assert 0.72 <= oracle_auc <= 0.88


def test_labels_are_drawn_from_the_oracle(logs):
    impressions = logs.impressions
    for task in ("click", "save", "hide", "good_click"):
        observed, expected = impressions[task].mean(), impressions[f"p_{task}"].mean()
        standard_error = np.sqrt(expected / len(impressions))
        assert abs(observed - expected) < 4 * standard_error, task


def test_count_features_are_heavy_tailed(logs):
    for column in ("user_follower_count", "item_save_count", "advertiser_budget"):
        values = logs.impressions[column].to_numpy()
        assert values.max() > 30 * np.median(values[values > 0]), column


def test_conversion_delays_match_criteo_quantiles():
    delays = conversion_delays(np.random.default_rng(0), SMOKE, 200_000)
    assert np.mean(delays < 1.0) == pytest.approx(0.35, abs=0.03)
    assert np.mean(delays < 24.0) == pytest.approx(0.50, abs=0.03)
    assert delays.max() <= 24 * SMOKE.attribution_days


def test_advertiser_noise_knob_controls_reporting():
    exact = simulate(SMOKE.with_(advertiser_noise=0.0), seed=0).impressions
    assert (exact["conversion"] == exact["true_conversion"]).all()
    noisy = simulate(SMOKE.with_(advertiser_noise=1.0, n_impressions=200_000), seed=0).impressions
    assert (noisy["conversion"] != noisy["true_conversion"]).sum() > 0


def test_outage_freezes_the_feature_only_in_its_window(logs):
    impressions = logs.impressions
    day = impressions["timestamp"] / 86_400
    inside = (day >= SMOKE.outage_start_day) & (day < SMOKE.outage_start_day + SMOKE.outage_days)
    assert inside.sum() > 0
    assert (impressions.loc[inside, SMOKE.outage_feature] == 0).all()
    assert impressions.loc[~inside, SMOKE.outage_feature].std() > 0


# ------------------------------------------------------------------ the world
def test_task_directions_have_the_requested_cosine():
    config = SMOKE.with_(task_correlation=0.3, hide_correlation=-0.6)
    world = build_world(config, np.random.default_rng(0))
    directions = world.task_directions
    for task, want in (("good_click", 0.3), ("save", 0.3), ("conversion", 0.3), ("hide", -0.6)):
        assert np.linalg.norm(directions[task]) == pytest.approx(1.0)
        assert directions["click"] @ directions[task] == pytest.approx(want, abs=1e-9)


def test_pretrained_embeddings_are_noisy_copies_of_the_truth():
    world = build_world(SMOKE, np.random.default_rng(0))
    cosine = np.sum(world.item_true_vector * world.item_pretrained, axis=1)
    assert cosine.mean() == pytest.approx(SMOKE.pretrained_cosine, abs=0.03)
    assert cosine.std() > 0


def test_video_items_have_a_different_action_profile(logs):
    by_video = logs.impressions.groupby("is_video")[["p_click", "p_save"]].mean()
    assert by_video.loc[1, "p_click"] < by_video.loc[0, "p_click"]
    assert by_video.loc[1, "p_save"] > by_video.loc[0, "p_save"]


def test_sequences_have_tens_to_hundreds_of_events(logs):
    per_user = logs.events.groupby("user_id").size()
    assert 30 <= per_user.median() <= 300
    assert per_user.max() > 3 * per_user.median()


def _event_taste(logs, config) -> np.ndarray:
    """The click-direction affinity of each event's user for its item, recomputed from the world."""
    from ranking.simulate.world import build_world

    world_rng = np.random.default_rng(np.random.SeedSequence(logs.seed).spawn(3)[0])
    world = build_world(config, world_rng)
    user, item = logs.events["user_id"].to_numpy(), logs.events["item_id"].to_numpy()
    interaction = world.user_latent[user] * world.item_latent[item]
    return config.affinity_scale * interaction @ world.task_directions["click"]


def test_events_reveal_long_term_taste_and_the_action_its_strength(logs):
    taste = _event_taste(logs, SMOKE)
    assert taste.mean() > 0.5                 # engaged items are better liked than a random item (mean 0)
    by_action = pd.Series(taste).groupby(logs.events["action"].to_numpy()).mean()
    assert by_action[0] < by_action[1] < by_action[2]       # closeup < click < save
    shares = logs.events["action"].value_counts(normalize=True).sort_index()
    np.testing.assert_allclose(shares, [0.5, 0.35, 0.15], atol=0.01)


def test_event_knobs_at_zero_draw_items_and_actions_without_taste():
    config = SMOKE.with_(n_users=500, event_candidates=1, event_taste_strength=0.0, event_action_strength=0.0)
    logs = simulate(config, seed=0)
    taste = _event_taste(logs, config)
    assert abs(taste.mean()) < 0.1
    by_action = pd.Series(taste).groupby(logs.events["action"].to_numpy()).mean()
    assert by_action.max() - by_action.min() < 0.15


def test_event_knobs_leave_the_impressions_untouched():
    """The events have their own random stream: chapters that read impressions only do not move."""
    base = SMOKE.with_(n_users=500, n_impressions=5_000)
    plain = simulate(base.with_(event_candidates=1, event_taste_strength=0.0, event_action_strength=0.0))
    tasteful = simulate(base)
    pd.testing.assert_frame_equal(plain.impressions, tasteful.impressions)
    pd.testing.assert_series_equal(plain.events["timestamp"], tasteful.events["timestamp"])
    assert not plain.events["item_id"].equals(tasteful.events["item_id"])


def test_surface_shift_moves_one_surface_from_its_day_on_and_nothing_else():
    """The shift is a term of the click logit only: other surfaces keep their labels, and
    the shifted surface's base rate rises after shift_day."""
    base = SMOKE.with_(n_users=500, n_impressions=20_000, shift_day=5.0)
    plain = simulate(base).impressions
    shifted = simulate(base.with_(surface_shift={"home_feed": 0.0, "related_pins": 0.0,
                                                 "search": 0.8})).impressions
    pd.testing.assert_series_equal(plain["user_id"], shifted["user_id"])
    search = (plain["surface"] == "search").to_numpy()
    pd.testing.assert_series_equal(plain.loc[~search, "p_click"], shifted.loc[~search, "p_click"])
    late = (plain["timestamp"] >= 5 * 86_400).to_numpy()
    before = shifted.loc[search & ~late, "p_click"].mean() / plain.loc[search & ~late, "p_click"].mean()
    after = shifted.loc[search & late, "p_click"].mean() / plain.loc[search & late, "p_click"].mean()
    assert after > 1.3 * before      # the search base rate jumps at the shift
    assert abs(shifted.loc[search, "p_click"].mean() - base.surface_ctr["search"]) < 0.005


def test_default_config_plants_no_shift():
    assert set(AdLogConfig().surface_shift.values()) == {0.0}


def test_config_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SMOKE.n_users = 5


def test_the_truth_rebuilt_from_the_log_matches_its_oracle(logs):
    """The interest and taste the generator used can be rebuilt; blinding one moves the oracle as planted."""
    from ranking.simulate.truth import blind_oracle, matches_interest, world_of

    frame = logs.impressions
    world = world_of(logs)
    match = matches_interest(logs, frame, world)
    assert 0.15 < match.mean() < 0.45                         # retrieval: a quarter from the interest
    # the matched impressions are the clicked ones more often, by the planted effect
    assert frame["p_click"][match].mean() > 1.8 * frame["p_click"][~match].mean()
    blind = blind_oracle(logs, frame, "interest", world)
    assert np.all((blind > 0) & (blind < 1))
    oracle_ratio = frame["p_click"][match].mean() / frame["p_click"][~match].mean()
    blind_ratio = blind[match].mean() / blind[~match].mean()
    assert oracle_ratio / blind_ratio > 2.5             # blinding removes the planted exp(1.2) = 3.3
    np.testing.assert_allclose(blind_oracle(logs.__class__(**{**logs.__dict__,
                               "config": SMOKE.with_(short_term_effect=0.0)}), frame, "interest", world),
                               frame["p_click"], rtol=1e-4)   # no effect to blind: the oracle itself
    taste_blind = blind_oracle(logs, frame, "taste", world)
    assert np.corrcoef(taste_blind, frame["p_click"])[0, 1] < 0.95
    with pytest.raises(ValueError, match="blind_to"):
        blind_oracle(logs, frame, "mood", world)
