"""Checks for lab 9, shipping it (labs/09_shipping.ipynb).

Exercises: the score-regularized loss (log loss against the labels plus a
weighted log loss against yesterday's probabilities), the share of top-k slots
whose ad changes between two versions, and the rows each rank of data-parallel
training takes from a batch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ._common import _as_float, _call, _close, _correct, _hint

__all__ = ["check_distillation_loss", "check_top_k_flips", "check_shard_rows"]


# ------------------------------------------------------------------ distillation loss
def _loss_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, float]]:
    generator = torch.Generator().manual_seed(9)

    def rows(n: int, spread: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = spread * torch.randn(n, generator=generator) - 1.0
        labels = (torch.rand(n, generator=generator) < torch.sigmoid(logits)).float()
        teacher = torch.sigmoid(logits + 0.8 * torch.randn(n, generator=generator))
        return logits, labels, teacher

    logits, labels, teacher = rows(64, 1.5)
    big_logits, big_labels, big_teacher = rows(1000, 2.0)
    sure_logits = torch.tensor([0.3, -1.2, 2.0, -0.4, 0.9])
    sure_labels = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    sure_teacher = torch.tensor([1.0, 0.0, 0.35, 0.9, 0.05])
    confident = torch.tensor([40.0, -40.0, 35.0, -30.0, 3.0, -2.0])
    confident_labels = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    confident_teacher = torch.tensor([0.2, 0.7, 0.999, 0.01, 0.5, 0.3])
    return [
        ("64 rows, weight 3 (the chapter's setting)", logits, labels, teacher, 3.0),
        ("the same rows with weight 0 (no regularization: the plain log loss)",
         logits, labels, teacher, 0.0),
        ("5 rows, weight 0.5, a teacher sure of two of them (probabilities 0 and 1)",
         sure_logits, sure_labels, sure_teacher, 0.5),
        ("1,000 rows, weight 10", big_logits, big_labels, big_teacher, 10.0),
        ("a confident model: logits of +-30 to 40, some on the wrong side, weight 1",
         confident, confident_labels, confident_teacher, 1.0),
    ]


def _reference_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor,
                    weight: float) -> torch.Tensor:
    """What one step of ``ranking.train.fit(..., distillation={"click": weight})`` minimizes."""
    from ..train import distillation_loss, task_loss_sums

    batch = {"label_click": labels, "teacher_click": teacher}
    total, count = task_loss_sums({"click": logits}, batch, ("click",))["click"]
    return total / count.clamp(min=1) + weight * distillation_loss(logits, batch, "click")


def _loss_variants(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor,
                   weight: float) -> dict[str, float]:
    """What each planted mistake of ``distillation_loss`` returns on this case."""
    def bce(x, target, reduction="mean"):
        return F.binary_cross_entropy_with_logits(x, target, reduction=reduction)

    p = torch.sigmoid(logits)
    label_term, teacher_term = bce(logits, labels), bce(logits, teacher)
    entropy = bce(torch.logit(teacher.clamp(1e-12, 1 - 1e-12)), teacher)
    with torch.no_grad():
        return {key: float(value) for key, value in {
            "labels twice": (1 + weight) * label_term,
            "weight swapped": weight * label_term + teacher_term,
            "sum": bce(logits, labels, "sum") + weight * bce(logits, teacher, "sum"),
            "sigmoid twice": bce(p, labels) + weight * bce(p, teacher),
            "teacher as logits": label_term + weight * bce(logits, torch.sigmoid(teacher)),
            "no weight": label_term + teacher_term,
            "mse": label_term + weight * F.mse_loss(p, teacher),
            "kl": label_term + weight * (teacher_term - entropy),
            "normalized": (label_term + weight * teacher_term) / (1 + weight),
            "swapped arguments": label_term + weight * F.binary_cross_entropy(
                teacher, p.clamp(0, 1)),
            "teacher only": weight * teacher_term,
            "labels only": label_term,
            "mean of both": (label_term + weight * teacher_term) / 2,
        }.items()}


_LOSS_HINTS = {
    "labels twice": "The second term compares the model with the TEACHER's probabilities "
                    "(teacher_probs), not with the labels again.",
    "weight swapped": "The weight multiplies the teacher term: label loss + weight x "
                      "teacher loss.",
    "sum": "Average over the rows (the default reduction='mean'), do not sum: fit's loss "
           "is a mean, so its size does not depend on the batch size.",
    "sigmoid twice": "binary_cross_entropy_with_logits takes LOGITS and applies the "
                     "sigmoid itself: pass `logits`, not torch.sigmoid(logits).",
    "teacher as logits": "teacher_probs are probabilities already: use them as the soft "
                         "targets as they are, without a sigmoid.",
    "no weight": "Multiply the teacher term by `weight`.",
    "mse": "The teacher term is a log loss with the teacher's probabilities as soft "
           "labels (binary_cross_entropy_with_logits(logits, teacher_probs)), not a "
           "squared error.",
    "kl": "That is the KL divergence: it has the same gradient, but fit's term is the "
          "log loss (cross-entropy), which also holds the teacher's own entropy. Use "
          "binary_cross_entropy_with_logits(logits, teacher_probs).",
    "normalized": "Do not divide by 1 + weight: fit adds weight x the teacher term to the "
                  "label loss as it is.",
    "swapped arguments": "The model's prediction is the input and the teacher's "
                         "probabilities are the target: "
                         "binary_cross_entropy_with_logits(logits, teacher_probs).",
    "teacher only": "Keep the log loss against the labels too: label loss + weight x "
                    "teacher loss.",
    "labels only": "Add the teacher term, weight x the log loss against teacher_probs.",
    "mean of both": "Add the two terms, do not average them: label loss + weight x "
                    "teacher loss.",
}


def check_distillation_loss(distillation_loss: Callable) -> None:
    """Check ``distillation_loss(logits, labels, teacher_probs, weight)`` against fit's loss."""
    name = "distillation_loss"
    ruled_out: set[str] = set()
    for case, logits, labels, teacher, weight in _loss_cases():
        given = logits.clone().requires_grad_(True)
        given_labels, given_teacher = labels.clone(), teacher.clone()
        got = _call(distillation_loss, given, given_labels, given_teacher, weight)
        if not (torch.equal(given.detach(), logits) and torch.equal(given_labels, labels)
                and torch.equal(given_teacher, teacher)):
            raise AssertionError(f"{name} changed one of its arguments in place: compute "
                                 "new tensors and leave the caller's alone.")
        if not isinstance(got, torch.Tensor):
            raise AssertionError(
                f"{name} should return a torch tensor (a scalar that loss.backward() can "
                f"train with), got {type(got).__name__}: keep the computation in torch, "
                "without .item() or numpy.")
        if got.numel() != 1:
            raise AssertionError(
                f"{name} should return a single number (a mean over the rows), got a tensor "
                f"of shape {tuple(got.shape)}: use the default reduction='mean'.")
        value = float(got.detach())
        if not np.isfinite(value):
            raise AssertionError(
                f"With {case}: {name} returned {value}. log(sigmoid(x)) rounds to log(0) "
                "for large logits: use F.binary_cross_entropy_with_logits, which computes "
                "the log loss from the logits without that rounding.")
        reference_logits = logits.clone().requires_grad_(True)
        reference = _reference_loss(reference_logits, labels, teacher, weight)
        expected = float(reference.detach())
        variants = _loss_variants(logits, labels, teacher, weight)
        if not _close(value, expected, rel=1e-5, abs_=1e-6):
            hint = _hint([_LOSS_HINTS[key] for key, result in variants.items()
                          if key not in ruled_out and _close(value, result, rel=1e-5,
                                                             abs_=1e-6)],
                         "Return F.binary_cross_entropy_with_logits(logits, labels) + weight "
                         "x F.binary_cross_entropy_with_logits(logits, teacher_probs).")
            raise AssertionError(f"With {case}: expected {expected:.6f}, got {value:.6f}. "
                                 f"{hint}")
        ruled_out |= {key for key, result in variants.items()
                      if not _close(result, expected, rel=1e-5, abs_=1e-6)}
        if not got.requires_grad:
            raise AssertionError(
                f"With {case}: the value is right, but no gradient reaches the logits: keep "
                "the computation in torch, without .detach(), .item() or numpy.")
        got.reshape(()).backward()
        reference.backward()
        if given.grad is None or not torch.allclose(given.grad, reference_logits.grad,
                                                    rtol=1e-4, atol=1e-7):
            raise AssertionError(
                f"With {case}: the value is right, but its gradient with respect to the "
                "logits is not: is one of the terms computed on detached logits, or "
                "through a tensor that is not the `logits` argument?")
    _correct(f"{name} is the loss ranking.train.fit minimizes with "
             "distillation={'click': weight}: the log loss against the labels plus weight "
             "x the log loss against the teacher's probabilities.")


# --------------------------------------------------------------------- top-k flips
def _flip_cases() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, int]]:
    rng = np.random.default_rng(9)
    many = np.repeat(np.arange(40) * 1_000 + 12, rng.integers(1, 13, size=40))
    rng.shuffle(many)                                   # a request's rows are scattered
    old = rng.normal(-4.0, 1.0, size=len(many))         # logits, negative mostly
    new = old + rng.normal(0.0, 0.6, size=len(many))
    tied_old = np.round(rng.random(len(many)), 1)       # ten values: many ties
    tied_new = np.where(rng.random(len(many)) < 0.5, tied_old,
                        np.round(rng.random(len(many)), 1))
    return [
        ("one request of five ads whose first two swap (k=3)",
         np.full(5, 7), np.array([0.9, 0.8, 0.5, 0.3, 0.1]),
         np.array([0.8, 0.9, 0.5, 0.3, 0.1]), 3),
        ("one request whose top 3 holds the same three ads, each one slot lower or at "
         "the top (k=3)", np.full(5, 7), np.array([0.9, 0.8, 0.7, 0.2, 0.1]),
         np.array([0.85, 0.8, 0.9, 0.2, 0.1]), 3),
        ("three requests of 6, 2 and 1 candidates, their rows interleaved (k=3)",
         np.array([5, 9, 5, 3, 5, 9, 5, 5, 5]),
         np.array([0.9, 0.4, 0.1, 0.5, 0.8, 0.3, 0.7, 0.2, 0.05]),
         np.array([0.9, 0.3, 0.1, 0.5, 0.6, 0.4, 0.7, 0.2, 0.05]), 3),
        ("one request of four ads, three of them tied (k=3): ties go to the earlier row",
         np.full(4, 1), np.array([0.5, 0.5, 0.5, 0.2]), np.array([0.5, 0.6, 0.5, 0.2]), 3),
        ("40 requests of 1 to 12 candidates in shuffled rows, scores that are logits "
         "(k=3)", many, old, new, 3),
        ("the same requests, k=1", many, old, new, 1),
        ("the same requests, k=5", many, old, new, 5),
        ("the same requests with scores rounded to 0.1 (many ties), k=4", many,
         tied_old, tied_new, 4),
    ]


def _order(scores: np.ndarray, *, ascending: bool = False,
           ties_last: bool = False) -> np.ndarray:
    if ties_last:
        return np.argsort(scores, kind="stable")[::-1]
    return np.argsort(scores if ascending else -scores, kind="stable")


def _groups(requests: np.ndarray, *, runs: bool = False, one: bool = False) -> list[np.ndarray]:
    if one:
        return [np.arange(len(requests))]
    if runs:
        starts = np.r_[0, np.flatnonzero(requests[1:] != requests[:-1]) + 1, len(requests)]
        return [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:])]
    return [np.flatnonzero(requests == request) for request in np.unique(requests)]


def _flips_variant(requests: np.ndarray, old: np.ndarray, new: np.ndarray, k: int, *,
                   kind: str = "slots", ascending: bool = False, ties_last: bool = False,
                   runs: bool = False, one: bool = False, pooled: bool = False,
                   counts: bool = False, per_k: bool = False, top: int | None = None,
                   ranks: str | None = None) -> float:
    """A version of top-k flips, right with the defaults, wrong with any option."""
    k = len(requests) if top == -1 else (top or k)
    flips, slots = [], []
    for rows in _groups(requests, runs=runs, one=one):
        if ranks is not None:
            old_rank = pd.Series(old[rows]).rank(method=ranks, ascending=False).to_numpy()
            new_rank = pd.Series(new[rows]).rank(method=ranks, ascending=False).to_numpy()
            shown = old_rank <= k
            flips.append(float(np.sum(shown & (old_rank != new_rank))))
            slots.append(min(k, len(rows)))
            continue
        old_top = rows[_order(old[rows], ascending=ascending, ties_last=ties_last)][:k]
        new_top = rows[_order(new[rows], ascending=ascending, ties_last=ties_last)][:k]
        if kind == "set":
            flips.append(float(len(set(old_top) - set(new_top))))
        elif kind == "scores":
            flips.append(float(np.sum(old[old_top] != new[new_top])))
        else:
            flips.append(float(np.sum(old_top != new_top)))
        slots.append(k if per_k else len(old_top))
    flips, slots = np.array(flips), np.array(slots, dtype=float)
    if counts:
        return float(flips.mean())
    if pooled:
        return float(flips.sum() / slots.sum())
    return float(np.mean(flips / slots))


_FLIP_VARIANTS: dict[str, dict] = {
    "set": dict(kind="set"),
    "ascending": dict(ascending=True),
    "ties last": dict(ties_last=True),
    "pooled": dict(pooled=True),
    "one request": dict(one=True),
    "runs": dict(runs=True),
    "counts": dict(counts=True),
    "per k": dict(per_k=True),
    "k fixed": dict(top=3),
    "whole request": dict(top=-1),
    "scores": dict(kind="scores"),
    "tied ranks": dict(ranks="min"),
    "average ranks": dict(ranks="average"),
}

_FLIP_HINTS = {
    "set": "That counts the ads that LEFT the top k (a set difference). A flip is a SLOT "
           "whose ad changes: compare the old and new top k slot by slot, so two ads that "
           "swap places are two flips.",
    "ascending": "Rank by score from the highest down: the top slot holds the best score "
                 "(sort by -score).",
    "ties last": "Equal scores go to the EARLIER row first (a stable sort of -score, "
                 "np.argsort(-scores, kind='stable')); reversing an ascending sort puts "
                 "the later row first.",
    "pooled": "Average the shares over requests: each request's flips divided by its own "
              "number of slots, min(k, size), then the mean of those shares. Total flips "
              "over total slots weighs big requests more.",
    "one request": "Rank within each request (rows with the same request id), not over all "
                   "the rows at once.",
    "runs": "A request's rows need not be next to each other: group the rows by request "
            "id (np.unique, or pandas groupby), not by runs of equal ids.",
    "counts": "Return the share of slots that flipped in each request (flips / slots), "
              "averaged over requests, not the number of flips.",
    "per k": "A request with fewer than k candidates has only that many slots: divide by "
             "min(k, size), not by k.",
    "k fixed": "Use the `k` argument.",
    "whole request": "Compare only the top k slots of each request, not every candidate.",
    "scores": "Compare which AD (row) is in each slot, not the score shown there: the new "
              "version changes every score a little even when the order stays.",
    "tied ranks": "Tied candidates share a rank with method='min': break ties by position "
                  "instead (a stable sort, or pandas rank(method='first')), so every slot "
                  "holds one ad.",
    "average ranks": "Tied candidates share a rank with method='average': break ties by "
                     "position instead (a stable sort, or rank(method='first')).",
}


def check_top_k_flips(top_k_flips: Callable) -> None:
    """Check ``top_k_flips(requests, old_scores, new_scores, k)`` against ranking.churn's."""
    from ..churn import top_k_flips as reference

    name = "top_k_flips"
    ruled_out: set[str] = set()
    for case, requests, old, new, k in _flip_cases():
        given = (requests.copy(), old.copy(), new.copy())
        got = _as_float(_call(top_k_flips, *given, k), name)
        if not all(np.array_equal(a, b) for a, b in zip(given, (requests, old, new))):
            raise AssertionError(f"{name} changed its arguments in place (sorted them?): "
                                 "sort copies or index arrays, and leave the caller's "
                                 "arrays as they were.")
        expected = reference(requests, old, new, k)
        variants = {key: _flips_variant(requests, old, new, k, **options)
                    for key, options in _FLIP_VARIANTS.items()}
        assert _close(_flips_variant(requests, old, new, k), expected)   # the model answer
        if _close(got, expected):
            ruled_out |= {key for key, value in variants.items()
                          if not _close(value, expected)}
            continue
        hints = [_FLIP_HINTS[key] for key, value in variants.items()
                 if key not in ruled_out and _close(got, value)]
        if not hints and _close(got, 100 * expected):
            hints = ["Return a share between 0 and 1, not a percentage."]
        hint = _hint(hints, "In each request, order the candidates by score from the "
                            "highest (ties: earlier row first), take the first min(k, size) "
                            "rows of the old and of the new order, count the slots whose "
                            "row differs, divide by the number of slots; then average over "
                            "requests.")
        raise AssertionError(f"With {case}: expected {expected:.6f}, got {got:.6f}. {hint}")
    _correct(f"{name} counts the top-k slots whose ad changes, as "
             "ranking.churn.top_k_flips does.")


# ------------------------------------------------------------------------ shard rows
_SHARD_CASES = [(10, 2), (10, 3), (4096, 2), (7, 4), (3, 4), (1, 1), (1001, 8)]
_BAD_SHARDS = [
    ((10, 2, 2), "rank 2 with world_size 2 (ranks are 0 and 1)"),
    ((10, -1, 2), "rank -1"),
    ((10, 0, 0), "world_size 0"),
]


def _reference_rows(n_rows: int, rank: int, world_size: int) -> np.ndarray:
    from ..distributed import shard

    return shard({"row": torch.arange(n_rows)}, rank, world_size)["row"].numpy()


def _as_rows(name: str, got, n_rows: int, rank: int, world_size: int) -> np.ndarray:
    call = f"{name}({n_rows}, {rank}, {world_size})"
    if isinstance(got, torch.Tensor):
        got = got.detach().cpu().numpy()
    try:
        rows = np.asarray(got)
    except (TypeError, ValueError):
        raise AssertionError(f"{call} should return the row indices (a tensor of "
                             f"integers), got {type(got).__name__}") from None
    if rows.dtype == bool:
        raise AssertionError(f"{call} returned a True/False mask: return the rank's row "
                             "indices (torch.arange(...) or mask.nonzero()).")
    if rows.ndim != 1:
        raise AssertionError(f"{call} should return a 1-d tensor of row indices, got "
                             f"shape {rows.shape}")
    if rows.size and not np.issubdtype(rows.dtype, np.integer):
        if np.issubdtype(rows.dtype, np.floating) and np.array_equal(rows, np.round(rows)):
            rows = rows.astype(np.int64)
        else:
            raise AssertionError(f"{call} should return integer row indices, got "
                                 f"{rows.dtype}")
    return rows.astype(np.int64)


def check_shard_rows(shard_rows: Callable) -> None:
    """Check ``shard_rows(n_rows, rank, world_size)`` against ``ranking.distributed.shard``."""
    name = "shard_rows"
    for n_rows, world_size in _SHARD_CASES:
        where = f"With {n_rows:,} rows and world_size {world_size}"
        got = {rank: _as_rows(name, _call(shard_rows, n_rows, rank, world_size), n_rows,
                              rank, world_size) for rank in range(world_size)}
        expected = {rank: _reference_rows(n_rows, rank, world_size)
                    for rank in range(world_size)}
        for rank, rows in got.items():
            outside = rows[(rows < 0) | (rows >= n_rows)]
            if outside.size:
                raise AssertionError(
                    f"{where}, rank {rank} got row {int(outside[0])}, which does not "
                    f"exist: rows are numbered 0 to {n_rows - 1}.")
        every = np.concatenate(list(got.values()))
        counts = np.bincount(every, minlength=n_rows)
        if (counts > 1).any():
            row = int(np.flatnonzero(counts > 1)[0])
            owners = [rank for rank, rows in got.items() if row in rows]
            repeated = (f"twice by rank {owners[0]}" if len(owners) == 1
                        else f"by ranks {owners}")
            raise AssertionError(
                f"{where}, row {row} is taken {repeated}: a row trained on twice counts "
                "twice in the gradient. Give each row to exactly one rank (no padding by "
                "repeating rows, no overlapping blocks).")
        if (counts == 0).any():
            missing = np.flatnonzero(counts == 0)
            raise AssertionError(
                f"{where}, no rank takes row(s) {missing[:5].tolist()}: every row of the "
                "batch must be trained on. (Dropping the rows left over after n_rows // "
                "world_size each? The shards may differ in size by one row.)")
        sizes = [len(rows) for rows in got.values()]
        if max(sizes) - min(sizes) > 1:
            raise AssertionError(
                f"{where}, the ranks get {sizes} rows: the shards should differ in size by "
                "at most one row, or the ranks wait for the one with the biggest share at "
                "every step.")
        for rank in range(world_size):
            if np.array_equal(got[rank], expected[rank]):
                continue
            mine, theirs = got[rank], expected[rank]
            if np.array_equal(np.sort(mine), theirs):
                hint = "The right rows, in another order: list them in increasing order."
            elif np.array_equal(mine, np.array_split(np.arange(n_rows), world_size)[rank]):
                hint = ("Those are contiguous blocks: shard as DistributedSampler does, "
                        "strided, rows rank, rank + world_size, rank + 2 x world_size, ...")
            else:
                hint = ("Rank r takes rows r, r + world_size, r + 2 x world_size, ... "
                        "(strided, as ranking.distributed.shard and torch's "
                        "DistributedSampler do).")
            raise AssertionError(
                f"{where}, rank {rank}: expected rows {theirs[:8].tolist()}"
                f"{' ...' if len(theirs) > 8 else ''}, got {mine[:8].tolist()}"
                f"{' ...' if len(mine) > 8 else ''}. {hint}")
    for arguments, what in _BAD_SHARDS:
        call = f"{name}{arguments}"
        try:
            got = _call(shard_rows, *arguments)
        except ValueError:
            continue
        except AssertionError as error:
            if "not implemented yet" in str(error):
                raise
            raise AssertionError(
                f"{call} failed an assert ({error}): raise a ValueError instead, as "
                "ranking.distributed.shard does (asserts vanish under python -O).") from None
        except Exception as error:          # noqa: BLE001 - the reader's own error
            raise AssertionError(
                f"{call} raised {type(error).__name__}: {error}. Check the arguments first "
                "and raise a ValueError that says what is wrong, as "
                "ranking.distributed.shard does.") from None
        raise AssertionError(
            f"{call} returned {got!r}, but there is no {what}: raise a ValueError that says "
            "so (world_size must be at least 1, and 0 <= rank < world_size), as "
            "ranking.distributed.shard does, rather than train a wrong shard silently.")
    _correct(f"{name} gives each rank the rows ranking.distributed.shard does: every row "
             "once, strided, the shards within one row of each other.")
