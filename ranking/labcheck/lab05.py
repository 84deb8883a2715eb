"""Checks for lab 5, multi-tower models (labs/05_multitower.ipynb).

Exercises: routing each row to its own surface's tower, and the gap closed per surface.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._common import _as_float, _call, _close, _correct

__all__ = ["check_route_to_tower", "check_surface_gaps"]


# ------------------------------------------------------------------ routing to towers
def check_route_to_tower(route_to_tower: Callable) -> None:
    """Check ``route_to_tower(tower_logits (B, S), surface (B,)) -> (B,)``: each row's own tower."""
    import torch

    name = "route_to_tower"
    generator = torch.Generator().manual_seed(21)
    cases = []
    for batch, n_surfaces in [(6, 3), (50, 3), (7, 5)]:
        logits = torch.randn(batch, n_surfaces, generator=generator)
        surface = torch.randint(0, n_surfaces, (batch,), generator=generator)
        surface[:n_surfaces] = torch.arange(n_surfaces)          # every tower is used
        cases.append((f"{batch} rows, {n_surfaces} towers", logits, surface))
    wrong = {
        "That is tower 0 for every row: use each row's surface.": lambda t, s: t[:, 0],
        "That averages the towers: each row must get its own surface's tower only.": lambda t, s: t.mean(dim=1),
        "That is the largest tower output, not the row's own surface's.": lambda t, s: t.max(dim=1).values,
    }
    for description, logits, surface in cases:
        got = _call(route_to_tower, logits.clone(), surface.clone())
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{name} should return a torch.Tensor, got {type(got).__name__}")
        expected = logits.gather(1, surface.unsqueeze(1)).squeeze(1)
        if got.shape != expected.shape:
            raise AssertionError(f"On {description}: expected shape {tuple(expected.shape)} (one logit per row), "
                                 f"got {tuple(got.shape)}.")
        if torch.allclose(got, expected):
            continue
        hint = "Row b's output is tower_logits[b, surface[b]] (torch.gather or advanced indexing)."
        for text, fn in wrong.items():
            candidate = fn(logits, surface)
            if candidate.shape == got.shape and torch.allclose(got, candidate):
                hint = text
                break
        raise AssertionError(f"On {description} the routed logits differ. {hint}")
    _correct(f"{name} gives every row its own surface's tower on {len(cases)} cases.")


# --------------------------------------------------------------------- per-surface gap
def _surface_gaps(probs, oracle, surface, priors) -> dict:
    probs, oracle, surface = (np.asarray(a) for a in (probs, oracle, surface))
    gaps = {}
    for code, prior in priors.items():
        rows = surface == code
        truth, q = oracle[rows].astype(float), np.clip(probs[rows].astype(float), 1e-7, 1 - 1e-7)
        loss = lambda p: float(-(truth * np.log(p) + (1 - truth) * np.log1p(-p)).mean())
        base = loss(np.full(rows.sum(), prior))
        gaps[code] = (base - loss(q)) / (base - loss(np.clip(truth, 1e-7, 1 - 1e-7)))
    return gaps


def check_surface_gaps(surface_gaps: Callable, probs: Any = None, oracle: Any = None, surface: Any = None,
                       priors: dict | None = None) -> None:
    """Check ``surface_gaps(probs, oracle, surface, priors) -> {surface: gap closed}`` (expected log loss)."""
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
    for description, p, o, s, pr in cases:
        got = _call(surface_gaps, p.copy(), o.copy(), s.copy(), dict(pr))
        expected = _surface_gaps(p, o, s, pr)
        if not isinstance(got, dict) or set(got) != set(expected):
            raise AssertionError(f"{name} should return a dict keyed by the surfaces in `priors` "
                                 f"({sorted(expected)}), got {got!r}")
        for code, value in expected.items():
            value_got = _as_float(got[code], f"{name}()[{code}]")
            if _close(value_got, value, rel=1e-5, abs_=1e-7):
                continue
            hint = ("Per surface: gap = (E[LL](base rate) - E[LL](model)) / (E[LL](base rate) - E[LL](oracle)), "
                    "E[LL](q) = mean of -[p log q + (1 - p) log(1 - q)] with p the oracle, on that surface's rows.")
            rows = np.asarray(s) == code
            pooled = float(np.mean([pr[c] for c in pr]))
            if _close(value_got, _surface_gaps(p, o, s, {c: pooled for c in pr})[code], rel=1e-5):
                hint = "Use each surface's own base rate from `priors`, not one rate for all."
            elif _close(value_got, 1 - value, rel=1e-5):
                hint = "That is the share of the gap still open: measure how far the model got from the base rate."
            elif rows.sum() and _close(value_got, _surface_gaps(p[rows], o[rows], np.zeros(rows.sum()),
                                                                 {0: float(np.mean(o[rows]))})[0], rel=1e-5):
                hint = "The base rate is the surface's training rate in `priors`, not the mean of the oracle."
            raise AssertionError(f"On {description}, surface {code}: expected {value:.5f}, got {value_got:.5f}. {hint}")
    _correct(f"{name} matches the per-surface gap closed on {len(cases)} cases.")
