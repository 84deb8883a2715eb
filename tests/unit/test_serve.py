"""Serving: a saved ranker loads to the same scores, ranks requests and refuses bad ones."""

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ranking.calibration import IsotonicCalibration, PlattScaling
from ranking.features import FeatureEncoder, FeatureSpec
from ranking.integrity import RankerFileError, check_expression, check_operator
from ranking.nn import DCNv2, EmbeddingMLP, LogisticRegression
from ranking.serve import (
    FORMAT_VERSION,
    export_ranker,
    load_exported,
    load_ranker,
    save_ranker,
)
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
    with pytest.raises(ValueError, match="'item_save_count' holds NaN or infinite values"):
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


# ================================================================== the files
# A saved ranker's files: checked against their digests, refused when damaged, and
# never able to run code in the loader. Each tampering test plants a payload that
# would create a marker file if anything ran it, updates the digest in ranker.json
# as an attacker with write access would (so the digest check alone cannot be what
# stops it), and asserts that the loader refused the file and the marker does not
# exist.


class Payload:
    """Unpickling this creates ``marker``: the proof that a load ran stored code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, ranker):
    return export_ranker(ranker, tmp_path_factory.mktemp("exported"))


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def replace_file(folder: Path, name: str, data: bytes, rehash: bool = True) -> None:
    """Write ``data`` as ``name``; with ``rehash``, record its digest as a forger would."""
    (folder / name).write_bytes(data)
    if rehash:
        record = json.loads((folder / "ranker.json").read_text())
        record["files"][name] = hashlib.sha256(data).hexdigest()
        (folder / "ranker.json").write_text(json.dumps(record))


def pickled(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def edited_archive(data: bytes, edit) -> bytes:
    """The zip ``data`` with ``edit(name, content) -> content or None`` applied (None drops)."""
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = edit(info.filename, source.read(info.filename))
            if content is not None:
                target.writestr(info, content)
    return out.getvalue()


def edited_graph(data: bytes, edit) -> bytes:
    """The archive with ``edit(graph)`` applied to the graph's JSON, in place."""
    def change(name, content):
        if name.endswith("models/model.json"):
            graph = json.loads(content)
            edit(graph)
            return json.dumps(graph).encode()
        return content
    return edited_archive(data, change)


def first(graph, key):
    """The first dict in ``graph`` (nested JSON) that holds ``key``."""
    if isinstance(graph, dict):
        if key in graph:
            return graph
        graph = list(graph.values())
    for value in graph if isinstance(graph, list) else []:
        found = first(value, key)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------- digests
def test_the_record_holds_the_sha256_of_every_other_file(saved, exported):
    for folder, files in ((saved, {"weights.pt", "tables.npz"}),
                          (exported, {"model.pt2", "tables.npz"})):
        record = json.loads((folder / "ranker.json").read_text())
        assert set(record["files"]) == files
        for name in files:
            digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
            assert record["files"][name] == digest, name
        assert sorted(path.name for path in folder.iterdir()) == sorted(files | {"ranker.json"})


@pytest.mark.parametrize("name", ["weights.pt", "tables.npz", "model.pt2"])
def test_a_file_that_does_not_match_its_digest_is_named(saved, exported, tmp_path,
                                                        name):
    folder = copy_of(exported if name == "model.pt2" else saved, tmp_path)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 1                        # one bit flipped: same size
    replace_file(folder, name, bytes(data), rehash=False)
    load = load_exported if name == "model.pt2" else load_ranker
    with pytest.raises(RankerFileError, match=f"{name} does not match the SHA-256"):
        load(folder)


def test_files_from_another_ranker_are_refused(saved, exported, tmp_path):
    folder = copy_of(exported, tmp_path)
    shutil.copy(saved / "weights.pt", folder / "weights.pt")
    with pytest.raises(RankerFileError, match="records no SHA-256 for weights.pt"):
        load_ranker(folder)


# ----------------------------------------------------------- damaged files
def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize("name, damage, match", [
    ("ranker.json", truncated, "ranker.json is not valid JSON"),
    ("ranker.json", lambda data: b"", r"ranker.json is not valid JSON \(it is empty\)"),
    ("ranker.json", lambda data: b"[1, 2]", "holds a JSON list"),
    ("ranker.json", lambda data: json.dumps({**json.loads(data), "task": None,
                                              "model": None}).encode(),
     "do not rebuild a ranker"),
    ("ranker.json", lambda data: json.dumps({k: v for k, v in json.loads(data).items()
                                             if k != "files"}).encode(),
     r"ranker.json lacks \['files'\]"),
    ("weights.pt", truncated, "weights.pt is not a state dict of tensors"),
    ("weights.pt", lambda data: b"", "weights.pt is not a state dict of tensors"),
    ("weights.pt", lambda data: pickled([torch.zeros(2)]), "weights.pt does not hold a state"),
    ("tables.npz", truncated, "tables.npz is not an .npz archive"),
    ("tables.npz", lambda data: b"", "tables.npz is not an .npz archive"),
    ("tables.npz", lambda data: _npz(item_category=np.zeros(3)), "lacks the table"),
])
def test_a_damaged_file_raises_a_ranker_file_error_naming_it(saved, tmp_path,
                                                             name, damage, match):
    folder = copy_of(saved, tmp_path)
    data = damage((folder / name).read_bytes())
    replace_file(folder, name, data, rehash=name != "ranker.json")
    with pytest.raises(RankerFileError, match=match):
        load_ranker(folder)
    assert issubclass(RankerFileError, ValueError)


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("damage, match", [
    (truncated, "model.pt2 is not a readable zip archive"),
    (lambda data: b"", "model.pt2 is not a readable zip archive"),
    (lambda data: edited_archive(data, lambda name, content: None
                                 if name.endswith("models/model.json") else content),
     "model.pt2 passed the checks but torch.export.load refused it"),
])
def test_a_damaged_program_raises_a_ranker_file_error_naming_it(exported, tmp_path,
                                                                damage, match):
    folder = copy_of(exported, tmp_path)
    replace_file(folder, "model.pt2", damage((folder / "model.pt2").read_bytes()))
    with pytest.raises(RankerFileError, match=match):
        load_exported(folder)


def test_a_save_cut_short_leaves_nothing_a_loader_accepts(saved, model, encoder,
                                                          tmp_path, monkeypatch):
    folder = copy_of(saved, tmp_path)
    from ranking import serve
    written = []

    def failing_write(path, data):
        written.append(path.name)
        if path.name == "weights.pt":
            raise OSError("disk full")
        path.write_bytes(data)

    monkeypatch.setattr(serve, "_write_whole", failing_write)
    with pytest.raises(OSError, match="disk full"):
        save_ranker(folder, model, encoder, CONFIG)
    assert written == ["tables.npz", "weights.pt"]
    with pytest.raises(FileNotFoundError, match="has no ranker.json"):
        load_ranker(folder)


# ---------------------------------------------------------- planted payloads
def test_a_pickled_payload_in_weights_never_runs(saved, tmp_path):
    folder, marker = copy_of(saved, tmp_path), tmp_path / "ran"
    state = torch.load(folder / "weights.pt", weights_only=True)
    replace_file(folder, "weights.pt", pickled({**state, "extra": Payload(marker)}))
    with pytest.raises(RankerFileError, match="weights.pt is not a state dict.*pickled"):
        load_ranker(folder)
    assert not marker.exists()


def test_a_pickled_payload_in_the_tables_never_runs(saved, tmp_path):
    folder, marker = copy_of(saved, tmp_path), tmp_path / "ran"
    with np.load(folder / "tables.npz") as stored:
        tables = {name: stored[name] for name in stored.files}
    payload = np.empty(1, dtype=object)
    payload[0] = Payload(marker)
    replace_file(folder, "tables.npz", _npz(**tables, item_category_extra=payload))
    with pytest.raises(RankerFileError, match="tables.npz is not an .npz.*pickled"):
        load_ranker(folder)
    assert not marker.exists()


def run_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w')"


def plant_sample_inputs(data, marker):
    return edited_archive(data, lambda name, content: pickled((Payload(marker),))
                          if name.endswith("sample_inputs/model.pt") else content)


def plant_pickled_weight(data, marker):
    def change(name, content):
        if name.endswith("weights/weight_0"):
            return pickled(Payload(marker))
        if name.endswith("model_weights_config.json"):
            config = json.loads(content)
            meta = next(meta for meta in config["config"].values()
                        if meta["path_name"] == "weight_0")
            meta["use_pickle"] = True
            return json.dumps(config).encode()
        return content
    return edited_archive(data, change)


def with_entry(data: bytes, entry: str, content: bytes) -> bytes:
    """The archive with one more entry, ``entry`` under its root folder."""
    root = zipfile.ZipFile(io.BytesIO(data)).namelist()[0].split("/")[0]
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as archive:
        archive.writestr(f"{root}/{entry}", content)
    return out.getvalue()


def plant_custom_object(data, marker):
    return with_entry(data, "data/constants/custom_obj_0", pickled(Payload(marker)))


def plant_compiled_code(data, marker):
    return with_entry(data, "data/aotinductor/model/model.so", b"\x7fELF")


def plant_shape_expression(data, marker):
    def edit(graph):
        holder = first(graph, "expr_str")
        holder["expr_str"] = f"{run_code(marker)} and {holder['expr_str']}"
    return edited_graph(data, edit)


def plant_guard(data, marker):
    return edited_graph(data, lambda graph: graph["guards_code"].append(
        f"{run_code(marker)} is None"))


def plant_operator(data, marker):
    def edit(graph):
        first(graph, "target")["target"] = "torch.os.system"
    return edited_graph(data, edit)


PLANTS = {"sample inputs": (plant_sample_inputs, "does not load weights-only"),
          "a weight marked pickled": (plant_pickled_weight, "does not load weights-only"),
          "a custom object": (plant_custom_object, "custom_obj_0 is a pickled Python object"),
          "compiled code": (plant_compiled_code, "aotinductor.*not part of an exported"),
          "a shape expression": (plant_shape_expression, "torch would evaluate as code"),
          "an input guard": (plant_guard, "torch would evaluate as code"),
          "an operator": (plant_operator, "calls 'torch.os.system', which is not an ATen")}


@pytest.mark.parametrize("where", PLANTS)
def test_a_payload_planted_in_the_program_never_runs(exported, tmp_path, where):
    plant, match = PLANTS[where]
    folder, marker = copy_of(exported, tmp_path), tmp_path / "ran"
    replace_file(folder, "model.pt2", plant((folder / "model.pt2").read_bytes(), marker))
    with pytest.raises(RankerFileError, match=match):
        load_exported(folder)
    assert not marker.exists()


@pytest.mark.parametrize("where", ["sample inputs", "a shape expression", "an input guard"])
def test_without_the_checks_torch_export_load_would_run_the_payload(exported, tmp_path,
                                                                    where):
    """Why the checks exist: the installed torch runs these payloads when it loads the
    program or when the loaded module first serves (the guards run on each call)."""
    marker = tmp_path / "ran"
    data = PLANTS[where][0]((exported / "model.pt2").read_bytes(), marker)
    example = torch.export.load(exported / "model.pt2").example_inputs
    try:
        torch.export.load(io.BytesIO(data)).module()(*example[0])
    except Exception:
        pass
    if not marker.exists():
        pytest.skip(f"this torch ({torch.__version__}) no longer runs a payload in {where}")
    assert marker.exists()


def test_a_dcn_with_batch_norm_exports_and_loads_through_the_checks(encoder, split,
                                                                    tmp_path):
    config = dict(embedding_dim=4, cross_layers=2, hidden=[16], tasks=["click"])
    torch.manual_seed(2)
    model = DCNv2(encoder.cardinalities, encoder.n_dense, **config).eval()
    ranker = load_ranker(save_ranker(tmp_path / "saved", model, encoder, config))
    exported = load_exported(export_ranker(ranker, tmp_path / "exported"))
    test = split[2].head(500)
    np.testing.assert_allclose(exported.score_batch(test), ranker.score_batch(test),
                               rtol=0, atol=1e-6)


# --------------------------------------------------------- the graph checks
@pytest.mark.parametrize("text", [
    "Symbol('s10', positive=True, integer=True)",
    "L['batch']['item_id'].size()[0] == L['batch']['user_id'].size()[0]",
    "2 <= L['batch']['dense'].size()[0]",
    "Eq(Mod(s0, 2), 0)", "FloorDiv(s10 + 1, 2) * 3", "Max(1, u0) <= 4096",
    "math.floor(s3 / 2) >= -1",
])
def test_arithmetic_on_shapes_passes(text):
    check_expression(text)


@pytest.mark.parametrize("text", [
    "__import__('os').system('ls')", "s10.__class__", "(lambda: 1)()",
    "open('x', 'w')", "getattr(s0, 'real')", "L['a'].size.__globals__",
    "Symbol('s1\\')) or print((\\'')", "[x for x in ()]", "s0; s1", "", None,
    "eval('1')", "L[0].numpy()",
])
def test_anything_more_than_arithmetic_on_shapes_is_refused(text):
    with pytest.raises(RankerFileError, match="evaluate as code"):
        check_expression(text)


@pytest.mark.parametrize("target, safe", [
    ("torch.ops.aten.embedding.default", True),
    ("torch.ops.aten._native_batch_norm_legit_no_training.default", True),
    ("_operator.getitem", True), ("torch.sym_max", True),
    ("torch.ops.aten.__class__.default", False), ("torch.os.system", False),
    ("builtins.eval", False), ("torch.ops.aten.linear.__call__", False),
    ("#custom_op", False), ("torch.load", False),
])
def test_only_aten_and_shape_operators_pass(target, safe):
    if safe:
        check_operator(target)
    else:
        with pytest.raises(RankerFileError, match="not an ATen operator"):
            check_operator(target)
