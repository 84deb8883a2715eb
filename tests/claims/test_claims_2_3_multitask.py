"""Claims 2 and 3: an abundant task lifts a sparse one; a task that conflicts hurts a shared bottom, less an MMoE.

Chapter 4's experiments at a moderate, fixed-seed scale (the log of the claim-1
test: a third of the book's impressions over a third of its ids). Every task is
scored against the oracle with the expected log loss (the log loss averaged
over the label's randomness, see ``ranking.metrics.expected_logloss``) on the
test impressions it is defined on (every one; the clicked ones for the
conversion), so a sparse task's score carries no label noise.
"""

import numpy as np
import pytest
import torch

from claim_setup import FIT, MODERATE, encoded_split, oracle_gap
from ranking.batches import subset
from ranking.nn import EmbeddingMLP
from ranking.nn.multitask import MMoE, SharedBottom
from ranking.simulate import TASKS
from ranking.train import fit, predict


@pytest.fixture(scope="module")
def data():
    _, _, encoder, tensors = encoded_split(MODERATE, TASKS)
    return encoder, *tensors


def train_and_predict(model, train, valid, test, tasks, masks=None) -> dict[str, np.ndarray]:
    torch.manual_seed(0)
    fit(model, train, valid, tasks=tasks, task_masks=masks, **FIT)
    return predict(model, test)


@pytest.fixture(scope="module")
def claim2(data):
    """Conversion gap closed with a quarter of the clicks labelled: alone, and with the click beside it."""
    encoder, train, valid, test = data
    keep = torch.from_numpy(np.random.default_rng(0).random(len(train["label_click"])) < 0.25)
    train = {**train, "conversion_labelled": train["label_click"] * keep}
    valid = {**valid, "conversion_labelled": valid["label_click"]}
    labelled = train["conversion_labelled"] == 1
    prior = float(train["label_conversion"][labelled].mean())
    alone = train_and_predict(EmbeddingMLP(encoder.cardinalities, encoder.n_dense, tasks=("conversion",)),
                              subset(train, labelled), subset(valid, valid["label_click"] == 1), test,
                              ("conversion",))
    shared = train_and_predict(SharedBottom(encoder.cardinalities, encoder.n_dense, tasks=("click", "conversion")),
                               train, valid, test, ("click", "conversion"), {"conversion": "conversion_labelled"})
    clicked = test["label_click"].numpy() == 1        # the conversion is defined after a click
    return {name: oracle_gap(test, probs["conversion"], "conversion", prior, clicked)
            for name, probs in (("conversion only", alone), ("with click", shared))}


def test_claim2_the_click_lifts_the_sparse_conversion_task(claim2):
    # measured on the clicked test rows: conversion only -19.5 (some thirty conversions: it fits their
    # noise), with the click -0.27 (still short of the base rate with so few labels, but far closer)
    assert claim2["with click"] > claim2["conversion only"] + 0.3, claim2


@pytest.fixture(scope="module")
def claim3(data):
    """Click gap closed when the network learns the click alone or with every other task."""
    encoder, train, valid, test = data
    prior = float(train["label_click"].mean())
    gaps = {}
    for name, model_class in (("shared bottom", SharedBottom), ("MMoE", MMoE)):
        for label, tasks in (("click", ("click",)), ("all tasks", TASKS)):
            model = model_class(encoder.cardinalities, encoder.n_dense, tasks=tasks)
            masks = {"conversion": "label_click"} if "conversion" in tasks else None
            probs = train_and_predict(model, train, valid, test, tasks, masks)
            gaps[name, label] = oracle_gap(test, probs["click"], "click", prior)
    return gaps


def test_claim3_more_tasks_hurt_the_shared_bottom(claim3):
    # measured: shared bottom, click alone 0.265, with every task 0.132
    assert claim3["shared bottom", "all tasks"] < claim3["shared bottom", "click"] - 0.06, claim3


def test_claim3_with_every_task_the_mmoe_keeps_more_of_the_click(claim3):
    # measured, with all five tasks: MMoE 0.203, shared bottom 0.132. (Alone the MMoE is also ahead,
    # 0.328 vs 0.265: at this scale what it reduces is the damage's level more than its size.)
    assert claim3["MMoE", "all tasks"] > claim3["shared bottom", "all tasks"] + 0.03, claim3
