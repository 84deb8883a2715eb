"""Checks for lab 8, sixteen bits (labs/08_sixteen_bits.ipynb).

Exercises: the first layer whose output overflows when a model runs in float16
(forward hooks), the choice of fp16 or bf16 for each layer from the largest
activations of a float32 run, and the running-statistics update of Resilient
Batch Norm.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._common import _call, _correct, _hint

__all__ = ["check_first_overflow", "check_choose_precision", "check_resilient_update"]

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


def _trace(model: nn.Module, batch: dict, *, dtype: torch.dtype | None = torch.float16,
           autocast: bool = False, leaves_only: bool = True,
           train: bool = False) -> list[dict]:
    """What each module's output held, in call order, on a copy of ``model``."""
    model = copy.deepcopy(model)
    if dtype is not None and not autocast:
        model = model.to(dtype)
        batch = {key: value.to(dtype) if value.is_floating_point() else value
                 for key, value in batch.items()}
    model.train(train)
    rows: list[dict] = []

    def record(name: str):
        def hook(module, inputs, output) -> None:
            if isinstance(output, torch.Tensor) and output.is_floating_point():
                values = output.detach().float()
                finite = torch.isfinite(values)
                rows.append({"module": name, "linear": isinstance(module, nn.Linear),
                             "inf": bool(torch.isinf(values).any()),
                             "bad": bool((~finite).any()), "all_bad": bool((~finite).all()),
                             "largest": float(values[finite].abs().max())
                             if finite.any() else 0.0})
        return hook

    handles = [module.register_forward_hook(record(name))
               for name, module in model.named_modules()
               if name and (not leaves_only or not list(module.children()))]
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16, enabled=autocast):
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return rows


def _first(rows: list[dict], key: str = "bad") -> str | None:
    return next((row["module"] for row in rows if row[key]), None)


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


def _overflow_suspects(model: nn.Module, batch: dict, expected: str | None) -> dict:
    """What each planted mistake of ``first_overflow`` would answer on this case."""
    leaves = _trace(model, batch)
    broken = [row for row in leaves if row["bad"]]
    order = [module_name for module_name, _ in model.named_modules()]
    return {
        "float32": _first(_trace(model, batch, dtype=None)),
        "bfloat16": _first(_trace(model, batch, dtype=torch.bfloat16)),
        "prefix": None if expected is None else f"model.{expected}",
        "registration": min((row["module"] for row in broken), key=order.index,
                            default=None),
        "last": broken[-1]["module"] if broken else None,
        "largest": max(leaves, key=lambda row: row["largest"])["module"],
        "containers": _first(_trace(model, batch, leaves_only=False)),
        "inf only": _first(leaves, "inf"),
        "all": _first(leaves, "all_bad"),
        "train": _first(_trace(model, batch, train=True)),
        "autocast": _first(_trace(model, batch, autocast=True)),
        "linear": next((row["module"] for row in broken if row["linear"]), None),
    }


_OVERFLOW_HINTS = {
    "float32": "That is the answer in float32: cast a copy of the model and the batch's "
               "float tensors to torch.float16 before running it.",
    "bfloat16": "That is the answer in bfloat16, whose range is float32's: cast to "
                "torch.float16 (largest number 65504).",
    "prefix": "The names carry a 'model.' prefix: that is what CastModel's named_modules() "
              "gives. Name each module as the model given to you does (strip the prefix, "
              "or cast a copy with copy.deepcopy(model)).",
    "registration": "Modules are not always called in the order they were registered "
                    "(named_modules() order): record the outputs in the order the hooks "
                    "fire.",
    "last": "That is the LAST module whose output is not finite: once an inf appears it "
            "flows into every later layer. Return the first.",
    "largest": "That is the module with the largest finite output. Look for the first "
               "output holding an inf or a NaN: torch.isfinite(output).all() is False.",
    "containers": "That module contains others: hook only the leaves (modules without "
                  "children, not list(module.children())). A container's hook runs after "
                  "those of the layers inside it.",
    "inf only": "A NaN counts too: in float16, E[x^2] - E[x]^2 can be inf - inf = NaN with "
                "no inf in the output. Test ~torch.isfinite(output).",
    "all": "One non-finite value is enough: test (~torch.isfinite(output)).any(), not "
           ".all().",
    "train": "Run the copy in eval mode, as it serves: in training mode Batch Norm "
             "normalizes with the batch's own statistics.",
    "autocast": "Under torch.autocast only the linear layers run in 16 bits; inputs, "
                "products and sums stay in float32. Cast the whole copy (weights and the "
                "batch's float inputs) to float16.",
    "linear": "Hook every leaf module, not only the nn.Linear layers: an overflow can show "
              "first elsewhere (an input above 65504 is inf as soon as it is cast).",
}


def check_first_overflow(first_overflow: Callable) -> None:
    """Check ``first_overflow(model, batch) -> str | None`` against ``activation_report``."""
    from ..precision import activation_report

    name = "first_overflow"
    ruled_out: set[str] = set()          # mistakes an earlier case already showed absent
    for case, make_model, batch in _overflow_cases():
        model = make_model()
        before = _snapshot(model)
        got = _call(first_overflow, model, {key: value.clone() for key, value in batch.items()})
        problem = _changed(name, model, before)
        if problem:
            raise AssertionError(f"With {case}: {problem}")
        report = activation_report(model, batch, "fp16 weights")
        first = report.loc[report["first_non_finite"], "module"]
        expected = str(first.iloc[0]) if len(first) else None
        if got is not None and not isinstance(got, str):
            raise AssertionError(
                f"With {case}: {name} should return a module's name (a str such as "
                f"'cross.layers.1') or None, got {type(got).__name__}: {got!r}")
        suspects = _overflow_suspects(model, batch, expected)
        if got == expected:
            ruled_out |= {key for key, value in suspects.items() if value != expected}
            continue
        hint = _hint([_OVERFLOW_HINTS[key] for key, value in suspects.items()
                      if value == got and key not in ruled_out],
                     "Cast a copy of the model and the batch's float tensors to "
                     "torch.float16, run it in eval mode with a forward hook on every leaf "
                     "module, and return the name of the first whose output holds an inf "
                     "or a NaN (None if none does).")
        raise AssertionError(f"With {case}: expected {expected!r}, got {got!r}. {hint}")
    _correct(f"{name} finds where float16 overflows first, as "
             "ranking.precision.activation_report does, and leaves the model as it was.")


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
    for case, largest, safety in _largest_cases():
        original = largest.copy()
        got = _call(choose_precision, largest, safety=safety)
        if not largest.equals(original):
            raise AssertionError(f"{name} changed the Series it was given: return a new one.")
        if not isinstance(got, pd.Series):
            raise AssertionError(
                f"{name} should return a pandas Series indexed like `largest` (one "
                f"format per layer), got {type(got).__name__}: {got!r}")
        if not got.index.equals(largest.index):
            raise AssertionError(
                f"{name} should return a Series with the same index as `largest`, in the "
                f"same order (the layers in the order they ran), got index "
                f"{list(got.index)}.")
        expected = pd.Series(np.where(largest * safety <= FP16_MAX, "fp16", "bf16"),
                             index=largest.index)
        if got.astype(object).equals(expected.astype(object)):
            continue
        wrong = [layer for layer in largest.index if got[layer] != expected[layer]]
        layer = wrong[0]
        value = largest[layer]

        def choice(fits) -> pd.Series:
            return pd.Series(np.where(fits, "fp16", "bf16"), index=largest.index)

        suspects = {
            "strings": None,
            "swapped": choice(largest * safety > FP16_MAX),
            "no safety": choice(largest <= FP16_MAX),
            "divided": choice(largest / safety <= FP16_MAX),
            "65536": choice(largest * safety < 2 ** 16),
            "default safety": choice(largest * 10.0 <= FP16_MAX),
            "global": None,
        }
        hints = {
            "strings": "Return only the strings 'fp16' and 'bf16'.",
            "swapped": "fp16 and bf16 are swapped: fp16 has the finer mantissa (10 bits) "
                       "but only reaches 65504, so it is the choice where the values fit.",
            "no safety": "Multiply each layer's largest value by the safety factor before "
                         "comparing with 65504, so that a batch a little larger than this "
                         "one still fits.",
            "divided": "Multiply by the safety factor, do not divide: the room is kept "
                       "above the largest value seen.",
            "65536": f"{value:g} x {safety:g} = {value * safety:g} is above fp16's "
                     "largest number, 65504 (torch.finfo(torch.float16).max), not "
                     "2**16 = 65536.",
            "default safety": "Use the `safety` argument, not a fixed 10.",
            "global": "Choose each layer on its own: one layer over the limit does not "
                      "stop the others from running in fp16.",
        }
        matches = []
        for key, suspect in suspects.items():
            if key == "strings":
                hit = bool(set(got) - {"fp16", "bf16"})
            elif key == "global":
                hit = not matches and got.nunique() == 1 and expected.nunique() > 1
            else:
                hit = got.astype(object).equals(suspect.astype(object))
            if hit:
                matches.append(hints[key])
        hint = _hint(matches, "A layer runs in fp16 when its largest value times the safety "
                              "factor is at most 65504 (torch.finfo(torch.float16).max), "
                              "else in bf16.")
        raise AssertionError(
            f"With {case}, layer {layer!r} (largest |value| {value}): expected "
            f"{expected[layer]!r}, got {got[layer]!r}. {hint}")
    _correct(f"{name} keeps fp16 where the values fit with room to spare, bf16 elsewhere.")


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


def _variant(mean, var, batch, momentum, minimal_variance, variance_shift_threshold, *,
             unbiased=True, up=True, down=True, inclusive=False, minimal_inclusive=False,
             update_all=False, reverse_momentum=False, swapped=False, no_minimal=False):
    """A wrong version of the update, for the hints."""
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0, unbiased=unbiased)
    ratio = batch_var / var
    t = variance_shift_threshold
    too_small = ((batch_var <= minimal_variance) if minimal_inclusive
                 else (batch_var < minimal_variance))
    high = (ratio >= t) if inclusive else (ratio > t)
    low = (ratio <= 1 / t) if inclusive else (ratio < 1 / t)
    mask = (too_small & (not no_minimal)) | (high & up) | (low & down)
    keep = torch.ones_like(mask) if update_all else (mask if swapped else ~mask)
    rate = (1 - momentum) if reverse_momentum else momentum
    new_mean = torch.where(keep, (1 - rate) * mean + rate * batch_mean, mean)
    new_var = torch.where(keep, (1 - rate) * var + rate * batch_var, var)
    return new_mean, new_var, mask


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
    for case, mean, var, batch, options in _update_cases():
        inputs = (mean.clone(), var.clone(), batch.clone())
        got = _call(resilient_update, *inputs, **options)
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
        new_mean = _as_tensor(name, "new_mean", got[0], shape).double()
        new_var = _as_tensor(name, "new_var", got[1], shape).double()
        mask = _as_tensor(name, "mask", got[2], shape)
        if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
            raise AssertionError(f"{name}'s mask should be True / False per column, got "
                                 f"{mask.tolist()}")
        mask = mask.bool()
        expected = _reference_update(mean, var, batch, **options)
        same_mask = torch.equal(mask, expected[2])
        close = (torch.allclose(new_mean, expected[0].double(), rtol=1e-5, atol=1e-6)
                 and torch.allclose(new_var, expected[1].double(), rtol=1e-5, atol=1e-6))
        if same_mask and close:
            continue
        defaults = dict(momentum=options["momentum"], minimal_variance=1e-4,
                        variance_shift_threshold=10.0)
        variants = {
            "biased": dict(unbiased=False),
            "up only": dict(down=False),
            "down only": dict(up=False),
            "no minimal": dict(no_minimal=True),
            "inclusive": dict(inclusive=True),
            "minimal inclusive": dict(minimal_inclusive=True),
            "update all": dict(update_all=True),
            "swapped": dict(swapped=True),
            "reverse momentum": dict(reverse_momentum=True),
        }
        hints = {
            "mask inverted": "The mask is inverted: True marks a column kept OUT of the "
                             "update (a broken one).",
            "biased": "Use the unbiased batch variance (divide by B - 1), as Batch Norm's "
                      "running variance does: batch.var(dim=0, unbiased=True).",
            "up only": "A variance that FALLS by more than the factor is suspect too (a "
                       "feature going constant): mask ratio < 1 / threshold as well.",
            "down only": "A variance that RISES by more than the factor is suspect too: "
                         "mask ratio > threshold as well.",
            "no minimal": "A column whose batch variance is below minimal_variance is "
                          "masked even when its running variance is as small.",
            "inclusive": "A ratio exactly equal to the threshold (or to 1 / threshold) is "
                         "still inside [1 / threshold, threshold]: mask only ratios "
                         "strictly outside.",
            "minimal inclusive": "A variance exactly equal to minimal_variance is allowed: "
                                 "mask only variances strictly below it.",
            "update all": "Masked columns must keep their old statistics: apply the "
                          "moving average only where the mask is False.",
            "swapped": "The moving average went to the masked columns and the others kept "
                       "their statistics: torch.where(mask, old, new), not "
                       "torch.where(mask, new, old).",
            "reverse momentum": "Batch Norm's momentum is the weight of the NEW batch: "
                                "running = (1 - momentum) * running + momentum * batch.",
            "defaults": "Use the arguments minimal_variance and variance_shift_threshold, "
                        "not the default values.",
        }

        def same(result) -> bool:
            return (torch.equal(mask, result[2])
                    and torch.allclose(new_mean, result[0].double(), rtol=1e-5, atol=1e-6)
                    and torch.allclose(new_var, result[1].double(), rtol=1e-5, atol=1e-6))

        matches = [hints[key] for key, variant in variants.items()
                   if same(_variant(mean, var, batch, **options, **variant))]
        if close and torch.equal(mask, ~expected[2]):
            matches.insert(0, hints["mask inverted"])
        if defaults != options and same(_variant(mean, var, batch, **defaults)):
            matches.append(hints["defaults"])
        hint = _hint(matches, "Mask a column when its unbiased batch variance is below "
                              "minimal_variance or batch_var / running_var is outside "
                              "[1 / threshold, threshold]; masked columns keep their "
                              "statistics, the others get (1 - momentum) * running + "
                              "momentum * batch.")
        columns = [k for k in range(len(mean))
                   if mask[k] != expected[2][k]
                   or not torch.isclose(new_mean[k], expected[0][k].double(), rtol=1e-5,
                                        atol=1e-6)
                   or not torch.isclose(new_var[k], expected[1][k].double(), rtol=1e-5,
                                        atol=1e-6)]
        k = columns[0]
        raise AssertionError(
            f"With {case}, column {k}: expected mean {float(expected[0][k]):.6g}, var "
            f"{float(expected[1][k]):.6g}, masked {bool(expected[2][k])}; got mean "
            f"{float(new_mean[k]):.6g}, var {float(new_var[k]):.6g}, masked "
            f"{bool(mask[k])}. {hint}")
    _correct(f"{name} updates the running statistics as "
             "ranking.nn.ResilientBatchNorm1d does, broken columns left alone.")
