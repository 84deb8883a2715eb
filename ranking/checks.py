"""The argument checks every public function shares, each written once.

A bad argument should fail at the door, with a message that names the field
and says what was expected, not three calls deeper as a shape error from
torch. Public entry points call these; the helpers behind them trust what
they are given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

ArrayLike = np.ndarray | Sequence[float] | pd.Series | torch.Tensor
"""Anything 1-d that holds numbers: labels (0 or 1) or probabilities."""

TensorDict = dict[str, torch.Tensor]
"""A dataset or a batch: tensors that share their first (row) dimension."""


# ------------------------------------------------------------------ numbers
def is_integer(value) -> bool:
    """An int or a numpy integer, and not a bool (True is an int in Python)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    """An int or a float (numpy's too), and not a bool."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def positive_int(name: str, value) -> int:
    """``value`` as an int, if it is an integer >= 1."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def nonnegative_int(name: str, value) -> int:
    """``value`` as an int, if it is an integer >= 0."""
    if not is_integer(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def nonnegative_number(name: str, value) -> float:
    """``value`` as a float, if it is a finite number >= 0 (a weight, a learning rate)."""
    if not is_number(value) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def one_of(name: str, value, allowed: Sequence) -> None:
    """Refuse a value that is not one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


# ---------------------------------------------------------------- task names
def task_names(tasks: str | Sequence[str]) -> tuple[str, ...]:
    """Tasks as a tuple of distinct non-empty names (one name alone is one task)."""
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    if not tasks or len(set(tasks)) != len(tasks) \
            or not all(isinstance(task, str) and task for task in tasks):
        raise ValueError(f"tasks must be distinct non-empty names, at least one, got {tasks!r}")
    return tasks


def known_tasks(name: str, named: Sequence[str], tasks: Sequence[str]) -> None:
    """Refuse a dict (task masks, weights, a monitor) that names a task not in ``tasks``."""
    unknown = sorted(set(named) - set(tasks))
    if unknown:
        raise ValueError(f"{name} names task(s) {unknown} that are not in tasks {list(tasks)}")


# -------------------------------------------------------------- tensor dicts
def num_rows(data: TensorDict, name: str = "data") -> int:
    """N, the first dimension every tensor in ``data`` shares; ValueError if there is none."""
    if not data:
        raise ValueError(f"{name} is empty: it holds no tensors")
    for key, tensor in data.items():
        if not isinstance(tensor, torch.Tensor) or tensor.dim() == 0:
            raise ValueError(f"{name}[{key!r}] must be a tensor with a first (row) dimension")
    sizes = {key: tensor.shape[0] for key, tensor in data.items()}
    n = next(iter(sizes.values()))
    if any(size != n for size in sizes.values()):
        raise ValueError(f"{name} tensors disagree on the number of rows: {sizes}")
    if n == 0:
        raise ValueError(f"{name} has no rows")
    return n


def finite_inputs(data: TensorDict, name: str = "data") -> None:
    """Every float input (labels aside) finite: a NaN would train or score silently wrong."""
    for key, tensor in data.items():
        if tensor.is_floating_point() and not key.startswith("label_") \
                and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(f"{name}[{key!r}] holds NaN or infinite values "
                             f"({bad} of {tensor.numel()})")


def task_labels(data: TensorDict, name: str, task: str) -> None:
    """data["label_<task>"] exists and holds floats in [0, 1], no NaN."""
    key = f"label_{task}"
    if key not in data:
        raise ValueError(f"{name} has no {key!r} for task {task!r}")
    label = data[key]
    if not label.is_floating_point():
        raise ValueError(f"{name}[{key!r}] must be a float tensor of 0s and 1s, "
                         f"got dtype {label.dtype}")
    if torch.isnan(label).any():
        raise ValueError(f"{name}[{key!r}] holds NaN labels ({int(torch.isnan(label).sum())} rows)")
    if ((label < 0) | (label > 1)).any():
        raise ValueError(f"{name}[{key!r}] holds labels outside [0, 1] "
                         f"(from {float(label.min())} to {float(label.max())})")


# ------------------------------------------------------------------- arrays
def as_array(values: ArrayLike, name: str) -> np.ndarray:
    """One input as a float64 1-d numpy array, refusing empty or NaN input."""
    if isinstance(values, torch.Tensor):
        array = values.detach().cpu().to(torch.float64).numpy()
    else:
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must hold numbers in one dimension: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {array.shape} (use .reshape(-1))")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN")
    return array


def as_probabilities(values: ArrayLike, name: str) -> np.ndarray:
    """``as_array``, and every value must lie in [0, 1]."""
    array = as_array(values, name)
    if array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name} must lie in [0, 1], got range [{array.min()}, {array.max()}]")
    return array


def labels_and_probabilities(labels: ArrayLike, probs: ArrayLike
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0 or 1) and probabilities (in [0, 1]) of one length, as float64 arrays."""
    y = as_array(labels, "labels")
    p = as_probabilities(probs, "probs")
    if len(y) != len(p):
        raise ValueError(f"labels and probs must have the same length, got {len(y)} and {len(p)}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"labels must be 0 or 1, got values {np.unique(y)[:10]}")
    return y, p
