"""Resilient Batch Norm: Batch Norm whose running statistics a broken feature cannot ruin.

Batch Norm keeps an exponential moving average of each column's mean and
variance and normalizes with it at serving time. When a feature goes constant
(an outage fills it with 0, a stale pipeline repeats one value), every batch
has variance 0 and the running variance decays toward 0 with it: after 200
such batches at momentum 0.1 it is 0.9^200 = 7e-10 of what it was. When the
feature comes back, a value one unit from the mean is divided by
sqrt(7e-10 + eps) and comes out about 316 times too large (1 / sqrt(1e-5)).

Resilient Batch Norm (the write-up on user sequences, 002) keeps a column out of the running update when
its batch variance is below ``minimal_variance`` or has moved by more than a
factor ``variance_shift_threshold`` from the running variance, and normalizes
with the running statistics, in training as at serving.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks


class ResilientBatchNorm1d(nn.BatchNorm1d):
    """A drop-in for ``nn.BatchNorm1d`` on (B, D) inputs, following the write-up's seven steps.

    In training, for each batch:

    1. compute each column's batch mean and variance;
    2. update the running statistics, except that
    3. a column whose batch variance is below ``minimal_variance`` is masked out,
    4. and so is a column whose variance changed by more than a factor
       ``variance_shift_threshold`` from the running variance (either way);
    5. the other columns update their running mean and variance as Batch Norm does;
    6. normalize with the *running* mean and variance;
    7. scale by ``weight`` and shift by ``bias``.

    For the first ``warmup_batches`` batches the running variance is still
    travelling from its initial 1 toward the data's, so the shift test (4) is
    off and the batch statistics normalize, as in Batch Norm. In eval mode it is
    exactly Batch Norm with the same running statistics. The buffers and
    parameters are Batch Norm's, so a Batch Norm checkpoint loads as it is.

    Two steps past the write-up keep the layer from locking itself out. The
    running variance can itself go wrong without any one batch looking broken:
    a column whose variance drifts down slowly, each batch within the shift
    test, or that sits near-constant when the warm-up ends. Once the column is
    healthy again, every batch then looks like a shift and would be masked for
    ever, normalized by a variance far too small. So:

    - a masked column normalizes with its running mean and the *larger* of the
      running and the batch variance: a collapsed column reads as the running
      statistics say (step 6), a column whose spread grew is not magnified;
    - a shift that holds ``accept_shift_after`` batches in a row at one level
      (each within the threshold of the first) is the column's new level: its
      running statistics become those batches' average. ``None`` masks a shift
      for ever, as the write-up does. A column below ``minimal_variance`` is
      never accepted: a constant is always broken.

    ``fill_masked=True`` goes one step further: in training, a masked
    column's values are replaced by its running mean (they normalize to 0), so
    the network does not learn from a feature while it is broken. It needs the
    batch's other rows to judge a column, so it only acts in training: at
    serving, a request's candidates can share one user, and a user feature is
    then constant in every request.

    The defaults protect: a column with variance under 1e-4 (a constant, or a
    feature almost always filled with a default) or a variance 10 times larger
    or smaller than usual leaves the statistics alone. Inputs should be on a
    scale where a healthy column's variance is well above ``minimal_variance``
    (log1p'd counts, similarities, standardized values).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, minimal_variance: float = 1e-4,
                 variance_shift_threshold: float = 10.0, warmup_batches: int = 100,
                 fill_masked: bool = False, accept_shift_after: int | None = 20):
        checks.positive_int("num_features", num_features)
        if not checks.is_number(eps) or not 0 < eps < math.inf:
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        if not checks.is_number(momentum) or not 0 < momentum <= 1:
            raise ValueError(f"momentum must be a number in (0, 1], got {momentum!r}")
        checks.nonnegative_number("minimal_variance", minimal_variance)
        if not checks.is_number(variance_shift_threshold) or not variance_shift_threshold > 1:
            raise ValueError("variance_shift_threshold must be a ratio > 1 (math.inf: no "
                             f"shift test), got {variance_shift_threshold!r}")
        checks.nonnegative_int("warmup_batches", warmup_batches)
        if accept_shift_after is not None:
            checks.positive_int("accept_shift_after", accept_shift_after)
        for name, flag in (("affine", affine), ("fill_masked", fill_masked)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        super().__init__(num_features, eps=float(eps), momentum=float(momentum),
                         affine=affine, track_running_stats=True)
        self.minimal_variance = float(minimal_variance)
        self.variance_shift_threshold = float(variance_shift_threshold)
        self.warmup_batches = warmup_batches
        self.fill_masked = fill_masked
        self.accept_shift_after = accept_shift_after
        # counters, not checkpoint entries: how often each column was kept out of
        # the update, and the shift each column is in (batches, first variance, sums)
        for name, dtype in (("masked_updates", torch.long), ("shift_batches", torch.long),
                            ("shift_first_var", torch.float), ("shift_mean_sum", torch.float),
                            ("shift_var_sum", torch.float)):
            self.register_buffer(name, torch.zeros(num_features, dtype=dtype),
                                 persistent=False)

    def broken(self, batch_var: torch.Tensor) -> torch.Tensor:
        """(C,) bool, True for a column too flat to judge (step 3), or inf or NaN."""
        return (batch_var < self.minimal_variance) | ~torch.isfinite(batch_var)

    def shifted(self, batch_var: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(C,) bool, True where batch_var is more than the threshold away from reference."""
        ratio = batch_var / reference.clamp(min=self.eps)
        threshold = self.variance_shift_threshold
        return (ratio > threshold) | (ratio < 1 / threshold)

    def update_mask(self, batch_var: torch.Tensor, warm: bool = True) -> torch.Tensor:
        """(C,) bool, True for a column kept out of the running update (steps 3-4).

        A column holding inf or NaN has a NaN variance: it is masked too.
        """
        if not warm:
            return self.broken(batch_var)
        return self.broken(batch_var) | self.shifted(batch_var, self.running_var)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected input of shape (B, {self.num_features}), "
                             f"got {tuple(x.shape)}")
        if not self.training:
            return super().forward(x)        # Batch Norm with the running statistics
        if x.shape[0] < 2:
            raise ValueError("training needs at least 2 rows per batch for a variance")
        values = x.detach().float()
        batch_mean = values.mean(dim=0)                  # (D,) step 1
        batch_var = values.var(dim=0, unbiased=True)     # (D,)
        warm = int(self.num_batches_tracked) >= self.warmup_batches
        mask = self.update_mask(batch_var, warm)         # (D,) bool, steps 2-4
        with torch.no_grad():
            accepted, level_mean, level_var = self.lasting_shift(
                batch_mean, batch_var, mask)
            mask = mask & ~accepted
            m = self.momentum                            # step 5: the others update
            new_mean = torch.where(accepted, level_mean,
                                   (1 - m) * self.running_mean + m * batch_mean)
            new_var = torch.where(accepted, level_var,
                                  (1 - m) * self.running_var + m * batch_var)
            self.running_mean.copy_(torch.where(mask, self.running_mean, new_mean))
            self.running_var.copy_(torch.where(mask, self.running_var, new_var))
            self.num_batches_tracked.add_(1)
            self.masked_updates.add_(mask.long())
        if self.fill_masked:                             # broken columns read as means
            x = torch.where(mask, self.running_mean.to(x.dtype), x)
        if not warm:                                     # warm-up: batch statistics
            return F.batch_norm(x, None, None, self.weight, self.bias,
                                True, 0.0, self.eps)
        var = self.running_var.clone()                   # a masked column that grew:
        var = torch.where(mask & (batch_var > var), batch_var, var)   # its own spread
        return F.batch_norm(x, self.running_mean.clone(), var,        # steps 6-7
                            self.weight, self.bias, False, 0.0, self.eps)

    def lasting_shift(self, batch_mean: torch.Tensor, batch_var: torch.Tensor,
                      mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(D,) bool for the columns whose shift has held ``accept_shift_after``
        batches at one level, and the (D,) mean and variance of that level.

        Counts each column's run of shifted batches (a broken column is no
        shift); a batch away from the run's first variance starts a new run.
        """
        shift = mask & ~self.broken(batch_var)           # masked for a shift only
        if self.accept_shift_after is None or not shift.any():
            self.shift_batches.zero_()
            return torch.zeros_like(mask), batch_mean, batch_var
        same_level = ~self.shifted(batch_var, self.shift_first_var)
        going_on = shift & (self.shift_batches > 0) & same_level
        starts = shift & ~going_on
        run = torch.where(going_on, self.shift_batches + 1, starts.long())
        self.shift_batches.copy_(run)
        self.shift_first_var.copy_(
            torch.where(starts, batch_var, self.shift_first_var))
        for total, value in ((self.shift_mean_sum, batch_mean),
                             (self.shift_var_sum, batch_var)):
            restart = torch.where(starts, value, 0.0)
            total.copy_(torch.where(going_on, total + value, restart))
        accepted = run >= self.accept_shift_after
        count = run.clamp(min=1).float()
        level_mean = self.shift_mean_sum / count
        level_var = self.shift_var_sum / count
        self.shift_batches.masked_fill_(accepted, 0)
        return accepted, level_mean, level_var

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, minimal_variance={self.minimal_variance}, "
                f"variance_shift_threshold={self.variance_shift_threshold}, "
                f"warmup_batches={self.warmup_batches}, fill_masked={self.fill_masked}, "
                f"accept_shift_after={self.accept_shift_after}")


def make_resilient(model: nn.Module, **options) -> nn.Module:
    """Replace every ``nn.BatchNorm1d`` in ``model`` by a ``ResilientBatchNorm1d``, in place.

    Each replacement takes over the Batch Norm's parameters and running
    statistics (it loads its state dict), so a trained model keeps what it
    learned. ``options`` are ResilientBatchNorm1d's hyperparameters.
    """
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm1d) and not isinstance(child, ResilientBatchNorm1d):
            resilient = ResilientBatchNorm1d(child.num_features, eps=child.eps,
                                             momentum=child.momentum,
                                             affine=child.affine, **options)
            resilient.load_state_dict(child.state_dict())
            resilient.to(child.running_mean.device)
            resilient.train(child.training)
            setattr(model, name, resilient)
        else:
            make_resilient(child, **options)
    return model
