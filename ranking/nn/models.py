"""Ranking models: the logistic-regression baseline, a shared-bottom MLP and DCN V2.

Each maps a batch (dict of tensors) to one logit (B,) per task, which is all the
training loop in ``ranking.train`` needs to know about a model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import checks
from .cross import CrossNetV2
from .embed import FeatureEmbedding
from .heads import TaskBias, TaskHeads
from .inputs import ModelInput
from .mlp import MLP


class LogisticRegression(nn.Module):
    """The classic ads baseline: logit = bias + one weight per id value + w . dense.

    Every id (each user, each advertiser, ...) gets its own learned weight, so the
    model memorizes per-id click rates, but features never interact. Tasks share
    nothing: column t of each embedding table holds task t's weights.
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int,
                 tasks: Sequence[str] = ("click",)):
        super().__init__()
        self.tasks = checks.task_names(tasks)
        n_tasks = len(self.tasks)
        self.intercept = TaskBias(self.tasks)
        self.id_weights = FeatureEmbedding(cardinalities, dim=n_tasks)
        n_dense = checks.nonnegative_int("n_dense", n_dense)
        self.dense_weights = nn.Linear(n_dense, n_tasks, bias=False) if n_dense else None

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.intercept.logit + self.id_weights(batch).sum(dim=1)   # (B, T)
        if self.dense_weights is not None:
            logits = logits + self.dense_weights(batch["dense"])          # (B, T)
        return {task: logits[:, i] for i, task in enumerate(self.tasks)}  # each (B,)


class EmbeddingMLP(nn.Module):
    """Shared bottom: embeddings of every field + dense -> one MLP -> a linear head per task.

    The MLP learns the feature interactions LR cannot; all tasks share it and
    each keeps only its own last layer. dense_normalization ("none", "batch",
    "layer", "resilient") normalizes batch["dense"] inside the model (see ``DenseInput``).
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int,
                 tasks: Sequence[str] = ("click",), embedding_dim: int = 16,
                 hidden: Sequence[int] = (256, 128), dropout: float = 0.0,
                 dense_normalization: str = "none"):
        super().__init__()
        self.tasks = checks.task_names(tasks)
        self.input = ModelInput(cardinalities, n_dense, embedding_dim, dense_normalization)
        self.mlp = MLP(self.input.output_dim, hidden, dropout)
        self.heads = TaskHeads(self.mlp.output_dim, self.tasks)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.input(batch)                         # (B, X = F * E + D)
        h = self.mlp(x)                               # (B, H)
        return self.heads(h)                          # {task: (B,)}


DCN_STRUCTURES = ("stacked", "parallel")
"""How DCN V2 combines its cross network and its MLP (Wang et al. 2021, figure 2)."""


class DCNv2(nn.Module):
    """DCN V2 (Wang et al., WWW 2021): a cross network and an MLP over x0, a linear head per task.

    x0 is every field's embedding and the dense features, concatenated. The
    cross network builds explicit crosses of x0's entries (user x item, item x
    surface, ...). structure="stacked" feeds the crossed vector to the MLP;
    structure="parallel" lets the cross network and the MLP both read x0 and
    gives the heads their two outputs side by side, so the MLP's path is the
    plain deep model's. Tasks share everything but their last layer, as in
    ``EmbeddingMLP``; stacked with cross_layers=0 is that model.
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int,
                 tasks: Sequence[str] = ("click",), embedding_dim: int = 16,
                 cross_layers: int = 3, hidden: Sequence[int] = (256, 128),
                 dropout: float = 0.0, dense_normalization: str = "none",
                 structure: str = "stacked"):
        super().__init__()
        checks.one_of("structure", structure, DCN_STRUCTURES)
        self.tasks = checks.task_names(tasks)
        self.structure = structure
        self.input = ModelInput(cardinalities, n_dense, embedding_dim, dense_normalization)
        input_dim = self.input.output_dim
        self.cross = CrossNetV2(input_dim, cross_layers)
        self.mlp = MLP(input_dim, hidden, dropout)
        head_dim = self.mlp.output_dim if structure == "stacked" else input_dim + self.mlp.output_dim
        self.heads = TaskHeads(head_dim, self.tasks)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x0 = self.input(batch)                              # (B, X)
        crossed = self.cross(x0)                            # (B, X)
        if self.structure == "stacked":
            h = self.mlp(crossed)                           # (B, H)
        else:
            h = torch.cat([crossed, self.mlp(x0)], dim=1)   # (B, X + H)
        return self.heads(h)                                # {task: (B,)}
