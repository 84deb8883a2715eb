"""The ranking model with a user sequence: chapter 3's network plus a summary of the user's events."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ... import checks
from ..heads import TaskHeads
from ..inputs import ModelInput
from ..mlp import MLP
from .events import EventEmbedding


class SequenceRanker(nn.Module):
    """[ModelInput, candidate as an event, summarizer(events)] -> MLP -> a linear head per task.

    ``summarizer`` is any module of ``ranking.nn.sequence`` (sum pooling,
    interval sum pooling, target attention, Transformer, long-short): the
    models of chapter 6 differ only in it.
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int, events: EventEmbedding,
                 summarizer: nn.Module, tasks: Sequence[str] = ("click",), embedding_dim: int = 16,
                 hidden: Sequence[int] = (256, 128)):
        super().__init__()
        self.tasks = checks.task_names(tasks)
        self.input = ModelInput(cardinalities, n_dense, embedding_dim)
        self.events = events
        self.summarizer = summarizer
        width = self.input.output_dim + events.dim + summarizer.output_dim
        self.mlp = MLP(width, hidden)
        self.heads = TaskHeads(self.mlp.output_dim, self.tasks)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.input(batch)                                   # (B, X)
        events, mask = self.events(batch)                       # (B, L, V), (B, L)
        candidate = self.events.candidate(batch)                # (B, V)
        summary = self.summarizer(events, mask, candidate,
                                  batch["seq_delta_hours"])     # (B, Z)
        h = self.mlp(torch.cat([x, candidate, summary], dim=1)) # (B, H)
        return self.heads(h)                                    # {task: (B,)}
