"""Checks for lab 4, one model for many actions (labs/04_multitask.ipynb).

Exercises: the MMoE gate's mix of the experts, and the utility weight that reaches a target
share of an action.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from .common import as_float, call, close, correct
from .mistakes import Answers

__all__ = ["check_mix_experts", "check_weight_for_share"]


# ------------------------------------------------------------------------- MMoE gate
def _gate_cases() -> list[tuple[str, Any, Any]]:
    """(description, expert_outputs (B, M, H), gate_logits (B, M))."""
    import torch

    generator = torch.Generator().manual_seed(11)
    cases = []
    for batch, experts, width in [(4, 2, 3), (32, 4, 8), (5, 3, 1)]:
        outputs = torch.randn(batch, experts, width, generator=generator)
        logits = 3 * torch.randn(batch, experts, generator=generator)
        cases.append((f"{batch} rows, {experts} experts of width {width}", outputs, logits))
    outputs, logits = cases[1][1], cases[1][2]
    cases.append(("gate logits shifted by a constant per row (the mix must not change)",
                  outputs, logits + 100 * torch.arange(32.0).unsqueeze(1)))
    return cases


def check_mix_experts(mix_experts: Callable) -> None:
    """Check ``mix_experts(expert_outputs, gate_logits) -> (B, H)``: softmax over experts,
    weighted sum."""
    import torch

    name = "mix_experts"
    answers = Answers(name, same=_same_mix)
    for description, outputs, logits in _gate_cases():
        got = call(mix_experts, outputs.clone(), logits.clone())
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{name} should return a torch.Tensor, got {type(got).__name__}")
        expected = (torch.softmax(logits, dim=1).unsqueeze(-1) * outputs).sum(dim=1)
        if got.shape != expected.shape:
            raise AssertionError(f"On {description}: expected shape {tuple(expected.shape)} "
                                 f"(rows, width), got {tuple(got.shape)}.")
        answers.add(got, outputs, logits)
        if torch.allclose(got, expected, rtol=1e-5, atol=1e-6):
            continue
        hint = answers.hint("weights = softmax(gate_logits over the experts); output = sum "
                            "over experts of weight * expert output.")
        raise AssertionError(f"On {description} the mix differs. {hint}")
    correct(f"{name} mixes the experts with a softmax gate on {len(_gate_cases())} cases.")


def _same_mix(theirs, got) -> bool:
    """The same mix, NaN where the other has NaN (an overflowed softmax)."""
    import torch

    return theirs.shape == got.shape and torch.allclose(got, theirs, rtol=1e-5, atol=1e-6,
                                                        equal_nan=True)


# --------------------------------------------------------------- weight for a target share
def check_weight_for_share(weight_for_share: Callable, share_at: Callable,
                           target: float) -> None:
    """Check ``weight_for_share(share_at, target) -> weight``: the smallest weight whose share
    reaches target.

    ``share_at(weight)`` must be non-decreasing in ``weight`` on [0, 20].
    """
    name = "weight_for_share"
    crafted = [
        ("a straight line, share = 0.2 + 0.03 * w", lambda w: 0.2 + 0.03 * w, 0.35, 5.0),
        ("a curve that flattens, share = 0.5 - 0.3 * exp(-w / 4)",
         lambda w: 0.5 - 0.3 * math.exp(-w / 4), 0.4, 4 * math.log(3.0)),
        ("steps of 0.05 every whole weight", lambda w: 0.2 + 0.05 * math.floor(w), 0.35, 3.0),
    ]
    answers = Answers(name, same=close)
    for description, share, goal, expected in crafted:
        got = as_float(call(weight_for_share, share, goal), name)
        answers.add(got, share, goal)
        if abs(got - expected) <= 0.02 and share(got) >= goal - 1e-9:
            continue
        if share(got) < goal - 1e-9:
            fallback = (f"At your weight the share is {share(got):.3f}, below the target "
                        f"{goal}: search further right.")
        elif got > expected:
            fallback = ("The share reaches the target at a smaller weight: return the "
                        "smallest one, not any one.")
        else:
            fallback = ("Search [0, 20] for the smallest weight w with share_at(w) >= target "
                        "(bisection works).")
        raise AssertionError(f"On {description} with target {goal}: expected a weight near "
                             f"{expected:.3f}, got {got:.3f}. {answers.hint(fallback)}")
    got = _check_lab_ranking(name, weight_for_share, share_at, target)
    correct(f"{name} finds the smallest weight that reaches a target share ({len(crafted)} "
            f"crafted curves, and {got:.2f} on the lab's ranking).")


def _check_lab_ranking(name: str, weight_for_share: Callable, share_at: Callable,
                       target: float) -> float:
    """The reader's weight on the lab's own ranking: it reaches the target, a smaller does not."""
    got = as_float(call(weight_for_share, share_at, target), name)
    reached = share_at(got)
    if reached < target - 1e-9:
        raise AssertionError(f"On the lab's ranking your weight {got:.3f} gives a share of "
                             f"{reached:.3f}, below the target {target}.")
    if got > 0.05 and share_at(max(0.0, got - 0.05)) >= target:
        raise AssertionError(f"On the lab's ranking a weight of {got - 0.05:.3f} already "
                             "reaches the target: return the smallest weight that does.")
    return got
