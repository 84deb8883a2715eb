"""The sequence features as FeatureEncoder materialized them before EventHistory.

``materialized_sequences`` is the encoder's former ``_sequences`` (numpy, one
(N, L) block per impression), kept as the reference that the gathered
sequences must equal exactly. ``random_log`` makes small event logs for tests.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

PADDING = 0


@dataclass
class _SortedEvents:
    keys: np.ndarray
    item: np.ndarray
    action: np.ndarray
    timestamp: np.ndarray
    earliest: int = 0


_KEY_SPAN = np.int64(1) << np.int64(40)   # > any timestamp range in seconds


def _event_key(user: np.ndarray, timestamp: np.ndarray | int) -> np.ndarray:
    """One sortable int64 per (user, time): events of a user are contiguous."""
    return user.astype(np.int64) * _KEY_SPAN + (np.asarray(timestamp, dtype=np.int64) + _KEY_SPAN // 2)


def _sorted_events(events: pd.DataFrame) -> _SortedEvents:
    user = events["user_id"].to_numpy(np.int64)
    timestamp = events["timestamp"].to_numpy(np.int64)
    order = np.lexsort((timestamp, user))
    return _SortedEvents(
        keys=_event_key(user[order], timestamp[order]),
        item=events["item_id"].to_numpy(np.int64)[order],
        action=events["action"].to_numpy(np.int64)[order],
        timestamp=timestamp[order],
        earliest=int(timestamp.min()) if timestamp.size else 0,
    )


def materialized_sequences(events: pd.DataFrame, frame: pd.DataFrame,
                           length: int) -> dict[str, torch.Tensor]:
    """The last L events of each impression's user strictly before its time,
    most recent first: (N, L) item ids (+1), actions (+1), hours ago."""
    events = _sorted_events(events)
    user = frame["user_id"].to_numpy(np.int64)
    timestamp = frame["timestamp"].to_numpy(np.int64)
    end = np.searchsorted(events.keys, _event_key(user, timestamp))          # (N,) events before
    first = np.searchsorted(events.keys, _event_key(user, events.earliest))  # (N,) user's first
    position = end[:, None] - 1 - np.arange(length)[None, :]                # (N, L)
    valid = position >= first[:, None]
    position = np.where(valid, position, 0)
    item = np.where(valid, events.item[position] + 1, PADDING)
    action = np.where(valid, events.action[position] + 1, PADDING)
    hours_ago = np.where(valid, (timestamp[:, None] - events.timestamp[position]) / 3600.0, 0.0)
    return {
        "seq_item_id": torch.from_numpy(item.astype(np.int64)),
        "seq_action": torch.from_numpy(action.astype(np.int64)),
        "seq_delta_hours": torch.from_numpy(hours_ago.astype(np.float32)),
        "seq_length": torch.from_numpy(valid.sum(axis=1).astype(np.int64)),
    }


def reference_sequences(events: pd.DataFrame, item_category: np.ndarray, frame: pd.DataFrame,
                        length: int) -> dict[str, torch.Tensor]:
    """``materialized_sequences`` plus seq_category, read off seq_item_id the way
    chapter 1 used to: the category of item (id - 1), + 1, PADDING on padding."""
    reference = materialized_sequences(events, frame, length)
    item = reference["seq_item_id"].numpy()
    category = np.where(item > 0, np.asarray(item_category)[np.maximum(item - 1, 0)] + 1, PADDING)
    reference["seq_category"] = torch.from_numpy(category.astype(np.int64))
    return reference


def random_log(n_users: int = 60, n_items: int = 30, n_events: int = 2000,
               n_impressions: int = 3000, seed: int = 0
               ) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Events, item categories and impressions with coarse timestamps (ties happen).

    The last few user ids have no events at all; events are in no particular order.
    """
    rng = np.random.default_rng(seed)
    events = pd.DataFrame({
        "user_id": rng.integers(0, n_users - 5, n_events),
        "item_id": rng.integers(0, n_items, n_events),
        "action": rng.integers(0, 3, n_events).astype(np.int8),
        "timestamp": rng.integers(-50, 50, n_events) * 3600,
    })
    item_category = rng.integers(0, 7, n_items)
    impressions = pd.DataFrame({
        "user_id": rng.integers(0, n_users, n_impressions),
        "timestamp": rng.integers(-60, 60, n_impressions) * 3600,
    })
    return events, item_category, impressions
