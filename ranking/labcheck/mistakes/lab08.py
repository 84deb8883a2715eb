"""Known mistakes of lab 8, sixteen bits (labs/08_sixteen_bits.ipynb).

Exercises: ``first_overflow``, ``choose_precision``, ``resilient_update`` and
``masked_variance``.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..common import mistake


# ------------------------------------------------------------------ first overflow
def _cast(model, batch, dtype=torch.float16):
    """A copy of the model, and the batch with its float tensors, in ``dtype``."""
    inputs = {key: value.to(dtype) if value.is_floating_point() else value
              for key, value in batch.items()}
    return copy.deepcopy(model).to(dtype), inputs


def _leaves(model):
    return [(name, module) for name, module in model.named_modules()
            if not list(module.children())]


def _not_finite(output) -> bool:
    return not torch.isfinite(output).all()


def _broken(model, inputs, modules, is_broken=_not_finite) -> list[str]:
    """Names of the ``modules`` whose output ``is_broken``, in the order they run."""
    broken = []
    handles = [module.register_forward_hook(
                   lambda module, args, out, name=name:
                   broken.append(name) if is_broken(out) else None)
               for name, module in modules]
    with torch.no_grad():
        model(inputs)
    for handle in handles:
        handle.remove()
    return broken


@mistake("first_overflow",
         hint="That is the answer in float32: cast a copy of the model and the batch's float "
              "tensors to torch.float16 before running it.")
def no_cast(model, batch):
    copied = copy.deepcopy(model).eval()
    broken = _broken(copied, batch, _leaves(copied))
    return broken[0] if broken else None


@mistake("first_overflow",
         hint="That is the answer in bfloat16, whose range is float32's: cast to "
              "torch.float16 (largest number 65504).")
def bfloat16_not_float16(model, batch):
    bf16, inputs = _cast(model, batch, torch.bfloat16)
    broken = _broken(bf16.eval(), inputs, _leaves(bf16))
    return broken[0] if broken else None


@mistake("first_overflow",
         hint="That is the LAST module whose output is not finite: once an inf appears it "
              "flows into every later layer. Return the first.")
def last_overflow(model, batch):
    fp16, inputs = _cast(model, batch)
    broken = _broken(fp16.eval(), inputs, _leaves(fp16))
    return broken[-1] if broken else None


@mistake("first_overflow",
         hint="That is the module with the largest finite output. Look for the first output "
              "holding an inf or a NaN: torch.isfinite(output).all() is False.")
def largest_output(model, batch):
    fp16, inputs = _cast(model, batch)
    fp16.eval()
    largest = {}

    def hook_for(name):
        def hook(module, args, out):
            finite = out[torch.isfinite(out)]
            largest[name] = float(finite.abs().max()) if finite.numel() else 0.0
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in _leaves(fp16)]
    with torch.no_grad():
        fp16(inputs)
    for handle in handles:
        handle.remove()
    return max(largest, key=largest.get)


@mistake("first_overflow")
def hooks_left_on_the_callers_model(model, batch):
    broken = []
    for name, module in _leaves(model):
        module.register_forward_hook(
            lambda module, args, out, name=name:
            broken.append(name) if _not_finite(out) else None)
    fp16, inputs = _cast(model, batch)                  # the hooks come along
    with torch.no_grad():
        fp16.eval()(inputs)
    return broken[0] if broken else None


@mistake("first_overflow")
def callers_model_cast_in_place(model, batch):
    was_training = model.training
    model.half().eval()
    inputs = {key: value.half() if value.is_floating_point() else value
              for key, value in batch.items()}
    broken = _broken(model, inputs, _leaves(model))
    model.train(was_training)
    return broken[0] if broken else None


@mistake("first_overflow")
def callers_model_cast_and_back(model, batch):
    was_training = model.training
    model.half().eval()
    inputs = {key: value.half() if value.is_floating_point() else value
              for key, value in batch.items()}
    try:
        broken = _broken(model, inputs, _leaves(model))
    finally:
        model.float().train(was_training)
    return broken[0] if broken else None


@mistake("first_overflow")
def eval_on_the_callers_model(model, batch):
    model.eval()
    fp16, inputs = _cast(model, batch)
    broken = _broken(fp16, inputs, _leaves(fp16))
    return broken[0] if broken else None


@mistake("first_overflow",
         hint="Run the copy in eval mode, as it serves: in training mode Batch Norm "
              "normalizes with the batch's own statistics.")
def copy_in_training_mode(model, batch):
    fp16, inputs = _cast(model, batch)
    broken = _broken(fp16, inputs, _leaves(fp16))
    return broken[0] if broken else None


@mistake("first_overflow",
         hint="Under torch.autocast only the linear layers run in 16 bits; inputs, products "
              "and sums stay in float32. Cast the whole copy (weights and the batch's float "
              "inputs) to float16.")
def autocast_not_cast(model, batch):
    copied = copy.deepcopy(model).eval()
    with torch.autocast("cpu", dtype=torch.float16):
        broken = _broken(copied, batch, _leaves(copied))
    return broken[0] if broken else None


@mistake("first_overflow",
         hint="A NaN counts too: in float16, E[x^2] - E[x]^2 can be inf - inf = NaN with no "
              "inf in the output. Test ~torch.isfinite(output).")
def inf_only(model, batch):
    fp16, inputs = _cast(model, batch)
    broken = _broken(fp16.eval(), inputs, _leaves(fp16),
                     is_broken=lambda out: torch.isinf(out).any())
    return broken[0] if broken else None


@mistake("first_overflow",
         hint="One non-finite value is enough: test (~torch.isfinite(output)).any(), not "
              ".all().")
def entirely_non_finite_only(model, batch):
    fp16, inputs = _cast(model, batch)
    broken = _broken(fp16.eval(), inputs, _leaves(fp16),
                     is_broken=lambda out: (~torch.isfinite(out)).all())
    return broken[0] if broken else None


@mistake("first_overflow",
         hint="That module contains others: hook only the leaves (modules without children, "
              "not list(module.children())). A container's hook runs after those of the "
              "layers inside it.")
def containers_hooked_too(model, batch):
    fp16, inputs = _cast(model, batch)
    every_module = [(name, module) for name, module in fp16.named_modules() if name]
    broken = _broken(fp16.eval(), inputs, every_module,
                     is_broken=lambda out: isinstance(out, torch.Tensor) and _not_finite(out))
    return broken[0] if broken else None


@mistake("first_overflow",
         hint="The names carry a 'model.' prefix: that is what CastModel's named_modules() "
              "gives. Name each module as the model given to you does (strip the prefix, or "
              "cast a copy with copy.deepcopy(model)).")
def cast_model_names(model, batch):
    from ...precision import CastModel

    fp16 = CastModel(model, torch.float16).eval()
    broken = _broken(fp16, batch, _leaves(fp16))
    return broken[0] if broken else None


@mistake("first_overflow",
         hint="Modules are not always called in the order they were registered "
              "(named_modules() order): record the outputs in the order the hooks fire.")
def named_modules_order(model, batch):
    fp16, inputs = _cast(model, batch)
    broken = set(_broken(fp16.eval(), inputs, _leaves(fp16)))
    return next((name for name, _ in _leaves(fp16) if name in broken), None)


@mistake("first_overflow",
         hint="Hook every leaf module, not only the nn.Linear layers: an overflow can show "
              "first elsewhere (an input above 65504 is inf as soon as it is cast).")
def linear_layers_only(model, batch):
    fp16, inputs = _cast(model, batch)
    linear = [(name, module) for name, module in fp16.named_modules()
              if isinstance(module, nn.Linear)]
    broken = _broken(fp16.eval(), inputs, linear)
    return broken[0] if broken else None


# --------------------------------------------------------------- choose precision
FP16_MAX = 65504


def _choice(fits: pd.Series) -> pd.Series:
    return pd.Series(np.where(fits, "fp16", "bf16"), index=fits.index)


@mistake("choose_precision",
         hint="Multiply each layer's largest value by the safety factor before comparing "
              "with 65504, so that a batch a little larger than this one still fits.")
def no_safety_factor(largest, safety=10.0):
    return _choice(largest <= FP16_MAX)


@mistake("choose_precision",
         hint="fp16 and bf16 are swapped: fp16 has the finer mantissa (10 bits) but only "
              "reaches 65504, so it is the choice where the values fit.")
def formats_swapped(largest, safety=10.0):
    return pd.Series(np.where(largest * safety <= FP16_MAX, "bf16", "fp16"),
                     index=largest.index)


@mistake("choose_precision",
         hint="Multiply by the safety factor, do not divide: the room is kept above the "
              "largest value seen.")
def divided_by_the_safety_factor(largest, safety=10.0):
    return _choice(largest / safety <= FP16_MAX)


@mistake("choose_precision",
         hint="fp16's largest number is 65504 (torch.finfo(torch.float16).max), not "
              "2**16 = 65536.")
def limit_of_65536(largest, safety=10.0):
    return _choice(largest * safety < 2 ** 16)


@mistake("choose_precision",
         hint="Choose each layer on its own: one layer over the limit does not stop the "
              "others from running in fp16.")
def one_format_for_the_whole_model(largest, safety=10.0):
    choice = "fp16" if largest.max() * safety <= FP16_MAX else "bf16"
    return pd.Series(choice, index=largest.index)


@mistake("choose_precision", hint="Use the `safety` argument, not a fixed 10.")
def safety_ignored(largest, safety=10.0):
    return _choice(largest * 10 <= FP16_MAX)


@mistake("choose_precision")
def list_not_series(largest, safety=10.0):
    return ["fp16" if value * safety <= FP16_MAX else "bf16" for value in largest]


@mistake("choose_precision")
def fp32_for_the_layers_that_do_not_fit(largest, safety=10.0):
    return pd.Series(np.where(largest * safety <= FP16_MAX, "fp16", "fp32"),
                     index=largest.index)


# ------------------------------------------------------------- resilient update
def _update_unmasked(running_mean, running_var, batch_mean, batch_var, mask, momentum):
    """The moving averages where the mask is False; the old statistics where it is True."""
    mean = (1 - momentum) * running_mean + momentum * batch_mean
    var = (1 - momentum) * running_var + momentum * batch_var
    return (torch.where(mask, running_mean, mean), torch.where(mask, running_var, var),
            mask)


@mistake("resilient_update",
         hint="Use the unbiased batch variance (divide by B - 1), as Batch Norm's running "
              "variance does: batch.var(dim=0, unbiased=True).")
def biased_batch_variance(running_mean, running_var, batch, momentum=0.1,
                          minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0, unbiased=False)
    ratio, t = batch_var / running_var, variance_shift_threshold
    mask = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
    return _update_unmasked(running_mean, running_var, batch_mean, batch_var, mask, momentum)


@mistake("resilient_update",
         hint="A variance that FALLS by more than the factor is suspect too (a feature "
              "going constant): mask ratio < 1 / threshold as well.")
def only_a_rising_variance_masked(running_mean, running_var, batch, momentum=0.1,
                                  minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio = batch_var / running_var
    mask = (batch_var < minimal_variance) | (ratio > variance_shift_threshold)
    return _update_unmasked(running_mean, running_var, batch_mean, batch_var, mask, momentum)


@mistake("resilient_update",
         hint="A variance that RISES by more than the factor is suspect too: mask ratio > "
              "threshold as well.")
def ratio_inverted_tested_one_way(running_mean, running_var, batch, momentum=0.1,
                                  minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio = running_var / batch_var
    mask = (batch_var < minimal_variance) | (ratio > variance_shift_threshold)
    return _update_unmasked(running_mean, running_var, batch_mean, batch_var, mask, momentum)


@mistake("resilient_update",
         hint="A column whose batch variance is below minimal_variance is masked even when "
              "its running variance is as small.")
def no_minimal_variance_test(running_mean, running_var, batch, momentum=0.1,
                             minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio, t = batch_var / running_var, variance_shift_threshold
    mask = (ratio > t) | (ratio < 1 / t)
    return _update_unmasked(running_mean, running_var, batch_mean, batch_var, mask, momentum)


@mistake("resilient_update",
         hint="A ratio exactly equal to the threshold (or to 1 / threshold) is still inside "
              "[1 / threshold, threshold]: mask only ratios strictly outside.")
def ratio_on_the_threshold_masked(running_mean, running_var, batch, momentum=0.1,
                                  minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio, t = batch_var / running_var, variance_shift_threshold
    mask = (batch_var < minimal_variance) | (ratio >= t) | (ratio <= 1 / t)
    return _update_unmasked(running_mean, running_var, batch_mean, batch_var, mask, momentum)


@mistake("resilient_update",
         hint="A variance exactly equal to minimal_variance is allowed: mask only variances "
              "strictly below it.")
def variance_at_the_minimum_masked(running_mean, running_var, batch, momentum=0.1,
                                   minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio, t = batch_var / running_var, variance_shift_threshold
    mask = (batch_var <= minimal_variance) | (ratio > t) | (ratio < 1 / t)
    return _update_unmasked(running_mean, running_var, batch_mean, batch_var, mask, momentum)


@mistake("resilient_update",
         hint="Use the arguments minimal_variance and variance_shift_threshold, not the "
              "default values.")
def default_settings_always(running_mean, running_var, batch, momentum=0.1,
                            minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio = batch_var / running_var
    mask = (batch_var < 1e-4) | (ratio > 10) | (ratio < 0.1)
    return _update_unmasked(running_mean, running_var, batch_mean, batch_var, mask, momentum)


@mistake("resilient_update",
         hint="The mask is inverted: True marks a column kept OUT of the update (a broken "
              "one).")
def mask_inverted(running_mean, running_var, batch, momentum=0.1,
                  minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio, t = batch_var / running_var, variance_shift_threshold
    masked = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
    mean, var, _ = _update_unmasked(running_mean, running_var, batch_mean, batch_var, masked,
                                    momentum)
    return mean, var, ~masked


@mistake("resilient_update",
         hint="Masked columns must keep their old statistics: apply the moving average "
              "only where the mask is False.")
def masked_columns_updated_anyway(running_mean, running_var, batch, momentum=0.1,
                                  minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio, t = batch_var / running_var, variance_shift_threshold
    mask = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
    mean = (1 - momentum) * running_mean + momentum * batch_mean
    var = (1 - momentum) * running_var + momentum * batch_var
    return mean, var, mask


@mistake("resilient_update",
         hint="The moving average went to the masked columns and the others kept their "
              "statistics: torch.where(mask, old, new), not torch.where(mask, new, old).")
def where_arguments_swapped(running_mean, running_var, batch, momentum=0.1,
                            minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio, t = batch_var / running_var, variance_shift_threshold
    mask = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
    mean = (1 - momentum) * running_mean + momentum * batch_mean
    var = (1 - momentum) * running_var + momentum * batch_var
    return torch.where(mask, mean, running_mean), torch.where(mask, var, running_var), mask


@mistake("resilient_update",
         hint="Batch Norm's momentum is the weight of the NEW batch: running = (1 - "
              "momentum) * running + momentum * batch.")
def momentum_on_the_old_statistics(running_mean, running_var, batch, momentum=0.1,
                                   minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio, t = batch_var / running_var, variance_shift_threshold
    mask = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
    mean = momentum * running_mean + (1 - momentum) * batch_mean
    var = momentum * running_var + (1 - momentum) * batch_var
    return torch.where(mask, running_mean, mean), torch.where(mask, running_var, var), mask


@mistake("resilient_update")
def running_statistics_updated_in_place(running_mean, running_var, batch, momentum=0.1,
                                        minimal_variance=1e-4,
                                        variance_shift_threshold=10.0):
    batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
    ratio, t = batch_var / running_var, variance_shift_threshold
    mask = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
    keep = momentum * (~mask).float()
    running_mean.mul_(1 - keep).add_(keep * batch_mean)
    running_var.mul_(1 - keep).add_(keep * batch_var)
    return running_mean, running_var, mask


# ------------------------------------------------------------------ masked variance
@mistake("masked_variance",
         hint="That is the write-up's step 6 (always the running variance): a masked column "
              "whose batch variance is larger, a healthy column after the running variance "
              "drifted down, is then divided by a variance far too small. Use the larger "
              "of the two for masked columns.")
def always_running(running_var, batch_var, mask):
    return running_var.clone()


@mistake("masked_variance",
         hint="The batch's own variance is Batch Norm in training: a constant column would "
              "be divided by sqrt(eps). Masked columns keep the running variance unless "
              "their batch variance is larger; unmasked columns always keep it.")
def always_batch(running_var, batch_var, mask):
    return batch_var.clone()


@mistake("masked_variance",
         hint="Only masked columns may take their batch variance: an unmasked column is "
              "normalized with the running variance it just updated.")
def larger_everywhere(running_var, batch_var, mask):
    return torch.maximum(running_var, batch_var)


@mistake("masked_variance",
         hint="The larger of the two, not the smaller: the point is never to magnify a "
              "column whose spread grew.")
def smaller_when_masked(running_var, batch_var, mask):
    return torch.where(mask, torch.minimum(running_var, batch_var), running_var)
