"""The search log behind its knob, and one user sequence per kind (ranking.simulate, ranking.history, ranking.features)."""

import numpy as np
import pandas as pd
import pytest
import torch

from ranking.features import AD_ACTIONS, FeatureEncoder, FeatureSpec, sequence_events
from ranking.history import EventHistories, EventHistory
from ranking.simulate import AdLogConfig, load_or_simulate, simulate
from ranking.simulate.logs import latest_query
from ranking.simulate.store import load, save

SEARCH = AdLogConfig.preset("smoke", searches_per_day=2.0)


@pytest.fixture(scope="module")
def search_logs():
    return load_or_simulate(SEARCH, seed=0)


def test_the_knob_at_zero_changes_no_table(logs, search_logs):
    """Every earlier log is as it was: the search log draws from a stream of its own."""
    assert logs.searches is None
    pd.testing.assert_frame_equal(logs.events, search_logs.events)
    pd.testing.assert_frame_equal(logs.users, search_logs.users)
    pd.testing.assert_frame_equal(logs.items, search_logs.items)
    # the impressions are the same draws: only the search rows that the query retrieved differ
    same = logs.impressions["item_id"] == search_logs.impressions["item_id"]
    on_search = search_logs.impressions["surface"] == "search"
    assert same[~on_search].all()
    assert 0.05 < 1 - same[on_search].mean() < 0.5


def test_queries_are_sorted_per_user_and_cover_the_history(search_logs):
    searches = search_logs.searches
    assert list(searches.columns) == ["user_id", "category", "timestamp"]
    key = searches["user_id"] * 10**9 + searches["timestamp"]
    assert key.is_monotonic_increasing
    days = SEARCH.history_days + SEARCH.n_days
    per_user_day = len(searches) / SEARCH.n_users / days
    assert 1.6 < per_user_day < 2.4
    assert searches["category"].between(0, SEARCH.n_categories - 1).all()


def test_latest_query_is_the_last_one_at_or_before_the_time():
    searches = pd.DataFrame({"user_id": [0, 0, 2], "category": [5, 7, 9],
                             "timestamp": [10, 20, 5]})
    user = np.array([0, 0, 0, 0, 1, 2, 2])
    time = np.array([5, 10, 19, 25, 30, 4, 6])
    assert latest_query(searches, user, time).tolist() == [-1, 5, 5, 7, -1, -1, 9]


def test_search_ads_in_the_query_category_are_clicked_more(search_logs):
    """The planted intent effect: on search only, the latest query's category lifts clicks."""
    frame = search_logs.impressions
    query = latest_query(search_logs.searches, frame["user_id"].to_numpy(),
                         frame["timestamp"].to_numpy())
    matches = query == search_logs.items["category"].to_numpy()[frame["item_id"]]
    logit = np.log(frame["p_click"] / (1 - frame["p_click"]))
    lift = {}
    for surface in ("search", "home_feed"):
        on = (frame["surface"] == surface).to_numpy()
        lift[surface] = logit[on & matches].mean() - logit[on & ~matches].mean()
    # a query is often about the current interest, which lifts clicks everywhere;
    # on search the intent adds its own search_intent_effect (1.0) on top
    assert 0.6 < lift["search"] - lift["home_feed"] < 1.4, lift


def test_a_log_with_searches_saves_and_loads(search_logs, tmp_path):
    save(search_logs, tmp_path)
    again = load(SEARCH, seed=0, data_dir=tmp_path)
    pd.testing.assert_frame_equal(again.searches, search_logs.searches)


@pytest.mark.parametrize("name, value", [("searches_per_day", -1.0),
                                         ("search_purity", 1.5),
                                         ("search_intent_effect", -0.1),
                                         ("search_retrieval_share", 2.0)])
def test_search_knobs_are_checked(name, value):
    with pytest.raises(ValueError, match=name):
        AdLogConfig.preset("smoke", **{name: value})


def test_ads_sequence_is_the_earlier_clicks_saves_and_hides(search_logs):
    events = sequence_events(search_logs, "ads")
    frame = search_logs.impressions
    assert len(events) == int(frame["click"].sum() + frame["save"].sum() + frame["hide"].sum())
    assert set(events["action"].unique()) <= set(range(len(AD_ACTIONS)))


def test_a_log_without_searches_has_no_search_sequence(logs):
    with pytest.raises(ValueError, match="searches_per_day"):
        sequence_events(logs, "search")


def test_each_kind_gathers_only_events_before_the_impression(search_logs):
    spec = FeatureSpec(sequence_length=8, sequence_kinds=("engagement", "ads", "search"))
    encoder = FeatureEncoder(search_logs, spec).fit(search_logs.impressions)
    assert isinstance(encoder.history, EventHistories)
    data = encoder.transform(search_logs.impressions.iloc[-500:])
    batch = {**data, **encoder.history.gather(data)}
    for prefix in ("", "ads_", "search_"):
        delta = batch[f"{prefix}seq_delta_hours"]
        present = batch[f"{prefix}seq_category"] > 0
        assert present.any()
        assert (delta[present] > 0).all(), prefix       # strictly earlier
        assert (batch[f"{prefix}seq_length"] == present.sum(1)).all()
    # a query has a category and no item; an ad event has both
    assert (batch["search_seq_item_id"] == 0).all()
    assert ((batch["ads_seq_item_id"] > 0) == (batch["ads_seq_category"] > 0)).all()


def test_the_ads_sequence_never_holds_the_impressions_own_click(search_logs):
    frame = search_logs.impressions
    clicked = frame[frame["click"] == 1].iloc[:300]
    spec = FeatureSpec(sequence_length=4, sequence_kinds=("engagement", "ads"))
    encoder = FeatureEncoder(search_logs, spec).fit(frame)
    data = encoder.transform(clicked)
    batch = encoder.history.gather(data)
    own = (batch["ads_seq_item_id"][:, 0] == torch.tensor(clicked["item_id"].to_numpy()) + 1)
    assert not bool((own & (batch["ads_seq_delta_hours"][:, 0] == 0)).any())


def test_one_kind_keeps_the_plain_history(logs):
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=8))
    assert isinstance(encoder.history, EventHistory)


def test_sequence_kinds_are_checked():
    with pytest.raises(ValueError, match="sequence_kinds"):
        FeatureSpec(sequence_kinds=("organic",))
    with pytest.raises(ValueError, match="sequence_kinds"):
        FeatureSpec(sequence_kinds=())


def test_a_kind_without_its_keys_is_refused(search_logs):
    spec = FeatureSpec(sequence_length=4, sequence_kinds=("engagement", "search"))
    encoder = FeatureEncoder(search_logs, spec).fit(search_logs.impressions)
    data = encoder.transform(search_logs.impressions.iloc[:10])
    del data["search_history_end"]
    with pytest.raises(ValueError, match="search_history_end"):
        encoder.history.check(data)


def test_simulate_with_searches_is_deterministic():
    config = AdLogConfig.preset("smoke", n_impressions=5_000, n_users=300,
                                searches_per_day=1.0)
    first, second = simulate(config, seed=3), simulate(config, seed=3)
    pd.testing.assert_frame_equal(first.searches, second.searches)
    pd.testing.assert_frame_equal(first.impressions, second.impressions)


def test_a_query_without_an_item_is_an_event_and_padding_is_not():
    from ranking.nn.sequence import EventEmbedding

    table = EventEmbedding(5, 4, 1, torch.randn(5, 3), dim=8, parts=("category",),
                           interactions=True)
    batch = {"seq_item_id": torch.zeros(2, 3, dtype=torch.long),        # no items
             "seq_category": torch.tensor([[2, 1, 0], [0, 0, 0]]),
             "seq_action": torch.tensor([[1, 1, 0], [0, 0, 0]]),
             "item_id": torch.tensor([0, 1]), "category": torch.tensor([1, 2])}
    vectors, mask = table(batch)
    assert mask.tolist() == [[True, True, False], [False, False, False]]
    assert bool((vectors[~mask] == 0).all())
