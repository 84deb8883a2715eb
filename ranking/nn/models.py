"""Ranking models: the logistic-regression baseline, a shared-bottom MLP and DCN V2.

Each maps a batch (dict of tensors) to one logit (B,) per task, which is all the
training loop in ``ranking.train`` needs to know about a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .cross import CrossNetV2
from .embed import FeatureEmbedding
from .inputs import ModelInput, upgrade_input_keys
from .mlp import MLP


def _check_tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not tasks or len(set(tasks)) != len(tasks) or not all(isinstance(t, str) and t for t in tasks):
        raise ValueError(f"tasks must be distinct non-empty names, got {tasks!r}")
    return tasks


def set_bias(layer: nn.Linear, logit: float) -> None:
    """Fill a head's output bias with one value: the logit it predicts before it has learned anything."""
    with torch.no_grad():
        layer.bias.fill_(logit)


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
        if isinstance(n_dense, bool) or not isinstance(n_dense, int) or n_dense < 0:
            raise ValueError(f"n_dense must be a non-negative integer, got {n_dense!r}")
        self.dense_weights = nn.Linear(n_dense, n_tasks, bias=False) if n_dense else None

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.bias + self.id_weights(batch).sum(dim=1)           # (B, T)
        if self.dense_weights is not None:
            logits = logits + self.dense_weights(batch["dense"])         # (B, T)
        return {task: logits[:, i] for i, task in enumerate(self.tasks)}  # each (B,)

    def set_output_bias(self, task: str, logit: float) -> None:
        """Start ``task``'s logit at a constant (see ``fit(start_at_base_rate=True)``)."""
        with torch.no_grad():
            self.bias[self.tasks.index(task)] = logit


class _LinearHeads(nn.Module):
    """What EmbeddingMLP and DCNv2 share: a ``ModelInput`` and a linear head per task in ``self.heads``."""

    def set_output_bias(self, task: str, logit: float) -> None:
        """Start ``task``'s logit at a constant (see ``fit(start_at_base_rate=True)``)."""
        set_bias(self.heads[task], logit)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        upgrade_input_keys(state_dict, prefix)   # checkpoints saved before ModelInput
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class EmbeddingMLP(_LinearHeads):
    """Shared bottom: embeddings of every field + dense -> one MLP -> a linear head per task.

    The MLP learns the feature interactions LR cannot; all tasks share it and
    each keeps only its own last layer. dense_normalization ("none", "batch",
    "layer", "resilient") normalizes batch["dense"] inside the model (see ``DenseInput``).
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int, tasks: Sequence[str] = ("click",),
                 embedding_dim: int = 16, hidden: Sequence[int] = (256, 128), dropout: float = 0.0,
                 dense_normalization: str = "none"):
        super().__init__()
        self.tasks = _check_tasks(tasks)
        self.input = ModelInput(cardinalities, n_dense, embedding_dim, dense_normalization)
        self.mlp = MLP(self.input.output_dim, hidden, dropout)
        self.heads = nn.ModuleDict({task: nn.Linear(self.mlp.output_dim, 1) for task in self.tasks})

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.input(batch)                         # (B, F * E + D)
        h = self.mlp(x)                               # (B, H)
        return {task: head(h).squeeze(-1)             # each (B,)
                for task, head in self.heads.items()}


DCN_STRUCTURES = ("stacked", "parallel")
"""How DCN V2 combines its cross network and its MLP (Wang et al. 2021, figure 2)."""


class DCNv2(_LinearHeads):
    """DCN V2 (Wang et al., WWW 2021): a cross network and an MLP over x0, a linear head per task.

    x0 is every field's embedding and the dense features, concatenated. The
    cross network builds explicit crosses of x0's entries (user x item, item x
    surface, ...). structure="stacked" feeds the crossed vector to the MLP;
    structure="parallel" lets the cross network and the MLP both read x0 and
    gives the heads their two outputs side by side, so the MLP's path is the
    plain deep model's. Tasks share everything but their last layer, as in
    ``EmbeddingMLP``; stacked with cross_layers=0 is that model.
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int, tasks: Sequence[str] = ("click",),
                 embedding_dim: int = 16, cross_layers: int = 3, hidden: Sequence[int] = (256, 128),
                 dropout: float = 0.0, dense_normalization: str = "none", structure: str = "stacked"):
        super().__init__()
        if structure not in DCN_STRUCTURES:
            raise ValueError(f"structure must be one of {DCN_STRUCTURES}, got {structure!r}")
        self.tasks = _check_tasks(tasks)
        self.structure = structure
        self.input = ModelInput(cardinalities, n_dense, embedding_dim, dense_normalization)
        input_dim = self.input.output_dim
        self.cross = CrossNetV2(input_dim, cross_layers)
        self.mlp = MLP(input_dim, hidden, dropout)
        head_dim = self.mlp.output_dim if structure == "stacked" else input_dim + self.mlp.output_dim
        self.heads = nn.ModuleDict({task: nn.Linear(head_dim, 1) for task in self.tasks})

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x0 = self.input(batch)                              # (B, D0 = F * E + D)
        crossed = self.cross(x0)                            # (B, D0)
        if self.structure == "stacked":
            h = self.mlp(crossed)                           # (B, H)
        else:
            h = torch.cat([crossed, self.mlp(x0)], dim=1)   # (B, D0 + H)
        return {task: head(h).squeeze(-1)                   # each (B,)
                for task, head in self.heads.items()}
