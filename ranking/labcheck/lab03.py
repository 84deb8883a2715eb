"""Checks for lab 3, the deep model (labs/03_deep_model.ipynb).

Exercises: one DCN V2 cross layer, and the log-clip-standardize transform of a heavy-tailed
count fitted on the training days only.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from .common import call, correct
from .mistakes import Answers

__all__ = ["check_cross_layer", "check_log_clip_standardize"]


# ------------------------------------------------------------------------ cross layer
def _cross_cases() -> list[tuple[str, Any, Any, Any, Any]]:
    """(description, x0, x, weight, bias): random tensors, a non-symmetric weight in each."""
    import torch

    generator = torch.Generator().manual_seed(3)
    cases = []
    shapes = [(4, 3, torch.float32), (64, 17, torch.float32), (8, 5, torch.float64)]
    for batch, width, dtype in shapes:
        x0 = torch.randn(batch, width, generator=generator, dtype=dtype)
        x = torch.randn(batch, width, generator=generator, dtype=dtype)
        weight = torch.randn(width, width, generator=generator, dtype=dtype)
        bias = torch.randn(width, generator=generator, dtype=dtype)
        label = str(dtype).removeprefix("torch.")
        cases.append((f"a batch of {batch} rows of width {width} ({label})", x0, x, weight, bias))
    x0 = cases[1][1]
    cases.append(("the first layer, where x is x0", x0, x0.clone(), cases[1][3], cases[1][4]))
    return cases


def _cross_reference(x0, x, weight, bias):
    return x0 * (x @ weight.T + bias) + x


def check_cross_layer(cross_layer: Callable) -> None:
    """Check ``cross_layer(x0, x, weight, bias) -> Tensor`` against x0 * (W x + b) + x and
    CrossNetV2."""
    import torch

    name = "cross_layer"
    answers = Answers(name, same=_same_tensor)
    for description, x0, x, weight, bias in _cross_cases():
        inputs = [t.clone() for t in (x0, x, weight, bias)]
        got = call(cross_layer, *inputs)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{name} should return a torch.Tensor, got {type(got).__name__}")
        if any(not torch.equal(a, b) for a, b in zip(inputs, (x0, x, weight, bias))):
            raise AssertionError(f"{name} changed one of its inputs in place: compute a new "
                                 "tensor instead.")
        expected = _cross_reference(x0, x, weight, bias)
        if got.shape != expected.shape:
            raise AssertionError(f"On {description}: expected shape {tuple(expected.shape)} "
                                 f"(batch, width), got {tuple(got.shape)}.")
        answers.add(got, x0, x, weight, bias)
        if _same_tensor(expected, got):
            continue
        hint = answers.hint("x_{l+1} = x0 * (x @ weight.T + bias) + x, elementwise product "
                            "with x0.")
        raise AssertionError(f"On {description} the output differs. {hint}")
    _check_against_cross_net(name, cross_layer)
    correct(f"{name} computes x0 * (W x + b) + x on {len(_cross_cases())} cases and agrees with "
            "ranking.nn.CrossNetV2.")


def _same_tensor(theirs, got) -> bool:
    import torch

    return theirs.shape == got.shape and torch.allclose(got.to(theirs.dtype), theirs,
                                                        rtol=1e-5, atol=1e-6)


def _check_against_cross_net(name: str, cross_layer: Callable) -> None:
    """The same computation as the package's CrossNetV2 with one layer."""
    import torch

    from ..nn.cross import CrossNetV2

    net = CrossNetV2(input_dim=6, num_layers=1).double()
    x0 = torch.randn(10, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    layer = net.layers[0]
    with torch.no_grad():
        got = call(cross_layer, x0, x0, layer.weight.detach().clone(), layer.bias.detach().clone())
        if not torch.allclose(got, net(x0), rtol=1e-6, atol=1e-8):
            raise AssertionError(f"{name} disagrees with ranking.nn.CrossNetV2 on a one-layer "
                                 "network.")


# ------------------------------------------------------- transform of a heavy-tailed count
def _log_clip_standardize(train_values, values, quantile: float = 0.99) -> np.ndarray:
    train_logs = np.log1p(np.asarray(train_values, dtype=float))
    low, high = np.quantile(train_logs, [1 - quantile, quantile])
    clipped_train = np.clip(train_logs, low, high)
    clipped = np.clip(np.log1p(np.asarray(values, dtype=float)), low, high)
    return (clipped - clipped_train.mean()) / clipped_train.std()


def _transform_cases(train_values, values) -> list[tuple[str, Any, Any, dict]]:
    rng = np.random.default_rng(7)
    train = np.floor(30 * rng.pareto(1.2, 3_000))
    later = np.floor(30 * rng.pareto(1.2, 800))
    later[:3] = [0, train.max() * 10, train.max() * 100]   # beyond anything seen in training
    cases: list[tuple[str, Any, Any, dict]] = [
        ("heavy-tailed counts (numpy arrays)", train, later, {}),
        ("the same counts with quantile=0.9", train, later, {"quantile": 0.9}),
        ("heavy-tailed counts as pandas Series", pd.Series(train[:1_000]), pd.Series(later[:200]),
         {}),
    ]
    if train_values is not None and values is not None:
        cases.append(("the lab's column (training days -> test days)", train_values, values, {}))
    return cases


def check_log_clip_standardize(log_clip_standardize: Callable, train_values: Any = None,
                               values: Any = None) -> None:
    """Check ``log_clip_standardize(train_values, values, quantile=0.99) -> array``."""
    name = "log_clip_standardize"
    answers = Answers(name, same=lambda theirs, got: np.allclose(np.asarray(theirs), got))
    for description, train, later, kwargs in _transform_cases(train_values, values):
        expected = _log_clip_standardize(train, later, kwargs.get("quantile", 0.99))
        got = call(log_clip_standardize, train.copy(), later.copy(), **kwargs)
        try:
            got = np.asarray(got, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise AssertionError(f"{name} should return numbers, one per value, got "
                                 f"{type(got).__name__}") from None
        if got.shape != expected.shape:
            raise AssertionError(f"On {description}: expected {expected.size} values (one per "
                                 f"row of `values`), got {got.size}.")
        answers.add(got, train, later, **kwargs)
        if np.allclose(got, expected, rtol=1e-6, atol=1e-9):
            continue
        hint = answers.hint("log1p, then clip to the [1 - quantile, quantile] quantiles of the "
                            "training logs, then subtract the mean and divide by the std of "
                            "the clipped training logs.")
        raise AssertionError(f"On {description} the transformed values differ. {hint}")
    correct(f"{name} uses training statistics only and tames the tail on "
            f"{len(_transform_cases(train_values, values))} cases.")
