"""Known mistakes of lab 9, shipping it (labs/09_shipping.ipynb).

Exercises: ``distillation_loss``, ``top_k_flips`` and ``shard_rows``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..common import mistake

bce = F.binary_cross_entropy_with_logits


# ------------------------------------------------------------------ distillation loss
@mistake("distillation_loss",
         hint="The second term compares the model with the TEACHER's probabilities "
              "(teacher_probs), not with the labels again.")
def labels_twice(logits, labels, teacher_probs, weight):
    return bce(logits, labels) + weight * bce(logits, labels)


@mistake("distillation_loss",
         hint="The weight multiplies the teacher term: label loss + weight x teacher loss.")
def weight_on_the_label_term(logits, labels, teacher_probs, weight):
    return weight * bce(logits, labels) + bce(logits, teacher_probs)


@mistake("distillation_loss",
         hint="Average over the rows (the default reduction='mean'), do not sum: fit's loss "
              "is a mean, so its size does not depend on the batch size.")
def sums_over_the_rows(logits, labels, teacher_probs, weight):
    return (bce(logits, labels, reduction="sum")
            + weight * bce(logits, teacher_probs, reduction="sum"))


@mistake("distillation_loss",
         hint="binary_cross_entropy_with_logits takes LOGITS and applies the sigmoid itself: "
              "pass `logits`, not torch.sigmoid(logits).")
def sigmoid_applied_twice(logits, labels, teacher_probs, weight):
    p = torch.sigmoid(logits)
    return bce(p, labels) + weight * bce(p, teacher_probs)


@mistake("distillation_loss",
         hint="teacher_probs are probabilities already: use them as the soft targets as they "
              "are, without a sigmoid.")
def teacher_probabilities_taken_for_logits(logits, labels, teacher_probs, weight):
    return bce(logits, labels) + weight * bce(logits, torch.sigmoid(teacher_probs))


@mistake("distillation_loss", hint="Multiply the teacher term by `weight`.")
def weight_missing(logits, labels, teacher_probs, weight):
    return bce(logits, labels) + bce(logits, teacher_probs)


@mistake("distillation_loss",
         hint="The teacher term is a log loss with the teacher's probabilities as soft "
              "labels (binary_cross_entropy_with_logits(logits, teacher_probs)), not a "
              "squared error.")
def squared_error_on_the_teacher(logits, labels, teacher_probs, weight):
    return bce(logits, labels) + weight * F.mse_loss(torch.sigmoid(logits), teacher_probs)


@mistake("distillation_loss",
         hint="That is the KL divergence: it has the same gradient, but fit's term is the log "
              "loss (cross-entropy), which also holds the teacher's own entropy. Use "
              "binary_cross_entropy_with_logits(logits, teacher_probs).")
def kl_divergence(logits, labels, teacher_probs, weight):
    sure = teacher_probs.clamp(1e-12, 1 - 1e-12)
    kl = bce(logits, teacher_probs) - bce(torch.logit(sure), teacher_probs)
    return bce(logits, labels) + weight * kl


@mistake("distillation_loss",
         hint="Do not divide by 1 + weight: fit adds weight x the teacher term to the label "
              "loss as it is.")
def divided_by_one_plus_weight(logits, labels, teacher_probs, weight):
    return (bce(logits, labels) + weight * bce(logits, teacher_probs)) / (1 + weight)


@mistake("distillation_loss",
         hint="The model's prediction is the input and the teacher's probabilities are the "
              "target: binary_cross_entropy_with_logits(logits, teacher_probs).")
def prediction_and_target_swapped(logits, labels, teacher_probs, weight):
    p = torch.sigmoid(logits)
    return bce(logits, labels) + weight * F.binary_cross_entropy(teacher_probs, p)


@mistake("distillation_loss",
         hint="Keep the log loss against the labels too: label loss + weight x teacher loss.")
def teacher_term_only(logits, labels, teacher_probs, weight):
    return weight * bce(logits, teacher_probs)


@mistake("distillation_loss",
         hint="Add the teacher term, weight x the log loss against teacher_probs.")
def label_term_only(logits, labels, teacher_probs, weight):
    return bce(logits, labels)


@mistake("distillation_loss",
         hint="Add the two terms, do not average them: label loss + weight x teacher loss.")
def mean_of_the_terms(logits, labels, teacher_probs, weight):
    return (bce(logits, labels) + weight * bce(logits, teacher_probs)) / 2


@mistake("distillation_loss")
def log_of_the_sigmoid_by_hand(logits, labels, teacher_probs, weight):
    p = torch.sigmoid(logits)

    def log_loss(y):
        return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    return log_loss(labels) + weight * log_loss(teacher_probs)


@mistake("distillation_loss")
def a_float_not_a_tensor(logits, labels, teacher_probs, weight):
    return (bce(logits, labels) + weight * bce(logits, teacher_probs)).item()


@mistake("distillation_loss")
def teacher_term_on_detached_logits(logits, labels, teacher_probs, weight):
    return bce(logits, labels) + weight * bce(logits.detach(), teacher_probs)


@mistake("distillation_loss")
def per_row_losses(logits, labels, teacher_probs, weight):
    return (bce(logits, labels, reduction="none")
            + weight * bce(logits, teacher_probs, reduction="none"))


# --------------------------------------------------------------------- top-k flips
def _top(scores, rows, k):
    """The first k of ``rows``, best score first, ties to the earlier row."""
    return rows[np.argsort(-scores[rows], kind="stable")[:k]]


@mistake("top_k_flips",
         hint="That counts the ads that LEFT the top k (a set difference). A flip is a SLOT "
              "whose ad changes: compare the old and new top k slot by slot, so two ads that "
              "swap places are two flips.")
def ads_that_left_the_top_k(requests, old_scores, new_scores, k=3):
    shares = []
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        old, new = set(_top(old_scores, rows, k)), set(_top(new_scores, rows, k))
        shares.append(len(old - new) / len(old))
    return float(np.mean(shares))


@mistake("top_k_flips",
         hint="Rank by score from the highest down: the top slot holds the best score (sort "
              "by -score).")
def lowest_score_on_top(requests, old_scores, new_scores, k=3):
    shares = []
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        old = np.argsort(old_scores[rows], kind="stable")[:k]
        new = np.argsort(new_scores[rows], kind="stable")[:k]
        shares.append(np.mean(old != new))
    return float(np.mean(shares))


@mistake("top_k_flips",
         hint="Equal scores go to the EARLIER row first (a stable sort of -score, "
              "np.argsort(-scores, kind='stable')); reversing an ascending sort puts the "
              "later row first.")
def ties_to_the_later_row(requests, old_scores, new_scores, k=3):
    shares = []
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        old = np.argsort(old_scores[rows], kind="stable")[::-1][:k]
        new = np.argsort(new_scores[rows], kind="stable")[::-1][:k]
        shares.append(np.mean(old != new))
    return float(np.mean(shares))


@mistake("top_k_flips",
         hint="Average the shares over requests: each request's flips divided by its own "
              "number of slots, min(k, size), then the mean of those shares. Total flips "
              "over total slots weighs big requests more.")
def pooled_over_requests(requests, old_scores, new_scores, k=3):
    flips = slots = 0
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        old, new = _top(old_scores, rows, k), _top(new_scores, rows, k)
        flips += np.sum(old != new)
        slots += len(old)
    return float(flips / slots)


@mistake("top_k_flips",
         hint="Rank within each request (rows with the same request id), not over all the "
              "rows at once.")
def requests_ignored(requests, old_scores, new_scores, k=3):
    old = np.argsort(-old_scores, kind="stable")[:k]
    new = np.argsort(-new_scores, kind="stable")[:k]
    return float(np.mean(old != new))


@mistake("top_k_flips",
         hint="A request's rows need not be next to each other: group the rows by request id "
              "(np.unique, or pandas groupby), not by runs of equal ids.")
def requests_as_runs_of_rows(requests, old_scores, new_scores, k=3):
    shares, start = [], 0
    for stop in range(1, len(requests) + 1):
        if stop == len(requests) or requests[stop] != requests[start]:
            rows = np.arange(start, stop)
            shares.append(np.mean(_top(old_scores, rows, k) != _top(new_scores, rows, k)))
            start = stop
    return float(np.mean(shares))


@mistake("top_k_flips",
         hint="Return the share of slots that flipped in each request (flips / slots), "
              "averaged over requests, not the number of flips.")
def flip_counts(requests, old_scores, new_scores, k=3):
    counts = []
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        counts.append(np.sum(_top(old_scores, rows, k) != _top(new_scores, rows, k)))
    return float(np.mean(counts))


@mistake("top_k_flips",
         hint="A request with fewer than k candidates has only that many slots: divide by "
              "min(k, size), not by k.")
def divided_by_k(requests, old_scores, new_scores, k=3):
    shares = []
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        shares.append(np.sum(_top(old_scores, rows, k) != _top(new_scores, rows, k)) / k)
    return float(np.mean(shares))


@mistake("top_k_flips", hint="Use the `k` argument.")
def always_the_top_3(requests, old_scores, new_scores, k=3):
    shares = []
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        shares.append(np.mean(_top(old_scores, rows, 3) != _top(new_scores, rows, 3)))
    return float(np.mean(shares))


@mistake("top_k_flips",
         hint="Compare only the top k slots of each request, not every candidate.")
def every_candidate(requests, old_scores, new_scores, k=3):
    shares = []
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        every = len(rows)
        shares.append(np.mean(_top(old_scores, rows, every) != _top(new_scores, rows, every)))
    return float(np.mean(shares))


@mistake("top_k_flips",
         hint="Compare which AD (row) is in each slot, not the score shown there: the new "
              "version changes every score a little even when the order stays.")
def scores_compared_not_ads(requests, old_scores, new_scores, k=3):
    shares = []
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        old = np.sort(old_scores[rows])[::-1][:k]
        new = np.sort(new_scores[rows])[::-1][:k]
        shares.append(np.mean(old != new))
    return float(np.mean(shares))


def _shared_ranks(requests, old_scores, new_scores, k, method):
    """Flips counted from pandas ranks, tied candidates sharing a rank."""
    frame = pd.DataFrame({"request": requests, "old": old_scores, "new": new_scores})
    by_request = frame.groupby("request")
    old_rank = by_request["old"].rank(method=method, ascending=False)
    new_rank = by_request["new"].rank(method=method, ascending=False)
    shown = old_rank <= k
    flips = (shown & (old_rank != new_rank)).groupby(frame["request"]).sum()
    slots = frame.groupby("request").size().clip(upper=k)
    return float((flips / slots).mean())


@mistake("top_k_flips",
         hint="Tied candidates share a rank with method='min': break ties by position "
              "instead (a stable sort, or pandas rank(method='first')), so every slot holds "
              "one ad.")
def tied_candidates_share_the_lowest_rank(requests, old_scores, new_scores, k=3):
    return _shared_ranks(requests, old_scores, new_scores, k, method="min")


@mistake("top_k_flips",
         hint="Tied candidates share a rank with method='average': break ties by position "
              "instead (a stable sort, or rank(method='first')).")
def tied_candidates_share_the_average_rank(requests, old_scores, new_scores, k=3):
    return _shared_ranks(requests, old_scores, new_scores, k, method="average")


@mistake("top_k_flips", hint="Return a share between 0 and 1, not a percentage.")
def percentage(requests, old_scores, new_scores, k=3):
    shares = []
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        shares.append(np.mean(_top(old_scores, rows, k) != _top(new_scores, rows, k)))
    return 100 * float(np.mean(shares))


@mistake("top_k_flips")
def callers_arrays_sorted_in_place(requests, old_scores, new_scores, k=3):
    order = np.lexsort((-old_scores, requests))
    requests[:], old_scores[:], new_scores[:] = (
        requests[order], old_scores[order], new_scores[order])
    shares = []
    for request in np.unique(requests):
        rows = np.flatnonzero(requests == request)
        shares.append(np.mean(_top(old_scores, rows, k) != _top(new_scores, rows, k)))
    return float(np.mean(shares))


# ------------------------------------------------------------------------ shard rows
def _check(rank, world_size):
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError("bad rank or world_size")


@mistake("shard_rows",
         hint="Those are contiguous blocks: shard as DistributedSampler does, strided, rows "
              "rank, rank + world_size, rank + 2 x world_size, ...")
def contiguous_blocks(n_rows, rank, world_size):
    _check(rank, world_size)
    return torch.tensor_split(torch.arange(n_rows), world_size)[rank]


@mistake("shard_rows")
def blocks_of_ceil_n_over_world_size(n_rows, rank, world_size):
    _check(rank, world_size)
    size = -(-n_rows // world_size)
    return torch.arange(rank * size, min((rank + 1) * size, n_rows))


@mistake("shard_rows")
def starts_at_rank_plus_one(n_rows, rank, world_size):
    _check(rank, world_size)
    return torch.arange(rank + 1, n_rows, world_size)


@mistake("shard_rows")
def overlapping_blocks(n_rows, rank, world_size):
    _check(rank, world_size)
    size = -(-n_rows // world_size)
    start = rank * (n_rows // world_size)
    return torch.arange(start, min(start + size, n_rows))


@mistake("shard_rows")
def remainder_dropped(n_rows, rank, world_size):
    _check(rank, world_size)
    return torch.arange(rank, n_rows - n_rows % world_size, world_size)


@mistake("shard_rows")
def padded_by_repeating_rows(n_rows, rank, world_size):
    _check(rank, world_size)
    total = -(-n_rows // world_size) * world_size
    return (torch.arange(total) % n_rows)[rank::world_size]


@mistake("shard_rows")
def a_mask_not_indices(n_rows, rank, world_size):
    _check(rank, world_size)
    return torch.arange(n_rows) % world_size == rank


@mistake("shard_rows",
         hint="Rank r takes rows r, r + world_size, r + 2 x world_size, ... in increasing "
              "order, counted from row 0, not from the last row.")
def strided_from_the_end(n_rows, rank, world_size):
    _check(rank, world_size)
    return torch.arange(n_rows - 1 - rank, -1, -world_size)


@mistake("shard_rows",
         hint="Rank 0 takes row 0, rank 1 row 1, and so on: do not number the ranks from the "
              "last.")
def ranks_numbered_from_the_last(n_rows, rank, world_size):
    _check(rank, world_size)
    return torch.arange(world_size - 1 - rank, n_rows, world_size)


@mistake("shard_rows")
def arguments_not_checked(n_rows, rank, world_size):
    return torch.arange(n_rows)[rank::world_size]


@mistake("shard_rows")
def rank_equal_to_world_size_accepted(n_rows, rank, world_size):
    if world_size < 1 or not 0 <= rank <= world_size:
        raise ValueError("bad rank or world_size")
    return torch.arange(rank, n_rows, world_size)


@mistake("shard_rows")
def an_assert_not_a_value_error(n_rows, rank, world_size):
    assert world_size >= 1 and 0 <= rank < world_size, "bad rank"
    return torch.arange(rank, n_rows, world_size)
