"""Checks for lab 10, the whole ranker (labs/10_whole_ranker.ipynb).

Exercises: the piecewise-linear encoding of a number over bins, and the true
value of the top slots a blend fills.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .common import as_float, call, close, correct
from .mistakes import Answers

__all__ = ["check_piecewise_linear_encoding", "check_top_slot_value"]


# ------------------------------------------------------- piecewise-linear encoding
def _encoding_cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(10)
    quantiles = torch.sort(torch.randn(9, generator=generator)).values
    return [
        ("values inside three bins [0, 1), [1, 2), [2, 4)",
         torch.tensor([0.0, 0.5, 1.0, 1.5, 3.0, 3.999]), torch.tensor([0.0, 1.0, 2.0, 4.0])),
        ("values below the first edge and above the last",
         torch.tensor([-2.0, -0.5, 4.0, 7.0]), torch.tensor([0.0, 1.0, 2.0, 4.0])),
        ("one bin [2, 6)", torch.tensor([0.0, 2.0, 3.0, 6.0, 10.0]), torch.tensor([2.0, 6.0])),
        ("200 normal values over 8 bins at quantiles",
         torch.randn(200, generator=generator), quantiles),
    ]


def _reference_encoding(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    from ..nn.numeric import PiecewiseLinear

    layer = PiecewiseLinear(edges.view(1, -1), dim=1)
    return layer.encode(values.view(-1, 1))[:, 0]                       # (N, R)


def _same_tensor(theirs, got) -> bool:
    theirs, got = torch.as_tensor(theirs), torch.as_tensor(got)
    return theirs.shape == got.shape and bool(torch.allclose(theirs.float(), got.float(),
                                                             atol=1e-5))


def check_piecewise_linear_encoding(piecewise_linear_encoding: Callable) -> None:
    """Check ``piecewise_linear_encoding(values, edges)`` against ``PiecewiseLinear.encode``."""
    name = "piecewise_linear_encoding"
    answers = Answers(name, same=_same_tensor)
    for case, values, edges in _encoding_cases():
        kept_values, kept_edges = values.clone(), edges.clone()
        got = call(piecewise_linear_encoding, values, edges)
        if not (torch.equal(values, kept_values) and torch.equal(edges, kept_edges)):
            raise AssertionError(f"{name} changed its arguments in place: compute new "
                                 "tensors and leave the caller's alone.")
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{name} should return a torch tensor, got "
                                 f"{type(got).__name__}.")
        expected = _reference_encoding(values, edges)
        if got.shape != expected.shape:
            raise AssertionError(
                f"With {case}: expected shape {tuple(expected.shape)} (one row per value, "
                f"one column per bin: len(edges) - 1), got {tuple(got.shape)}.")
        answers.add(got, values, edges)
        if not torch.allclose(got.float(), expected, atol=1e-5):
            row = int((got.float() - expected).abs().amax(dim=1).argmax())
            hint = answers.hint(
                "Entry r is (x - edges[r]) / (edges[r + 1] - edges[r]), clamped to [0, 1], "
                "except that the first bin is not clamped below 0 and the last not above 1.")
            raise AssertionError(
                f"With {case}: for the value {float(values[row]):.4g} expected "
                f"{[round(v, 4) for v in expected[row].tolist()]}, got "
                f"{[round(v, 4) for v in got[row].float().tolist()]}. {hint}")
    correct(f"{name} is the encoding ranking.nn.numeric.PiecewiseLinear learns from: how "
            "far each value has come through each bin.")


# ---------------------------------------------------------------- top-slot value
def _value_cases() -> list[tuple[str, np.ndarray, np.ndarray, dict, dict, int]]:
    rng = np.random.default_rng(10)
    n = 600
    requests = rng.integers(0, 60, n) * 7 + 3                 # ids with gaps, rows mixed
    truth = {"click": rng.uniform(0, 0.08, n), "save": rng.uniform(0, 0.03, n),
             "hide": rng.uniform(0, 0.01, n)}
    scores = truth["click"] + rng.normal(0, 0.02, n)          # a noisy model
    values = {"click": 1.0, "save": 3.0, "hide": -20.0}
    tiny_truth = {"click": np.array([0.1, 0.2, 0.3, 0.05, 0.5]),
                  "save": np.array([0.0, 0.1, 0.0, 0.2, 0.0])}
    return [
        ("two requests of 3 and 2 candidates, k=1",
         np.array([0, 0, 0, 1, 1]), np.array([0.9, 0.1, 0.5, 0.3, 0.2]), tiny_truth,
         {"click": 1.0, "save": 2.0}, 1),
        ("60 requests in mixed rows, k=3", requests, scores, truth, values, 3),
        ("the same requests, k=1", requests, scores, truth, values, 1),
        ("the same requests with a bigger k than some requests hold (k=12)",
         requests, scores, truth, values, 12),
    ]


def check_top_slot_value(top_slot_value: Callable) -> None:
    """Check ``top_slot_value(scores, requests, truth, values, k)`` against ``ranking.blend``."""
    from ..blend import slot_outcome, slot_value

    name = "top_slot_value"
    answers = Answers(name, same=close)
    for case, requests, scores, truth, values, k in _value_cases():
        given = (scores.copy(), requests.copy(), {a: p.copy() for a, p in truth.items()})
        got = as_float(call(top_slot_value, *given, dict(values), k), name)
        if not (np.array_equal(given[0], scores) and np.array_equal(given[1], requests)):
            raise AssertionError(f"{name} changed its arguments in place (sorted them?): "
                                 "sort copies, and leave the caller's arrays as they were.")
        answers.add(got, scores, requests, truth, values, k)
        expected = slot_value(slot_outcome(scores, requests, truth, k), values)
        if close(got, expected, rel=1e-6):
            continue
        hint = answers.hint(
            "In each request keep the k candidates with the highest scores (all of them "
            "if it has fewer); over all the kept slots, take the mean of each action's true "
            "probability, times 1,000, times the action's value; add them up.")
        raise AssertionError(f"With {case}: expected {expected:.6f}, got {got:.6f}. {hint}")
    correct(f"{name} is the true value of 1,000 top slots, as ranking.blend scores a blend.")
