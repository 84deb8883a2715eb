"""The one training loop every chapter uses, in small parts.

- ``train_step``: one batch: forward, loss, backward, optimizer step;
- ``train_epoch``: a step on every batch of an epoch, the losses averaged;
- ``evaluate_loss``: the same loss on held-out data, without gradients;
- ``EarlyStopping``: watches that loss and keeps the best epoch's weights;
- ``fit`` composes them; ``predict`` turns logits into probabilities.

A model maps a batch (dict of tensors) to one logit per task, and the loss
is an ``Objective`` (``ranking.objective``); the loop knows nothing else
about either. Training on several processes (``ranking.distributed``) and
day by day (``ranking.continuous``) reuse ``train_step`` and ``train_epoch``.

Three of ``fit``'s options in a word: ``history`` is the users' events
(``encoder.history``), gathered into every batch for a sequence model;
``start_at_base_rate`` starts each head at its task's rate in ``train``
(``ranking.objective.start_heads_at_base_rate``); ``device=None`` picks
"cuda" when there is one, and the model and data move there once.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.optim import Adam, Optimizer
from tqdm.auto import tqdm

from . import checks
from .batches import Batches, to_device
from .checks import TensorDict
from .history import Histories
from .nn.embed import FeatureEmbedding
from .objective import LossSums, Objective, start_heads_at_base_rate, task_loss_sums

EVAL_BATCH_SIZE = 4096
"""Rows per forward pass in ``evaluate_loss`` and ``predict``: on a CPU a batch of
65,536 is about 3x slower per row than 4,096 (its activations leave the caches)."""

PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Values of ``precision``: the forward pass's autocast dtype (None: fp32)."""

LossFunction = Callable[[dict[str, torch.Tensor], TensorDict],
                        tuple[torch.Tensor, LossSums]]
"""(logits, batch) -> (the loss to minimize, its per-task sums): an Objective."""


# ---------------------------------------------------------------- the parts
def train_step(model: nn.Module, batch: TensorDict, loss_function: LossFunction,
               optimizer: Optimizer, scaler: torch.amp.GradScaler | None = None,
               precision: str = "fp32") -> LossSums:
    """One batch: forward, loss, backward, optimizer step; returns the loss sums.

    scaler: fp16's loss scaler (None in fp32 and bf16): it multiplies the loss
    before backward so that small gradients stay above fp16's smallest number,
    and skips the step when a gradient overflowed.
    """
    with autocast(next(iter(batch.values())).device, precision):
        logits = model(batch)                                # {task: (B,)}
        loss, sums = loss_function(logits, batch)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return sums


def train_epoch(model: nn.Module, batches: Batches, objective: Objective,
                optimizer: Optimizer, scaler: torch.amp.GradScaler | None = None,
                precision: str = "fp32", progress: bool = False, desc: str = "train"
                ) -> dict[str, float]:
    """A ``train_step`` on every batch; the train_loss and train_loss_<task>.

    With a scaler (fp16) also loss_scale (at the epoch's end) and skipped_steps
    (steps the scaler skipped for inf/NaN gradients).
    """
    model.train()
    totals, skipped = LossTotals(objective), 0
    bar = tqdm(batches, desc=desc, disable=not progress)
    for step, batch in enumerate(bar, start=1):
        scale = scaler.get_scale() if scaler is not None else None
        sums = train_step(model, batch, objective, optimizer, scaler, precision)
        totals.add(sums)
        if scale is not None and scaler.get_scale() < scale:   # skipped: halved
            skipped += 1
        if progress and (step % 50 == 0 or step == len(batches)):   # syncs the GPU
            bar.set_postfix(loss=f"{totals.means()['loss']:.4f}")
    row = {f"train_{key}": value for key, value in totals.means().items()}
    if scaler is not None:
        row.update(loss_scale=scaler.get_scale(), skipped_steps=skipped)
    return row


@torch.no_grad()
def evaluate_loss(model: nn.Module, data: TensorDict, *,
                  history: Histories | None = None,
                  tasks: Sequence[str] = ("click",), task_masks: dict | None = None,
                  task_weights: dict | None = None,
                  batch_size: int = EVAL_BATCH_SIZE, device: str | torch.device | None = None,
                  precision: str = "fp32") -> dict[str, float]:
    """The loss ``fit`` minimizes, over all of ``data``, without gradients.

    Returns {"loss": the weighted total, "loss_<task>": each task's mean}.
    history: the users' events, when the model reads sequences (as in ``fit``).
    """
    objective = Objective(tasks, task_masks, task_weights)
    check_data(data, "data", objective, model, history)
    checks.positive_int("batch_size", batch_size)
    checks.one_of("precision", precision, PRECISIONS)
    device = resolve_device(device)
    model.to(device)
    history = history.to(device) if history is not None else None
    totals = LossTotals(objective)
    with eval_mode(model):
        for batch in Batches(to_device(data, device), batch_size, shuffle=False,
                             history=history):
            with autocast(device, precision):
                logits = model(batch)
                totals.add(task_loss_sums(logits, batch, objective.tasks,
                                          objective.masks))
    return totals.means()


class EarlyStopping:
    """Watch validation losses, keep the best epoch's weights, say when to stop.

    monitor: None, the loss trained; a task's name, its loss alone; {task: weight},
    that sum (a rare head should not be stopped by a common one). NaN is never best.
    """

    def __init__(self, objective: Objective, monitor: str | dict | None = None,
                 patience: int = 2):
        self.weights = _monitor_weights(monitor, objective)
        self.patience = checks.positive_int("patience", patience)
        self.loss = dict(tasks=objective.tasks, task_masks=objective.masks,
                         task_weights=objective.weights)   # for evaluate_loss
        self.best_loss, self.best_epoch, self.best_state = math.inf, 0, None
        self.last = math.nan                      # the latest evaluation's monitor

    def evaluate(self, model: nn.Module, valid: TensorDict,
                 history: Histories | None, device: torch.device,
                 precision: str) -> dict[str, float]:
        """``evaluate_loss`` on ``valid``: its valid_* columns and valid_monitor."""
        losses = evaluate_loss(model, valid, history=history, device=device,
                               precision=precision, **self.loss)
        self.last = monitored_loss(losses, self.weights)
        return {**{f"valid_{key}": value for key, value in losses.items()},
                "valid_monitor": self.last}

    def should_stop(self, epoch: int, model: nn.Module) -> bool:
        """Keep the best epoch's weights; True after ``patience`` worse epochs."""
        if self.last < self.best_loss:
            self.best_loss, self.best_epoch = self.last, epoch
            self.best_state = {key: value.detach().clone()
                               for key, value in model.state_dict().items()}
            return False
        return epoch - self.best_epoch >= self.patience

    def restore_best(self, model: nn.Module) -> bool:
        """Load the best epoch's weights; False if no epoch's loss was finite."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
        return self.best_state is not None


# ---------------------------------------------------------------- the loop
@dataclass
class FitResult:
    """A trained model (best validation epoch restored) and how training went."""

    model: nn.Module
    history: pd.DataFrame
    """One row per epoch: epoch, train_loss, train_loss_<task>, valid_loss,
    valid_loss_<task>, valid_monitor (what early stopping watched), seconds; in
    fp16 also loss_scale (at the epoch's end) and skipped_steps (steps the scaler
    skipped for inf/NaN gradients)."""
    best_epoch: int
    """Epoch (from 1) whose weights the model holds: lowest valid_monitor, or the
    last one without valid."""


def fit(model: nn.Module, train: TensorDict, valid: TensorDict | None = None, *,
        history: Histories | None = None, tasks: Sequence[str] = ("click",),
        task_masks: dict | None = None, task_weights: dict | None = None,
        distillation: dict | None = None, monitor: str | dict | None = None,
        patience: int = 2, epochs: int = 3, batch_size: int = 4096,
        lr: float = 1e-3, weight_decay: float = 0.0, precision: str = "fp32",
        seed: int = 0, device: str | torch.device | None = None,
        start_at_base_rate: bool = False, progress: bool = True) -> FitResult:
    """Train ``model`` with Adam on an ``Objective``; keep its best epoch on valid.

    tasks, task_masks, task_weights, distillation: the loss (``Objective``);
    monitor, patience: ``EarlyStopping``; precision: a key of ``PRECISIONS``.
    """
    objective = Objective(tasks, task_masks, task_weights, distillation)
    stopping = EarlyStopping(objective, monitor, patience)
    check_fit(model, train, valid, objective, history, epochs, batch_size, lr,
              weight_decay, precision)
    device = resolve_device(device)
    torch.manual_seed(seed)
    model.to(device)
    history = history.to(device) if history is not None else None
    batches = Batches(to_device(train, device), batch_size, seed=seed,
                      history=history)
    optimizer = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    if start_at_base_rate:   # last: a refused argument leaves the model alone
        start_heads_at_base_rate(model, train, objective.tasks, objective.masks)
    rows = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        row = {"epoch": epoch, **train_epoch(model, batches, objective, optimizer,
                                             scaler, precision, progress,
                                             f"epoch {epoch}/{epochs}")}
        if valid is not None:
            row.update(stopping.evaluate(model, valid, history, device, precision))
        rows.append({**row, "seconds": time.perf_counter() - start})
        if valid is not None and stopping.should_stop(epoch, model):
            break
    best = stopping.best_epoch if stopping.restore_best(model) else len(rows)
    return FitResult(model, pd.DataFrame(rows), best)


@torch.no_grad()
def predict(model: nn.Module, data: TensorDict, *,
            history: Histories | None = None, batch_size: int = EVAL_BATCH_SIZE,
            device: str | torch.device | None = None,
            precision: str = "fp32") -> dict[str, np.ndarray]:
    """Each task's probabilities (sigmoid of the logits), a row of ``data`` each.

    history: the users' events, when the model reads sequences (as in ``fit``).
    """
    checks.num_rows(data, "data")
    check_model_inputs(model, data, "data")
    checks.positive_int("batch_size", batch_size)
    checks.one_of("precision", precision, PRECISIONS)
    device = resolve_device(device)
    model.to(device)
    history = history.to(device) if history is not None else None
    parts: dict[str, list[torch.Tensor]] = {}
    with eval_mode(model):
        for batch in Batches(to_device(data, device), batch_size, shuffle=False,
                             history=history):
            with autocast(device, precision):
                logits = model(batch)
            for task, logit in logits.items():
                probs = torch.sigmoid(logit.float()).cpu()
                parts.setdefault(task, []).append(probs)
    return {task: torch.cat(chunks).numpy() for task, chunks in parts.items()}


# ----------------------------------------------------------- the helpers
class LossTotals:
    """Per-task loss sums and row counts over batches, on the device until read."""

    def __init__(self, objective: Objective):
        self.weights = objective.weights
        self.sums = dict.fromkeys(objective.tasks, 0.0)
        self.counts = dict.fromkeys(objective.tasks, 0)

    def add(self, sums: LossSums) -> None:
        for task, (total, count) in sums.items():
            self.sums[task] = self.sums[task] + total.detach()
            self.counts[task] = self.counts[task] + count

    def means(self) -> dict[str, float]:
        """{"loss": sum_t weight_t * mean_t, "loss_<task>": mean_t (NaN: none)}"""
        has_rows = {task: int(count) > 0 for task, count in self.counts.items()}
        means = {task: float(self.sums[task] / self.counts[task])
                 if has_rows[task] else math.nan for task in self.sums}
        # a task without rows adds nothing; one that overflowed (inf, NaN) makes the
        # total so
        total = sum(self.weights[task] * mean for task, mean in means.items()
                    if has_rows[task])
        return {"loss": total,
                **{f"loss_{task}": mean for task, mean in means.items()}}


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """``torch.autocast`` to ``precision``'s 16-bit dtype, or off for fp32."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Switch off dropout (and friends) inside the block, then restore the mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch.device; None picks "cuda" when there is one."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_fit(model: nn.Module, train: TensorDict, valid: TensorDict | None,
              objective: Objective, history: Histories | None, epochs: int,
              batch_size: int, lr: float, weight_decay: float,
              precision: str) -> None:
    """Refuse ``fit``'s data and settings, naming the key at fault."""
    check_data(train, "train", objective, model, history, teachers=True)
    if valid is not None:
        check_data(valid, "valid", objective, model, history)
    checks.positive_int("epochs", epochs)
    checks.positive_int("batch_size", batch_size)
    checks.nonnegative_number("lr", lr)
    checks.nonnegative_number("weight_decay", weight_decay)
    checks.one_of("precision", precision, PRECISIONS)


def check_data(data: TensorDict, name: str, objective: Objective, model: nn.Module,
               history: Histories | None = None, teachers: bool = False) -> None:
    """Refuse data that would train or score silently wrong, naming the key."""
    checks.num_rows(data, name)
    if history is not None:
        history.check(data, name)
    objective.check(data, name, teachers)
    check_model_inputs(model, data, name)


def check_model_inputs(model: nn.Module, data: TensorDict, name: str) -> None:
    """Every float input finite, every id inside its embedding table."""
    checks.finite_inputs(data, name)
    for module in model.modules():
        if isinstance(module, FeatureEmbedding):
            module.check_ids(data, name)


def monitored_loss(losses: dict[str, float], weights: dict[str, float]) -> float:
    """sum_t weight_t * losses["loss_<t>"] over the tasks with rows; NaN if the loss
    overflowed or no monitored task has a row (nothing to judge an epoch by)."""
    with_rows = {task: weight for task, weight in weights.items()
                 if not math.isnan(losses[f"loss_{task}"])}
    if not math.isfinite(losses["loss"]) or not with_rows:
        return math.nan
    return sum(weight * losses[f"loss_{task}"]
               for task, weight in with_rows.items())


def _monitor_weights(monitor: str | dict[str, float] | None,
                     objective: Objective) -> dict[str, float]:
    """The weight of each task's validation loss in what early stopping watches."""
    if monitor is None:
        return objective.weights
    if isinstance(monitor, str):
        monitor = {monitor: 1.0}
    if not isinstance(monitor, dict) or not monitor:
        raise ValueError("monitor must be None, a task name or a non-empty "
                         f"{{task: weight}} dict, got {monitor!r}")
    checks.known_tasks("monitor", monitor, objective.tasks)
    return {task: checks.nonnegative_number(f"monitor[{task!r}]", weight)
            for task, weight in monitor.items()}
