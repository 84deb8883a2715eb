"""Serving: a saved ranker loads to the same scores, ranks requests and refuses bad ones."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from ranking.calibration import IsotonicCalibration, PlattScaling
from ranking.features import FeatureEncoder, FeatureSpec
from ranking.nn import DCNv2, EmbeddingMLP, LogisticRegression
from ranking.serve import (FORMAT_VERSION, export_ranker, load_exported, load_ranker,
                           save_ranker)
from ranking.simulate.world import SECONDS_PER_DAY
from ranking.train import fit, predict

torch.set_num_threads(1)

CONFIG = dict(embedding_dim=8, hidden=(32, 16))


@pytest.fixture(scope="module")
def encoder(logs, split):
    return FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",))).fit(split[0])


@pytest.fixture(scope="module")
def model(encoder, split):
    torch.manual_seed(0)
    model = EmbeddingMLP(encoder.cardinalities, encoder.n_dense, **CONFIG)
    fit(model, encoder.transform(split[0]), epochs=1, batch_size=1024, progress=False)
    return model.eval()


@pytest.fixture(scope="module")
def calibrator(model, encoder, split):
    valid = split[1]
    return PlattScaling().fit(predict(model, encoder.transform(valid))["click"],
                              valid["click"].to_numpy())


@pytest.fixture(scope="module")
def saved(tmp_path_factory, model, encoder, calibrator):
    return save_ranker(tmp_path_factory.mktemp("ranker"), model, encoder, CONFIG, calibrator)


@pytest.fixture(scope="module")
def ranker(saved):
    return load_ranker(saved)


def model_probs(model, encoder, frame, task="click"):
    return predict(model, encoder.transform(frame))[task]


def test_round_trip_gives_the_scores_of_predict(tmp_path, model, encoder, split):
    test = split[2]
    loaded = load_ranker(save_ranker(tmp_path, model, encoder, CONFIG))
    np.testing.assert_array_equal(loaded.score_batch(test), model_probs(model, encoder, test))


def test_round_trip_of_a_dcn_ranked_by_its_second_head(tmp_path, encoder, split):
    config = dict(embedding_dim=4, cross_layers=2, hidden=[16], tasks=["click", "save"],
                  structure="parallel")
    torch.manual_seed(1)
    model = DCNv2(encoder.cardinalities, encoder.n_dense, **config).eval()
    loaded = load_ranker(save_ranker(tmp_path, model, encoder, config, task="save"))
    test = split[2]
    np.testing.assert_array_equal(loaded.score_batch(test),
                                  model_probs(model, encoder, test, "save"))


def test_the_files_hold_no_pickled_object(saved, model):
    weights = torch.load(saved / "weights.pt", weights_only=True)
    assert weights.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(weights[key], value)
    record = json.loads((saved / "ranker.json").read_text())
    assert record["format_version"] == FORMAT_VERSION
    assert record["model"] == {"class": "EmbeddingMLP", "kwargs": {"embedding_dim": 8,
                                                                  "hidden": [32, 16]}}
    with np.load(saved / "tables.npz", allow_pickle=False) as tables:
        assert all(tables[name].dtype != object for name in tables.files)


def test_the_calibrator_is_applied(ranker, model, encoder, calibrator, split):
    test = split[2]
    probs = model_probs(model, encoder, test)
    np.testing.assert_array_equal(ranker.score_batch(test), calibrator.transform(probs))
    assert np.abs(ranker.score_batch(test) - probs).max() > 1e-3


def test_rank_sorts_the_candidates_by_score(ranker, calibrator):
    items = [17, 3, 250, 999, 42, 0, 511]
    ranked = ranker.rank(5, "home_feed", items, context={"hour_of_day": 13})
    assert list(ranked.columns) == ["item_id", "score", "rank"]
    assert sorted(ranked["item_id"]) == sorted(items)
    assert ranked["rank"].tolist() == list(range(1, len(items) + 1))
    assert ranked["score"].is_monotonic_decreasing
    data = ranker.encode_request(5, "home_feed", items, context={"hour_of_day": 13})
    expected = dict(zip(items, calibrator.transform(predict(ranker.model, data)["click"])))
    np.testing.assert_array_equal(ranked["score"], ranked["item_id"].map(expected))


def test_a_request_reads_the_logged_features_from_the_tables(ranker, encoder, logs, split):
    test = split[2]
    hour = test["timestamp"] % SECONDS_PER_DAY // 3600
    rows = test[(test["surface"] == "home_feed") & (test["item_save_count"] > 0) & (hour == 17)]
    rows = rows.iloc[:20]     # the features that do not change with time: as logged
    logged = encoder.transform(rows)
    for i, (user, item) in enumerate(zip(rows["user_id"], rows["item_id"])):
        data = ranker.encode_request(int(user), "home_feed", [int(item)], {"hour_of_day": 17})
        for field in encoder.cardinalities:
            assert data[field] == logged[field][i], field
        for name in ("user_follower_count", "item_save_count", "advertiser_budget"):
            column = encoder.spec.dense.index(name)
            assert data["dense"][0, column] == logged["dense"][i, column], name
    # the snapshot counts each user's events of the last 7 days before the log's end
    end = logs.config.n_days * SECONDS_PER_DAY
    events = logs.events
    recent = events[(events["timestamp"] >= end - 7 * SECONDS_PER_DAY)
                    & (events["timestamp"] < end)]
    np.testing.assert_array_equal(ranker.tables["user_engagement_count"],
                                  np.bincount(recent["user_id"], minlength=len(logs.users)))


@pytest.mark.parametrize("request_, error, match", [
    (dict(user_id="5"), TypeError, "user_id must be an integer"),
    (dict(user_id=True), TypeError, "user_id must be an integer"),
    (dict(surface=0), TypeError, "surface must be a string"),
    (dict(surface="stories"), ValueError, "unknown surface 'stories'"),
    (dict(item_ids=[]), ValueError, "item_ids is empty"),
    (dict(item_ids=7), TypeError, "item_ids must be a sequence"),
    (dict(item_ids="1,2"), TypeError, "item_ids must be a sequence"),
    (dict(item_ids=[1.0, 2.0]), TypeError, "integer ids, got dtype float64"),
    (dict(item_ids=[[1, 2]]), TypeError, "flat sequence"),
    (dict(item_ids=[4, 8, 4]), ValueError, r"duplicate\(s\) \[4\]"),
    (dict(context=[("hour_of_day", 3)]), TypeError, "context must be a dict"),
    (dict(context={"hour": 3}), ValueError, r"unknown key\(s\) \['hour'\]"),
    (dict(context={"hour_of_day": 24}), ValueError, r"must be in \[0, 24\)"),
    (dict(context={"hour_of_day": 2.5}), TypeError, "hour_of_day'] must be an integer"),
    (dict(context={"query_match": 0.5}), ValueError, "exists on search only"),
    (dict(surface="related_pins"), ValueError, "needs context\\['context_similarity'\\]"),
    (dict(surface="search", context={"query_match": 1.5}), ValueError, r"in \[0, 1\]"),
    (dict(surface="search", context={"query_match": [0.5]}), TypeError, "or 3 numbers"),
    (dict(unknown="zero"), ValueError, "unknown must be one of"),
    (dict(user_id=2_000), ValueError, "unknown id.*user 2000"),
    (dict(item_ids=[1, -1, 5_000]), ValueError, "item -1, item 5000"),
])
def test_bad_requests_raise(ranker, request_, error, match):
    request = {"user_id": 5, "surface": "home_feed", "item_ids": [1, 2, 3], **request_}
    with pytest.raises(error, match=match):
        ranker.rank(**request)


N_USERS, N_ITEMS, N_ADVERTISERS, N_CATEGORIES = 2_000, 1_000, 100, 20   # the smoke log's


def encoded(ranker, name, value):
    """``value`` of dense column ``name`` as the encoder hands it to the model."""
    dense = ranker.encoder.spec.dense
    frame = pd.DataFrame({column: [value] for column in dense})
    return ranker.encoder.dense(frame)[0, dense.index(name)]


def test_padding_scores_an_unknown_item_with_zero_rows_and_medians(ranker):
    tables = ranker.model.input.embedding.tables
    assert torch.equal(tables["item_id"].weight[N_ITEMS], torch.zeros(8))
    data = ranker.encode_request(5, "home_feed", [3, 10_000], unknown="padding")
    for field, unknown_row in (("item_id", N_ITEMS), ("advertiser_id", N_ADVERTISERS),
                               ("category", N_CATEGORIES), ("is_video", 2)):
        assert data[field][0] < unknown_row and data[field][1] == unknown_row, field
    dense = ranker.encoder.spec.dense
    for name in ("item_save_count", "advertiser_budget"):
        median = encoded(ranker, name, np.median(ranker.tables[name]))
        assert data["dense"][1, dense.index(name)] == median, name
    # each candidate is scored on its own: the unknown one changes no other score
    known = ranker.rank(5, "home_feed", [3, 4, 5])
    mixed = ranker.rank(5, "home_feed", [3, 10_000, 4, 5], unknown="padding")
    assert np.isfinite(mixed["score"]).all()
    pd.testing.assert_frame_equal(mixed[mixed["item_id"] != 10_000].drop(columns="rank")
                                  .reset_index(drop=True), known.drop(columns="rank"))


def test_padding_scores_an_unknown_user_with_a_zero_row_and_medians(ranker):
    tables = ranker.model.input.embedding.tables
    assert torch.equal(tables["user_id"].weight[N_USERS], torch.zeros(8))
    data = ranker.encode_request(N_USERS, "home_feed", [3, 4], unknown="padding")
    assert data["user_id"].tolist() == [N_USERS, N_USERS]
    dense = ranker.encoder.spec.dense
    for name in ("user_follower_count", "user_engagement_count"):
        median = encoded(ranker, name, np.median(ranker.tables[name]))
        assert (data["dense"][:, dense.index(name)] == median).all(), name
    # every unknown user is the same new user, scored unlike a known one
    new_user = ranker.rank(N_USERS, "home_feed", [3, 4, 5], unknown="padding")
    pd.testing.assert_frame_equal(
        new_user, ranker.rank(10**9, "home_feed", [3, 4, 5], unknown="padding"))
    assert not new_user.equals(ranker.rank(5, "home_feed", [3, 4, 5]))


def test_a_different_format_version_is_refused(saved, tmp_path):
    copy = shutil.copytree(saved, tmp_path / "ranker")
    record = json.loads((copy / "ranker.json").read_text())
    record["format_version"] = 99
    (copy / "ranker.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"format version 99 .*reads format version "
                                         f"{FORMAT_VERSION}"):
        load_ranker(copy)


def test_missing_files_are_named(saved, tmp_path):
    copy = shutil.copytree(saved, tmp_path / "ranker")
    (copy / "weights.pt").unlink()
    with pytest.raises(FileNotFoundError, match="has no weights.pt"):
        load_ranker(copy)
    with pytest.raises(FileNotFoundError, match="has no model.pt2.*export_ranker"):
        load_exported(saved)


def test_saving_over_an_exported_ranker_leaves_one_model(ranker, model, encoder, tmp_path):
    export_ranker(ranker, tmp_path)
    save_ranker(tmp_path, model, encoder, CONFIG)
    assert not (tmp_path / "model.pt2").exists()
    with pytest.raises(FileNotFoundError, match="has no model.pt2"):
        load_exported(tmp_path)


def test_score_batch_refuses_bad_frames(ranker, split):
    test = split[2]
    with pytest.raises(TypeError, match="frame must be a DataFrame"):
        ranker.score_batch(test.to_dict())
    with pytest.raises(ValueError, match="no rows"):
        ranker.score_batch(test.iloc[:0])
    broken = test.iloc[:10].assign(item_save_count=np.nan)
    with pytest.raises(ValueError, match=r"NaN or infinite values in \['item_save_count'\]"):
        ranker.score_batch(broken)
    with pytest.raises(ValueError, match="user_id has values outside"):
        ranker.score_batch(test.iloc[:10].assign(user_id=N_USERS))


def test_the_exported_ranker_agrees_with_the_eager_one(ranker, tmp_path, split):
    exported = load_exported(export_ranker(ranker, tmp_path))
    assert not isinstance(exported.model, EmbeddingMLP)
    test = split[2]
    np.testing.assert_allclose(exported.score_batch(test), ranker.score_batch(test),
                               rtol=0, atol=1e-6)
    for items in ([7], list(range(300))):     # any number of candidates, one included
        eager = ranker.rank(5, "search", items, {"query_match": 0.3})
        pd.testing.assert_frame_equal(
            exported.rank(5, "search", items, {"query_match": 0.3}), eager, rtol=0, atol=1e-6)


def test_save_refuses_what_it_cannot_serve(tmp_path, logs, split, model, encoder):
    sequences = FeatureEncoder(logs, FeatureSpec(sequence_length=4, tasks=("click",)))
    lr = LogisticRegression(encoder.cardinalities, encoder.n_dense)
    isotonic = IsotonicCalibration().fit([0.1, 0.2, 0.8], [0, 0, 1])
    for arguments, error, match in [
        ((lr, encoder, {}), TypeError, "model must be one of"),
        ((model, "encoder", CONFIG), TypeError, "encoder must be a FeatureEncoder"),
        ((model, FeatureEncoder(logs), CONFIG), ValueError, "encoder is not fitted"),
        ((model, sequences.fit(split[0]), CONFIG), ValueError, "sequence features"),
        ((model, encoder, dict(CONFIG, hidden=(64,))), ValueError, "does not rebuild"),
        ((model, encoder, dict(CONFIG, n_dense=7)), ValueError, "come from the encoder"),
        ((model, encoder, dict(CONFIG, hidden=np.array([32, 16]))), TypeError, "JSON"),
        ((model, encoder, CONFIG, isotonic), TypeError, "only a PlattScaling"),
        ((model, encoder, CONFIG, PlattScaling()), ValueError, "not fitted"),
    ]:
        with pytest.raises(error, match=match):
            save_ranker(tmp_path, *arguments)
    with pytest.raises(ValueError, match="task 'save' is not one of the model's heads"):
        save_ranker(tmp_path, model, encoder, CONFIG, task="save")
