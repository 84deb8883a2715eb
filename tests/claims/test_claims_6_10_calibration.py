"""Claims 6 and 10: contextual calibration and delayed conversions (chapter 7).

Chapter 7's log at the ``book`` scale, one generator seed (``RANKING_CLAIM_SEED``,
0 unless set; the numbers noted are seed 0's): a launch on day 10 moves the
search and home-feed click rates, and conversions are 10% of clicks. The book
scale, because the calibration days are the calibration set: on the moderate
log they hold a third of the rows, and the noise of the fitted offsets leaves
contextual Platt only 15% ahead of global Platt (field ECE against the truth
0.00175 against 0.00204), where the book's log shows the claim's 50%.
Claim 6: a click network trained before the launch, calibrated on the two
days after it, scored on the last two days. Claim 10: conversion networks
trained at the start of the test days on the conversions reported by then.
Calibration errors are measured against the true probabilities (no label
noise), so one seed at this scale is enough for the margins below.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from claim_setup import FIT, generator_seed, record
from ranking.batches import subset
from ranking.calibration import ContextualPlatt, PlattScaling
from ranking.delayed import (HOURS_OBSERVED, DelayedFeedbackModel,
                             fit_delay_distribution, hours_observed)
from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.metrics import auc, field_ece
from ranking.nn import EmbeddingMLP
from ranking.simulate import AdLogConfig, load_or_simulate
from ranking.train import fit, predict

CHAPTER_7 = AdLogConfig.preset("book", conversion_rate=0.1,
                              surface_shift={"home_feed": -0.25, "related_pins": 0.0, "search": 0.6})


@pytest.fixture(scope="module")
def split():
    torch.set_num_threads(1)
    logs = load_or_simulate(CHAPTER_7, seed=generator_seed())
    return logs, time_split(logs.impressions, valid_days=2, test_days=2)


@pytest.fixture(scope="module")
def click_calibration(split) -> dict:
    """{predictor: (field ECE against the truth, AUC)} on the test days."""
    logs, (train_frame, valid_frame, test_frame) = split
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",))).fit(train_frame)
    train, valid, test = (encoder.transform(frame) for frame in (train_frame, valid_frame, test_frame))
    torch.manual_seed(0)
    model = EmbeddingMLP(encoder.cardinalities, encoder.n_dense)
    fit(model, train, valid, tasks=("click",), start_at_base_rate=True, **FIT)
    on_valid, on_test = predict(model, valid)["click"], predict(model, test)["click"]

    def context(frame):
        surface = frame["surface"].astype(str).to_numpy()
        return pd.DataFrame({"surface": surface, "is_video": frame["is_video"].to_numpy(),
                             "surface x format": surface + frame["is_video"].astype(str).to_numpy()})

    y_valid = valid_frame["click"].to_numpy()
    predictions = {
        "uncalibrated": on_test,
        "Platt": PlattScaling().fit(on_valid, y_valid).transform(on_test),
        "contextual Platt": ContextualPlatt(["surface", "is_video", "surface x format"]).fit(
            on_valid, y_valid, context(valid_frame)).transform(on_test, context(test_frame)),
    }
    field = test_frame["surface"].astype(str).to_numpy() + test_frame["is_video"].astype(str).to_numpy()
    truth, labels = test_frame["p_click"].to_numpy(), test_frame["click"].to_numpy()
    return {name: (field_ece(truth, probs, field), auc(labels, probs)) for name, probs in predictions.items()}


@pytest.mark.claim(6)
def test_contextual_platt_cuts_the_field_level_error(click_calibration, record_property):
    # measured (book, seed 0), field ECE against the truth: uncalibrated 0.0042, Platt 0.0037,
    # contextual Platt 0.0003
    errors = {name: error for name, (error, _) in click_calibration.items()}
    # effect: the share of the uncalibrated field error that contextual Platt removes
    record(record_property, 1 - errors["contextual Platt"] / errors["uncalibrated"], 0.8,
           effect_against_platt=1 - errors["contextual Platt"] / errors["Platt"],
           **{f"ece_{name.replace(' ', '_')}": error for name, error in errors.items()})
    assert errors["contextual Platt"] < 0.2 * errors["uncalibrated"], errors
    assert errors["contextual Platt"] < 0.3 * errors["Platt"], errors


@pytest.mark.claim(6)
def test_platt_scaling_leaves_the_ranking_alone(click_calibration, record_property):
    aucs = {name: value for name, (_, value) in click_calibration.items()}
    record(record_property, -abs(aucs["Platt"] - aucs["uncalibrated"]), -1e-4, kind="no worse than",
           auc_change=aucs["Platt"] - aucs["uncalibrated"],
           **{f"auc_{name.replace(' ', '_')}": value for name, value in aucs.items()})
    assert abs(aucs["Platt"] - aucs["uncalibrated"]) < 1e-4, aucs


@pytest.fixture(scope="module")
def conversion_ratios(split) -> dict:
    """{model: mean prediction / mean true rate of reported conversions} on the test clicks, 3 seeds."""
    logs, (train_frame, valid_frame, test_frame) = split
    cutoff = float(test_frame["timestamp"].min())
    clicks = pd.concat([train_frame, valid_frame])
    clicks = clicks[clicks["click"] == 1].reset_index(drop=True)
    test_clicks = test_frame[test_frame["click"] == 1].reset_index(drop=True)
    spec = FeatureSpec(sequence_length=0, tasks=("conversion",), conversion_observed_at=cutoff)
    encoder = FeatureEncoder(logs, spec).fit(train_frame)
    observed = encoder.transform(clicks)
    observed[HOURS_OBSERVED] = hours_observed(clicks["timestamp"], cutoff)
    test = encoder.transform(test_clicks)

    waited = (cutoff - clicks["timestamp"].to_numpy()) / 3600
    reported = clicks["conversion_timestamp"].to_numpy() <= cutoff
    delay = np.where(reported, (clicks["conversion_timestamp"] - clicks["timestamp"]).to_numpy() / 3600, np.nan)
    fitted_delay, _ = fit_delay_distribution(waited, delay, 24.0 * CHAPTER_7.attribution_days)
    held_out = torch.from_numpy(np.random.default_rng(0).random(len(clicks)) < 0.1)
    truth = test_clicks["p_conversion"].to_numpy().mean()
    settings = {**FIT, "batch_size": 1024, "patience": 2}
    ratios = {}
    for name, wrap in (("naive", lambda network: network),
                       ("delayed feedback", lambda network: DelayedFeedbackModel(network, fitted_delay))):
        means = []
        for seed in (0, 1, 2):   # a network on a few thousand conversions moves by seed: average three
            torch.manual_seed(seed)
            model = wrap(EmbeddingMLP(encoder.cardinalities, encoder.n_dense, tasks=("conversion",)))
            fit(model, subset(observed, ~held_out), subset(observed, held_out), tasks=("conversion",),
                start_at_base_rate=True, **{**settings, "seed": seed})
            means.append(float(predict(model, test)["conversion"].mean()))
        ratios[name] = float(np.mean(means) / truth)
    return ratios


@pytest.mark.claim(10)
def test_naive_training_on_delayed_conversions_under_predicts(conversion_ratios, record_property):
    # measured (book, model seeds 0-2): see the assertion message; the chapter's 5 seeds give 0.65
    # effect: the share of the true conversion rate that naive training misses
    record(record_property, 1 - conversion_ratios["naive"], 0.15,
           **{f"ratio_{name.replace(' ', '_')}": ratio for name, ratio in conversion_ratios.items()})
    assert conversion_ratios["naive"] < 0.85, conversion_ratios


@pytest.mark.claim(10)
def test_the_delayed_feedback_model_restores_the_ratio(conversion_ratios, record_property):
    # the chapter's 5 seeds give 0.97 (single seeds 0.93 to 1.05)
    # effect: minus the delayed-feedback ratio's distance from 1 (the test allows 0.06)
    record(record_property, -abs(conversion_ratios["delayed feedback"] - 1.0), -0.06, kind="level",
           gain_over_naive=conversion_ratios["delayed feedback"] - conversion_ratios["naive"],
           **{f"ratio_{name.replace(' ', '_')}": ratio for name, ratio in conversion_ratios.items()})
    assert abs(conversion_ratios["delayed feedback"] - 1.0) < 0.06, conversion_ratios
    assert conversion_ratios["delayed feedback"] - conversion_ratios["naive"] > 0.2, conversion_ratios
