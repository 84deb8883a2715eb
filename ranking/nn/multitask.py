"""Multi-task models: one network, one head per action (click, good click, save, hide, conversion).

Both models read the same input as ``EmbeddingMLP`` (``ModelInput``): every
field's embedding and the dense features, concatenated into x (B, X). They
differ in what the tasks share.

- ``SharedBottom``: one MLP (the bottom) for all tasks, then a small tower per
  task. Everything a task learns in the bottom is shared with every other task:
  good when the tasks agree (an abundant task teaches a sparse one), harmful
  when they pull the shared weights in different directions (negative transfer).
- ``MMoE`` (Ma et al., KDD 2018): several bottoms (the experts) and, per task,
  a gate: a softmax over the experts computed from x. Each task mixes the
  experts with its own weights, so conflicting tasks can lean on different
  experts while agreeing tasks share them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import checks
from .heads import TaskHeads
from .inputs import ModelInput
from .mlp import MLP


class SharedBottom(nn.Module):
    """x -> one shared MLP -> a tower per task -> a logit per task."""

    def __init__(self, cardinalities: dict[str, int], n_dense: int, tasks: Sequence[str],
                 embedding_dim: int = 16, bottom: Sequence[int] = (256, 128),
                 tower: Sequence[int] = (64,), dense_normalization: str = "none"):
        super().__init__()
        self.tasks = checks.task_names(tasks)
        self.input = ModelInput(cardinalities, n_dense, embedding_dim, dense_normalization)
        self.bottom = MLP(self.input.output_dim, bottom)
        self.towers = TaskHeads(self.bottom.output_dim, self.tasks, tower)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        shared = self.bottom(self.input(batch))           # (B, H)
        return self.towers(shared)                        # {task: (B,)}


class MixtureOfExperts(nn.Module):
    """MMoE's top on any input vector x (B, X): M expert MLPs; per task, a softmax gate mixes them -> a tower."""

    def __init__(self, input_dim: int, tasks: Sequence[str], n_experts: int = 4,
                 expert: Sequence[int] = (128, 64), tower: Sequence[int] = (64,)):
        super().__init__()
        n_experts = checks.positive_int("n_experts", n_experts)
        self.tasks = checks.task_names(tasks)
        self.experts = nn.ModuleList(MLP(input_dim, expert) for _ in range(n_experts))
        self.gates = nn.ModuleDict({task: nn.Linear(input_dim, n_experts) for task in self.tasks})
        self.towers = TaskHeads(self.experts[0].output_dim, self.tasks, tower)

    def gate_weights(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each task's softmax weights over the experts, (B, M) per task: which experts it uses."""
        return {task: torch.softmax(gate(x), dim=-1) for task, gate in self.gates.items()}

    def mix(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        experts = torch.stack([e(x) for e in self.experts], dim=1)   # (B, M, H)
        logits = {}
        for task, weights in self.gate_weights(x).items():           # (B, M) each
            mixed = (weights.unsqueeze(-1) * experts).sum(dim=1)     # (B, H)
            logits[task] = self.towers[task](mixed).squeeze(-1)      # (B,)
        return logits

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.mix(x)


class MMoE(MixtureOfExperts):
    """Multi-gate mixture of experts (Ma et al., KDD 2018) on ``ModelInput``'s vector x."""

    def __init__(self, cardinalities: dict[str, int], n_dense: int, tasks: Sequence[str],
                 embedding_dim: int = 16, n_experts: int = 4, expert: Sequence[int] = (128, 64),
                 tower: Sequence[int] = (64,), dense_normalization: str = "none"):
        model_input = ModelInput(cardinalities, n_dense, embedding_dim, dense_normalization)
        super().__init__(model_input.output_dim, tasks, n_experts, expert, tower)
        self.input = model_input

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.mix(self.input(batch))                           # {task: (B,)}
