"""A fitted FeatureEncoder's state: rebuilt without the log, it encodes exactly as the original."""

import json

import numpy as np
import pytest
import torch

from ranking.features import FeatureEncoder, FeatureSpec, id_space_sizes
from ranking.nn import EmbeddingMLP
from ranking.serve import save_ranker
from ranking.simulate.world import SECONDS_PER_DAY

torch.set_num_threads(1)

SPECS = {
    "default": dict(),
    "minmax, no clip, no log1p": dict(scaling="minmax", clip_quantile=None, log1p=False),
    "no scaling, some fields": dict(scaling=None, categorical=("user_id", "category", "surface"),
                                    dense=("item_age_days", "query_match"), clip_quantile=0.9),
    "late conversions": dict(tasks=("click", "conversion"),
                             conversion_observed_at=3.5 * SECONDS_PER_DAY),
    "no dense, no tasks": dict(dense=(), tasks=()),
}


@pytest.fixture(scope="module")
def item_category(logs):
    return logs.items["category"].to_numpy()


def fitted(logs, train, **spec) -> FeatureEncoder:
    return FeatureEncoder(logs, FeatureSpec(sequence_length=0, **spec)).fit(train)


def assert_same_tensors(got: dict, expected: dict) -> None:
    assert sorted(got) == sorted(expected)
    for key, tensor in expected.items():
        assert got[key].dtype == tensor.dtype, key
        assert torch.equal(got[key], tensor), key


@pytest.mark.parametrize("spec", list(SPECS))
def test_an_encoder_rebuilt_from_its_state_gives_the_same_tensors(logs, split, item_category,
                                                                  spec):
    train, _, test = split
    encoder = fitted(logs, train, **SPECS[spec])
    rebuilt = FeatureEncoder.from_state(encoder.state(), item_category)
    for frame in (train, test):
        assert_same_tensors(rebuilt.transform(frame), encoder.transform(frame))


@pytest.mark.parametrize("spec", list(SPECS))
def test_the_state_survives_a_json_round_trip(logs, split, item_category, spec):
    train, valid, _ = split
    encoder = fitted(logs, train, **SPECS[spec])
    state = json.loads(json.dumps(encoder.state()))
    rebuilt = FeatureEncoder.from_state(state, item_category)
    assert rebuilt.spec == encoder.spec
    assert rebuilt.cardinalities == encoder.cardinalities
    assert rebuilt.n_dense == encoder.n_dense
    assert_same_tensors(rebuilt.transform(valid), encoder.transform(valid))


def test_a_rebuilt_encoder_has_no_log_and_no_history(logs, split, item_category):
    rebuilt = FeatureEncoder.from_state(fitted(logs, split[0]).state(), item_category)
    assert rebuilt.logs is None
    assert rebuilt.history is None


def test_the_state_records_the_id_space_sizes_of_the_log(logs, split):
    state = fitted(logs, split[0]).state()
    sizes = id_space_sizes(logs.config)
    assert state["cardinalities"] == {name: sizes[name] for name in FeatureSpec().categorical}


def test_the_state_is_a_copy_the_encoder_does_not_share(logs, split, item_category):
    train, valid, _ = split
    encoder = fitted(logs, train)
    expected = encoder.transform(valid)
    state = encoder.state()
    state["dense_statistics"]["center"][0] += 100.0
    state["cardinalities"]["user_id"] = 1
    assert_same_tensors(encoder.transform(valid), expected)


def test_a_rebuilt_encoder_looks_categories_up_in_the_array_it_was_given(logs, split,
                                                                         item_category):
    valid = split[1]
    other = item_category[::-1].copy()
    rebuilt = FeatureEncoder.from_state(fitted(logs, split[0]).state(), other)
    expected = torch.from_numpy(other[valid["item_id"].to_numpy()].astype(np.int64))
    assert torch.equal(rebuilt.transform(valid)["category"], expected)


def test_state_before_fit_raises(logs):
    with pytest.raises(RuntimeError, match="fit"):
        FeatureEncoder(logs, FeatureSpec(sequence_length=0)).state()


def test_from_state_refuses_a_spec_with_sequences(logs, split, item_category):
    state = FeatureEncoder(logs, FeatureSpec(sequence_length=4)).fit(split[0]).state()
    assert state["spec"]["sequence_length"] == 4
    with pytest.raises(ValueError, match="sequence"):
        FeatureEncoder.from_state(state, item_category)


def test_save_ranker_refuses_an_encoder_rebuilt_from_state(logs, split, item_category,
                                                          tmp_path):
    rebuilt = FeatureEncoder.from_state(fitted(logs, split[0], tasks=("click",)).state(),
                                        item_category)
    config = dict(embedding_dim=4, hidden=(8,))
    model = EmbeddingMLP(rebuilt.cardinalities, rebuilt.n_dense, **config)
    with pytest.raises(ValueError, match="rebuilt from its state.*log"):
        save_ranker(tmp_path / "ranker", model, rebuilt, config)
    assert not (tmp_path / "ranker").exists()


NUMPY_SCALARS = {
    "sequence_length=np.int64(0)": {"sequence_length": np.int64(0)},
    "conversion_observed_at=frame's max timestamp (np.int64)": {"conversion_observed_at": None},
    "clip_quantile=np.float32": {"clip_quantile": np.float32(0.99)},
}


def numpy_spec(case: str, train) -> FeatureSpec:
    """A spec built with numpy numbers, as FeatureSpec accepts (e.g. a timestamp of the frame)."""
    options = {"sequence_length": 0, "tasks": ("click", "conversion"), **NUMPY_SCALARS[case]}
    if "conversion_observed_at" in options:
        options["conversion_observed_at"] = train["timestamp"].max()
    return FeatureSpec(**options)


@pytest.mark.parametrize("case", list(NUMPY_SCALARS))
def test_the_state_of_a_spec_built_with_numpy_numbers_is_json(logs, split, item_category, case):
    """state() promises JSON values; FeatureSpec accepts numpy numbers, so state() must
    convert them (else save_ranker's json.dumps fails)."""
    train, valid, _ = split
    encoder = FeatureEncoder(logs, numpy_spec(case, train)).fit(train)
    state = json.loads(json.dumps(encoder.state()))
    rebuilt = FeatureEncoder.from_state(state, item_category)
    assert_same_tensors(rebuilt.transform(valid), encoder.transform(valid))


def test_save_ranker_saves_an_encoder_whose_spec_holds_numpy_numbers(logs, split, tmp_path):
    train = split[0]
    spec = FeatureSpec(sequence_length=np.int64(0), tasks=("click",),
                       conversion_observed_at=train["timestamp"].max())
    encoder = FeatureEncoder(logs, spec).fit(train)
    config = {"embedding_dim": 4, "hidden": (8,)}
    model = EmbeddingMLP(encoder.cardinalities, encoder.n_dense, **config)
    assert save_ranker(tmp_path / "ranker", model, encoder, config).is_dir()
