"""Automatic transforms of numeric features: chosen from the training data, not by hand.

Chapter 3 chose by hand which columns get log1p. The AutoML write-up lets the
data choose, and a model can learn the rest of the shape itself:

- ``skew_reduced_by_log1p``: the rule ``FeatureSpec(log1p="auto")`` applies to each
  dense column: log1p where the column is non-negative and log1p at least halves
  its skew (a heavy right tail), the identity elsewhere;
- ``quantile_edges``: bin edges at the training quantiles of each column, for the
  learned piecewise-linear encoding (``ranking.nn.numeric.PiecewiseLinear``).
"""

from __future__ import annotations

import numpy as np
import torch

from . import checks


def skewness(values: np.ndarray) -> float:
    """The sample skewness E[(x - mean)^3] / std^3 (0 for a constant column)."""
    values = np.asarray(values, dtype=np.float64)
    spread = values.std()
    if spread == 0:
        return 0.0
    return float((((values - values.mean()) / spread) ** 3).mean())


def skew_reduced_by_log1p(values: np.ndarray, factor: float = 0.5) -> bool:
    """Whether log1p suits ``values``: they are non-negative and
    |skew(log1p(x))| <= factor * |skew(x)|."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or values.min() < 0:
        return False
    return abs(skewness(np.log1p(values))) <= factor * abs(skewness(values))


def quantile_edges(dense: torch.Tensor, n_bins: int = 16) -> torch.Tensor:
    """(D, n_bins + 1) increasing bin edges per column, at the training quantiles.

    Ties (a column with many equal values) would give empty bins: each edge is
    nudged above the one before it, so every bin has a positive width.
    """
    checks.positive_int("n_bins", n_bins)
    if dense.dim() != 2 or dense.shape[0] == 0:
        raise ValueError(f"dense must be (N, D) with N > 0, got {tuple(dense.shape)}")
    levels = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    sample = dense[:: max(1, dense.shape[0] // 200_000)].double()   # torch.quantile's limit
    edges = torch.quantile(sample, levels, dim=0).T                    # (D, n_bins + 1)
    for k in range(1, n_bins + 1):
        edges[:, k] = torch.maximum(edges[:, k], edges[:, k - 1] + 1e-3)
    return edges.float()
