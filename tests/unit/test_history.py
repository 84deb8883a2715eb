"""EventHistory: compact sorted events, located per impression, gathered per batch."""

import numpy as np
import pandas as pd
import pytest
import torch

from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.history import INDEX_KEYS, PADDING, EventHistory
from ranking.simulate import AdLogConfig, simulate
from sequence_reference import random_log, reference_sequences

SEQUENCE_KEYS = ("seq_item_id", "seq_action", "seq_category", "seq_delta_hours", "seq_length")


@pytest.fixture(scope="module")
def logs():
    return simulate(AdLogConfig.preset("smoke"), seed=0)


def assert_equal_sequences(gathered: dict, reference: dict) -> None:
    """Same keys, shapes, dtypes and values, bit for bit."""
    assert set(gathered) == set(SEQUENCE_KEYS) == set(reference)
    for key in SEQUENCE_KEYS:
        assert gathered[key].dtype == reference[key].dtype, key
        assert torch.equal(gathered[key], reference[key]), key


@pytest.mark.parametrize("length", [1, 12, 32, 100])
def test_gather_equals_the_materialized_encoder_on_a_smoke_log(logs, length):
    frame = pd.concat(time_split(logs.impressions, valid_days=2, test_days=2)[::2])  # train, test
    category = logs.items["category"].to_numpy()
    history = EventHistory(logs.events, logs.items["category"], length)
    gathered = history.gather(history.locate(frame["user_id"], frame["timestamp"]))
    assert_equal_sequences(gathered, reference_sequences(logs.events, category, frame, length))
    assert gathered["seq_item_id"].shape == (len(frame), length)


def test_gather_equals_the_reference_on_hand_made_events():
    # user 0: four events, two of them in the same second; user 2: one; users 1 and 9: none
    events = pd.DataFrame({"user_id": [0, 2, 0, 0, 0],
                           "item_id": [3, 4, 1, 2, 0],
                           "action": np.array([0, 1, 2, 1, 0], dtype=np.int8),
                           "timestamp": [-7200, 500, 3600, 3600, 7200]})
    item_category = np.array([5, 0, 1, 2, 3])
    impressions = pd.DataFrame({
        "user_id": [0, 0, 0, 0, 0, 1, 9, 2, 2],
        "timestamp": [-9000, -7200, 3600, 3601, 10**6, 50, 50, 500, 501]})
    history = EventHistory(events, item_category, length=8)   # longer than any history
    gathered = history.gather(history.locate(impressions["user_id"], impressions["timestamp"]))
    assert_equal_sequences(gathered, reference_sequences(events, item_category, impressions, 8))
    # spelled out: before, at and after the events of user 0; users without events
    assert gathered["seq_length"].tolist() == [0, 0, 1, 3, 4, 0, 0, 0, 1]
    assert gathered["seq_item_id"][3, :4].tolist() == [3, 2, 4, 0]   # a tie: later row first
    assert gathered["seq_item_id"][4, :5].tolist() == [1, 3, 2, 4, PADDING]
    assert gathered["seq_action"][4, :5].tolist() == [1, 2, 3, 1, PADDING]
    assert gathered["seq_category"][4, :5].tolist() == [6, 2, 1, 3, PADDING]
    hours = torch.tensor([1 / 3600, 1 / 3600, 10801 / 3600], dtype=torch.float32)
    assert torch.equal(gathered["seq_delta_hours"][3, :3], hours)
    assert (gathered["seq_delta_hours"][gathered["seq_item_id"] == PADDING] == 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gather_equals_the_reference_on_random_logs_with_ties(seed):
    events, item_category, impressions = random_log(seed=seed)
    history = EventHistory(events, item_category, length=50)
    gathered = history.gather(history.locate(impressions["user_id"], impressions["timestamp"]))
    assert_equal_sequences(gathered, reference_sequences(events, item_category, impressions, 50))


def test_compact_storage_and_index_dtypes(logs):
    history = EventHistory(logs.events, logs.items["category"], length=4)
    assert len(history) == len(logs.events)
    assert (history.item_id.dtype, history.category.dtype, history.action.dtype,
            history.timestamp.dtype) == (torch.int32, torch.int32, torch.int8, torch.int32)
    expected = logs.events.sort_values(["user_id", "timestamp"], kind="stable")
    assert history.item_id.tolist() == expected["item_id"].tolist()
    assert history.timestamp.tolist() == expected["timestamp"].tolist()
    rows = history.locate(logs.impressions["user_id"], logs.impressions["timestamp"])
    assert set(rows) == set(INDEX_KEYS)
    assert all(rows[key].dtype == torch.int64 and rows[key].shape == (len(logs.impressions),)
               for key in INDEX_KEYS)
    assert (rows["history_start"] <= rows["history_end"]).all()


def test_gather_is_a_pure_function_of_the_rows(logs):
    """A subset of rows, in any order, gathers the same sequences as those rows of the whole."""
    history = EventHistory(logs.events, logs.items["category"], length=16)
    rows = history.locate(logs.impressions["user_id"], logs.impressions["timestamp"])
    everything = history.gather(rows)
    pick = torch.randperm(len(logs.impressions), generator=torch.Generator().manual_seed(0))[:777]
    part = history.gather({key: tensor[pick] for key, tensor in rows.items()})
    for key in SEQUENCE_KEYS:
        assert torch.equal(part[key], everything[key][pick])


def test_to_device_keeps_the_values_and_gathers_there():
    events, item_category, impressions = random_log()
    history = EventHistory(events, item_category, length=5)
    moved = history.to("cpu")
    assert moved.device == torch.device("cpu") and moved.length == 5 and len(moved) == len(history)
    rows = history.locate(impressions["user_id"], impressions["timestamp"])
    for key, tensor in moved.gather(rows).items():
        assert tensor.device == moved.device
        assert torch.equal(tensor, history.gather(rows)[key])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gather_on_the_gpu_equals_the_cpu():
    events, item_category, impressions = random_log()
    history = EventHistory(events, item_category, length=20)
    rows = history.locate(impressions["user_id"], impressions["timestamp"])
    on_gpu = history.to("cuda").gather(rows)   # the rows move to the history's device
    for key, tensor in history.gather(rows).items():
        assert on_gpu[key].device.type == "cuda"
        assert torch.equal(on_gpu[key].cpu(), tensor)


def test_encoder_adds_indices_and_builds_the_history_once(logs):
    train = time_split(logs.impressions, valid_days=2, test_days=2)[0]
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=12)).fit(train)
    data = encoder.transform(train)
    assert not any(key.startswith("seq_") for key in data)   # nothing (N, L) is materialized
    assert torch.equal(data["timestamp"], torch.tensor(train["timestamp"].to_numpy()))
    assert encoder.history.length == 12
    assert_equal_sequences(encoder.history.gather(data),
                           reference_sequences(logs.events, logs.items["category"].to_numpy(),
                                               train, 12))
    assert FeatureEncoder(logs, FeatureSpec(sequence_length=0)).history is None


def test_bad_inputs_raise_clear_errors():
    events, item_category, impressions = random_log()
    with pytest.raises(ValueError, match="length"):
        EventHistory(events, item_category, length=0)
    with pytest.raises(ValueError, match="action"):
        EventHistory(events.drop(columns="action"), item_category, length=4)
    with pytest.raises(ValueError, match="empty"):
        EventHistory(events.head(0), item_category, length=4)
    with pytest.raises(ValueError, match="item ids"):
        EventHistory(events, item_category[:5], length=4)
    with pytest.raises(ValueError, match="int32"):
        EventHistory(events.assign(timestamp=events["timestamp"] * 10**6), item_category, length=4)
    history = EventHistory(events, item_category, length=4)
    with pytest.raises(ValueError, match="one length"):
        history.locate(impressions["user_id"], impressions["timestamp"][:-1])
    rows = history.locate(impressions["user_id"], impressions["timestamp"])
    with pytest.raises(ValueError, match="history_end"):
        history.gather({key: rows[key] for key in ("history_start", "timestamp")})
    with pytest.raises(ValueError, match="one length"):
        history.gather({**rows, "timestamp": rows["timestamp"][:-1]})
    with pytest.raises(ValueError, match="integer"):
        history.gather({**rows, "timestamp": rows["timestamp"].double()})
    with pytest.raises(ValueError, match="another"):
        history.check({**rows, "history_end": rows["history_end"] + len(history)})
    history.check(rows)   # rows it located itself pass
