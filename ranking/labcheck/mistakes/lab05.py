"""Known mistakes of lab 5, multi-tower models (labs/05_multitower.ipynb).

Exercises: ``route_to_tower`` and ``surface_gaps``.
"""

from __future__ import annotations

import numpy as np

from ..common import mistake


# ------------------------------------------------------------------ routing to towers
@mistake("route_to_tower", hint="That is tower 0 for every row: use each row's surface.")
def tower_zero(tower_logits, surface):
    return tower_logits[:, 0]


@mistake("route_to_tower",
         hint="That averages the towers: each row must get its own surface's tower only.")
def mean_of_the_towers(tower_logits, surface):
    return tower_logits.mean(dim=1)


@mistake("route_to_tower",
         hint="That is the largest tower output, not the row's own surface's.")
def largest_tower(tower_logits, surface):
    return tower_logits.max(dim=1).values


@mistake("route_to_tower")
def rows_indexed_not_columns(tower_logits, surface):
    return tower_logits[surface]


@mistake("route_to_tower",
         hint="Surface codes count from 0: row b takes the tower numbered surface[b], not "
              "the next one.")
def surface_codes_shifted(tower_logits, surface):
    shifted = (surface + 1) % tower_logits.shape[1]
    return tower_logits.gather(1, shifted.unsqueeze(1)).squeeze(1)


# --------------------------------------------------------------------- per-surface gap
def _expected_loss(p, q):
    q = np.clip(q, 1e-7, 1 - 1e-7)
    return -np.mean(p * np.log(q) + (1 - p) * np.log(1 - q))


@mistake("surface_gaps",
         hint="Use each surface's own base rate from `priors`, not one rate for all.")
def one_pooled_base_rate(probs, oracle, surface, priors):
    pooled = float(np.mean(list(priors.values())))
    gaps = {}
    for code in priors:
        rows = surface == code
        p = oracle[rows]
        base = _expected_loss(p, np.full(rows.sum(), pooled))
        gaps[code] = (base - _expected_loss(p, probs[rows])) / (base - _expected_loss(p, p))
    return gaps


@mistake("surface_gaps",
         hint="That is the share of the gap still open: measure how far the model got from "
              "the base rate.")
def share_still_open(probs, oracle, surface, priors):
    gaps = {}
    for code, prior in priors.items():
        rows = surface == code
        p = oracle[rows]
        base = _expected_loss(p, np.full(rows.sum(), prior))
        oracle_loss = _expected_loss(p, p)
        gaps[code] = (_expected_loss(p, probs[rows]) - oracle_loss) / (base - oracle_loss)
    return gaps


@mistake("surface_gaps",
         hint="Measure each surface on its own rows only (surface == code), not on every "
              "row.")
def every_row(probs, oracle, surface, priors):
    gaps = {}
    for code, prior in priors.items():
        base = _expected_loss(oracle, np.full(len(oracle), prior))
        gaps[code] = ((base - _expected_loss(oracle, probs))
                      / (base - _expected_loss(oracle, oracle)))
    return gaps


@mistake("surface_gaps",
         hint="The expected log loss has two terms, p log q and (1 - p) log(1 - q): the "
              "negatives count too.")
def no_negative_class_term(probs, oracle, surface, priors):
    def loss(p, q):
        return -np.mean(p * np.log(np.clip(q, 1e-7, 1 - 1e-7)))

    gaps = {}
    for code, prior in priors.items():
        rows = surface == code
        p = oracle[rows]
        base = loss(p, np.full(rows.sum(), prior))
        gaps[code] = (base - loss(p, probs[rows])) / (base - loss(p, p))
    return gaps


@mistake("surface_gaps",
         hint="The base rate is the surface's training rate in `priors`, not the mean of "
              "the oracle.")
def base_rate_from_the_oracle(probs, oracle, surface, priors):
    gaps = {}
    for code in priors:
        rows = surface == code
        p = oracle[rows]
        base = _expected_loss(p, np.full(rows.sum(), p.mean()))
        gaps[code] = (base - _expected_loss(p, probs[rows])) / (base - _expected_loss(p, p))
    return gaps
