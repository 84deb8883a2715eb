"""Checks for lab 8, sixteen bits (labs/08_sixteen_bits.ipynb).

Exercises: the first layer whose output overflows when a model runs in float16
(forward hooks), the choice of fp16 or bf16 for each layer from the largest
activations of a float32 run, the running-statistics update of Resilient
Batch Norm, and the variance it normalizes a masked column with.
"""

from __future__ import annotations

import operator
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .common import call, correct
from .mistakes import Answers

__all__ = ["check_first_overflow", "check_choose_precision", "check_resilient_update",
           "check_masked_variance"]

FP16_MAX = float(torch.finfo(torch.float16).max)   # 65504


# ------------------------------------------------------------------ first overflow
class _Spread(nn.Module):
    """Each row's spread E[x^2] - E[x]^2: in float16 both terms can overflow, inf - inf = NaN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * x).mean(dim=1, keepdim=True) - x.mean(dim=1, keepdim=True) ** 2


class _SpreadStack(nn.Module):
    """dense -> Linear -> ReLU -> spread -> head -> flatten (B,).

    The head is registered first: the order of ``named_modules()`` is not the call order.
    """

    def __init__(self, n_dense: int = 4):
        super().__init__()
        self.head = nn.Linear(1, 1)
        self.body = nn.Sequential(nn.Linear(n_dense, n_dense), nn.ReLU())
        self.spread = _Spread()
        self.flatten = nn.Flatten(start_dim=0)
        with torch.no_grad():
            self.body[0].weight.copy_(torch.eye(n_dense))
            self.body[0].bias.zero_()
            self.head.weight.fill_(1e-3)
            self.head.bias.zero_()

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"click": self.flatten(self.head(self.spread(self.body(batch["dense"]))))}


def _dcn(seed: int = 0, **options) -> nn.Module:
    from ..nn import DCNv2

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return DCNv2({"user_id": 5, "surface": 3}, n_dense=3, embedding_dim=4,
                     cross_layers=2, hidden=(16, 8), **options)


def _batch(dense: list[list[float]]) -> dict[str, torch.Tensor]:
    values = torch.tensor(dense, dtype=torch.float32)
    rows = values.shape[0]
    return {"user_id": torch.arange(rows) % 5, "surface": torch.arange(rows) % 3,
            "dense": values, "label_click": torch.zeros(rows)}


def _dense_rows(scale: float) -> list[list[float]]:
    """Four rows: two with values of size ``scale``, two small ones."""
    return [[scale, -scale, scale / 2], [1.0, 2.0, 3.0], [-scale, scale / 3, scale],
            [0.5, 0.1, -0.2]]


def _overflow_cases() -> list[tuple[str, Callable[[], nn.Module], dict]]:
    return [
        ("a DCN V2 on small dense values (nothing overflows)", _dcn, _batch(_dense_rows(1.0))),
        ("a DCN V2 with dense values near 200 (the second cross layer's product "
         "passes 65504)", _dcn, _batch(_dense_rows(200.0))),
        ("a DCN V2 with dense values near 500 (the first cross layer's product "
         "passes 65504)", _dcn, _batch(_dense_rows(500.0))),
        ("a DCN V2 with a dense value of 100,000 (above 65504 before any layer)", _dcn,
         _batch([[1.0, 2.0, 3.0], [100_000.0, 1.0, 1.0], [0.5, 0.1, -0.2]])),
        ("a DCN V2 with Batch Norm on its dense input, in training mode when you get it",
         lambda: _dcn(seed=1, dense_normalization="batch"), _batch(_dense_rows(200.0))),
        ("a stack whose layer `spread` computes E[x^2] - E[x]^2 (inf - inf = NaN in "
         "float16), its head registered before the layers that run first",
         _SpreadStack, {"dense": torch.tensor([[300.0, 310.0, 290.0, 305.0],
                                               [1.0, 2.0, 3.0, 4.0],
                                               [260.0, 270.0, 280.0, 290.0]])}),
    ]


def _snapshot(model: nn.Module) -> dict:
    return {"state": {key: value.detach().clone() for key, value in model.state_dict().items()},
            "training": {name: module.training for name, module in model.named_modules()},
            "hooks": sum(len(module._forward_hooks) + len(module._forward_pre_hooks)
                         for module in model.modules())}


def _changed(name: str, model: nn.Module, before: dict) -> str | None:
    """Why ``model`` is not as ``before`` found it, or None."""
    hooks = sum(len(module._forward_hooks) + len(module._forward_pre_hooks)
                for module in model.modules())
    if hooks > before["hooks"]:
        return (f"{name} left {hooks - before['hooks']} hook(s) on the model it was given: "
                "keep each handle that register_forward_hook returns and call "
                "handle.remove() on it (in a `finally:` block, so the hooks go even when "
                "the forward pass fails).")
    state = model.state_dict()
    for key, value in before["state"].items():
        if state[key].dtype != value.dtype:
            return (f"{name} changed the model it was given: {key} is now "
                    f"{state[key].dtype}, it was {value.dtype}. model.half() casts in "
                    "place: cast a copy, copy.deepcopy(model).half().")
        if not torch.equal(state[key], value):
            return (f"{name} changed the weights of the model it was given ({key}): a "
                    "round trip to float16 and back rounds every weight. Cast a copy, "
                    "copy.deepcopy(model).half(), and leave the model alone.")
    training = {module_name: module.training for module_name, module in model.named_modules()}
    if training != before["training"]:
        return (f"{name} switched the model it was given between training and eval "
                "mode: call .eval() on your float16 copy, not on the caller's model.")
    return None


def check_first_overflow(first_overflow: Callable) -> None:
    """Check ``first_overflow(model, batch) -> str | None`` against ``activation_report``."""
    from ..precision import activation_report

    name = "first_overflow"
    answers = Answers(name, same=operator.eq)
    for case, make_model, batch in _overflow_cases():
        model = make_model()
        got = _first_overflow_of(name, first_overflow, model, batch, case)
        answers.add(got, model, batch)
        report = activation_report(model, batch, "fp16 weights")
        first = report.loc[report["first_non_finite"], "module"]
        expected = str(first.iloc[0]) if len(first) else None
        if got == expected:
            continue
        hint = answers.hint("Cast a copy of the model and the batch's float tensors to "
                            "torch.float16, run it in eval mode with a forward hook on every "
                            "leaf module, and return the name of the first whose output "
                            "holds an inf or a NaN (None if none does).")
        raise AssertionError(f"With {case}: expected {expected!r}, got {got!r}. {hint}")
    correct(f"{name} finds where float16 overflows first, as "
            "ranking.precision.activation_report does, and leaves the model as it was.")


def _first_overflow_of(name: str, first_overflow: Callable, model: nn.Module, batch: dict,
                       case: str) -> str | None:
    """The reader's answer, once it is a name or None and the model is as it was."""
    before = _snapshot(model)
    got = call(first_overflow, model, {key: value.clone() for key, value in batch.items()})
    problem = _changed(name, model, before)
    if problem:
        raise AssertionError(f"With {case}: {problem}")
    if got is not None and not isinstance(got, str):
        raise AssertionError(
            f"With {case}: {name} should return a module's name (a str such as "
            f"'cross.layers.1') or None, got {type(got).__name__}: {got!r}")
    return got


# --------------------------------------------------------------- choose precision
def _largest_cases() -> list[tuple[str, pd.Series, float]]:
    largest = pd.Series({"input.embedding.tables.user_id": 0.03,
                         "input.dense_input.norm": 150.0, "cross.layers.0": 900.0,
                         "cross.layers.1": 7000.0, "mlp.layers.0": 6552.0,
                         "mlp.layers.1": 6552.0, "mlp.layers.2": 30.0,
                         "heads.click": 12.0}, name="largest").rename_axis("module")
    return [("safety 10", largest, 10.0), ("safety 1", largest, 1.0),
            ("safety 100", largest, 100.0)]


def check_choose_precision(choose_precision: Callable) -> None:
    """Check ``choose_precision(largest, safety) -> Series`` of "fp16" / "bf16" per layer."""
    name = "choose_precision"
    answers = Answers(name, same=lambda theirs, got: theirs.astype(object).equals(got))
    for case, largest, safety in _largest_cases():
        got = _formats_of(name, choose_precision, largest, safety).astype(object)
        answers.add(got, largest, safety=safety)
        expected = pd.Series(np.where(largest * safety <= FP16_MAX, "fp16", "bf16"),
                             index=largest.index)
        if got.equals(expected.astype(object)):
            continue
        layer = next(layer for layer in largest.index if got[layer] != expected[layer])
        hint = answers.hint("A layer runs in fp16 when its largest value times the safety "
                            "factor is at most 65504 (torch.finfo(torch.float16).max), else "
                            "in bf16.")
        raise AssertionError(
            f"With {case}, layer {layer!r} (largest |value| {largest[layer]}): expected "
            f"{expected[layer]!r}, got {got[layer]!r}. {hint}")
    correct(f"{name} keeps fp16 where the values fit with room to spare, bf16 elsewhere.")


def _formats_of(name: str, choose_precision: Callable, largest: pd.Series,
                safety: float) -> pd.Series:
    """The reader's Series, once it is indexed like ``largest`` and holds only fp16, bf16."""
    original = largest.copy()
    got = call(choose_precision, largest, safety=safety)
    if not largest.equals(original):
        raise AssertionError(f"{name} changed the Series it was given: return a new one.")
    if not isinstance(got, pd.Series):
        raise AssertionError(
            f"{name} should return a pandas Series indexed like `largest` (one format per "
            f"layer), got {type(got).__name__}: {got!r}")
    if not got.index.equals(largest.index):
        raise AssertionError(
            f"{name} should return a Series with the same index as `largest`, in the same "
            f"order (the layers in the order they ran), got index {list(got.index)}.")
    if set(got) - {"fp16", "bf16"}:
        raise AssertionError(f"{name} should return only the strings 'fp16' and 'bf16', got "
                             f"{sorted(set(got) - {'fp16', 'bf16'})}.")
    return got


# ------------------------------------------------------------- resilient update
def _update_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, dict]]:
    generator = torch.Generator().manual_seed(8)
    rows = 64
    noise = torch.randn(rows, 8, generator=generator)
    batch = torch.stack([
        0.5 + noise[:, 0],                  # healthy
        torch.full((rows,), 3.0),           # constant (an outage's filler)
        2.0 + 1e-3 * noise[:, 2],           # almost constant: variance 1e-6
        10.0 * noise[:, 3],                 # variance 100 times the running one
        0.2 * noise[:, 4],                  # variance 25 times smaller
        5.0 + noise[:, 5],                  # the mean jumps, the variance does not
        2.4 * noise[:, 6],                  # variance 5 times larger: masked at 4, not 10
        0.1 * noise[:, 7],                  # small but steady variance, about 0.01
    ], dim=1)
    mean = torch.tensor([0.4, -1.0, 2.0, 0.1, 0.0, 0.3, -0.2, 0.0])
    var = torch.tensor([1.1, 2.0, 0.5, 1.0, 1.0, 0.9, 1.0, 0.012])
    default = dict(momentum=0.1, minimal_variance=1e-4, variance_shift_threshold=10.0)
    other = dict(momentum=0.3, minimal_variance=0.05, variance_shift_threshold=4.0)
    # every column of the edge batch has the unbiased variance 4 exactly (0.5 * 8, 32 / 8)
    base = torch.tensor([2.0, -2.0, 2.0, -2.0, 0.0])
    edge = torch.stack([base + 1.0, base - 3.0, base, base + 2.0], dim=1)
    edge_mean = torch.tensor([0.0, 0.0, 1.0, 1.0])
    edge_var = torch.tensor([0.5, 32.0, 4.0, 4.0])
    edge_options = dict(momentum=0.25, minimal_variance=4.0, variance_shift_threshold=8.0)
    return [
        ("the default settings (momentum 0.1, minimal_variance 1e-4, threshold 10)",
         mean, var, batch, default),
        ("momentum 0.3, minimal_variance 0.05, threshold 4", mean, var, batch, other),
        ("a batch whose every column has variance exactly 4, with minimal_variance 4 and "
         "running variances 0.5, 32, 4, 4 under threshold 8 (ratios 8, 1/8, 1, 1: all on "
         "or inside the edges, so none is masked)", edge_mean, edge_var, edge, edge_options),
    ]


def _reference_update(mean, var, batch, momentum, minimal_variance, variance_shift_threshold):
    from ..nn import ResilientBatchNorm1d

    norm = ResilientBatchNorm1d(len(mean), momentum=momentum,
                                minimal_variance=minimal_variance,
                                variance_shift_threshold=variance_shift_threshold,
                                warmup_batches=0)
    with torch.no_grad():
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)
    norm.train()
    norm(batch)
    return (norm.running_mean.clone(), norm.running_var.clone(),
            norm.masked_updates.bool().clone())


def _as_tensor(name: str, what: str, value, shape: tuple) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(np.asarray(value.detach() if isinstance(value, torch.Tensor)
                                            else value))
    except (TypeError, ValueError):
        raise AssertionError(f"{name} should return {what} as a tensor, got "
                             f"{type(value).__name__}") from None
    if tuple(tensor.shape) != shape:
        raise AssertionError(f"{name} should return {what} of shape {shape} (one value per "
                             f"column), got shape {tuple(tensor.shape)}.")
    return tensor


def check_resilient_update(resilient_update: Callable) -> None:
    """Check ``resilient_update(...) -> (mean, var, mask)`` against ``ResilientBatchNorm1d``."""
    name = "resilient_update"
    answers = Answers(name, same=_same_update)
    for case, mean, var, batch, options in _update_cases():
        got = _update_of(name, resilient_update, mean, var, batch, options)
        answers.add(got, mean, var, batch, **options)
        expected = _reference_update(mean, var, batch, **options)
        if _same_update(expected, got):
            continue
        hint = answers.hint("Mask a column when its unbiased batch variance is below "
                            "minimal_variance or batch_var / running_var is outside "
                            "[1 / threshold, threshold]; masked columns keep their "
                            "statistics, the others get (1 - momentum) * running + momentum "
                            "* batch.")
        raise AssertionError(f"With {case}, {_first_wrong_column(got, expected)}. {hint}")
    correct(f"{name} updates the running statistics as "
            "ranking.nn.ResilientBatchNorm1d does, broken columns left alone.")


def _update_of(name: str, resilient_update: Callable, mean: torch.Tensor, var: torch.Tensor,
               batch: torch.Tensor, options: dict) -> tuple:
    """The reader's (new_mean, new_var, mask) in float64 and bool, its inputs unchanged."""
    inputs = (mean.clone(), var.clone(), batch.clone())
    got = call(resilient_update, *inputs, **options)
    for given, kept, what in zip(inputs, (mean, var, batch),
                                 ("running_mean", "running_var", "batch")):
        if not torch.equal(given, kept):
            raise AssertionError(
                f"{name} changed its argument {what} in place: compute new tensors "
                "(torch.where, or arithmetic that is not an in-place _ method) and "
                "return them; the caller's statistics must stay as they were.")
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        raise AssertionError(f"{name} should return three tensors (new_mean, new_var, "
                             f"mask), got {type(got).__name__}")
    shape = tuple(mean.shape)
    mask = _as_tensor(name, "mask", got[2], shape)
    if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
        raise AssertionError(f"{name}'s mask should be True / False per column, got "
                             f"{mask.tolist()}")
    return (_as_tensor(name, "new_mean", got[0], shape).double(),
            _as_tensor(name, "new_var", got[1], shape).double(), mask.bool())


def _same_update(theirs: tuple, got: tuple) -> bool:
    """Whether two updates agree: the same mask, and statistics equal to rounding."""
    return (torch.equal(torch.as_tensor(theirs[2]).bool(), got[2])
            and all(torch.allclose(torch.as_tensor(a).double(), b, rtol=1e-5, atol=1e-6)
                    for a, b in zip(theirs[:2], got[:2])))


def _first_wrong_column(got: tuple, expected: tuple) -> str:
    """What the first column that differs should hold, and what it holds."""
    expected = (expected[0].double(), expected[1].double(), expected[2])
    k = next(k for k in range(len(got[0]))
             if got[2][k] != expected[2][k]
             or not torch.isclose(got[0][k], expected[0][k], rtol=1e-5, atol=1e-6)
             or not torch.isclose(got[1][k], expected[1][k], rtol=1e-5, atol=1e-6))
    return (f"column {k}: expected mean {float(expected[0][k]):.6g}, var "
            f"{float(expected[1][k]):.6g}, masked {bool(expected[2][k])}; got mean "
            f"{float(got[0][k]):.6g}, var {float(got[1][k]):.6g}, masked {bool(got[2][k])}")


# -------------------------------------------------------------- masked variance
def _variance_case() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A batch of six columns, their running variances, and what each column is."""
    generator = torch.Generator().manual_seed(9)
    noise = torch.randn(64, 6, generator=generator)
    batch = torch.stack([noise[:, 0], torch.full((64,), 2.0), 10.0 * noise[:, 2],
                         0.05 * noise[:, 3], noise[:, 4], 1.5 * noise[:, 5]], dim=1)
    running_var = torch.tensor([0.8, 1.0, 1.0, 1.0, 0.003, 1.0])
    what = ["a healthy column (not masked)", "a constant column (masked)",
            "a column whose variance grew 100 times (masked)",
            "a column whose variance fell 400 times (masked)",
            "a healthy column whose running variance had drifted down to 0.003 (masked)",
            "a column whose variance grew 2.25 times, inside the threshold (not masked)"]
    return batch, running_var, what


def check_masked_variance(masked_variance: Callable) -> None:
    """Check ``masked_variance(running_var, batch_var, mask) -> (C,)``: normalizing with
    it must give ``ResilientBatchNorm1d``'s output in training."""
    from ..nn import ResilientBatchNorm1d

    name = "masked_variance"
    batch, running_var, what = _variance_case()
    layer = ResilientBatchNorm1d(6, affine=False, warmup_batches=0, accept_shift_after=None)
    with torch.no_grad():
        layer.running_var.copy_(running_var)
    expected = layer(batch)
    running_var, mask = layer.running_var.clone(), layer.masked_updates.bool()
    batch_var = batch.var(dim=0)
    inputs = (running_var.clone(), batch_var.clone(), mask.clone())
    theirs = _as_tensor(name, "the variances", call(masked_variance, *inputs), (6,))
    if not all(torch.equal(a, b) for a, b in zip(inputs, (running_var, batch_var, mask))):
        raise AssertionError(f"{name} changed its arguments in place: return a new tensor.")
    got = F.batch_norm(batch, layer.running_mean, theirs.float(), None, None, False, 0.0,
                       layer.eps)
    close = torch.isclose(got, expected, rtol=1e-4, atol=1e-5).all(dim=0)
    if bool(close.all()):
        correct(f"{name} gives the variance ResilientBatchNorm1d normalizes each column "
                "with: the running one, or a masked column's own when it is larger.")
        return
    answers = Answers(name, same=lambda a, b: torch.allclose(torch.as_tensor(a).double(),
                                                              b.double(), rtol=1e-5))
    answers.add(theirs, *inputs)
    k = int((~close).nonzero()[0])
    hint = answers.hint("Keep the running variance, except for a masked column whose "
                        "batch variance is larger: that one takes its batch variance.")
    raise AssertionError(f"Column {k}, {what[k]}: normalized with your variance "
                         f"{float(theirs[k]):.4g}, its outputs differ from the layer's. "
                         f"{hint}")
