"""Claims 8 and 9: 16-bit inference and Resilient Batch Norm (chapter 8).

Claim 8 on the moderate log, one seed: a DCN V2 on raw counts overflows fp16
(its cross layers raise the counts to a power per layer) while bf16 keeps
every prediction; on standardized inputs both 16-bit formats score the test
days with the float32 AUC. Claim 9 on the book's log, because the outage has
to last enough batches for Batch Norm's running variance to collapse (a day
of the moderate log is a third as many batches): a network trained day by day
in time order through the planted one-day outage of ``item_save_count``.
Every log is simulated with the generator seed ``RANKING_CLAIM_SEED`` (0 unless
set; the numbers noted are seed 0's); the model seeds stay 0.
"""

import numpy as np
import pytest
import torch

from claim_setup import generator_seed, record
from ranking.continuous import train_in_time_order
from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.metrics import auc
from ranking.nn import DCNv2, EmbeddingMLP, ResilientBatchNorm1d
from ranking.precision import agreement, predict_in
from ranking.simulate import AdLogConfig, load_or_simulate
from ranking.train import fit

RAW = FeatureSpec(sequence_length=0, tasks=("click",), log1p=False, clip_quantile=None, scaling=None)
STANDARDIZED = FeatureSpec(sequence_length=0, tasks=("click",))


def trained_dcn(spec: FeatureSpec):
    """A DCN V2 trained in float32 on the moderate log, and its test days."""
    torch.set_num_threads(1)
    logs = load_or_simulate(AdLogConfig.preset("moderate"), seed=generator_seed())
    train_frame, valid_frame, test_frame = time_split(logs.impressions, valid_days=2, test_days=2)
    encoder = FeatureEncoder(logs, spec).fit(train_frame)
    train, valid, test = (encoder.transform(frame) for frame in (train_frame, valid_frame, test_frame))
    torch.manual_seed(0)
    model = DCNv2(encoder.cardinalities, encoder.n_dense)
    fit(model, train, valid, epochs=2, patience=1, weight_decay=1e-4, progress=False)
    return model, test


@pytest.mark.claim(8)
def test_claim8_fp16_overflows_on_raw_counts_where_bf16_does_not(record_property):
    model, test = trained_dcn(RAW)
    reference = predict_in(model, test, "fp32")["click"]
    fp16 = agreement(reference, predict_in(model, test, "fp16")["click"])
    bf16 = agreement(reference, predict_in(model, test, "bf16")["click"])
    # effect: the share of fp16 predictions that are not finite (bf16's must be none)
    record(record_property, fp16["non_finite"], 0.2, non_finite_fp16=fp16["non_finite"],
           non_finite_bf16=bf16["non_finite"])
    assert fp16["non_finite"] > 0.2, fp16       # measured 0.73 at book scale
    assert bf16["non_finite"] == 0.0, bf16


@pytest.mark.claim(8)
def test_claim8_16_bit_inference_keeps_the_auc_on_standardized_inputs(record_property):
    model, test = trained_dcn(STANDARDIZED)
    labels = test["label_click"].numpy()
    fp32 = predict_in(model, test, "fp32")["click"]
    modes = ("bf16", "fp16", "bf16 weights")
    probs = {mode: predict_in(model, test, mode)["click"] for mode in modes}
    changes = {mode: auc(labels, probs[mode]) - auc(labels, fp32) for mode in modes if np.isfinite(probs[mode]).all()}
    # effect: minus the largest AUC change of a 16-bit mode (the test allows 0.001)
    record(record_property, -max(map(abs, changes.values()), default=float("inf")), -0.001, kind="no worse than",
           auc_fp32=auc(labels, fp32), **{f"auc_change_{mode.replace(' ', '_')}": change
                                          for mode, change in changes.items()})
    for mode in modes:
        assert np.isfinite(probs[mode]).all(), mode
        assert abs(auc(labels, probs[mode]) - auc(labels, fp32)) <= 0.001, mode


@pytest.fixture(scope="module")
def next_day_ne() -> dict:
    """{run: NE of the day after the outage, served by the model trained through it}."""
    torch.set_num_threads(1)
    config = AdLogConfig.preset("book")
    outage_day = int(config.outage_start_day)
    spec = FeatureSpec(sequence_length=0, tasks=("click",), scaling=None)
    results = {}
    for outage, runs in ((config.outage_days, ("batch", "resilient", "fill_masked")),
                         (0.0, ("resilient",))):
        logs = load_or_simulate(AdLogConfig.preset("book", outage_days=outage), seed=generator_seed())
        frame = logs.impressions
        day = (frame["timestamp"] // 86_400).astype(int)
        encoder = FeatureEncoder(logs, spec).fit(frame[day < outage_day])
        days = [encoder.transform(frame[day == d]) for d in range(outage_day + 2)]
        for run in runs:
            torch.manual_seed(0)
            model = EmbeddingMLP(encoder.cardinalities, encoder.n_dense, hidden=(128, 64),
                                 dense_normalization="batch" if run == "batch" else "resilient")
            if run == "fill_masked":
                model.input.dense_input.norm = ResilientBatchNorm1d(encoder.n_dense, fill_masked=True)
            table = train_in_time_order(model, days, progress=False).set_index("day")
            name = run if outage else f"{run}, no outage"
            results[name] = table.loc[outage_day + 1, "ne"]
    return results


@pytest.mark.claim(9)
def test_claim9_batch_norm_explodes_after_the_outage(next_day_ne, record_property):
    # measured: Batch Norm 3.28, worse than the base rate; Resilient BN 1.01
    # effect: how much worse Batch Norm's NE is than Resilient BN's, relative
    record(record_property, next_day_ne["batch"] / next_day_ne["resilient"] - 1, 0.5,
           **{f"ne_{name.replace(' ', '_').replace(',', '')}": ne for name, ne in next_day_ne.items()})
    assert next_day_ne["batch"] > 1.5
    assert next_day_ne["batch"] > 1.5 * next_day_ne["resilient"]


@pytest.mark.claim(9)
def test_claim9_resilient_batch_norm_survives_the_outage(next_day_ne, record_property):
    clean = next_day_ne["resilient, no outage"]
    # effect: minus the relative NE cost of the outage to Resilient BN (the test allows 15%; filled, 2%)
    record(record_property, 1 - next_day_ne["resilient"] / clean, -0.15, kind="no worse than",
           effect_fill_masked=1 - next_day_ne["fill_masked"] / clean,
           **{f"ne_{name.replace(' ', '_').replace(',', '')}": ne for name, ne in next_day_ne.items()})
    # the write-up's steps: no explosion, within 15% (measured +8%, the cost of training on the broken day)
    assert next_day_ne["resilient"] < 1.15 * clean
    # with masked columns read as their running mean in training: the chapter's 1%
    # (measured +0.8%), with a margin
    assert next_day_ne["fill_masked"] < 1.02 * clean
