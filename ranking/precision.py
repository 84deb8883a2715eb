"""Running a model in 16 bits, and finding where 16 bits break it.

Two ways to run a float32 model in 16 bits:

- **autocast** (``"bf16"``, ``"fp16"``): ``torch.autocast`` runs matrix
  multiplies (linear layers) in 16 bits and keeps reductions, softmax, norms
  and the loss in float32: the usual way to serve and train.
- **weights** (``"bf16 weights"``, ``"fp16 weights"``): the whole model and its
  float inputs cast to 16 bits, every operation in 16 bits. Half the memory,
  and nothing left in float32 to catch a large value.

fp16 keeps 10 bits of mantissa but only 5 of exponent: nothing above 65504.
bf16 keeps float32's 8 exponent bits (up to 3.4e38) and only 7 of mantissa.
So fp16 fails by overflowing to inf, bf16 by rounding.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import checks
from .batches import to_device
from .checks import TensorDict, num_rows
from .nn.cross import CrossNetV2
from .train import PRECISIONS, eval_mode, predict

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16,
                                  "fp16": torch.float16}
"""The three float formats of this chapter, by short name."""

PRECISION_MODES = ("fp32", "bf16", "fp16", "bf16 weights", "fp16 weights")
"""How ``run_in`` and ``predict_in`` can run a model: autocast, or weights cast."""


def dtype_table() -> pd.DataFrame:
    """Each format's bits, largest value, smallest normal value and epsilon (torch.finfo)."""
    rows = {}
    for name, dtype in DTYPES.items():
        info = torch.finfo(dtype)
        exponent_bits = {torch.float32: 8, torch.bfloat16: 8, torch.float16: 5}[dtype]
        rows[name] = {"bits": info.bits, "exponent bits": exponent_bits,
                      "mantissa bits": info.bits - 1 - exponent_bits,
                      "largest": info.max, "smallest normal": info.tiny,
                      "epsilon": info.eps,
                      "decimal digits": round(-math.log10(info.resolution))}
    return pd.DataFrame(rows).T.rename_axis("format")


class CastModel(nn.Module):
    """A copy of ``model`` with every floating weight and buffer in ``dtype``.

    Its forward casts the batch's float inputs to ``dtype`` too (ids stay
    integers, labels are left alone) and returns the logits in float32, so
    it scores with ``ranking.train.predict`` like any model.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        if dtype not in (torch.float16, torch.bfloat16, torch.float32):
            raise ValueError(f"dtype must be float16, bfloat16 or float32, got {dtype}")
        self.model = copy.deepcopy(model).to(dtype)
        self.dtype = dtype

    def forward(self, batch: TensorDict) -> dict[str, torch.Tensor]:
        cast = {}
        for key, value in batch.items():
            is_input = value.is_floating_point() and not key.startswith("label_")
            cast[key] = value.to(self.dtype) if is_input else value
        return {task: logit.float() for task, logit in self.model(cast).items()}


@contextlib.contextmanager
def run_in(model: nn.Module, mode: str) -> Iterator[nn.Module]:
    """``with run_in(model, mode) as runnable:``, ``runnable(batch)`` runs in mode.

    Autocast modes yield ``model`` inside an autocast block; weight modes yield a
    ``CastModel`` copy (the original is not touched).
    """
    checks.one_of("mode", mode, PRECISION_MODES)
    if mode.endswith(" weights"):
        yield CastModel(model, DTYPES[mode.split()[0]])
        return
    device = next(model.parameters()).device
    dtype = PRECISIONS[mode]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        yield model


def predict_in(model: nn.Module, data: TensorDict, mode: str, **predict_options) -> dict[str, np.ndarray]:
    """``ranking.train.predict`` in one of ``PRECISION_MODES`` (weight modes score a cast copy)."""
    checks.one_of("mode", mode, PRECISION_MODES)
    if mode.endswith(" weights"):
        return predict(CastModel(model, DTYPES[mode.split()[0]]), data, **predict_options)
    return predict(model, data, precision=mode, **predict_options)


class Float32(nn.Module):
    """Runs ``module`` in float32 even inside an autocast block: inputs cast up, autocast off."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast(inputs[0].device.type, enabled=False):
            return self.module(*(x.float() for x in inputs))


def keep_in_fp32(model: nn.Module, *names: str) -> nn.Module:
    """A copy of ``model`` whose submodules ``names`` stay float32 in autocast.

    The rest of the model still runs in the autocast dtype: the mixed-precision
    recipe of keeping a sensitive layer in float32 and the large ones in 16 bits.
    """
    model = copy.deepcopy(model)
    for name in names:
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child_name, Float32(model.get_submodule(name)))
    return model


def _largest(tensor: torch.Tensor) -> float:
    """Largest finite |value| (inf and NaN left out; 0 for an all-infinite tensor)."""
    finite = tensor[torch.isfinite(tensor)]
    return float(finite.abs().max()) if finite.numel() else 0.0


def activation_report(model: nn.Module, batch: TensorDict, mode: str = "fp32") -> pd.DataFrame:
    """One row per leaf module, in the order they ran: what its output held.

    Columns: module (its name in the model), kind (class), dtype of the output,
    largest |finite value|, non_finite (share of output values that are inf or
    NaN) and first_non_finite (True on the first module whose output holds one:
    where the trouble starts). Forward hooks read every output on the way.
    """
    checks.one_of("mode", mode, PRECISION_MODES)
    num_rows(batch, "batch")
    batch = to_device(batch, next(model.parameters()).device)
    rows: list[dict] = []

    def record(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            if isinstance(output, torch.Tensor) and output.is_floating_point():
                values = output.detach()
                rows.append({"module": name, "kind": type(module).__name__,
                             "dtype": str(values.dtype).removeprefix("torch."),
                             "largest": _largest(values.float()),
                             "non_finite": float((~torch.isfinite(values)).float().mean())})
        return hook

    with run_in(model, mode) as runnable, torch.no_grad(), eval_mode(runnable):
        handles = [module.register_forward_hook(record(name.removeprefix("model.")))
                   for name, module in runnable.named_modules()
                   if not list(module.children())]
        try:
            runnable(batch)
        finally:
            for handle in handles:
                handle.remove()
    report = pd.DataFrame(rows, columns=["module", "kind", "dtype", "largest", "non_finite"])
    broken = report["non_finite"] > 0
    report["first_non_finite"] = broken & (broken.cumsum() == 1)
    return report


def cross_layer_report(model: nn.Module, batch: TensorDict, mode: str = "fp32") -> pd.DataFrame:
    """For a model with a ``CrossNetV2`` (``model.cross``): the size of x_l after each layer.

    Rows: layer 0 is x0 (the input vector), layer l the output of cross layer l.
    Columns: largest |finite value|, the share of rows with an inf or NaN
    entry, and dtype. The cross layer's x0 * (W x_l + b) multiplies by the
    input once per layer, so a large input grows like a power of itself.
    """
    checks.one_of("mode", mode, PRECISION_MODES)
    cross = getattr(model, "cross", None)
    if not isinstance(cross, CrossNetV2):
        raise TypeError(f"{type(model).__name__} has no CrossNetV2 at .cross")
    batch = to_device(batch, next(model.parameters()).device)
    inputs: list[torch.Tensor] = []
    with run_in(model, mode) as runnable, torch.no_grad(), eval_mode(runnable):
        network = runnable.model if isinstance(runnable, CastModel) else runnable
        handle = network.cross.register_forward_hook(
            lambda module, args, output: inputs.append(args[0]))
        try:
            runnable(batch)
        finally:
            handle.remove()
        x0 = x = inputs[0]                                   # (B, X)
        layers = [x0]
        for linear in network.cross.layers:
            x = x0 * linear(x) + x                           # as CrossNetV2.forward
            layers.append(x)
    rows = [{"layer": index, "largest": _largest(x.float()),
             "rows_non_finite": float((~torch.isfinite(x)).any(dim=1).float().mean()),
             "dtype": str(x.dtype).removeprefix("torch.")}
            for index, x in enumerate(layers)]
    return pd.DataFrame(rows).set_index("layer")


def agreement(reference: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """How far ``probabilities`` land from ``reference`` (say fp32's), row by row.

    non_finite: share of rows without a usable prediction (inf or NaN);
    max_abs_diff and mean_abs_diff: over the finite rows.
    """
    reference = np.asarray(reference, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if reference.shape != probabilities.shape:
        raise ValueError(f"reference and probabilities differ in shape: "
                         f"{reference.shape} vs {probabilities.shape}")
    finite = np.isfinite(probabilities)
    difference = np.abs(probabilities[finite] - reference[finite])
    return {"non_finite": float(1 - finite.mean()),
            "max_abs_diff": float(difference.max()) if difference.size else float("nan"),
            "mean_abs_diff": float(difference.mean()) if difference.size else float("nan")}
