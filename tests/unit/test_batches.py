"""Mini-batching: every row once per epoch, seeded order, index-selected slices, and
each batch's gathered sequences."""

import numpy as np
import pytest
import torch

from ranking.batches import Batches, subset, to_device
from ranking.checks import num_rows
from ranking.history import EventHistory
from sequence_reference import random_log, reference_sequences

torch.set_num_threads(1)


def make_data(n: int = 1003) -> dict[str, torch.Tensor]:
    return {
        "row": torch.arange(n),                                          # (N,) each row knows its position
        "dense": torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 3),   # (N, 3)
        "label_click": (torch.arange(n) % 2).float(),
    }


def epoch_rows(batches: Batches) -> list[int]:
    return torch.cat([batch["row"] for batch in batches]).tolist()


@pytest.mark.parametrize("drop_last, expected_batches", [(False, 11), (True, 10)])
def test_len_and_batch_shapes(drop_last, expected_batches):
    batches = Batches(make_data(1003), batch_size=100, drop_last=drop_last)
    assert len(batches) == expected_batches
    sizes = [len(batch["row"]) for batch in batches]
    assert len(sizes) == expected_batches
    assert sizes[:10] == [100] * 10
    if not drop_last:
        assert sizes[-1] == 3
    for batch in batches:
        assert batch["dense"].shape == (len(batch["row"]), 3)
        assert set(batch) == {"row", "dense", "label_click"}


def test_every_row_exactly_once_per_epoch_and_rows_stay_aligned():
    batches = Batches(make_data(), batch_size=64, seed=3)
    for _ in range(3):
        rows = []
        for batch in batches:
            assert torch.equal(batch["dense"][:, 0].long(), batch["row"])   # keys cut with the same index
            assert torch.equal(batch["label_click"], (batch["row"] % 2).float())
            rows += batch["row"].tolist()
        assert sorted(rows) == list(range(1003))


def test_drop_last_drops_only_the_incomplete_tail():
    rows = epoch_rows(Batches(make_data(), batch_size=100, drop_last=True, seed=0))
    assert len(rows) == 1000 and len(set(rows)) == 1000


def test_same_seed_same_order_and_new_order_each_epoch():
    first, second = Batches(make_data(), 64, seed=7), Batches(make_data(), 64, seed=7)
    epoch_0, epoch_1 = epoch_rows(first), epoch_rows(first)
    assert epoch_0 == epoch_rows(second)
    assert epoch_1 == epoch_rows(second)
    assert epoch_0 != epoch_1
    assert epoch_0 != list(range(1003))


def test_different_seeds_give_different_orders():
    assert epoch_rows(Batches(make_data(), 64, seed=0)) != epoch_rows(Batches(make_data(), 64, seed=1))


def test_no_shuffle_keeps_input_order():
    assert epoch_rows(Batches(make_data(), 64, shuffle=False)) == list(range(1003))


def test_subset_by_positions_and_by_mask():
    data = make_data(10)
    picked = subset(data, torch.tensor([7, 2, 2]))
    assert picked["row"].tolist() == [7, 2, 2]
    assert picked["dense"].shape == (3, 3)
    masked = subset(data, np.arange(10) >= 6)
    assert masked["row"].tolist() == [6, 7, 8, 9]
    assert subset(data, [0, 9])["row"].tolist() == [0, 9]


def test_to_device_moves_every_tensor():
    moved = to_device(make_data(5), "cpu")
    assert all(tensor.device.type == "cpu" for tensor in moved.values())
    assert set(moved) == {"row", "dense", "label_click"}


def test_bad_input_raises():
    with pytest.raises(ValueError, match="empty"):
        num_rows({})
    with pytest.raises(ValueError, match="no rows"):
        num_rows({"row": torch.zeros(0)})
    with pytest.raises(ValueError, match="disagree"):
        num_rows({"row": torch.zeros(4), "dense": torch.zeros(5, 2)})
    with pytest.raises(ValueError, match="'row'"):
        num_rows({"row": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="batch_size"):
        Batches(make_data(), batch_size=0)
    with pytest.raises(ValueError, match="drop_last"):
        Batches(make_data(10), batch_size=11, drop_last=True)
    with pytest.raises(ValueError, match="boolean"):
        subset(make_data(10), torch.ones(9, dtype=torch.bool))
    with pytest.raises(ValueError, match="index"):
        subset(make_data(10), torch.tensor([0.5]))


# ------------------------------------------------------------ gathered sequences
SEQUENCE_KEYS = {"seq_item_id", "seq_action", "seq_category", "seq_delta_hours", "seq_length"}


@pytest.fixture(scope="module")
def with_history():
    """Rows that know their position, their history indices, and the reference sequences."""
    events, item_category, impressions = random_log(n_impressions=1003)
    history = EventHistory(events, item_category, length=10)
    data = {"row": torch.arange(len(impressions)),
            **history.locate(impressions["user_id"], impressions["timestamp"])}
    return data, history, reference_sequences(events, item_category, impressions, 10)


@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_gather_each_rows_sequences(with_history, shuffle):
    data, history, reference = with_history
    batches = Batches(data, batch_size=100, shuffle=shuffle, seed=5, history=history)
    for _ in range(2):   # two epochs, two orders
        rows = []
        for batch in batches:
            assert set(batch) == set(data) | SEQUENCE_KEYS
            for key in SEQUENCE_KEYS:
                assert torch.equal(batch[key], reference[key][batch["row"]]), key
            rows += batch["row"].tolist()
        assert sorted(rows) == list(range(1003)) and (rows != list(range(1003))) == shuffle


def test_batches_without_history_gather_nothing(with_history):
    data, _, _ = with_history
    assert set(next(iter(Batches(data, batch_size=100)))) == set(data)


def test_batches_refuse_a_history_that_does_not_fit_the_data(with_history):
    data, history, _ = with_history
    with pytest.raises(ValueError, match="history_end"):
        Batches({"row": data["row"]}, batch_size=100, history=history)
    with pytest.raises(ValueError, match="another"):
        Batches({**data, "history_end": data["history_end"] + len(history)}, 100, history=history)
    with pytest.raises(ValueError, match="history.to"):
        Batches(data, batch_size=100, history=history.to("meta"))   # data on the CPU
    moved = Batches(to_device(data, "cpu"), batch_size=100, history=history.to("cpu"))
    assert all(tensor.device.type == "cpu" for tensor in next(iter(moved)).values())
