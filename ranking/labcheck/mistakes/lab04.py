"""Known mistakes of lab 4, one model for many actions (labs/04_multitask.ipynb).

Exercises: ``mix_experts`` and ``weight_for_share``.
"""

from __future__ import annotations

import torch

from ..common import mistake


# ------------------------------------------------------------------------- MMoE gate
@mistake("mix_experts",
         hint="The gate weights must be a softmax over the *experts* (dim=1 of the logits), "
              "one distribution per row.")
def softmax_over_the_rows(expert_outputs, gate_logits):
    weights = torch.softmax(gate_logits, dim=0)
    return (weights.unsqueeze(-1) * expert_outputs).sum(dim=1)


@mistake("mix_experts", hint="Use a softmax of the gate logits, not the raw logits, as weights.")
def raw_logits_as_weights(expert_outputs, gate_logits):
    return (gate_logits.unsqueeze(-1) * expert_outputs).sum(dim=1)


@mistake("mix_experts",
         hint="That is the plain average of the experts: weight each by the task's gate.")
def plain_average(expert_outputs, gate_logits):
    return expert_outputs.mean(dim=1)


@mistake("mix_experts", hint="Sum the weighted experts (over dim=1), do not average them.")
def weighted_mean(expert_outputs, gate_logits):
    weights = torch.softmax(gate_logits, dim=1)
    return (weights.unsqueeze(-1) * expert_outputs).mean(dim=1)


@mistake("mix_experts",
         hint="Sigmoid gates do not sum to 1 over the experts: use a softmax over dim=1.")
def sigmoid_gates(expert_outputs, gate_logits):
    return (torch.sigmoid(gate_logits).unsqueeze(-1) * expert_outputs).sum(dim=1)


@mistake("mix_experts",
         hint="Some outputs are not finite: exp() of large logits overflows, use "
              "torch.softmax.")
def softmax_by_hand(expert_outputs, gate_logits):
    weights = torch.exp(gate_logits) / torch.exp(gate_logits).sum(dim=1, keepdim=True)
    return (weights.unsqueeze(-1) * expert_outputs).sum(dim=1)


# --------------------------------------------------------------- weight for a target share
def _bisect(share_at, target):
    """The bracket [low, high] around the smallest weight in [0, 20] that reaches target."""
    low, high = 0.0, 20.0
    while high - low > 0.005:
        middle = (low + high) / 2
        if share_at(middle) >= target:
            high = middle
        else:
            low = middle
    return low, high


@mistake("weight_for_share",
         hint="Whole weights are too coarse a grid: find the weight to 0.01 (bisection "
              "works).")
def whole_weights_only(share_at, target):
    for weight in range(21):
        if share_at(weight) >= target:
            return float(weight)
    return 20.0


@mistake("weight_for_share",
         hint="That is the largest weight of the range: return the smallest weight whose "
              "share reaches the target.")
def largest_weight(share_at, target):
    return 20.0


@mistake("weight_for_share",
         hint="Your bisection returns the end below the target: return `high`, the end "
              "whose share reaches it.")
def bisection_returns_low(share_at, target):
    low, high = _bisect(share_at, target)
    return low


@mistake("weight_for_share",
         hint="That is the share reached, not the weight that reaches it.")
def returns_the_share(share_at, target):
    low, high = _bisect(share_at, target)
    return share_at(high)
