"""Multi-task models: one network, one head per action (click, good click, save, hide, conversion).

Both models read the same input as ``EmbeddingMLP`` (``ModelInput``): every
field's embedding and the dense features, concatenated into x (B, D). They differ in what the tasks
share.

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

from .inputs import ModelInput
from .mlp import MLP
from .models import _check_tasks, set_bias


def _tower(in_dim: int, hidden: Sequence[int]) -> nn.Module:
    """A task's own layers: a small MLP (or nothing) and a linear layer to one logit."""
    if not hidden:
        return nn.Linear(in_dim, 1)
    mlp = MLP(in_dim, hidden)
    return nn.Sequential(mlp, nn.Linear(mlp.output_dim, 1))


def _output_layer(tower: nn.Module) -> nn.Linear:
    """The linear layer that gives a tower's logit: the tower itself, or its last layer."""
    return tower[-1] if isinstance(tower, nn.Sequential) else tower


class SharedBottom(nn.Module):
    """x -> one shared MLP -> a tower per task -> a logit per task."""

    def __init__(self, cardinalities: dict[str, int], n_dense: int, tasks: Sequence[str],
                 embedding_dim: int = 16, bottom: Sequence[int] = (256, 128), tower: Sequence[int] = (64,),
                 dense_normalization: str = "none"):
        super().__init__()
        self.tasks = _check_tasks(tasks)
        self.input = ModelInput(cardinalities, n_dense, embedding_dim, dense_normalization)
        self.bottom = MLP(self.input.output_dim, bottom)
        self.towers = nn.ModuleDict({task: _tower(self.bottom.output_dim, tower) for task in self.tasks})

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        shared = self.bottom(self.input(batch))           # (B, H)
        return {task: tower(shared).squeeze(-1)           # each (B,)
                for task, tower in self.towers.items()}

    def set_output_bias(self, task: str, logit: float) -> None:
        """Start ``task``'s logit at a constant (see ``fit(start_at_base_rate=True)``)."""
        set_bias(_output_layer(self.towers[task]), logit)


class MMoE(nn.Module):
    """Multi-gate mixture of experts: x -> E experts; per task, a softmax gate mixes them -> a tower."""

    def __init__(self, cardinalities: dict[str, int], n_dense: int, tasks: Sequence[str],
                 embedding_dim: int = 16, n_experts: int = 4, expert: Sequence[int] = (128, 64),
                 tower: Sequence[int] = (64,), dense_normalization: str = "none"):
        super().__init__()
        if isinstance(n_experts, bool) or not isinstance(n_experts, int) or n_experts < 1:
            raise ValueError(f"n_experts must be a positive integer, got {n_experts!r}")
        self.tasks = _check_tasks(tasks)
        self.input = ModelInput(cardinalities, n_dense, embedding_dim, dense_normalization)
        self.experts = nn.ModuleList(MLP(self.input.output_dim, expert) for _ in range(n_experts))
        self.gates = nn.ModuleDict({task: nn.Linear(self.input.output_dim, n_experts) for task in self.tasks})
        expert_dim = self.experts[0].output_dim
        self.towers = nn.ModuleDict({task: _tower(expert_dim, tower) for task in self.tasks})

    def gate_weights(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's softmax weights over the experts, (B, E) per task: which experts it uses."""
        x = self.input(batch)                                                   # (B, D)
        return {task: torch.softmax(gate(x), dim=-1) for task, gate in self.gates.items()}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.input(batch)                                       # (B, D)
        outputs = [expert(x) for expert in self.experts]            # E x (B, H)
        experts = torch.stack(outputs, dim=1)                       # (B, E, H)
        logits = {}
        for task, gate in self.gates.items():
            weights = torch.softmax(gate(x), dim=-1)                # (B, E)
            mixed = (weights.unsqueeze(-1) * experts).sum(dim=1)    # (B, H)
            logits[task] = self.towers[task](mixed).squeeze(-1)     # (B,)
        return logits

    def set_output_bias(self, task: str, logit: float) -> None:
        """Start ``task``'s logit at a constant (see ``fit(start_at_base_rate=True)``)."""
        set_bias(_output_layer(self.towers[task]), logit)
