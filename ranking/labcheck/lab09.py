"""Checks for lab 9, shipping it (labs/09_shipping.ipynb).

Exercises: the score-regularized loss (log loss against the labels plus a
weighted log loss against yesterday's probabilities), the share of top-k slots
whose ad changes between two versions, and the rows each rank of data-parallel
training takes from a batch.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .common import as_float, call, close, correct
from .mistakes import Answers

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
    from ..objective import distillation_loss, task_loss_sums

    batch = {"label_click": labels, "teacher_click": teacher}
    total, count = task_loss_sums({"click": logits}, batch, ("click",))["click"]
    return total / count.clamp(min=1) + weight * distillation_loss(logits, batch, "click")


def check_distillation_loss(distillation_loss: Callable) -> None:
    """Check ``distillation_loss(logits, labels, teacher_probs, weight)`` against fit's loss."""
    name = "distillation_loss"
    answers = Answers(name, same=_same_loss)
    for case, logits, labels, teacher, weight in _loss_cases():
        given = logits.clone().requires_grad_(True)
        got = _loss_of(name, distillation_loss, case, given, labels, teacher, weight)
        value = float(got.detach())
        answers.add(value, logits, labels, teacher, weight)
        reference_logits = logits.clone().requires_grad_(True)
        reference = _reference_loss(reference_logits, labels, teacher, weight)
        expected = float(reference.detach())
        if not close(value, expected, rel=1e-5, abs_=1e-6):
            hint = answers.hint("Return F.binary_cross_entropy_with_logits(logits, labels) + "
                                "weight x F.binary_cross_entropy_with_logits(logits, "
                                "teacher_probs).")
            raise AssertionError(f"With {case}: expected {expected:.6f}, got {value:.6f}. "
                                 f"{hint}")
        _check_gradient(case, got, given, reference, reference_logits)
    correct(f"{name} is the loss ranking.train.fit minimizes with "
            "distillation={'click': weight}: the log loss against the labels plus weight "
            "x the log loss against the teacher's probabilities.")


def _same_loss(theirs, got: float) -> bool:
    return close(float(theirs), got, rel=1e-5, abs_=1e-6)


def _loss_of(name: str, distillation_loss: Callable, case: str, logits: torch.Tensor,
             labels: torch.Tensor, teacher: torch.Tensor, weight: float) -> torch.Tensor:
    """The reader's loss, once it is one finite number in a tensor, its inputs unchanged."""
    given_labels, given_teacher = labels.clone(), teacher.clone()
    kept_logits = logits.detach().clone()
    got = call(distillation_loss, logits, given_labels, given_teacher, weight)
    if not (torch.equal(logits.detach(), kept_logits) and torch.equal(given_labels, labels)
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
    if not np.isfinite(float(got.detach())):
        raise AssertionError(
            f"With {case}: {name} returned {float(got.detach())}. log(sigmoid(x)) rounds to "
            "log(0) for large logits: use F.binary_cross_entropy_with_logits, which "
            "computes the log loss from the logits without that rounding.")
    return got


def _check_gradient(case: str, got: torch.Tensor, given: torch.Tensor,
                    reference: torch.Tensor, reference_logits: torch.Tensor) -> None:
    """The reader's loss, right in value, must also send the right gradient to the logits."""
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


def check_top_k_flips(top_k_flips: Callable) -> None:
    """Check ``top_k_flips(requests, old_scores, new_scores, k)`` against ranking.churn's."""
    from ..churn import top_k_flips as reference

    name = "top_k_flips"
    answers = Answers(name, same=close)
    for case, requests, old, new, k in _flip_cases():
        given = (requests.copy(), old.copy(), new.copy())
        got = as_float(call(top_k_flips, *given, k), name)
        if not all(np.array_equal(a, b) for a, b in zip(given, (requests, old, new))):
            raise AssertionError(f"{name} changed its arguments in place (sorted them?): "
                                 "sort copies or index arrays, and leave the caller's "
                                 "arrays as they were.")
        answers.add(got, requests, old, new, k)
        expected = reference(requests, old, new, k)
        if close(got, expected):
            continue
        hint = answers.hint("In each request, order the candidates by score from the "
                            "highest (ties: earlier row first), take the first min(k, size) "
                            "rows of the old and of the new order, count the slots whose "
                            "row differs, divide by the number of slots; then average over "
                            "requests.")
        raise AssertionError(f"With {case}: expected {expected:.6f}, got {got:.6f}. {hint}")
    correct(f"{name} counts the top-k slots whose ad changes, as "
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
    answers = Answers(name, same=lambda theirs, got: np.array_equal(np.asarray(theirs), got))
    for n_rows, world_size in _SHARD_CASES:
        where = f"With {n_rows:,} rows and world_size {world_size}"
        got = {rank: _as_rows(name, call(shard_rows, n_rows, rank, world_size), n_rows,
                              rank, world_size) for rank in range(world_size)}
        for rank, rows in got.items():
            answers.add(rows, n_rows, rank, world_size)
        _check_every_row_once(where, got, n_rows)
        _check_balanced(where, got)
        _check_strided(where, got, n_rows, world_size, answers)
    for arguments, what in _BAD_SHARDS:
        _check_rejected(name, shard_rows, arguments, what)
    correct(f"{name} gives each rank the rows ranking.distributed.shard does: every row "
            "once, strided, the shards within one row of each other.")


def _check_every_row_once(where: str, got: dict[int, np.ndarray], n_rows: int) -> None:
    """Every row exists, and exactly one rank takes it."""
    for rank, rows in got.items():
        outside = rows[(rows < 0) | (rows >= n_rows)]
        if outside.size:
            raise AssertionError(
                f"{where}, rank {rank} got row {int(outside[0])}, which does not "
                f"exist: rows are numbered 0 to {n_rows - 1}.")
    counts = np.bincount(np.concatenate(list(got.values())), minlength=n_rows)
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


def _check_balanced(where: str, got: dict[int, np.ndarray]) -> None:
    sizes = [len(rows) for rows in got.values()]
    if max(sizes) - min(sizes) > 1:
        raise AssertionError(
            f"{where}, the ranks get {sizes} rows: the shards should differ in size by "
            "at most one row, or the ranks wait for the one with the biggest share at "
            "every step.")


def _check_strided(where: str, got: dict[int, np.ndarray], n_rows: int, world_size: int,
                   answers: Answers) -> None:
    """Each rank's rows are those ranking.distributed.shard gives it, in its order."""
    for rank in range(world_size):
        mine, theirs = got[rank], _reference_rows(n_rows, rank, world_size)
        if np.array_equal(mine, theirs):
            continue
        fallback = ("Rank r takes rows r, r + world_size, r + 2 x world_size, ... "
                    "(strided, as ranking.distributed.shard and torch's "
                    "DistributedSampler do).")
        if np.array_equal(np.sort(mine), theirs):
            fallback = "The right rows, in another order: list them in increasing order."
        raise AssertionError(
            f"{where}, rank {rank}: expected rows {theirs[:8].tolist()}"
            f"{' ...' if len(theirs) > 8 else ''}, got {mine[:8].tolist()}"
            f"{' ...' if len(mine) > 8 else ''}. {answers.hint(fallback)}")


def _check_rejected(name: str, shard_rows: Callable, arguments: tuple, what: str) -> None:
    """A rank or world_size that cannot be raises a ValueError."""
    call_text = f"{name}{arguments}"
    try:
        got = call(shard_rows, *arguments)
    except ValueError:
        return
    except AssertionError as error:
        if "not implemented yet" in str(error):
            raise
        raise AssertionError(
            f"{call_text} failed an assert ({error}): raise a ValueError instead, as "
            "ranking.distributed.shard does (asserts vanish under python -O).") from None
    except Exception as error:          # noqa: BLE001 - the reader's own error
        raise AssertionError(
            f"{call_text} raised {type(error).__name__}: {error}. Check the arguments first "
            "and raise a ValueError that says what is wrong, as "
            "ranking.distributed.shard does.") from None
    raise AssertionError(
        f"{call_text} returned {got!r}, but there is no {what}: raise a ValueError that says "
        "so (world_size must be at least 1, and 0 <= rank < world_size), as "
        "ranking.distributed.shard does, rather than train a wrong shard silently.")
