"""Continuous training: one model trained day after day, in time order, as production does.

A production ranker is not trained once on shuffled data: it reads each day's
impressions in the order they happened, and every morning the model trained
through yesterday serves today. So a broken feature (an outage that fills it
with 0 for a day) reaches the model as a run of consecutive batches, and the
model that serves the day after is the one that has just trained on them.
``train_in_time_order`` replays that on a list of days and scores every
day with the model trained on the days before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import checks
from .batches import Batches, to_device
from .checks import TensorDict
from .metrics import auc, logloss, normalized_entropy
from .objective import Objective
from .train import eval_mode, predict, train_epoch


def train_in_time_order(model: nn.Module, days: Sequence[TensorDict], *,
                        day_labels: Sequence[int] | None = None, task: str = "click",
                        batch_size: int = 512, lr: float = 1e-3, seed: int = 0,
                        watch: nn.Module | None = None, watch_column: int | None = None,
                        progress: bool = True) -> pd.DataFrame:
    """Train ``model`` on each day in turn (one pass, in order); score each day before training on it.

    days: one TensorDict per day, rows in time order. The first day is only
        trained on; every later day is first served by the model as it stands
        (eval mode), then trained on: one ``train_epoch`` over its batches.
    watch: a module (say the dense features' normalization) whose largest
        |output| while serving is recorded; watch_column: a column whose
        running variance (``watch.running_var``) is recorded at each day's end.

    Returns one row per day: day, rows, served log loss, NE (log loss / entropy
    of the day's click rate), oracle NE, AUC, non_finite (share of rows whose
    prediction is NaN: they count at the day's click rate in the log loss, as
    a fallback would serve them), largest_output (of ``watch``),
    running_var (of ``watch_column``), train_loss.
    """
    day_labels = _check_days(days, day_labels, task, watch, watch_column)
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    objective = Objective((task,))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rows = []
    for label, day in tqdm(list(zip(day_labels, days)), desc="days", disable=not progress):
        day = to_device(day, device)
        row = {"day": label, "rows": checks.num_rows(day)}
        if rows:                                             # serve with yesterday's model
            row.update(serve_day(model, day, task, watch))
        epoch = train_epoch(model, Batches(day, batch_size, shuffle=False), objective, optimizer)
        row["train_loss"] = epoch["train_loss"]
        if watch_column is not None:
            row["running_var"] = float(watch.running_var[watch_column])
        rows.append(row)
    return pd.DataFrame(rows)


def serve_day(model: nn.Module, day: TensorDict, task: str = "click",
              watch: nn.Module | None = None) -> dict[str, float]:
    """How the model as it stands serves ``day``: log loss, NE, oracle NE, AUC, non_finite
    (and the largest |output| of ``watch``)."""
    labels = day[f"label_{task}"].cpu().numpy()
    rate = float(labels.mean())
    probs = predict(model, day, batch_size=65536, device=next(model.parameters()).device)[task]
    broken = ~np.isfinite(probs)
    served = np.where(broken, rate, probs)
    oracle_key = f"oracle_{task}"
    row = {"logloss": logloss(labels, served), "ne": normalized_entropy(labels, served),
           "oracle_ne": normalized_entropy(labels, day[oracle_key].cpu().numpy())
           if oracle_key in day else np.nan,
           "auc": auc(labels, served), "non_finite": float(broken.mean())}
    if watch is not None:
        row["largest_output"] = largest_output(watch, model, day, 65536)
    return row


def largest_output(module: nn.Module, model: nn.Module, data: TensorDict,
                   batch_size: int) -> float:
    """The largest |value| ``module`` outputs while ``model`` scores ``data`` (inf if any is
    inf or NaN)."""
    largest = [0.0]

    def hook(_module, _inputs, output: torch.Tensor) -> None:
        output = output.detach()
        if not torch.isfinite(output).all():
            largest[0] = float("inf")
        else:
            largest[0] = max(largest[0], float(output.abs().max()))

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad(), eval_mode(model):
            for batch in Batches(data, batch_size, shuffle=False):
                model(batch)
    finally:
        handle.remove()
    return largest[0]


def _check_days(days: Sequence[TensorDict], day_labels: Sequence[int] | None, task: str,
                watch: nn.Module | None, watch_column: int | None) -> list:
    """The days' labels (0, 1, ... unless given), after refusing what cannot be replayed."""
    if len(days) < 2:
        raise ValueError(f"need at least 2 days (train on one, serve the next), got {len(days)}")
    day_labels = list(range(len(days))) if day_labels is None else list(day_labels)
    if len(day_labels) != len(days):
        raise ValueError(f"day_labels has {len(day_labels)} entries for {len(days)} days")
    if watch_column is not None and not hasattr(watch, "running_var"):
        raise ValueError("watch_column needs a watch module with a running_var (a Batch Norm)")
    label_key = f"label_{task}"
    for index, day in enumerate(days):
        checks.num_rows(day, f"days[{index}]")
        if label_key not in day:
            raise ValueError(f"days[{index}] has no {label_key!r}")
    return day_labels
