"""Each user's engagement events, and the last L of them before an impression.

A sequence model reads the events a user left just before an ad was shown.
Copying them into every impression costs N x L slots: 12 million impressions
x 32 events took 19 GB of memory. Here the events are stored once, sorted by
(user, time). Each impression keeps two indices into them (where its user's
events start, and where the ones before the impression end), and its last L
events are gathered only when its batch is built, on the device the events
are on. Memory grows with impressions + events, not impressions x L.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from . import checks
from .simulate.world import search_sorted

PADDING = 0
"""Slots with no event hold 0: ids, actions and categories are shifted by +1."""
INDEX_KEYS = ("history_start", "history_end", "timestamp")
"""The per-row inputs of a gather (``EventHistory.locate`` makes them); a history with a
``kind`` prefixes the first two and every gathered key with it (``search_seq_category``)."""
NO_ITEM = -1
"""The item id of an event without an item (a search query): gathered as PADDING."""

_KEY_SPAN = np.int64(1) << np.int64(40)   # > any timestamp range in seconds


class EventHistory:
    """Every user's engagement events, sorted by (user, time), as compact tensors.

    >>> history = EventHistory(logs.events, logs.items["category"], length=32)
    >>> rows = history.locate(frame["user_id"], frame["timestamp"])
    >>> sequences = history.gather(rows)      # seq_item_id (N, 32), ...

    ``kind`` names one kind of sequence among several (``EventHistories``): its
    keys start with it. Events may carry their own ``category`` (a search query
    has one and no item: item_id ``NO_ITEM``, action 0).
    """

    def __init__(self, events: pd.DataFrame, item_category: pd.Series | np.ndarray,
                 length: int, kind: str = ""):
        checks.positive_int("length", length)
        columns = ("user_id", "item_id", "action", "timestamp")
        missing = [column for column in columns if column not in events.columns]
        if missing:
            raise ValueError(f"events is missing column(s) {missing}")
        if len(events) == 0:
            raise ValueError(f"{kind or 'the'} events are empty: there is no history to "
                             "gather from")
        item_category = np.asarray(item_category)
        user = events["user_id"].to_numpy(np.int64)
        item = events["item_id"].to_numpy(np.int64)
        timestamp = events["timestamp"].to_numpy(np.int64)
        own_category = "category" in events.columns
        lowest = NO_ITEM if own_category else 0
        if item.min() < lowest or item.max() >= len(item_category):
            raise ValueError(f"event item ids must be in [{lowest}, {len(item_category)}),"
                             f" got {item.min()}..{item.max()}")
        int32 = np.iinfo(np.int32)
        if timestamp.min() < int32.min or timestamp.max() > int32.max:
            raise ValueError("event timestamps must fit int32 seconds, got "
                             f"{timestamp.min()}..{timestamp.max()}")
        order = np.lexsort((timestamp, user))              # (events,) by user, then time
        item = item[order]
        self.length = length
        """L, the events gathered per impression."""
        self.kind = kind
        self._prefix = f"{kind}_" if kind else ""
        self._keys = _event_key(user[order], timestamp[order])    # (events,) sorted
        self.item_id = torch.from_numpy(item.astype(np.int32))    # (events,) int32
        category = (events["category"].to_numpy(np.int64)[order] if own_category
                    else item_category[item])
        self.category = torch.from_numpy(category.astype(np.int32))
        self.action = torch.from_numpy(
            events["action"].to_numpy()[order].astype(np.int8))   # (events,) int8
        self.timestamp = torch.from_numpy(timestamp[order].astype(np.int32))

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def device(self) -> torch.device:
        return self.item_id.device

    def to(self, device: torch.device | str) -> EventHistory:
        """The same history with its tensors on ``device`` (no copy if there)."""
        moved = copy.copy(self)
        for name in ("item_id", "category", "action", "timestamp"):
            setattr(moved, name, getattr(self, name).to(device))
        return moved

    def locate(self, user_id: pd.Series | np.ndarray,
               timestamp: pd.Series | np.ndarray) -> dict[str, torch.Tensor]:
        """Where each impression's events lie, as (N,) int64 tensors.

        history_start: the index of the user's first event; history_end: one
        past the user's last event strictly before the impression (equal to
        history_start when there is none); timestamp: the impression's time.
        """
        user = np.asarray(user_id, dtype=np.int64)
        timestamp = np.array(timestamp, dtype=np.int64)   # a writable copy
        if user.ndim != 1 or user.shape != timestamp.shape:
            raise ValueError("user_id and timestamp must be 1-d and of one length, "
                             f"got shapes {user.shape} and {timestamp.shape}")
        start = search_sorted(self._keys, user * _KEY_SPAN)  # the user's lowest key
        end = search_sorted(self._keys, _event_key(user, timestamp))
        return {f"{self._prefix}history_start": torch.from_numpy(start),
                f"{self._prefix}history_end": torch.from_numpy(end),
                "timestamp": torch.from_numpy(timestamp)}

    def gather(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each row's last ``length`` events before its impression, latest first.

        seq_item_id, seq_action, seq_category: (B, L) int64, shifted by +1,
        PADDING where the user has fewer events; seq_delta_hours: (B, L)
        float32 hours from the event to the impression, 0 on padding;
        seq_length: (B,) int64 events present. All on the history's device.
        """
        start, end, now = self._index_tensors(batch, "batch")       # (B,) each
        back = torch.arange(self.length, device=self.device)      # (L,) 0 = latest
        position = end[:, None] - 1 - back                         # (B, L)
        valid = position >= start[:, None]                         # (B, L)
        position = torch.where(valid, position, 0)

        def shifted(values: torch.Tensor) -> torch.Tensor:
            return torch.where(valid, values[position].long() + 1, PADDING)

        seconds = now[:, None] - self.timestamp[position]          # (B, L) int64
        hours = torch.where(valid, seconds.double() / 3600.0, 0.0)  # in float64
        gathered = {"seq_item_id": shifted(self.item_id),          # NO_ITEM -> PADDING
                    "seq_action": shifted(self.action),
                    "seq_category": shifted(self.category),
                    "seq_delta_hours": hours.float(),              # rounded once
                    "seq_length": valid.sum(dim=1)}
        return {self._prefix + key: value for key, value in gathered.items()}

    def check(self, data: dict[str, torch.Tensor], name: str = "data") -> None:
        """Refuse rows whose indices do not point into this history."""
        start, end, _ = self._index_tensors(data, name)
        if len(start) and (int(start.min()) < 0 or int(end.max()) > len(self)
                           or bool((start > end).any())):
            raise ValueError(f"{name}'s history_start and history_end do not "
                             f"index this history of {len(self)} events: were "
                             "they located in another log's?")

    def _index_tensors(self, batch: dict[str, torch.Tensor], name: str
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rows' INDEX_KEYS tensors, checked, on the history's device."""
        keys = [f"{self._prefix}{key}" for key in INDEX_KEYS[:2]] + ["timestamp"]
        missing = [key for key in keys if key not in batch]
        if missing:
            raise ValueError(f"{name} is missing {missing}: FeatureEncoder."
                             "transform adds them when sequence_length > 0")
        tensors = [torch.as_tensor(batch[key]) for key in keys]
        shapes = {key: tuple(t.shape) for key, t in zip(keys, tensors)}
        if len(set(shapes.values())) != 1 or any(
                t.dim() != 1 or t.is_floating_point() for t in tensors):
            raise ValueError(f"{name}'s {keys} must be 1-d integer "
                             f"tensors of one length, got shapes {shapes}")
        start, end, now = (tensor.to(self.device) for tensor in tensors)
        return start, end, now


def _event_key(user: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """One sortable int64 per (user, time): the events of a user are contiguous."""
    return user * _KEY_SPAN + (timestamp + _KEY_SPAN // 2)


class EventHistories:
    """Several kinds of user sequence (engagement, ads, search), gathered together.

    The same interface as one ``EventHistory`` (``locate``, ``gather``, ``check``,
    ``to``), so ``fit`` and ``predict`` take either. The first kind keeps the
    plain keys (``seq_item_id``); every other kind's keys start with its name.
    """

    def __init__(self, histories: dict[str, EventHistory]):
        if not histories:
            raise ValueError("histories is empty: give at least one kind of sequence")
        self.histories = dict(histories)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.histories)

    @property
    def length(self) -> int:
        return max(history.length for history in self.histories.values())

    @property
    def device(self) -> torch.device:
        return next(iter(self.histories.values())).device

    def __len__(self) -> int:
        return sum(len(history) for history in self.histories.values())

    def to(self, device: torch.device | str) -> EventHistories:
        return EventHistories({kind: history.to(device)
                               for kind, history in self.histories.items()})

    def locate(self, user_id: pd.Series | np.ndarray,
               timestamp: pd.Series | np.ndarray) -> dict[str, torch.Tensor]:
        located = {}
        for history in self.histories.values():
            located.update(history.locate(user_id, timestamp))
        return located

    def gather(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        gathered = {}
        for history in self.histories.values():
            gathered.update(history.gather(batch))
        return gathered

    def check(self, data: dict[str, torch.Tensor], name: str = "data") -> None:
        for history in self.histories.values():
            history.check(data, name)


Histories = EventHistory | EventHistories
"""One kind of user sequence or several: what ``fit``, ``predict`` and ``Batches`` gather from."""
