"""Claims 2 and 3: an abundant task lifts a sparse one; other tasks cost a shared bottom's click, less an MMoE's.

Chapter 4's experiments on its smaller log (a third of the book's impressions
over a third of its ids), with its training recipe: every head starts at its
base rate, task losses are weighted by base-rate entropy. Every task is scored
against the oracle with the expected log loss on the test impressions it is
defined on (every one; the clicked ones for the conversion), so a sparse task's
score carries no label noise. The log's generator seed is ``RANKING_CLAIM_SEED``
(0 unless set; the numbers noted are seed 0's); the model seeds stay fixed.
"""

import numpy as np
import pytest
import torch

from claim_setup import MODERATE, encoded_split, oracle_gap, record
from ranking.batches import subset
from ranking.nn import EmbeddingMLP
from ranking.nn.multitask import MMoE, SharedBottom
from ranking.simulate import TASKS
from ranking.objective import boost_rare_tasks, entropy_weights, task_rates
from ranking.train import fit, predict

RECIPE = dict(epochs=10, patience=2, batch_size=4096, lr=1e-3, weight_decay=1e-4, progress=False,
              start_at_base_rate=True)
"""Chapter 4's training settings."""
CLICKED_ONLY = {"conversion": "label_click"}


@pytest.fixture(scope="module")
def data():
    _, _, encoder, tensors = encoded_split(MODERATE, TASKS)
    return encoder, *tensors


def train_and_predict(model, train, valid, test, tasks, masks=None, seed=0, **options) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    fit(model, train, valid, tasks=tasks, task_masks=masks, seed=seed, **{**RECIPE, **options})
    return predict(model, test)


def build(model_class, encoder, tasks, seed=0):
    torch.manual_seed(seed)
    return model_class(encoder.cardinalities, encoder.n_dense, tasks=tasks)


@pytest.fixture(scope="module")
def claim2(data):
    """Conversion gap closed with a quarter of the clicks labelled: alone, and with the click beside it."""
    encoder, train, valid, test = data
    keep = torch.from_numpy(np.random.default_rng(0).random(len(train["label_click"])) < 0.25)
    train = {**train, "conversion_labelled": train["label_click"] * keep}
    valid = {**valid, "conversion_labelled": valid["label_click"]}
    labelled = train["conversion_labelled"] == 1
    pair, masks = ("click", "conversion"), {"conversion": "conversion_labelled"}
    prior = task_rates(train, pair, masks)["conversion"]
    weights = entropy_weights(train, pair, masks)
    alone = train_and_predict(build(EmbeddingMLP, encoder, ("conversion",)), subset(train, labelled),
                              subset(valid, valid["label_click"] == 1), test, ("conversion",))
    shared = train_and_predict(build(SharedBottom, encoder, pair), train, valid, test, pair, masks,
                               task_weights=boost_rare_tasks(weights), monitor=weights)
    clicked = test["label_click"].numpy() == 1        # the conversion is defined after a click
    return {name: oracle_gap(test, probs["conversion"], "conversion", prior, clicked)
            for name, probs in (("conversion only", alone), ("with click", shared))}


@pytest.mark.claim(2)
def test_claim2_the_click_lifts_the_sparse_conversion_task(claim2, record_property):
    # measured on the clicked test rows (41 training conversions, world 0): conversion only -1.5%
    # (it fits some noise), with the click +0.4%; over worlds 0-4 the lift is -0.4 points
    # [-5.8, +4.9]: no effect. With a fair loop the lift is small (chapter 4).
    record(record_property, claim2["with click"] - claim2["conversion only"], 0.008,
           gap_with_click=claim2["with click"], gap_conversion_only=claim2["conversion only"])
    assert claim2["with click"] > claim2["conversion only"] + 0.008, claim2
    assert claim2["with click"] > -0.005, claim2


@pytest.fixture(scope="module")
def claim3(data):
    """Click gap closed, alone and with all five tasks, each network stopped on its click's validation loss.

    Also the five-task shared bottom trained the plain way (heads at p = 0.5, the
    summed loss, stopped on the sum), the confound chapter 4 removes.
    """
    encoder, train, valid, test = data
    prior = float(train["label_click"].mean())
    gaps = {}
    for seed in (0, 1):
        for name, model_class in (("shared bottom", SharedBottom), ("MMoE", MMoE)):
            for label, tasks in (("click", ("click",)), ("all tasks", TASKS)):
                masks = {task: key for task, key in CLICKED_ONLY.items() if task in tasks}
                weights = entropy_weights(train, tasks, masks)
                probs = train_and_predict(build(model_class, encoder, tasks, seed), train, valid, test, tasks,
                                          masks, seed, task_weights=boost_rare_tasks(weights), monitor="click",
                                          patience=1)
                gaps[name, label, seed] = oracle_gap(test, probs["click"], "click", prior)
    probs = train_and_predict(build(SharedBottom, encoder, TASKS), train, valid, test, TASKS, CLICKED_ONLY,
                              start_at_base_rate=False, patience=1)
    gaps["shared bottom", "plain loop"] = oracle_gap(test, probs["click"], "click", prior)
    return gaps


def _change(gaps, name):
    """Mean over seeds of (click gap with all tasks) - (click gap alone)."""
    return float(np.mean([gaps[name, "all tasks", seed] - gaps[name, "click", seed] for seed in (0, 1)]))


def _gaps(gaps) -> dict:
    """{'gap_<model>_<tasks>[_<seed>]': click gap closed} for record_property."""
    return {"gap_" + "_".join(str(part).replace(" ", "_") for part in key): value for key, value in gaps.items()}


@pytest.mark.claim(3)
def test_claim3_the_plain_loop_confounds_the_cost_of_sharing(claim3, record_property):
    # measured (world 0, model seed 0): the fair loop closes 0.20 more of the click gap than the plain one
    record(record_property, claim3["shared bottom", "all tasks", 0] - claim3["shared bottom", "plain loop"], 0.1,
           **_gaps(claim3))
    assert claim3["shared bottom", "plain loop"] < claim3["shared bottom", "all tasks", 0] - 0.1, claim3


@pytest.mark.claim(3)
def test_claim3_other_tasks_cost_the_shared_bottoms_click(claim3, record_property):
    # measured (world 0): -2.9 points of the gap on average over two model seeds; over worlds 0-4
    # -4.7 [-6.3, -3.1] (experiments/results/claim_verdicts-cpu.json)
    # effect: the cost, positive when the other tasks lower the click's gap closed
    record(record_property, -_change(claim3, "shared bottom"), 0.005,
           change_shared_bottom=_change(claim3, "shared bottom"))
    assert _change(claim3, "shared bottom") < -0.005, claim3


@pytest.mark.claim(3)
def test_claim3_the_mmoe_keeps_more_of_the_click(claim3, record_property):
    # measured (world 0): MMoE -1.6 points on average, shared bottom -2.9; the difference over
    # worlds 0-4 +1.3 [+0.5, +2.2]
    record(record_property, _change(claim3, "MMoE") - _change(claim3, "shared bottom"), 0.008,
           change_MMoE=_change(claim3, "MMoE"), change_shared_bottom=_change(claim3, "shared bottom"))
    assert _change(claim3, "MMoE") > _change(claim3, "shared bottom") + 0.008, claim3
