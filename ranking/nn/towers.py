"""Many sources, one model: a shared bottom and one tower per data source (surface).

Impressions from the home feed, related pins and search differ in traffic,
base rates and which features matter. One tower trained on the mixed data must
compromise between them, and the largest surface wins the compromise. Here the
embeddings and the bottom MLP are shared (every surface teaches them), and each
surface gets its own tower, trained only on its own rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .mlp import MLP
from .inputs import ModelInput
from .models import _check_tasks, set_bias
from .multitask import _output_layer, _tower


class MultiTower(nn.Module):
    """x -> shared MLP -> the tower of each row's surface -> a logit per task.

    Every tower is computed for every row and each row keeps its own surface's
    output, so a tower's weights get gradients only from its surface's rows.
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int, tasks: Sequence[str] = ("click",),
                 n_surfaces: int = 3, embedding_dim: int = 16, bottom: Sequence[int] = (256, 128),
                 tower: Sequence[int] = (64,), dense_normalization: str = "none"):
        super().__init__()
        if isinstance(n_surfaces, bool) or not isinstance(n_surfaces, int) or n_surfaces < 1:
            raise ValueError(f"n_surfaces must be a positive integer, got {n_surfaces!r}")
        if "surface" not in cardinalities:
            raise ValueError("cardinalities must include 'surface': it routes each row to its tower")
        self.tasks = _check_tasks(tasks)
        self.n_surfaces = n_surfaces
        self.input = ModelInput(cardinalities, n_dense, embedding_dim, dense_normalization)
        self.bottom = MLP(self.input.output_dim, bottom)
        self.towers = nn.ModuleList(
            nn.ModuleDict({task: _tower(self.bottom.output_dim, tower) for task in self.tasks})
            for _ in range(n_surfaces))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        shared = self.bottom(self.input(batch))                         # (B, H)
        surface = batch["surface"].long().unsqueeze(1)                  # (B, 1)
        logits = {}
        for task in self.tasks:
            outputs = [towers[task](shared) for towers in self.towers]  # S x (B, 1)
            every_tower = torch.cat(outputs, dim=1)                     # (B, S)
            logits[task] = every_tower.gather(1, surface).squeeze(1)    # (B,)
        return logits

    def set_output_bias(self, task: str, logit: float) -> None:
        """Start ``task``'s logit at a constant in every surface's tower (see ``fit(start_at_base_rate=True)``)."""
        for towers in self.towers:
            set_bias(_output_layer(towers[task]), logit)
