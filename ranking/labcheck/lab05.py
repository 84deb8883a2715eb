"""Checks for lab 5, multi-tower models (labs/05_multitower.ipynb).

Exercises: routing each row to its own surface's tower, and the gap closed per surface.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .common import as_float, call, close, correct
from .mistakes import Answers

__all__ = ["check_route_to_tower", "check_surface_gaps"]


# ------------------------------------------------------------------ routing to towers
def check_route_to_tower(route_to_tower: Callable) -> None:
    """Check ``route_to_tower(tower_logits (B, S), surface (B,)) -> (B,)``: each row's tower."""
    import torch

    name = "route_to_tower"
    generator = torch.Generator().manual_seed(21)
    cases = []
    for batch, n_surfaces in [(6, 3), (50, 3), (7, 5)]:
        logits = torch.randn(batch, n_surfaces, generator=generator)
        surface = torch.randint(0, n_surfaces, (batch,), generator=generator)
        surface[:n_surfaces] = torch.arange(n_surfaces)          # every tower is used
        cases.append((f"{batch} rows, {n_surfaces} towers", logits, surface))
    answers = Answers(name, same=_same_logits)
    for description, logits, surface in cases:
        got = call(route_to_tower, logits.clone(), surface.clone())
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{name} should return a torch.Tensor, got {type(got).__name__}")
        expected = logits.gather(1, surface.unsqueeze(1)).squeeze(1)
        if got.shape != expected.shape:
            raise AssertionError(f"On {description}: expected shape {tuple(expected.shape)} "
                                 f"(one logit per row), got {tuple(got.shape)}.")
        answers.add(got, logits, surface)
        if torch.allclose(got, expected):
            continue
        hint = answers.hint("Row b's output is tower_logits[b, surface[b]] (torch.gather or "
                            "advanced indexing).")
        raise AssertionError(f"On {description} the routed logits differ. {hint}")
    correct(f"{name} gives every row its own surface's tower on {len(cases)} cases.")


def _same_logits(theirs, got) -> bool:
    import torch

    return theirs.shape == got.shape and torch.allclose(got, theirs)


# --------------------------------------------------------------------- per-surface gap
def _surface_gaps(probs, oracle, surface, priors) -> dict:
    probs, oracle, surface = (np.asarray(a) for a in (probs, oracle, surface))
    gaps = {}
    for code, prior in priors.items():
        rows = surface == code
        truth, q = oracle[rows].astype(float), np.clip(probs[rows].astype(float), 1e-7, 1 - 1e-7)
        base = _expected_loss(truth, np.full(rows.sum(), prior))
        gaps[code] = ((base - _expected_loss(truth, q))
                      / (base - _expected_loss(truth, np.clip(truth, 1e-7, 1 - 1e-7))))
    return gaps


def _expected_loss(truth: np.ndarray, q: np.ndarray) -> float:
    """Mean log loss of predictions q when the true click probabilities are ``truth``."""
    return float(-(truth * np.log(q) + (1 - truth) * np.log1p(-q)).mean())


def check_surface_gaps(surface_gaps: Callable, probs: Any = None, oracle: Any = None,
                       surface: Any = None, priors: dict | None = None) -> None:
    """Check ``surface_gaps(probs, oracle, surface, priors) -> {surface: gap closed}`` (expected
    log loss)."""
    name = "surface_gaps"
    rng = np.random.default_rng(5)
    n = 3_000
    crafted_surface = rng.integers(0, 3, n)
    crafted_oracle = 1 / (1 + np.exp(-rng.normal(-3.5 + crafted_surface, 1.0, n)))
    crafted_probs = np.clip(crafted_oracle * rng.uniform(0.6, 1.4, n), 1e-4, 0.999)
    crafted_priors = {0: 0.03, 1: 0.07, 2: 0.15}
    cases = [("crafted surfaces", crafted_probs, crafted_oracle, crafted_surface, crafted_priors)]
    if probs is not None:
        cases.append(("the lab's test days", probs, oracle, surface, priors))
    answers = Answers(name, same=_same_gaps)
    for description, p, o, s, pr in cases:
        got = call(surface_gaps, p.copy(), o.copy(), s.copy(), dict(pr))
        expected = _surface_gaps(p, o, s, pr)
        if not isinstance(got, dict) or set(got) != set(expected):
            raise AssertionError(f"{name} should return a dict keyed by the surfaces in "
                                 f"`priors` ({sorted(expected)}), got {got!r}")
        got = {code: as_float(value, f"{name}()[{code}]") for code, value in got.items()}
        answers.add(got, p, o, s, pr)
        for code, value in expected.items():
            if close(got[code], value, rel=1e-5, abs_=1e-7):
                continue
            hint = answers.hint(
                "Per surface: gap = (E[LL](base rate) - E[LL](model)) / (E[LL](base rate) - "
                "E[LL](oracle)), E[LL](q) = mean of -[p log q + (1 - p) log(1 - q)] with p "
                "the oracle, on that surface's rows.")
            raise AssertionError(f"On {description}, surface {code}: expected {value:.5f}, "
                                 f"got {got[code]:.5f}. {hint}")
    correct(f"{name} matches the per-surface gap closed on {len(cases)} cases.")


def _same_gaps(theirs: dict, got: dict) -> bool:
    return all(close(float(theirs[code]), value, rel=1e-5) for code, value in got.items())
