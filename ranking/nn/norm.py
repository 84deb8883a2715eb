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

    ``fill_masked=True`` goes one step past the write-up: in training, a masked
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
                 fill_masked: bool = False):
        checks.positive_int("num_features", num_features)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) \
                or not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1], got {momentum!r}")
        if not isinstance(minimal_variance, (int, float)) or not 0 <= minimal_variance < math.inf:
            raise ValueError(f"minimal_variance must be a finite number >= 0, got {minimal_variance!r}")
        if not isinstance(variance_shift_threshold, (int, float)) or not variance_shift_threshold > 1:
            raise ValueError("variance_shift_threshold must be a ratio > 1 (math.inf: no shift test), "
                             f"got {variance_shift_threshold!r}")
        checks.nonnegative_int("warmup_batches", warmup_batches)
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=True)
        self.minimal_variance = float(minimal_variance)
        self.variance_shift_threshold = float(variance_shift_threshold)
        self.warmup_batches = warmup_batches
        self.fill_masked = bool(fill_masked)
        # how often each column was kept out of the update (not saved in a checkpoint)
        self.register_buffer("masked_updates", torch.zeros(num_features, dtype=torch.long),
                             persistent=False)

    def update_mask(self, batch_var: torch.Tensor, warm: bool = True) -> torch.Tensor:
        """(C,) bool, True for a column kept out of the running update (steps 3-4).

        A column holding inf or NaN has a NaN variance: it is masked too.
        """
        too_small = (batch_var < self.minimal_variance) | ~torch.isfinite(batch_var)
        if not warm:
            return too_small
        ratio = batch_var / self.running_var.clamp(min=self.eps)
        threshold = self.variance_shift_threshold
        shifted = (ratio > threshold) | (ratio < 1 / threshold)
        return too_small | shifted

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
        with torch.no_grad():                            # step 5: the others update
            m = self.momentum
            new_mean = (1 - m) * self.running_mean + m * batch_mean
            new_var = (1 - m) * self.running_var + m * batch_var
            self.running_mean.copy_(torch.where(mask, self.running_mean, new_mean))
            self.running_var.copy_(torch.where(mask, self.running_var, new_var))
            self.num_batches_tracked.add_(1)
            self.masked_updates.add_(mask.long())
        if self.fill_masked:                             # broken columns read as means
            x = torch.where(mask, self.running_mean.to(x.dtype), x)
        if not warm:                                     # warm-up: batch statistics
            return F.batch_norm(x, None, None, self.weight, self.bias,
                                True, 0.0, self.eps)
        mean, var = self.running_mean.clone(), self.running_var.clone()
        return F.batch_norm(x, mean, var, self.weight, self.bias,   # steps 6-7
                            False, 0.0, self.eps)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, minimal_variance={self.minimal_variance}, "
                f"variance_shift_threshold={self.variance_shift_threshold}, "
                f"warmup_batches={self.warmup_batches}, fill_masked={self.fill_masked}")


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
