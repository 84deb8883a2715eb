"""The one training loop every chapter uses: fit a multi-task model, then predict.

A model maps a batch (dict of tensors) to one logit per task; the loop knows
nothing else about it. The loss is a weighted sum of per-task log losses, and a
task can be restricted to some rows (conversion is learned on clicks only).
Early stopping watches the validation loss (or one task's, or another weighted
sum: a rare head should not be stopped by an abundant one) and restores the best
epoch's weights. Heads can start at their task's base rate, so that a rare task
does not spend its first thousand steps unlearning p = 0.5.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .batches import Batches, TensorDict, num_rows, to_device
from .history import EventHistory
from .nn.embed import FeatureEmbedding

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Names accepted by ``precision``: the autocast dtype of the forward pass (None: plain fp32)."""


@dataclass
class FitResult:
    """A trained model (best validation epoch restored) and how training went."""

    model: nn.Module
    history: pd.DataFrame
    """One row per epoch: epoch, train_loss, train_loss_<task>, valid_loss, valid_loss_<task>,
    valid_monitor (what early stopping watched), seconds; in fp16 also loss_scale (at the
    epoch's end) and skipped_steps (steps the scaler skipped for inf/NaN gradients)."""
    best_epoch: int
    """Epoch (from 1) whose weights the model holds: lowest valid_monitor, or the last one without valid."""


def task_loss_sums(logits: dict[str, torch.Tensor], batch: TensorDict, tasks: Sequence[str],
                   task_masks: dict[str, str] | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
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
    loss = F.binary_cross_entropy_with_logits(logit.float(), teacher, reduction="none")
    if mask_key is None:
        return loss.mean()
    keep = batch[mask_key].eq(1)
    return torch.where(keep, loss, 0.0).sum() / keep.sum().clamp(min=1)


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
    if not callable(getattr(model, "set_output_bias", None)):
        raise TypeError("start_at_base_rate needs a model with "
                        f"set_output_bias(task, logit); {type(model).__name__} has none")
    for task, rate in task_rates(data, tasks, task_masks).items():
        rate = min(max(rate, 1e-6), 1 - 1e-6)
        model.set_output_bias(task, math.log(rate / (1 - rate)))


def entropy_weights(data: TensorDict, tasks: Sequence[str],
                    task_masks: dict[str, str] | None = None) -> dict[str, float]:
    """Loss weights H(r_first) / H(r_task): each loss scaled like a normalized entropy.

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


def fit(model: nn.Module, train: TensorDict, valid: TensorDict | None = None, *,
        history: EventHistory | None = None,
        tasks: Sequence[str] = ("click",), task_masks: dict[str, str] | None = None,
        task_weights: dict[str, float] | None = None, epochs: int = 3,
        batch_size: int = 4096, lr: float = 1e-3, weight_decay: float = 0.0,
        device: str | torch.device | None = None, precision: str = "fp32",
        seed: int = 0, patience: int = 2,
        monitor: str | dict[str, float] | None = None,
        distillation: dict[str, float] | None = None,
        start_at_base_rate: bool = False, progress: bool = True) -> FitResult:
    """Train ``model`` with Adam on sum_t weight_t * (mean log loss of task t).

    history: the users' events (``encoder.history``); with it every batch also
        holds its rows' gathered sequences (seq_item_id, ...).
    task_masks: {task: key}, the task's loss counts only rows where data[key] == 1.
    task_weights: {task: weight}; tasks not named weigh 1.
    device: None picks "cuda" when available, else "cpu"; model, data and
        history move there once.
    precision: "fp32", "bf16" or "fp16" (autocast; fp16 also scales the loss).
    patience: with ``valid``, stop after this many epochs without a lower
        monitored loss.
    monitor: what early stopping watches on ``valid``: None, the weighted loss
        being trained; a task's name, that task's loss alone; {task: weight},
        that weighted sum.
    distillation: {task: weight}, score regularization: each named task's loss
        also gets weight x the log loss of the model's prediction against
        data["teacher_<task>"] (another model's probabilities, say yesterday's
        version), over the task's rows. It pulls the new version toward the
        old one's scores, and so cuts churn between versions.
    start_at_base_rate: start each head's output bias at the log-odds of its task's
        rate in ``train`` (over the task's masked rows), so every head begins as the
        base-rate predictor; needs a model with ``set_output_bias(task, logit)``.
    """
    tasks, task_masks, weights = _check_tasks(tasks, task_masks, task_weights)
    monitor_weights = _check_monitor(monitor, tasks, weights)
    _check_data(train, "train", tasks, task_masks, model, history)
    distillation = _check_distillation(distillation, tasks, train)
    if valid is not None:
        _check_data(valid, "valid", tasks, task_masks, model, history)
    _check_positive(epochs=epochs, batch_size=batch_size, patience=patience)
    _check_precision(precision)
    device = _resolve_device(device)

    torch.manual_seed(seed)
    if start_at_base_rate:
        start_heads_at_base_rate(model, train, tasks, task_masks)
    model.to(device)
    train = to_device(train, device)
    valid = to_device(valid, device) if valid is not None else None
    history = history.to(device) if history is not None else None
    batches = Batches(train, batch_size, seed=seed, history=history)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr,
                                 weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    rows, best_loss, best_state, best_epoch = [], math.inf, None, 0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        running = _LossTotals(tasks, weights)
        skipped_steps = 0
        bar = tqdm(batches, desc=f"epoch {epoch}/{epochs}", disable=not progress)
        for step, batch in enumerate(bar, start=1):
            with _autocast(device, precision):
                logits = model(batch)
                sums = task_loss_sums(logits, batch, tasks, task_masks)
            # mean over each task's rows; a task with no rows in this batch adds 0
            loss = sum(weights[task] * total / count.clamp(min=1)
                       for task, (total, count) in sums.items())
            for task, weight in distillation.items():
                loss = loss + weight * distillation_loss(logits[task], batch, task,
                                                         task_masks.get(task))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scale_before = scaler.get_scale() if scaler.is_enabled() else None
            scaler.step(optimizer)
            scaler.update()
            # fp16: the scaler skips a step whose gradients overflowed and halves the scale
            if scale_before is not None and scaler.get_scale() < scale_before:
                skipped_steps += 1
            running.add(sums)
            # reading the loss syncs the GPU: only now and then
            if progress and (step % 50 == 0 or step == len(batches)):
                bar.set_postfix(loss=f"{running.means()['loss']:.4f}")
        row = {"epoch": epoch,
               **{f"train_{key}": value for key, value in running.means().items()}}
        if scaler.is_enabled():
            row.update(loss_scale=scaler.get_scale(), skipped_steps=skipped_steps)
        if valid is not None:
            losses = evaluate_loss(model, valid, history=history, tasks=tasks,
                                   task_masks=task_masks, task_weights=weights,
                                   device=device, precision=precision)
            row.update({f"valid_{key}": value for key, value in losses.items()})
            row["valid_monitor"] = sum(weight * losses[f"loss_{task}"]
                                       for task, weight in monitor_weights.items()
                                       if not math.isnan(losses[f"loss_{task}"]))
            if not math.isfinite(losses["loss"]):   # an overflowed epoch is never the best
                row["valid_monitor"] = math.nan
        row["seconds"] = time.perf_counter() - start
        rows.append(row)

        if valid is None:
            best_epoch = epoch
        elif row["valid_monitor"] < best_loss:
            best_loss, best_epoch = row["valid_monitor"], epoch
            best_state = {key: value.detach().clone()
                          for key, value in model.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:                    # no validation, or no epoch with a finite loss: the last one
        best_epoch = len(rows)
    return FitResult(model=model, history=pd.DataFrame(rows), best_epoch=best_epoch)


@torch.no_grad()
def evaluate_loss(model: nn.Module, data: TensorDict, *, history: EventHistory | None = None,
                  tasks: Sequence[str] = ("click",),
                  task_masks: dict[str, str] | None = None, task_weights: dict[str, float] | None = None,
                  batch_size: int = 65536, device: str | torch.device | None = None,
                  precision: str = "fp32") -> dict[str, float]:
    """The loss ``fit`` minimizes, over all of ``data``: {"loss": weighted total, "loss_<task>": mean}.

    history: the users' events, when the model reads sequences (as in ``fit``).
    """
    tasks, task_masks, weights = _check_tasks(tasks, task_masks, task_weights)
    _check_data(data, "data", tasks, task_masks, model, history)
    _check_positive(batch_size=batch_size)
    _check_precision(precision)
    device = _resolve_device(device)
    model.to(device)
    history = history.to(device) if history is not None else None
    totals = _LossTotals(tasks, weights)
    with _eval_mode(model):
        for batch in Batches(to_device(data, device), batch_size, shuffle=False,
                             history=history):
            with _autocast(device, precision):
                totals.add(task_loss_sums(model(batch), batch, tasks, task_masks))
    return totals.means()


@torch.no_grad()
def predict(model: nn.Module, data: TensorDict, *, history: EventHistory | None = None,
            batch_size: int = 65536, device: str | torch.device | None = None,
            precision: str = "fp32") -> dict[str, np.ndarray]:
    """Probabilities (sigmoid of the logits) per task, one per row of ``data``, in input order.

    history: the users' events, when the model reads sequences (as in ``fit``).
    """
    num_rows(data, "data")
    _check_model_inputs(model, data, "data")
    _check_positive(batch_size=batch_size)
    _check_precision(precision)
    device = _resolve_device(device)
    model.to(device)
    history = history.to(device) if history is not None else None
    parts: dict[str, list[torch.Tensor]] = {}
    with _eval_mode(model):
        for batch in Batches(to_device(data, device), batch_size, shuffle=False,
                             history=history):
            with _autocast(device, precision):
                logits = model(batch)
            for task, logit in logits.items():
                parts.setdefault(task, []).append(torch.sigmoid(logit.float()).cpu())
    return {task: torch.cat(chunks).numpy() for task, chunks in parts.items()}


class _LossTotals:
    """Per-task loss sums and row counts over many batches, kept on the device until read."""

    def __init__(self, tasks: Sequence[str], weights: dict[str, float]):
        self.weights = weights
        self.sums = dict.fromkeys(tasks, 0.0)
        self.counts = dict.fromkeys(tasks, 0)

    def add(self, sums: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        for task, (total, count) in sums.items():
            self.sums[task] = self.sums[task] + total.detach()
            self.counts[task] = self.counts[task] + count

    def means(self) -> dict[str, float]:
        """{"loss": sum_t weight_t * mean_t over tasks with rows, "loss_<task>": mean_t (nan: no rows)}."""
        has_rows = {task: int(count) > 0 for task, count in self.counts.items()}
        means = {task: float(self.sums[task] / self.counts[task]) if has_rows[task] else math.nan
                 for task in self.sums}
        # a task without rows adds nothing; one whose loss overflowed (inf, NaN) makes the total so
        total = sum(self.weights[task] * mean for task, mean in means.items() if has_rows[task])
        return {"loss": total, **{f"loss_{task}": mean for task, mean in means.items()}}


def _autocast(device: torch.device, precision: str) -> torch.autocast:
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Switch off dropout (and friends) inside the block, then restore the previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_tasks(
    tasks: Sequence[str], task_masks: dict[str, str] | None, task_weights: dict[str, float] | None,
) -> tuple[tuple[str, ...], dict[str, str], dict[str, float]]:
    """Tasks as a tuple, masks as a dict, and a weight for every task (1 unless given)."""
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not tasks or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks must be distinct names, at least one, got {tasks!r}")
    task_masks, task_weights = dict(task_masks or {}), dict(task_weights or {})
    for argument, named in (("task_masks", task_masks), ("task_weights", task_weights)):
        unknown = sorted(set(named) - set(tasks))
        if unknown:
            raise ValueError(f"{argument} names task(s) {unknown} that are not in tasks {list(tasks)}")
    for task, weight in task_weights.items():
        if not weight >= 0:
            raise ValueError(f"task_weights[{task!r}] must be >= 0, got {weight!r}")
    weights = {task: float(task_weights.get(task, 1.0)) for task in tasks}
    return tasks, task_masks, weights


def _check_data(data: TensorDict, name: str, tasks: Sequence[str], task_masks: dict[str, str],
                model: nn.Module, history: EventHistory | None = None) -> None:
    """Refuse data that would train or score silently wrong, naming the key at fault."""
    num_rows(data, name)
    if history is not None:
        history.check(data, name)
    for task in tasks:
        key = f"label_{task}"
        if key not in data:
            raise ValueError(f"{name} has no {key!r} for task {task!r}")
        label = data[key]
        if not label.is_floating_point():
            raise ValueError(f"{name}[{key!r}] must be a float tensor of 0s and 1s, got dtype {label.dtype}")
        if torch.isnan(label).any():
            raise ValueError(f"{name}[{key!r}] holds NaN labels ({int(torch.isnan(label).sum())} rows)")
        if ((label < 0) | (label > 1)).any():
            raise ValueError(f"{name}[{key!r}] holds labels outside [0, 1] "
                             f"(from {float(label.min())} to {float(label.max())})")
    for task, key in task_masks.items():
        if key not in data:
            raise ValueError(f"{name} has no {key!r}, the mask of task {task!r} in task_masks")
    _check_model_inputs(model, data, name)


def _check_model_inputs(model: nn.Module, data: TensorDict, name: str) -> None:
    """Every float input finite, every id inside its embedding table."""
    for key, tensor in data.items():
        if tensor.is_floating_point() and not key.startswith("label_") and not torch.isfinite(tensor).all():
            raise ValueError(f"{name}[{key!r}] holds NaN or infinite values "
                             f"({int((~torch.isfinite(tensor)).sum())} of {tensor.numel()})")
    for module in model.modules():
        if isinstance(module, FeatureEmbedding):
            module.check_ids(data, name)


def _check_monitor(monitor: str | dict[str, float] | None, tasks: tuple[str, ...],
                   weights: dict[str, float]) -> dict[str, float]:
    """The weight of each task's validation loss in the number early stopping watches."""
    if monitor is None:
        return weights
    if isinstance(monitor, str):
        monitor = {monitor: 1.0}
    if not isinstance(monitor, dict) or not monitor:
        raise ValueError(f"monitor must be None, a task name or a non-empty {{task: weight}} dict, got {monitor!r}")
    unknown = sorted(set(monitor) - set(tasks))
    if unknown:
        raise ValueError(f"monitor names task(s) {unknown} that are not in tasks {list(tasks)}")
    for task, weight in monitor.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
            raise ValueError(f"monitor[{task!r}] must be a finite weight >= 0, got {weight!r}")
    return {task: float(weight) for task, weight in monitor.items()}


def _check_distillation(distillation: dict[str, float] | None, tasks: tuple[str, ...],
                        data: TensorDict) -> dict[str, float]:
    """Distillation weights per task, each with its teacher's probabilities in ``data``."""
    if distillation is None:
        return {}
    if not isinstance(distillation, dict):
        raise ValueError(f"distillation must be a {{task: weight}} dict, got {distillation!r}")
    for task, weight in distillation.items():
        if task not in tasks:
            raise ValueError(f"distillation names task {task!r}, which is not in tasks {list(tasks)}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < math.inf:
            raise ValueError(f"distillation[{task!r}] must be a finite weight >= 0, got {weight!r}")
        key = f"teacher_{task}"
        if key not in data:
            raise ValueError(f"distillation of {task!r} needs the teacher's probabilities in "
                             f"train[{key!r}]")
        teacher = data[key]
        if not teacher.is_floating_point() or not ((teacher >= 0) & (teacher <= 1)).all():
            raise ValueError(f"train[{key!r}] must hold probabilities in [0, 1]")
    return {task: float(weight) for task, weight in distillation.items()}


def _check_positive(**values: int) -> None:
    for argument, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{argument} must be a positive integer, got {value!r}")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
