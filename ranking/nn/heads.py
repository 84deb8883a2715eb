"""Task heads: the last layers of a model, one per task, each ending in one logit.

Every model of ``ranking.nn`` ends in a head per task (click, save, ...) that
maps a hidden vector to a logit. A head's output bias is the logit it
predicts before it has learned anything: ``set_output_bias`` sets it, so that
training can start every head at its task's base rate
(``ranking.objective.start_heads_at_base_rate``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import checks
from .mlp import MLP


def tower(in_dim: int, hidden: Sequence[int] = ()) -> nn.Module:
    """A task's own layers: a small MLP (or none), then a linear map to a logit."""
    if not hidden:
        return nn.Linear(in_dim, 1)
    mlp = MLP(in_dim, hidden)
    return nn.Sequential(mlp, nn.Linear(mlp.output_dim, 1))


class TaskHeads(nn.ModuleDict):
    """A tower per task over one shared vector: (B, H) -> {task: (B,)}.

    A ``ModuleDict``: ``heads[task]`` is that task's tower, for a model (MMoE)
    that gives each task its own input.
    """

    def __init__(self, in_dim: int, tasks: Sequence[str],
                 hidden: Sequence[int] = ()):
        super().__init__({task: tower(in_dim, hidden)
                          for task in checks.task_names(tasks)})

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.keys())

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {task: head(h).squeeze(-1)              # each (B,)
                for task, head in self.items()}

    def set_output_bias(self, task: str, logit: float) -> None:
        """Start ``task``'s logit at a constant: its last linear layer's bias."""
        head = self[task]
        output_layer = head[-1] if isinstance(head, nn.Sequential) else head
        with torch.no_grad():
            output_layer.bias.fill_(logit)


class TaskBias(nn.Module):
    """A learned logit offset per task, (T,): a logistic regression's intercepts."""

    def __init__(self, tasks: Sequence[str]):
        super().__init__()
        self.tasks = checks.task_names(tasks)
        self.logit = nn.Parameter(torch.zeros(len(self.tasks)))

    def set_output_bias(self, task: str, logit: float) -> None:
        """Start ``task``'s logit at a constant."""
        with torch.no_grad():
            self.logit[self.tasks.index(task)] = logit


def set_output_bias(model: nn.Module, task: str, logit: float) -> None:
    """Start ``task``'s logit at ``logit`` in every head of ``model``.

    A model with a tower per surface (``MultiTower``) has a head of each task
    per surface: all of them start there.
    """
    heads = [module for module in model.modules()
             if isinstance(module, (TaskHeads, TaskBias))]
    if not heads:
        raise TypeError(f"{type(model).__name__} has no TaskHeads or TaskBias "
                        "(ranking.nn.heads): there is no output bias to set")
    for module in heads:
        if task not in module.tasks:
            raise ValueError(f"{type(model).__name__} has no head for task "
                             f"{task!r}; its heads are {list(module.tasks)}")
    for module in heads:
        module.set_output_bias(task, logit)
