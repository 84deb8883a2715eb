"""Delayed conversions: learning a label that has not arrived yet.

A conversion is reported hours, days or weeks after its click. A model
trained at time T sees, for a click made e hours before T, only the
conversions that arrived within e hours: recent clicks look like
non-converters, and a naive model under-predicts. With the share of
conversions that arrive within e hours, the delay CDF F(e),

    P(converted and reported by T | x) = p(x) * F(e),

which is the delayed-feedback model (Chapelle 2014) with a delay that does
not depend on x. Its two steps here:

1. ``fit_delay_distribution`` estimates F from the clicks alone: each
   observed conversion contributes its delay, each click without one the
   time it has waited, fitted jointly by maximum likelihood;
2. ``DelayedFeedbackModel`` trains any network's p(x) through p(x) * F(e),
   and predicts p(x) itself.

``fake_negative_stream`` and ``fake_negative_correction`` are the other
classic remedy (Ktena et al. 2019), which needs a stream in steady state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .batches import subset
from .checks import TensorDict, num_rows

HOURS_OBSERVED = "hours_observed"
"""Batch key: hours between a click and the moment its label was read."""


@dataclass(frozen=True)
class DelayDistribution:
    """Click-to-conversion delay: a mixture of exponentials, cut at the
    attribution window (a conversion later than that is never counted)."""

    weights: tuple[float, ...]
    mean_hours: tuple[float, ...]
    window_hours: float

    @classmethod
    def of_config(cls, config) -> "DelayDistribution":
        """The delay the generator plants (what a fitted one should find)."""
        return cls(tuple(config.delay_weights), tuple(config.delay_mean_hours),
                   24.0 * config.attribution_days)

    def cdf(self, hours: np.ndarray) -> np.ndarray:
        """F(hours): share of (attributed) conversions reported within ``hours``."""
        hours = np.asarray(hours, dtype=float)
        if (hours < 0).any():
            raise ValueError("hours must be >= 0: a conversion cannot come before its click")
        hours = np.minimum(hours, self.window_hours)
        flat = torch.as_tensor(hours.reshape(-1), dtype=torch.float64)
        return _mixture_cdf(flat, *self._parameters()).numpy().reshape(hours.shape)

    def _parameters(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        log_weights = torch.log(torch.tensor(self.weights, dtype=torch.float64))
        log_means = torch.log(torch.tensor(self.mean_hours, dtype=torch.float64))
        return log_weights, log_means, self.window_hours


def _mixture_cdf(hours: torch.Tensor, log_weights: torch.Tensor,
                 log_means: torch.Tensor, window_hours: float) -> torch.Tensor:
    """Truncated mixture-of-exponentials CDF at ``hours`` (each <= window)."""
    weights = torch.softmax(log_weights, dim=0)                      # (components,)
    rates = torch.exp(-log_means)                                    # (components,)
    inside_window = _share_inside(weights, rates, window_hours)
    reached = -torch.expm1(-rates * hours[:, None])                  # (N, components)
    return (weights * reached).sum(dim=1) / inside_window


def _share_inside(weights: torch.Tensor, rates: torch.Tensor,
                  window_hours: float) -> torch.Tensor:
    """P(delay < window): 1 without a window (rate * inf would be NaN at rate 0)."""
    if math.isinf(window_hours):
        return weights.sum()
    return (weights * -torch.expm1(-rates * window_hours)).sum()


def _mixture_log_pdf(hours: torch.Tensor, log_weights: torch.Tensor,
                     log_means: torch.Tensor, window_hours: float) -> torch.Tensor:
    weights = torch.softmax(log_weights, dim=0)
    rates = torch.exp(-log_means)
    inside_window = _share_inside(weights, rates, window_hours)
    density = (weights * rates * torch.exp(-rates * hours[:, None])).sum(dim=1)
    return torch.log(density) - torch.log(inside_window)


def fit_delay_distribution(hours_waited: np.ndarray, delay_hours: np.ndarray,
                           window_hours: float, n_components: int = 3
                           ) -> tuple[DelayDistribution, float]:
    """The delay distribution and the conversion rate, from censored clicks.

    hours_waited: per click, hours from the click to now (the cutoff).
    delay_hours: per click, the delay of its conversion if it has been
        reported by now, else NaN.
    A reported conversion contributes rate * f(delay); a click without one
    contributes 1 - rate * F(hours waited): either it will never convert,
    or its conversion is still on its way. Returns (delay, rate).
    """
    waited = np.asarray(hours_waited, dtype=float)
    delay = np.asarray(delay_hours, dtype=float)
    if waited.shape != delay.shape or waited.ndim != 1:
        raise ValueError("hours_waited and delay_hours must be 1-d of one length, "
                         f"got {waited.shape} and {delay.shape}")
    reported = ~np.isnan(delay)
    if reported.sum() < 10 * n_components:
        raise ValueError(f"only {int(reported.sum())} reported conversions: "
                         f"too few to fit {n_components} delay components")
    if (waited < 0).any() or (delay[reported] > waited[reported] + 1e-6).any():
        raise ValueError("a click waited a negative time, or its conversion was "
                         "reported after the cutoff")
    waited_t = torch.tensor(np.minimum(waited[~reported], window_hours))
    delay_t = torch.tensor(delay[reported])
    # Start from fast to slow components, spread up to the longest wait seen.
    slowest = min(window_hours, waited.max()) / 3
    log_means = torch.tensor(np.geomspace(0.5, max(slowest, 1.0), n_components)
                             ).log().requires_grad_()
    log_weights = torch.zeros(n_components, dtype=torch.float64, requires_grad=True)
    rate_logit = torch.tensor(np.log(reported.mean() / (1 - reported.mean())),
                              requires_grad=True)
    parameters = [log_weights, log_means, rate_logit]
    optimizer = torch.optim.LBFGS(parameters, max_iter=200,
                                  line_search_fn="strong_wolfe")

    def negative_log_likelihood() -> torch.Tensor:
        optimizer.zero_grad()
        rate = torch.sigmoid(rate_logit)
        shape = (log_weights, log_means, window_hours)
        arrived = torch.log(rate) + _mixture_log_pdf(delay_t, *shape)
        waiting = torch.log1p(-rate * _mixture_cdf(waited_t, *shape))
        loss = -(arrived.sum() + waiting.sum()) / len(waited)
        loss.backward()
        return loss

    for _ in range(5):
        optimizer.step(negative_log_likelihood)
    weights = torch.softmax(log_weights, dim=0).detach().numpy()
    means = torch.exp(log_means).detach().numpy()
    order = np.argsort(means)
    fitted = DelayDistribution(tuple(float(w) for w in weights[order]),
                               tuple(float(m) for m in means[order]), window_hours)
    return fitted, float(torch.sigmoid(rate_logit.detach()))


class DelayedFeedbackModel(nn.Module):
    """Train ``model``'s P(task) through P(task) * F(hours observed).

    When a batch carries ``hours_observed`` (training and validation data
    read at a cutoff), the returned logit is that of p(x) * F(e): the
    chance the conversion happened *and* has been reported. Without it
    (serving, testing), the logit of p(x) itself.
    """

    def __init__(self, model: nn.Module, delay: DelayDistribution,
                 task: str = "conversion") -> None:
        super().__init__()
        self.model = model
        self.delay = delay
        self.task = task
        log_weights, log_means, _ = delay._parameters()
        self.register_buffer("log_weights", log_weights)
        self.register_buffer("log_means", log_means)

    def forward(self, batch: TensorDict) -> dict[str, torch.Tensor]:
        logits = self.model(batch)
        if HOURS_OBSERVED not in batch:
            return logits
        hours = batch[HOURS_OBSERVED].double().clamp(1e-3, self.delay.window_hours)
        reported_share = _mixture_cdf(hours, self.log_weights, self.log_means,
                                      self.delay.window_hours)        # (B,)
        log_p = nn.functional.logsigmoid(logits[self.task].double())   # (B,)
        log_q = log_p + torch.log(reported_share)        # log p(x) F(e)
        q_logit = log_q - torch.log(-torch.expm1(log_q))  # logit of p F
        return {**logits, self.task: q_logit.float()}


def hours_observed(click_seconds: np.ndarray, cutoff_seconds: float) -> torch.Tensor:
    """Hours from each click to the cutoff (the ``hours_observed`` batch key)."""
    waited = (cutoff_seconds - np.asarray(click_seconds, dtype=float)) / 3600.0
    if (waited < 0).any():
        raise ValueError("some clicks are after the cutoff: their labels cannot "
                         "have been read then")
    return torch.as_tensor(waited, dtype=torch.float32)


def fake_negative_stream(data: TensorDict, reported: torch.Tensor,
                         task: str = "conversion") -> TensorDict:
    """Every click once as a negative, and again as a positive for each
    conversion reported so far: what a model trained in real time sees."""
    if reported.shape != (num_rows(data),):
        raise ValueError(f"reported must have one entry per row, got "
                         f"{tuple(reported.shape)} for {num_rows(data)} rows")
    positives = subset(data, torch.nonzero(reported.bool()).squeeze(1))
    label = f"label_{task}"
    stream = {key: torch.cat([data[key], positives[key]]) for key in data}
    stream[label] = torch.cat([torch.zeros(num_rows(data)),
                               torch.ones(num_rows(positives))])
    return stream


def fake_negative_correction(probs: np.ndarray) -> np.ndarray:
    """p = b / (1 - b): a model b trained on the fake-negative stream, where
    every positive also appears once as a negative, so b = p / (1 + p)."""
    b = np.asarray(probs, dtype=float)
    if (b < 0).any() or (b >= 1).any():
        raise ValueError("probs must lie in [0, 1) for the fake-negative correction")
    return b / (1.0 - b)
