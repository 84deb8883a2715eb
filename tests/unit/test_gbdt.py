"""The GBDT baseline: leakage-free historical click rates and the LightGBM wrapper."""

import numpy as np
import pandas as pd
import pytest

from ranking.features import DENSE, time_split
from ranking.gbdt import (HISTORY_KEYS, GBDTClassifier, counts_before, gbdt_features,
                          historical_ctr)
from ranking.metrics import logloss


@pytest.fixture(scope="module")
def split(logs):
    impressions = logs.impressions
    train, valid, test = time_split(impressions, valid_days=2, test_days=2)
    prior = float(train["click"].mean())
    features = gbdt_features(impressions, prior=prior)
    return {name: (features.loc[frame.index], frame["click"].to_numpy())
            for name, frame in (("train", train), ("valid", valid), ("test", test))}, prior


def _small_frame(seed: int = 0, n: int = 300) -> pd.DataFrame:
    """Random rows in random order, with many ties in time and few users."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "user_id": rng.integers(0, 7, n),
        "surface": pd.Categorical(rng.choice(["home_feed", "search"], n)),
        "timestamp": rng.integers(0, 60, n),
        "click": (rng.random(n) < 0.3).astype(np.int8),
    }, index=rng.permutation(np.arange(1000, 1000 + n)))


def _slow_counts(frame: pd.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, a plain loop: rows with the same key and a strictly earlier timestamp."""
    key = frame[keys].astype(str).agg("|".join, axis=1).to_numpy()
    time, click = frame["timestamp"].to_numpy(), frame["click"].to_numpy()
    seen, clicks = np.zeros(len(frame), int), np.zeros(len(frame), int)
    for i in range(len(frame)):
        earlier = (key == key[i]) & (time < time[i])
        seen[i], clicks[i] = earlier.sum(), click[earlier].sum()
    return seen, clicks


@pytest.mark.parametrize("keys", [["user_id"], ["user_id", "surface"]])
def test_counts_and_rate_match_a_slow_reference(keys):
    frame = _small_frame()
    seen, clicks = counts_before(frame, keys)
    expected_seen, expected_clicks = _slow_counts(frame, keys)
    np.testing.assert_array_equal(seen, expected_seen)
    np.testing.assert_array_equal(clicks, expected_clicks)
    rate = historical_ctr(frame, keys, prior=0.1, strength=5.0)
    np.testing.assert_allclose(rate, (expected_clicks + 5.0 * 0.1) / (expected_seen + 5.0))


def test_first_impression_of_a_key_gets_the_prior():
    frame = _small_frame(seed=1)
    rate = historical_ctr(frame, ["user_id"], prior=0.02, strength=50.0)
    first_time = frame.groupby("user_id")["timestamp"].transform("min").to_numpy()
    at_first = frame["timestamp"].to_numpy() == first_time
    assert at_first.sum() >= frame["user_id"].nunique()
    np.testing.assert_allclose(rate[at_first], 0.02)
    assert not np.allclose(rate[~at_first], 0.02)


def test_rows_logged_in_the_same_second_do_not_see_each_other():
    frame = pd.DataFrame({"user_id": [5, 5, 5, 5], "timestamp": [10, 10, 20, 20],
                          "click": [1, 1, 0, 1]})
    seen, clicks = counts_before(frame, ["user_id"])
    assert seen.tolist() == [0, 0, 2, 2]
    assert clicks.tolist() == [0, 0, 2, 2]


def test_no_future_leak_changing_later_clicks_leaves_earlier_features_unchanged(logs):
    impressions = logs.impressions
    before = gbdt_features(impressions, prior=0.02)
    cut = int(impressions["timestamp"].quantile(0.6))
    later = impressions["timestamp"] >= cut
    flipped = impressions.copy()
    flipped.loc[later, "click"] = 1 - flipped.loc[later, "click"]
    after = gbdt_features(flipped, prior=0.02)
    pd.testing.assert_frame_equal(before[~later], after[~later])
    assert not before[later].equals(after[later])  # later rows do see the flipped past


def test_a_row_never_sees_its_own_click(logs):
    impressions = logs.impressions.iloc[:5_000]
    flipped = impressions.copy()
    flipped["click"] = 1 - flipped["click"]
    rows_alone = ~impressions.duplicated("user_id", keep=False)  # users with a single impression
    for frame in (impressions, flipped):
        rate = historical_ctr(frame, ["user_id"], prior=0.02)
        np.testing.assert_allclose(rate[rows_alone.to_numpy()], 0.02)


def test_features_keep_the_index_and_do_not_depend_on_row_order(logs):
    impressions = logs.impressions.iloc[:8_000]
    features = gbdt_features(impressions, prior=0.02)
    assert features.index.equals(impressions.index)
    expected = [f"{name}_{kind}" for name in HISTORY_KEYS for kind in ("impressions", "ctr")]
    assert list(features.columns) == expected + list(DENSE) + ["surface", "is_video", "hour_of_day"]
    assert features["hour_of_day"].between(0, 23).all()
    shuffled = impressions.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(gbdt_features(shuffled, prior=0.02).loc[impressions.index], features)


def test_model_beats_the_base_rate_and_predicts_probabilities(split):
    data, prior = split
    model = GBDTClassifier(seed=0).fit(*data["train"], *data["valid"])
    test_x, test_y = data["test"]
    p = model.predict(test_x)
    assert p.shape == (len(test_x),) and np.all((p >= 0) & (p <= 1))
    assert logloss(test_y, p) < logloss(test_y, np.full(len(test_y), prior))
    assert 1 <= model.best_iteration <= len(model.valid_curve)
    assert model.valid_curve.idxmin() == model.best_iteration
    importance = model.feature_importance()
    assert set(importance.index) == set(test_x.columns)
    assert (importance >= 0).all() and importance.is_monotonic_decreasing


def test_same_seed_same_model_other_seed_other_model(split):
    data, _ = split
    train_x, train_y = data["train"]
    test_x = data["test"][0]

    def predictions(seed: int) -> np.ndarray:
        model = GBDTClassifier(num_trees=40, seed=seed, early_stopping_rounds=None)
        return model.fit(train_x, train_y).predict(test_x)

    first = predictions(0)
    np.testing.assert_array_equal(first, predictions(0))
    assert not np.allclose(first, predictions(1))


def test_without_validation_all_trees_are_used(split):
    data, _ = split
    model = GBDTClassifier(num_trees=15).fit(*data["train"])
    assert model.best_iteration == 15 and model.valid_curve is None


def test_soft_labels_are_accepted(logs, split):
    data, _ = split
    train_x = data["train"][0]
    oracle = logs.impressions.loc[train_x.index, "p_click"].to_numpy()
    p = GBDTClassifier(num_trees=20).fit(train_x, oracle).predict(train_x)
    assert np.corrcoef(p, oracle)[0, 1] > 0.3


def test_bad_inputs_raise(split):
    data, _ = split
    train_x, train_y = data["train"]
    frame = _small_frame()
    with pytest.raises(ValueError, match="unknown column"):
        counts_before(frame, ["item_id"])
    with pytest.raises(ValueError, match="empty"):
        counts_before(frame.iloc[:0], ["user_id"])
    with pytest.raises(ValueError, match="at least one"):
        counts_before(frame, [])
    with pytest.raises(ValueError, match="prior"):
        historical_ctr(frame, ["user_id"], prior=1.5)
    with pytest.raises(ValueError, match="strength"):
        historical_ctr(frame, ["user_id"], prior=0.1, strength=0.0)
    with pytest.raises(ValueError, match="unknown column"):
        gbdt_features(frame, prior=0.1)
    for kwargs in ({"num_trees": 0}, {"num_leaves": 1}, {"learning_rate": 0.0},
                   {"bagging_fraction": 1.5}, {"seed": -1}, {"early_stopping_rounds": 0},
                   {"num_trees": 2.5}):
        with pytest.raises(ValueError):
            GBDTClassifier(**kwargs)
    model = GBDTClassifier(num_trees=5)
    with pytest.raises(RuntimeError, match="fit"):
        model.predict(train_x)
    with pytest.raises(ValueError, match="labels"):
        model.fit(train_x, train_y[:-1])
    with pytest.raises(ValueError, match="0/1"):
        model.fit(train_x, train_y + 1)
    with pytest.raises(ValueError, match="empty"):
        model.fit(train_x.iloc[:0], train_y[:0])
    with pytest.raises(ValueError, match="both"):
        model.fit(train_x, train_y, valid_features=train_x)
    model.fit(train_x, train_y)
    with pytest.raises(ValueError, match="training columns"):
        model.predict(train_x.drop(columns="surface"))
