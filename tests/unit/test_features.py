"""Feature building: shapes, transforms fitted on training data only, sequences.

The gathered sequences equal the former materialized ones exactly: test_history.py."""

import numpy as np
import pandas as pd
import pytest
import torch

from ranking.features import FeatureEncoder, FeatureSpec, most_recent, time_split
from ranking.simulate import AdLogConfig

SMOKE = AdLogConfig.preset("smoke")


def test_time_split_is_ordered_and_complete(logs, split):
    train, valid, test = split
    assert len(train) + len(valid) + len(test) == len(logs.impressions)
    assert train["timestamp"].max() < valid["timestamp"].min()
    assert valid["timestamp"].max() < test["timestamp"].min()
    with pytest.raises(ValueError, match="no training data"):
        time_split(logs.impressions, valid_days=10, test_days=10)


def test_transform_shapes_and_dtypes(logs, split):
    train = split[0]
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=16)).fit(train)
    data = encoder.transform(train)
    n = len(train)
    for name in encoder.cardinalities:
        assert data[name].shape == (n,) and data[name].dtype == torch.int64
        assert int(data[name].max()) < encoder.cardinalities[name]
    assert data["dense"].shape == (n, encoder.n_dense) and data["dense"].dtype == torch.float32
    for key in ("history_start", "history_end", "timestamp"):
        assert data[key].shape == (n,) and data[key].dtype == torch.int64
    assert encoder.history.gather(data)["seq_item_id"].shape == (n, 16)
    for task in ("click", "good_click", "save", "hide", "conversion"):
        assert data[f"label_{task}"].dtype == torch.float32
        assert torch.equal(data[f"label_{task}"], torch.tensor(train[task].to_numpy(), dtype=torch.float32))


def test_dense_statistics_come_from_training_data_only(logs, split):
    train, valid, _ = split
    encoder = FeatureEncoder(logs).fit(train)
    train_dense = encoder.transform(train)["dense"]
    assert torch.allclose(train_dense.mean(0), torch.zeros(encoder.n_dense), atol=1e-4)
    # validation rows reuse the training statistics: their mean is not forced to 0
    valid_dense = encoder.transform(valid)["dense"]
    assert not torch.allclose(valid_dense.mean(0), torch.zeros(encoder.n_dense), atol=1e-3)


def test_log1p_tames_heavy_tails(logs, split):
    train = split[0]
    column = FeatureSpec().dense.index("item_save_count")
    raw = FeatureEncoder(logs, FeatureSpec(log1p=False, clip_quantile=None, scaling="standard",
                                           sequence_length=0)).fit(train).transform(train)
    logged = FeatureEncoder(logs, FeatureSpec(log1p=True, clip_quantile=None, scaling="standard",
                                              sequence_length=0)).fit(train).transform(train)
    assert raw["dense"][:, column].max() > 3 * logged["dense"][:, column].max()


def test_minmax_scaling_maps_training_data_to_unit_interval(logs, split):
    train = split[0]
    data = FeatureEncoder(logs, FeatureSpec(scaling="minmax", sequence_length=0)).fit(train).transform(train)
    assert float(data["dense"].min()) >= 0.0 and float(data["dense"].max()) <= 1.0 + 1e-6


def test_sequences_match_a_per_row_reference(logs, split):
    """The vectorized gather equals a slow, obvious per-row construction."""
    train = split[0]
    length = 12
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=length)).fit(train)
    data = encoder.history.gather(encoder.transform(train))
    events = logs.events
    rows = np.random.default_rng(0).choice(len(train), size=25, replace=False)
    for row in rows:
        impression = train.iloc[row]
        history = events[(events["user_id"] == impression["user_id"])
                         & (events["timestamp"] < impression["timestamp"])]
        history = history.sort_values("timestamp", kind="stable").iloc[::-1].head(length)
        k = len(history)
        assert int(data["seq_length"][row]) == k
        np.testing.assert_array_equal(data["seq_item_id"][row, :k].numpy(), history["item_id"].to_numpy() + 1)
        np.testing.assert_array_equal(data["seq_action"][row, :k].numpy(), history["action"].to_numpy() + 1)
        category = logs.items["category"].to_numpy()[history["item_id"].to_numpy()]
        np.testing.assert_array_equal(data["seq_category"][row, :k].numpy(), category + 1)
        hours = (impression["timestamp"] - history["timestamp"].to_numpy()) / 3600
        np.testing.assert_allclose(data["seq_delta_hours"][row, :k].numpy(), hours, rtol=1e-5)
        assert (data["seq_item_id"][row, k:] == 0).all()
        assert (np.diff(hours) >= 0).all()  # most recent first


def test_sequences_never_see_the_future(logs, split):
    train = split[0]
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=8)).fit(train)
    data = encoder.history.gather(encoder.transform(train))
    valid = data["seq_item_id"] > 0
    assert (data["seq_delta_hours"][valid] > 0).all()


def test_conversion_cutoff_hides_late_conversions(logs):
    impressions = logs.impressions
    cutoff = float(impressions["timestamp"].max())
    spec = FeatureSpec(sequence_length=0, conversion_observed_at=cutoff)
    data = FeatureEncoder(logs, spec).fit(impressions).transform(impressions)
    late = impressions["conversion_timestamp"].to_numpy() > cutoff
    assert late.sum() > 0
    assert float(data["label_conversion"][torch.from_numpy(late)].sum()) == 0.0
    assert float(data["label_conversion"].sum()) == impressions["conversion"].sum() - late.sum()


@pytest.mark.parametrize("kwargs, message", [
    (dict(clip_quantile=0.2), "clip_quantile"),
    (dict(scaling="robust"), "scaling"),
    (dict(sequence_length=-1), "sequence_length"),
])
def test_bad_spec_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureSpec(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(categorical=("user_id", "zip_code")), r"categorical feature\(s\) \['zip_code'\]"),
    (dict(dense=("bogus",)), r"dense feature\(s\) \['bogus'\]"),
    (dict(tasks=("purchase",)), r"task\(s\) \['purchase'\]"),
])
def test_the_encoder_refuses_a_spec_naming_what_the_log_lacks(logs, kwargs, message):
    spec = FeatureSpec(sequence_length=0, **kwargs)
    with pytest.raises(ValueError, match=message):
        FeatureEncoder(logs, spec)


def test_the_encoder_refuses_what_is_not_a_log():
    with pytest.raises(TypeError, match="AdLogs or a RatingLog"):
        FeatureEncoder(object(), FeatureSpec(sequence_length=0))


def test_transform_before_fit_and_bad_rows_raise(logs, split):
    encoder = FeatureEncoder(logs)
    with pytest.raises(RuntimeError, match="fit"):
        encoder.transform(split[0])
    encoder.fit(split[0])
    bad = split[0].head(10).assign(item_id=10**7)
    with pytest.raises(ValueError, match="item_id"):
        encoder.transform(bad)
    bad_surface = split[0].head(10).assign(surface=pd.Series(["shopping"] * 10, dtype="object").to_numpy())
    with pytest.raises(ValueError, match="shopping"):
        encoder.transform(bad_surface)


def test_most_recent_keeps_the_last_share_of_the_time_span():
    frame = pd.DataFrame({"timestamp": np.arange(0, 800, dtype=np.int64), "click": 0})   # span 0 .. 799
    for fraction, first_kept in [(1.0, 0), (0.5, 400), (0.125, 700)]:
        part = most_recent(frame, fraction)
        assert part["timestamp"].min() == first_kept and part["timestamp"].max() == 799
        assert len(part) == 800 - first_kept
    shuffled = frame.sample(frac=1.0, random_state=0)
    assert sorted(most_recent(shuffled, 0.25).index) == list(range(600, 800))   # rows, not positions


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_most_recent_rejects_a_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        most_recent(pd.DataFrame({"timestamp": [1, 2, 3]}), fraction)


def test_most_recent_rejects_an_empty_frame():
    with pytest.raises(ValueError, match="empty"):
        most_recent(pd.DataFrame({"timestamp": []}), 0.5)


@pytest.mark.parametrize("column, value, error, match", [
    ("user_id", "5", TypeError, "'user_id' must hold integer ids, got dtype"),
    ("user_id", None, TypeError, "'user_id' must hold integer ids, got dtype object"),
    ("item_id", 3.0, TypeError, "'item_id' must hold integer ids, got dtype float64"),
    ("advertiser_id", 2.5, TypeError, "'advertiser_id' must hold integer ids"),
    ("is_video", True, TypeError, "'is_video' must hold integer ids, got dtype bool"),
    ("item_save_count", "many", TypeError, "'item_save_count' must hold numbers"),
    ("query_match", True, TypeError, "'query_match' must hold numbers, got dtype bool"),
    ("timestamp", "noon", TypeError, "'timestamp' must hold numbers"),
    ("item_save_count", np.inf, ValueError, "'item_save_count' holds NaN or infinite"),
    ("advertiser_budget", -np.inf, ValueError, "'advertiser_budget' holds NaN or infinite"),
    ("context_similarity", np.nan, ValueError, "'context_similarity' holds NaN or infinite"),
    ("timestamp", np.nan, ValueError, "'timestamp' holds NaN or infinite"),
])
def test_transform_names_the_column_of_a_wrong_type_or_a_non_finite_value(
        logs, split, column, value, error, match):
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0)).fit(split[0])
    with pytest.raises(error, match=match):
        encoder.transform(split[1].head(10).assign(**{column: value}))


def test_transform_names_every_missing_column_and_fit_refuses_infinity(logs, split):
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0))
    frame = split[0].head(50).drop(columns=["item_age_days", "is_video"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['is_video', 'item_age_days'\]"):
        encoder.fit(split[0]).transform(frame)
    with pytest.raises(ValueError, match="'item_age_days' holds NaN or infinite"):
        FeatureEncoder(logs).fit(split[0].head(50).assign(item_age_days=np.inf))
    # one bad row among many is found: not only a column that is bad throughout
    one_bad = split[1].head(100).astype({"item_save_count": float})
    one_bad.loc[one_bad.index[37], "item_save_count"] = np.inf
    with pytest.raises(ValueError, match=r"\(1 of 100 rows\)"):
        encoder.transform(one_bad)
