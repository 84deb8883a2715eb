"""The first two ranking models: the logistic-regression baseline and a shared-bottom MLP.

Both map a batch (dict of tensors) to one logit (B,) per task, which is all the
training loop in ``ranking.train`` needs to know about a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .embed import FeatureEmbedding
from .mlp import MLP


def _check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not tasks or len(set(tasks)) != len(tasks) or not all(isinstance(t, str) and t for t in tasks):
        raise ValueError(f"tasks must be distinct non-empty names, got {tasks!r}")
    return tasks


def _check_n_dense(n_dense: int) -> int:
    if isinstance(n_dense, bool) or not isinstance(n_dense, int) or n_dense < 0:
        raise ValueError(f"n_dense must be a non-negative integer, got {n_dense!r}")
    return n_dense


class LogisticRegression(nn.Module):
    """The classic ads baseline: logit = bias + one weight per id value + w . dense.

    Every id (each user, each advertiser, ...) gets its own learned weight, so the
    model memorizes per-id click rates, but features never interact. Tasks share
    nothing: column t of each embedding table holds task t's weights.
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int, tasks: Sequence[str] = ("click",)):
        super().__init__()
        self.tasks = _check_tasks(tasks)
        n_tasks = len(self.tasks)
        self.bias = nn.Parameter(torch.zeros(n_tasks))
        self.id_weights = FeatureEmbedding(cardinalities, dim=n_tasks)
        self.dense_weights = nn.Linear(n_dense, n_tasks, bias=False) if _check_n_dense(n_dense) else None

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.bias + self.id_weights(batch).sum(dim=1)           # (B, T)
        if self.dense_weights is not None:
            logits = logits + self.dense_weights(batch["dense"])         # (B, T)
        return {task: logits[:, i] for i, task in enumerate(self.tasks)}  # each (B,)


class EmbeddingMLP(nn.Module):
    """Shared bottom: embeddings of every field + dense -> one MLP -> a linear head per task.

    The MLP learns the feature interactions LR cannot; all tasks share it and
    each keeps only its own last layer.
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int, tasks: Sequence[str] = ("click",),
                 embedding_dim: int = 16, hidden: Sequence[int] = (256, 128), dropout: float = 0.0):
        super().__init__()
        self.tasks = _check_tasks(tasks)
        self.n_dense = _check_n_dense(n_dense)
        self.embedding = FeatureEmbedding(cardinalities, embedding_dim)
        self.mlp = MLP(self.embedding.output_dim + n_dense, hidden, dropout)
        self.heads = nn.ModuleDict({task: nn.Linear(self.mlp.output_dim, 1) for task in self.tasks})

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.embedding(batch).flatten(1)                   # (B, F * E)
        if self.n_dense:
            x = torch.cat([x, batch["dense"]], dim=1)          # (B, F * E + D)
        h = self.mlp(x)                                        # (B, H)
        return {task: head(h).squeeze(-1) for task, head in self.heads.items()}   # each (B,)
