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

from .. import checks
from .heads import TaskHeads
from .inputs import ModelInput
from .mlp import MLP


class MultiTower(nn.Module):
    """x -> shared MLP -> the tower of each row's surface -> a logit per task.

    Every tower is computed for every row and each row keeps its own surface's
    output, so a tower's weights get gradients only from its surface's rows.
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int,
                 tasks: Sequence[str] = ("click",), n_surfaces: int = 3,
                 embedding_dim: int = 16, bottom: Sequence[int] = (256, 128),
                 tower: Sequence[int] = (64,), dense_normalization: str = "none"):
        super().__init__()
        self.n_surfaces = checks.positive_int("n_surfaces", n_surfaces)
        if "surface" not in cardinalities:
            raise ValueError("cardinalities must include 'surface': it routes each row to its tower")
        self.tasks = checks.task_names(tasks)
        self.input = ModelInput(cardinalities, n_dense, embedding_dim, dense_normalization)
        self.bottom = MLP(self.input.output_dim, bottom)
        self.towers = nn.ModuleList(TaskHeads(self.bottom.output_dim, self.tasks, tower)
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
