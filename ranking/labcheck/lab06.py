"""Checks for lab 6, user sequences (labs/06_sequences.ipynb).

Exercises: time-delta buckets, interval sum pooling with a padding mask, and attention
weights that put nothing on padding (also in fp16, also for a user with no events).
"""

from __future__ import annotations

from typing import Callable

from .common import call, correct
from .mistakes import Answers

__all__ = ["check_delta_buckets", "check_interval_sum_pool", "check_masked_softmax"]


def _tensor_result(name: str, got, shape: tuple) -> None:
    import torch

    if not isinstance(got, torch.Tensor):
        raise AssertionError(f"{name} should return a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != shape:
        raise AssertionError(f"{name} should return shape {shape}, got {tuple(got.shape)}.")


# ------------------------------------------------------------------ time-delta buckets
def check_delta_buckets(delta_buckets: Callable) -> None:
    """Check ``delta_buckets(delta_hours (B, L), n_buckets) -> (B, L)`` integer buckets."""
    import torch

    name = "delta_buckets"
    hours = torch.tensor([[0.0, 0.5, 1.0, 2.9, 3.0], [6.99, 7.0, 100.0, 1e6, 0.0]])
    answers = Answers(name, same=lambda theirs, got: torch.equal(theirs.long(), got.long()))
    for n_buckets in (20, 6):
        got = call(delta_buckets, hours.clone(), n_buckets)
        _tensor_result(name, got, tuple(hours.shape))
        if got.is_floating_point():
            raise AssertionError(f"{name} should return integer bucket ids (an embedding "
                                 "table looks them up), got a float tensor: use .long().")
        answers.add(got, hours, n_buckets)
        expected = torch.log2(1 + hours).floor().long().clamp(max=n_buckets - 1)
        if torch.equal(got.long(), expected):
            continue
        hint = answers.hint("bucket = floor(log2(1 + hours)), capped at n_buckets - 1.")
        raise AssertionError(f"With {n_buckets} buckets: expected {expected.tolist()}, got "
                             f"{got.tolist()}. {hint}")
    correct(f"{name} buckets ages from 0 hours to 114 years, capped.")


# --------------------------------------------------------------- interval sum pooling
def check_interval_sum_pool(interval_sum_pool: Callable) -> None:
    """Check ``interval_sum_pool(events (B, L, V), mask, delta_hours, bounds) -> (B, V * K)``."""
    import torch

    from ..nn.sequence import IntervalSumPooling

    name = "interval_sum_pool"
    generator = torch.Generator().manual_seed(6)
    B, L, V = 4, 7, 3
    events = torch.randn(B, L, V, generator=generator)      # padding slots are NOT zero
    mask = torch.arange(L)[None, :] < torch.tensor([7, 4, 1, 0])[:, None]
    delta_hours = torch.tensor([[0.2, 1.0, 5.0, 23.9, 24.0, 200.0, 900.0]] * B)
    bounds = [1.0, 24.0, 168.0]
    got = call(interval_sum_pool, events.clone(), mask.clone(), delta_hours.clone(), bounds)
    pooling = IntervalSumPooling(V, bounds)           # the package's, as chapter 6 uses it
    expected = pooling(events, mask, None, delta_hours)
    _tensor_result(name, got, tuple(expected.shape))
    if torch.allclose(got, expected, atol=1e-5):
        correct(f"{name} sums real events only, each in its time interval.")
        return
    answers = Answers(name, same=lambda theirs, got: torch.allclose(theirs, got, atol=1e-5))
    answers.add(got, events, mask, delta_hours, bounds)
    hint = answers.hint("interval k holds the events with bounds[k-1] <= hours < bounds[k]; "
                        "concatenate the K sums in order, the most recent interval first.")
    raise AssertionError(f"The pooled vectors differ from the expected ones. {hint}")


# ------------------------------------------------------------------ masked attention
def check_masked_softmax(masked_softmax: Callable) -> None:
    """Check ``masked_softmax(scores (B, L), mask (B, L)) -> (B, L)`` attention weights."""
    import torch

    name = "masked_softmax"
    generator = torch.Generator().manual_seed(7)
    scores = torch.randn(3, 5, generator=generator) * 3
    scores[0, 4] = 50.0                              # a large score on a padding slot
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    answers = Answers(name, same=_same_weights)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        label = str(dtype).removeprefix("torch.")
        got = _weights_in(name, masked_softmax, scores.to(dtype), mask)
        answers.add(got, scores.to(dtype), mask)
        expected = torch.zeros(3, 5)
        for row in range(2):
            real = mask[row]
            expected[row, real] = torch.softmax(scores[row, real].to(dtype).float(), dim=0)
        tolerance = 1e-5 if dtype == torch.float32 else 2e-2
        if not torch.allclose(got, expected, atol=tolerance):
            hint = answers.hint("Put the padding scores to the lowest float before the "
                                "softmax.")
            raise AssertionError(
                f"In {label} the weights of real events should be a softmax over the real "
                f"events only, summing to 1: expected {expected[:2].tolist()}, got "
                f"{got[:2].tolist()}. {hint}")
    correct(f"{name} puts no weight on padding and no NaN on an empty history, in fp32, "
            "fp16 and bf16.")


def _same_weights(theirs, got) -> bool:
    """Whether a mistake's weights are the reader's (in float32), to fp16's rounding."""
    import torch

    return torch.allclose(theirs.float(), got, atol=1e-3)


def _weights_in(name: str, masked_softmax: Callable, scores, mask):
    """The reader's weights in float32, once they are finite and zero on padding."""
    import torch

    label = str(scores.dtype).removeprefix("torch.")
    try:
        got = call(masked_softmax, scores.clone(), mask.clone())
    except (RuntimeError, OverflowError) as error:
        raise AssertionError(
            f"In {label}, {name} raised: {error}. A constant like -1e9 does not fit in fp16 "
            "(largest 65504): use torch.finfo(scores.dtype).min.") from None
    _tensor_result(name, got, tuple(scores.shape))
    got = got.float()
    if not torch.isfinite(got).all():
        raise AssertionError(
            f"In {label} some weights are NaN or infinite (row 3 has no events: a softmax "
            "over nothing but -inf is NaN). Give a row without events zero weights "
            "everywhere.")
    if bool((got[~mask] != 0).any()):
        raise AssertionError(f"In {label} padding slots got weight {got[~mask].tolist()}: "
                             "every padding slot must get exactly 0.")
    return got
