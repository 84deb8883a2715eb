"""Checks for lab 4, one model for many actions (labs/04_multitask.ipynb).

Exercises: the MMoE gate's mix of the experts, and the utility weight that reaches a target
share of an action.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from ._common import _as_float, _call, _correct

__all__ = ["check_mix_experts", "check_weight_for_share"]


# ------------------------------------------------------------------------- MMoE gate
def _gate_cases() -> list[tuple[str, Any, Any]]:
    """(description, expert_outputs (B, E, H), gate_logits (B, E))."""
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
    """Check ``mix_experts(expert_outputs, gate_logits) -> (B, H)``: softmax over experts, weighted sum."""
    import torch

    name = "mix_experts"
    wrong = {
        "The gate weights must be a softmax over the *experts* (dim=1 of the logits), one distribution per row.":
            lambda o, g: (torch.softmax(g, dim=0).unsqueeze(-1) * o).sum(dim=1),
        "Use a softmax of the gate logits, not the raw logits, as weights.":
            lambda o, g: (g.unsqueeze(-1) * o).sum(dim=1),
        "That is the plain average of the experts: weight each by the task's gate.":
            lambda o, g: o.mean(dim=1),
        "Sum the weighted experts (over dim=1), do not average them.":
            lambda o, g: (torch.softmax(g, dim=1).unsqueeze(-1) * o).mean(dim=1),
    }
    for description, outputs, logits in _gate_cases():
        inputs = (outputs.clone(), logits.clone())
        got = _call(mix_experts, *inputs)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{name} should return a torch.Tensor, got {type(got).__name__}")
        expected = (torch.softmax(logits, dim=1).unsqueeze(-1) * outputs).sum(dim=1)
        if got.shape != expected.shape:
            raise AssertionError(f"On {description}: expected shape {tuple(expected.shape)} (rows, width), "
                                 f"got {tuple(got.shape)}.")
        if torch.allclose(got, expected, rtol=1e-5, atol=1e-6):
            continue
        hint = "weights = softmax(gate_logits over the experts); output = sum over experts of weight * expert output."
        for text, fn in wrong.items():
            candidate = fn(outputs, logits)
            if candidate.shape == got.shape and torch.allclose(got, candidate, rtol=1e-5, atol=1e-6):
                hint = text
                break
        if not torch.isfinite(got).all():
            hint = "Some outputs are not finite: exp() of large logits overflows, use torch.softmax."
        raise AssertionError(f"On {description} the mix differs. {hint}")
    _correct(f"{name} mixes the experts with a softmax gate on {len(_gate_cases())} cases.")


# --------------------------------------------------------------- weight for a target share
def check_weight_for_share(weight_for_share: Callable, share_at: Callable, target: float) -> None:
    """Check ``weight_for_share(share_at, target) -> weight``: the smallest weight whose share reaches target.

    ``share_at(weight)`` must be non-decreasing in ``weight`` on [0, 20].
    """
    name = "weight_for_share"
    crafted = [
        ("a straight line, share = 0.2 + 0.03 * w", lambda w: 0.2 + 0.03 * w, 0.35, 5.0),
        ("a curve that flattens, share = 0.5 - 0.3 * exp(-w / 4)", lambda w: 0.5 - 0.3 * math.exp(-w / 4), 0.4,
         4 * math.log(3.0)),
        ("steps of 0.05 every whole weight", lambda w: 0.2 + 0.05 * math.floor(w), 0.35, 3.0),
    ]
    for description, share, goal, expected in crafted:
        got = _as_float(_call(weight_for_share, share, goal), name)
        if abs(got - expected) <= 0.02 and share(got) >= goal - 1e-9:
            continue
        hint = "Search [0, 20] for the smallest weight w with share_at(w) >= target (bisection works)."
        if share(got) < goal - 1e-9:
            hint = f"At your weight the share is {share(got):.3f}, below the target {goal}: search further right."
        elif got > expected:
            hint = "The share reaches the target at a smaller weight: return the smallest one, not any one."
        raise AssertionError(f"On {description} with target {goal}: expected a weight near {expected:.3f}, "
                             f"got {got:.3f}. {hint}")
    got = _as_float(_call(weight_for_share, share_at, target), name)
    reached = share_at(got)
    if reached < target - 1e-9:
        raise AssertionError(f"On the lab's ranking your weight {got:.3f} gives a share of {reached:.3f}, "
                             f"below the target {target}.")
    if got > 0.05 and share_at(max(0.0, got - 0.05)) >= target:
        raise AssertionError(f"On the lab's ranking a weight of {got - 0.05:.3f} already reaches the target: "
                             "return the smallest weight that does.")
    _correct(f"{name} finds the smallest weight that reaches a target share ({len(crafted)} crafted curves, "
             f"and {got:.2f} on the lab's ranking).")
