"""Known mistakes of lab 6, user sequences (labs/06_sequences.ipynb).

Exercises: ``delta_buckets``, ``interval_sum_pool`` and ``masked_softmax``.
"""

from __future__ import annotations

import torch

from ..common import mistake


# ------------------------------------------------------------------ time-delta buckets
@mistake("delta_buckets",
         hint="An event 0 hours ago belongs in bucket 0, one 1 hour ago in bucket 1: "
              "log2(1 + hours), not log2(hours).")
def log2_of_the_hours(delta_hours, n_buckets):
    return torch.log2(delta_hours).floor().clamp(0, n_buckets - 1).long()


@mistake("delta_buckets",
         hint="With n_buckets buckets the largest id is n_buckets - 1: cap the buckets of "
              "very old events.")
def not_capped(delta_hours, n_buckets):
    return torch.log2(1 + delta_hours).floor().long()


@mistake("delta_buckets",
         hint="floor, not round: 2.9 hours is in bucket floor(log2(3.9)) = 1 and 6.99 hours "
              "in bucket 2.")
def rounded_not_floored(delta_hours, n_buckets):
    return torch.log2(1 + delta_hours).round().long().clamp(max=n_buckets - 1)


@mistake("delta_buckets")
def float_buckets(delta_hours, n_buckets):
    return torch.log2(1 + delta_hours).floor().clamp(max=n_buckets - 1)


# --------------------------------------------------------------- interval sum pooling
@mistake("interval_sum_pool",
         hint="padding slots count: multiply by the mask (padding vectors are not always "
              "zero).")
def padding_counted(events, mask, delta_hours, bounds):
    edges = [0.0, *bounds, float("inf")]
    sums = [(events * ((delta_hours >= low) & (delta_hours < high)).unsqueeze(-1)).sum(1)
            for low, high in zip(edges[:-1], edges[1:])]
    return torch.cat(sums, dim=1)


@mistake("interval_sum_pool",
         hint="an event exactly on a bound belongs to the later interval: 1.0 hours ago is "
              "in [1, 24), not [0, 1).")
def bound_in_the_earlier_interval(events, mask, delta_hours, bounds):
    edges = [-1.0, *bounds, float("inf")]
    sums = [(events * (mask & (delta_hours > low) & (delta_hours <= high)).unsqueeze(-1)).sum(1)
            for low, high in zip(edges[:-1], edges[1:])]
    return torch.cat(sums, dim=1)


@mistake("interval_sum_pool",
         hint="one sum per interval: keep only the events whose age falls in it.")
def one_sum_repeated(events, mask, delta_hours, bounds):
    total = (events * mask.unsqueeze(-1)).sum(1)
    return torch.cat([total] * (len(bounds) + 1), dim=1)


@mistake("interval_sum_pool",
         hint="concatenate the sums in the order of the bounds, the most recent interval "
              "first.")
def oldest_interval_first(events, mask, delta_hours, bounds):
    edges = [0.0, *bounds, float("inf")]
    sums = [(events * (mask & (delta_hours >= low) & (delta_hours < high)).unsqueeze(-1)).sum(1)
            for low, high in zip(edges[:-1], edges[1:])]
    return torch.cat(sums[::-1], dim=1)


# ------------------------------------------------------------------ masked attention
@mistake("masked_softmax")
def minus_1e9_on_padding(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1) * mask


@mistake("masked_softmax")
def minus_infinity_on_padding(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


@mistake("masked_softmax")
def no_mask(scores, mask):
    return torch.softmax(scores, dim=-1)


@mistake("masked_softmax",
         hint="Mask the scores BEFORE the softmax (padding scores set to the lowest float), "
              "so that the weights of the real events alone sum to 1.")
def mask_after_the_softmax(scores, mask):
    return torch.softmax(scores, dim=-1) * mask


@mistake("masked_softmax")
def uniform_weights_on_an_empty_row(scores, mask):
    lowest = torch.finfo(scores.dtype).min
    return torch.softmax(scores.masked_fill(~mask, lowest), dim=-1)
