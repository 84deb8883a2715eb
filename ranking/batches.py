"""Mini-batches over a dataset that already sits in memory.

A dataset here is a dict of tensors that share their first dimension N (ids,
dense features, sequence indices, labels). Ranking rows are small and many, so a
DataLoader that collates one row at a time would be the slow part of training.
Instead the whole dict moves to the device once, and each batch is cut with one
indexing operation per tensor. Sequence features are not stored per row: with an
``EventHistory`` each batch gathers its rows' last events when it is cut.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from . import checks
from .checks import TensorDict
from .history import Histories

def to_device(data: TensorDict, device: torch.device | str) -> TensorDict:
    """The same dict with every tensor on ``device`` (no copy for those already there)."""
    return {key: tensor.to(device) for key, tensor in data.items()}


def subset(data: TensorDict, index: torch.Tensor | np.ndarray | list[int]) -> TensorDict:
    """The rows ``index`` selects, from every tensor: integer positions or a boolean mask of length N."""
    n = checks.num_rows(data)
    device = next(iter(data.values())).device
    index = torch.as_tensor(index, device=device)
    if index.dtype == torch.bool:
        if index.shape != (n,):
            raise ValueError(f"a boolean index must have shape ({n},), got {tuple(index.shape)}")
        index = index.nonzero().squeeze(1)
    elif index.is_floating_point() or index.is_complex() or index.dim() != 1:
        raise ValueError(f"index must be 1-d integer positions or a boolean mask, got {index.dtype} "
                         f"with shape {tuple(index.shape)}")
    return {key: tensor.index_select(0, index.long()) for key, tensor in data.items()}


class Batches:
    """Mini-batches of ``data``, reshuffled every epoch.

    Epoch e (counting passes over the data from 0) draws its order from a
    generator seeded with ``seed + e``: the same seed replays the same epochs.
    The permutation is drawn on the CPU, so orders are the same on any device.
    With a ``history`` (on the data's device), each batch also holds its rows'
    gathered sequences: seq_item_id, seq_action, seq_category, seq_delta_hours
    (B, L) and seq_length (B,).

    >>> batches = Batches(train, batch_size=4096, seed=0, history=encoder.history)
    >>> for batch in batches:          # one epoch; len(batches) batches
    ...     logits = model(batch)
    """

    def __init__(self, data: TensorDict, batch_size: int, *, shuffle: bool = True,
                 drop_last: bool = False, seed: int = 0,
                 history: Histories | None = None):
        self.n_rows = checks.num_rows(data)
        checks.positive_int("batch_size", batch_size)
        if drop_last and batch_size > self.n_rows:
            raise ValueError(f"batch_size={batch_size} with drop_last=True leaves no batch "
                             f"of {self.n_rows} rows")
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self.device = next(iter(data.values())).device
        if history is not None:
            if history.device != self.device:
                raise ValueError(f"history is on {history.device} and data on {self.device}:"
                                 " move it with history.to(device)")
            history.check(data)
        self.history = history

    def __len__(self) -> int:
        if self.drop_last:
            return self.n_rows // self.batch_size
        return -(-self.n_rows // self.batch_size)   # ceil division

    def __iter__(self) -> Iterator[TensorDict]:
        order = None
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n_rows, generator=generator).to(self.device)   # (N,)
        self.epoch += 1
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, self.n_rows)
            rows = slice(start, stop) if order is None else order[start:stop]
            batch = {key: tensor[rows] for key, tensor in self.data.items()}
            if self.history is not None:
                batch.update(self.history.gather(batch))     # the seq_* tensors
            yield batch
