"""What training minimizes: a weighted sum of per-task log losses.

A model maps a batch to one logit per task; ``Objective`` turns those logits
into the one number the optimizer lowers,

    loss = sum_t weight_t * (mean log loss of task t over its rows)
         + sum_t lambda_t * (mean log loss of task t against a teacher's probabilities).

A task can count only some rows (the conversion only clicked ones: it is a
post-click label), a rare task can weigh more than a common one, and the
second sum, distillation, pulls the model toward another model's scores. The
helpers below read the tasks' rates: to start every head at its task's base
rate, and to weigh each task's loss like a normalized entropy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import checks
from .checks import TensorDict
from .nn.heads import set_output_bias

LossSums = dict[str, tuple[torch.Tensor, torch.Tensor]]
"""{task: (log loss summed over the rows that count, how many rows count)}."""


def task_loss_sums(logits: dict[str, torch.Tensor], batch: TensorDict, tasks: Sequence[str],
                   task_masks: dict[str, str] | None = None) -> LossSums:
    """Per task: the log loss summed over the rows that count, and how many rows count.

    All rows count, except for a masked task: task_masks={"conversion": "label_click"}
    keeps only rows where batch["label_click"] == 1. Sums rather than means, so
    losses add up exactly over batches of any size.
    """
    missing = [task for task in tasks if task not in logits]
    if missing:
        raise ValueError(f"model returned no logits for task(s) {missing}; it returned {sorted(logits)}")
    task_masks = task_masks or {}
    sums = {}
    for task in tasks:
        label = batch[f"label_{task}"]                                                 # (B,)
        loss = F.binary_cross_entropy_with_logits(logits[task].float(), label, reduction="none")
        if task in task_masks:
            keep = batch[task_masks[task]].eq(1)                                       # (B,) bool
        else:
            keep = torch.ones_like(label, dtype=torch.bool)
        sums[task] = (torch.where(keep, loss, 0.0).sum(), keep.sum())
    return sums


def distillation_loss(logit: torch.Tensor, batch: TensorDict, task: str,
                      mask_key: str | None = None) -> torch.Tensor:
    """Mean log loss of ``logit`` against the soft label batch["teacher_<task>"].

    The soft label is a probability in [0, 1]. With a teacher that is the
    previous model version, this is the score regularization that keeps a
    retrained model's scores, and so its ranking, close to what users saw
    yesterday (Jiang et al. 2022). Only rows where batch[mask_key] == 1
    count, when a mask is given.
    """
    teacher = batch[f"teacher_{task}"]                                   # (B,)
    loss = F.binary_cross_entropy_with_logits(logit.float(), teacher,
                                              reduction="none")
    if mask_key is None:
        return loss.mean()
    keep = batch[mask_key].eq(1)
    return torch.where(keep, loss, 0.0).sum() / keep.sum().clamp(min=1)


class Objective:
    """The loss of a multi-task model: call it on (logits, batch) for (loss, per-task sums).

    tasks: the heads trained; task_masks: {task: key}, the task's loss counts
    only rows where batch[key] == 1; task_weights: {task: weight}, 1 unless
    given; distillation: {task: lambda}, each named task also learns the
    teacher's probabilities batch["teacher_<task>"], with that weight.
    """

    def __init__(self, tasks: Sequence[str] = ("click",), task_masks: dict[str, str] | None = None,
                 task_weights: dict[str, float] | None = None,
                 distillation: dict[str, float] | None = None):
        self.tasks = checks.task_names(tasks)
        self.masks = _named(task_masks, "task_masks", self.tasks)
        self.weights = {task: 1.0 for task in self.tasks}
        for task, weight in _named(task_weights, "task_weights", self.tasks).items():
            self.weights[task] = checks.nonnegative_number(f"task_weights[{task!r}]", weight)
        self.distillation = {task: checks.nonnegative_number(f"distillation[{task!r}]", weight)
                             for task, weight in _named(distillation, "distillation",
                                                        self.tasks).items()}

    def __call__(self, logits: dict[str, torch.Tensor], batch: TensorDict
                 ) -> tuple[torch.Tensor, LossSums]:
        sums = task_loss_sums(logits, batch, self.tasks, self.masks)
        # mean over each task's rows; a task with no rows in this batch adds 0
        loss = sum(self.weights[task] * total / count.clamp(min=1)
                   for task, (total, count) in sums.items())
        for task, weight in self.distillation.items():
            loss = loss + weight * distillation_loss(logits[task], batch, task,
                                                     self.masks.get(task))
        return loss, sums

    def check(self, data: TensorDict, name: str, teachers: bool = False) -> None:
        """Refuse data that would train silently wrong: labels, masks (and teachers)."""
        for task in self.tasks:
            checks.task_labels(data, name, task)
        for task, key in self.masks.items():
            if key not in data:
                raise ValueError(f"{name} has no {key!r}, the mask of task {task!r} in task_masks")
        for task in (self.distillation if teachers else {}):
            key = f"teacher_{task}"
            if key not in data:
                raise ValueError(f"distillation of {task!r} needs the teacher's probabilities "
                                 f"in {name}[{key!r}]")
            teacher = data[key]
            if not teacher.is_floating_point() or not ((teacher >= 0) & (teacher <= 1)).all():
                raise ValueError(f"{name}[{key!r}] must hold probabilities in [0, 1]")


def _named(settings: dict | None, name: str, tasks: tuple[str, ...]) -> dict:
    """A per-task setting as a dict (None: empty), every key one of ``tasks``."""
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ValueError(f"{name} must be a {{task: value}} dict, got {settings!r}")
    checks.known_tasks(name, settings, tasks)
    return dict(settings)


def task_rates(data: TensorDict, tasks: Sequence[str] = ("click",),
               task_masks: dict[str, str] | None = None) -> dict[str, float]:
    """Each task's positive rate in ``data``, over the rows its loss counts."""
    task_masks = task_masks or {}
    rates = {}
    for task in tasks:
        label = data[f"label_{task}"]
        if task in task_masks:
            label = label[data[task_masks[task]].eq(1)]
        if label.numel() == 0:
            raise ValueError(f"task {task!r} has no rows to take a rate from")
        rates[task] = float(label.float().mean())
    return rates


def start_heads_at_base_rate(model: nn.Module, data: TensorDict,
                             tasks: Sequence[str] = ("click",),
                             task_masks: dict[str, str] | None = None) -> None:
    """Set each head's output bias to the log-odds of its task's rate in ``data``.

    A head whose bias starts at 0 predicts p = 0.5. For a task with a 0.3%
    rate, Adam at lr 1e-3 moves that bias by about 0.001 a step: thousands of
    steps to reach log(0.003 / 0.997) = -5.8, long after the shared layers
    start to memorize. Started there, every head begins as the base-rate
    predictor and only has to learn how rows differ from it.
    """
    for task, rate in task_rates(data, tasks, task_masks).items():
        rate = min(max(rate, 1e-6), 1 - 1e-6)
        set_output_bias(model, task, math.log(rate / (1 - rate)))


def entropy_weights(data: TensorDict, tasks: Sequence[str],
                    task_masks: dict[str, str] | None = None) -> dict[str, float]:
    """Loss weights H(r_first) / H(r_task): each loss on a normalized-entropy scale.

    H(r) = -r log r - (1 - r) log(1 - r) is the log loss of always predicting
    the rate r, so loss / H(r) is a task's normalized entropy (He et al. 2014),
    1 at the base rate whatever the rate. With these weights a rare task counts
    in the shared layers, and in early stopping when passed as ``monitor``, as
    much as a common one. The first task keeps weight 1, and so the scale a
    single-task model trains at.
    """
    entropies = {}
    for task, rate in task_rates(data, tasks, task_masks).items():
        if not 0 < rate < 1:
            raise ValueError(f"task {task!r} has rate {rate}: its entropy is 0, "
                             "it cannot be weighted")
        entropies[task] = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    first = entropies[tasks[0]]
    return {task: first / entropy for task, entropy in entropies.items()}


RARE_TASK_BOOST = 4.0
"""How much louder than its entropy weight a rare task trains (``boost_rare_tasks``)."""


def boost_rare_tasks(weights: dict[str, float],
                     boost: float = RARE_TASK_BOOST) -> dict[str, float]:
    """Training weights: every task but the first at ``boost`` times its weight.

    A head's own optimum does not depend on its loss weight (the weight scales
    its whole loss), but how loudly it speaks in the shared layers does. At
    entropy weight a 1% task (the save) waits 4 to 7 epochs at its base rate
    until the shared layers carry its signal, and early stopping, watching the
    click improve, often stops first; at four times that weight it learns in
    the first one or two epochs. Train with these, stop on ``weights``.
    """
    checks.nonnegative_number("boost", boost)
    first = next(iter(weights))
    return {task: weight * (1.0 if task == first else boost)
            for task, weight in weights.items()}

