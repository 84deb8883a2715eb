"""Probe for claim 1: does GBDT plateau with more data while a DNN with embeddings keeps improving?

    .venv/bin/python experiments/claim1_probe.py

A measurement for chapter 3, not a claim. For each generator setting, the log
is split by time (2 validation days, then 2 test days, the same for every
run); the models train on the most recent 1/8, 1/4, 1/2 or all of the
training days and are scored by the share of the base-rate-to-oracle gap they
close on the test days. One seed per run; the data-size curve is the signal.

- GBDT: LightGBM on the logged dense features, the low-cardinality ids
  (surface, is_video, hour, category) and leakage-free historical click-through
  rates of the user, item and advertiser: each row sees only the clicks and
  impressions of earlier rows in its window, as online counters would.
- EmbeddingMLP and DCNv2 from ``ranking.nn``: every id embedded, Adam at lr 1e-3
  with weight decay 1e-4 (without it both overfit after one epoch), early
  stopping on the validation days.
- Dot product: a diagnostic, not one of the compared models. Logistic regression
  plus <user vector, item vector>, the form of the planted taste term: if it
  beats GBDT, the data do hold user x item signal that the deep models miss.

Each setting also reports a reference point: the oracle with its user x item
affinity and short-term interest terms removed (per-surface intercepts refitted),
i.e. what the log offers without the signal only id crosses or sequences reach.
Models can pass it (per-user click rates capture part of the affinity), so it
is a landmark, not a bound.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402
from ranking.features import DENSE, FeatureEncoder, FeatureSpec, time_split
from ranking.metrics import oracle_report
from ranking.nn import DCNv2, EmbeddingMLP, LogisticRegression
from ranking.simulate import SURFACES, AdLogConfig, AdLogs, load_or_simulate
from ranking.simulate.logs import affinity
from ranking.simulate.world import SECONDS_PER_DAY, build_world
from ranking.train import fit, predict

SETTINGS: dict[str, dict] = {
    "book": {},
    "book, 5k users": dict(n_users=5_000),
    "dense ids": dict(n_users=2_000, n_items=1_000, n_advertisers=100, latent_dim=4, affinity_scale=1.5),
    "gpu": dict(n_users=150_000, n_items=40_000, n_advertisers=4_000, n_impressions=12_000_000),
}
"""Overrides of the ``book`` preset (1.2M impressions over 14 days). The last two
give each id more impressions; "dense ids" also makes the taste term easier to learn.
"gpu" is the ``gpu`` preset (12M impressions, ten times the book's), for a machine
with a GPU: ``--settings gpu --fractions 0.1 1 --gbdt-threads 16``."""
FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1.0)
"""Share of the training days (the most recent ones) a run trains on."""
VALID_DAYS, TEST_DAYS = 2.0, 2.0
COUNTER_PRIOR_WEIGHT = 100.0
"""Pseudo-impressions at the training click rate that smooth each historical CTR."""
GBDT_PARAMS = dict(objective="binary", learning_rate=0.05, num_leaves=63, min_data_in_leaf=200,
                   feature_fraction=0.9, bagging_fraction=0.8, bagging_freq=1, lambda_l2=10.0,
                   max_cat_to_onehot=4, num_threads=1, seed=0, verbose=-1)
GBDT_CATEGORICAL = ["surface", "is_video", "hour_of_day", "category"]


# ------------------------------------------------------------------------ GBDT
def rows_before(keys: np.ndarray, clicks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row (rows in time order): impressions and clicks of the same key in earlier rows."""
    order = np.argsort(keys, kind="stable")               # by key, time order kept within a key
    sorted_keys, sorted_clicks = keys[order], clicks[order]
    position = np.arange(len(keys))
    is_first = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    first = np.maximum.accumulate(np.where(is_first, position, 0))
    clicks_before = np.cumsum(sorted_clicks) - sorted_clicks
    impressions, clicks_out = np.empty(len(keys)), np.empty(len(keys))
    impressions[order] = position - first
    clicks_out[order] = clicks_before - clicks_before[first]
    return impressions, clicks_out


def gbdt_features(frame: pd.DataFrame, logs: AdLogs, prior_ctr: float) -> pd.DataFrame:
    """Dense features, low-cardinality ids and smoothed historical CTRs of user, item, advertiser."""
    features = pd.DataFrame({name: frame[name].to_numpy(np.float64) for name in DENSE})
    features["surface"] = frame["surface"].cat.codes.to_numpy()
    features["is_video"] = frame["is_video"].to_numpy()
    features["hour_of_day"] = (frame["timestamp"].to_numpy() % SECONDS_PER_DAY) // 3600
    features["category"] = logs.items["category"].to_numpy()[frame["item_id"].to_numpy()]
    clicks = frame["click"].to_numpy(np.float64)
    for key in ("user_id", "item_id", "advertiser_id"):
        impressions, clicked = rows_before(frame[key].to_numpy(), clicks)
        features[f"{key}_ctr"] = (clicked + COUNTER_PRIOR_WEIGHT * prior_ctr) / (impressions + COUNTER_PRIOR_WEIGHT)
        features[f"{key}_impressions"] = impressions
    return features


def run_gbdt(logs: AdLogs, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Counters run through train, valid and test in time order; trees stop early on valid."""
    prior_ctr = float(train["click"].mean())
    features = gbdt_features(pd.concat([train, valid, test]), logs, prior_ctr)
    n_train, n_valid = len(train), len(valid)
    train_set = lgb.Dataset(features.iloc[:n_train], train["click"].to_numpy(),
                            categorical_feature=GBDT_CATEGORICAL)
    valid_set = lgb.Dataset(features.iloc[n_train:n_train + n_valid], valid["click"].to_numpy(),
                            reference=train_set, categorical_feature=GBDT_CATEGORICAL)
    booster = lgb.train(GBDT_PARAMS, train_set, num_boost_round=2000, valid_sets=[valid_set],
                        callbacks=[lgb.early_stopping(50, verbose=False)])
    probs = booster.predict(features.iloc[n_train + n_valid:], num_iteration=booster.best_iteration)
    return {"probs": probs, "trees": booster.best_iteration}


# ------------------------------------------------------------------------- DNNs
class DotProduct(nn.Module):
    """Diagnostic: logistic regression + <user vector, item vector>, the planted taste term's form."""

    def __init__(self, cardinalities: dict[str, int], n_dense: int, dim: int = 8):
        super().__init__()
        self.linear = LogisticRegression(cardinalities, n_dense)
        self.user = nn.Embedding(cardinalities["user_id"], dim)
        self.item = nn.Embedding(cardinalities["item_id"], dim)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        taste = (self.user(batch["user_id"]) * self.item(batch["item_id"])).sum(dim=1)   # (B,)
        return {"click": self.linear(batch)["click"] + taste}                          # (B,)


MODELS = {
    "EmbeddingMLP": (lambda c, d: EmbeddingMLP(c, d), dict(lr=1e-3, weight_decay=1e-4, epochs=6)),
    "DCNv2": (lambda c, d: DCNv2(c, d, cross_layers=3), dict(lr=1e-3, weight_decay=1e-4, epochs=6)),
    "dot product": (lambda c, d: DotProduct(c, d), dict(lr=3e-3, weight_decay=0.0, epochs=10)),
}
"""name -> (build(cardinalities, n_dense), fit arguments); every fit stops after 1 epoch without progress."""


def run_networks(logs: AdLogs, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Every model in MODELS, on ids and dense features transformed with training statistics."""
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",))).fit(train)
    train_data, valid_data, test_data = (encoder.transform(frame) for frame in (train, valid, test))
    out = {}
    for name, (build, arguments) in MODELS.items():
        torch.manual_seed(0)
        model = build(encoder.cardinalities, encoder.n_dense)
        result = fit(model, train_data, valid_data, patience=1, progress=False, **arguments)
        out[name] = {"probs": predict(model, test_data)["click"], "epochs": result.best_epoch}
    return out


# --------------------------------------------------------------------- reference
def gap_without_taste_and_interest(config: AdLogConfig, logs: AdLogs, test: pd.DataFrame,
                                   base_rate: float) -> float:
    """Gap closed by the oracle minus its user x item affinity and current-interest terms.

    Rebuilds the hidden world from the seed exactly as ``simulate`` does
    (checked against the logged item -> advertiser map), removes both terms
    from the true click logit and refits one intercept per surface.
    """
    world_rng = np.random.default_rng(np.random.SeedSequence(logs.seed).spawn(3)[0])
    world = build_world(config, world_rng)
    if not np.array_equal(world.item_advertiser, logs.items["advertiser_id"].to_numpy()):
        raise RuntimeError("the rebuilt world does not match the log; simulate() has changed")
    user, item = test["user_id"].to_numpy(), test["item_id"].to_numpy()
    surface = test["surface"].cat.codes.to_numpy()
    surface_scale = np.array([config.surface_affinity_scale[name] for name in SURFACES])[surface]
    current, _ = world.interests.current_and_previous(user, test["timestamp"].to_numpy())
    p_click = test["p_click"].to_numpy(np.float64)
    logit = (np.log(p_click / (1 - p_click)) - surface_scale * affinity(config, world, user, item, "click")
             - config.short_term_effect * (world.item_category[item] == current))
    probs = np.empty_like(p_click)
    for code in range(len(SURFACES)):
        on_surface = surface == code
        probs[on_surface] = _sigmoid_with_mean(logit[on_surface], p_click[on_surface].mean())
    report = oracle_report(test["click"].to_numpy(), {"reference": probs}, p_click, base_rate=base_rate)
    return float(report.loc["reference", "gap_closed"])


def _sigmoid_with_mean(logit: np.ndarray, target: float) -> np.ndarray:
    low, high = -20.0, 20.0
    for _ in range(60):   # bisection on the intercept
        middle = (low + high) / 2
        if (1 / (1 + np.exp(-(logit + middle)))).mean() < target:
            low = middle
        else:
            high = middle
    return 1 / (1 + np.exp(-(logit + (low + high) / 2)))


# -------------------------------------------------------------------------- main
def probe_setting(name: str, overrides: dict, fractions: tuple[float, ...] = FRACTIONS,
                  on_run=None) -> dict:
    config = AdLogConfig.preset("book", **overrides)
    logs = load_or_simulate(config, seed=0)
    train_all, valid, test = time_split(logs.impressions, valid_days=VALID_DAYS, test_days=TEST_DAYS)
    train_end = train_all["timestamp"].max() + 1
    runs = []
    for fraction in fractions:
        start = time.perf_counter()
        train = train_all[train_all["timestamp"] >= train_end - fraction * train_end]
        base_rate = float(train["click"].mean())
        gbdt = run_gbdt(logs, train, valid, test)
        networks = run_networks(logs, train, valid, test)
        predictions = {"GBDT": gbdt["probs"], **{model: run["probs"] for model, run in networks.items()}}
        report = oracle_report(test["click"].to_numpy(), predictions, test["p_click"].to_numpy(),
                               base_rate=base_rate)
        run = {"fraction": fraction, "train_days": round(float(fraction * train_end / SECONDS_PER_DAY), 2),
               "train_rows": len(train), "gbdt_trees": gbdt["trees"],
               "best_epochs": {model: result["epochs"] for model, result in networks.items()},
               "gap_closed": {model: round(float(report.loc[model, "gap_closed"]), 4) for model in predictions},
               "auc": {model: round(float(report.loc[model, "auc"]), 4) for model in predictions},
               "seconds": round(time.perf_counter() - start, 1)}
        print(name, run, flush=True)
        runs.append(run)
        if on_run is not None:
            on_run({"setting": name, "overrides": overrides, "runs": runs})
    reference = gap_without_taste_and_interest(config, logs, test, float(train_all["click"].mean()))
    return {"setting": name, "overrides": overrides, "impressions_per_user_in_train":
            round(len(train_all) / config.n_users, 1), "clicks_in_train": int(train_all["click"].sum()),
            "test_rows": len(test), "gap_closed_without_taste_and_interest": round(reference, 4), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=[name for name in SETTINGS if name != "gpu"],
                        choices=list(SETTINGS))
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    parser.add_argument("--gbdt-threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    GBDT_PARAMS["num_threads"] = args.gbdt_threads
    start = time.perf_counter()
    settings = []
    for name in args.settings:
        def save_partial(partial: dict) -> None:
            write_result("claim1_probe", {"partial": True, "settings": settings + [partial]}, __file__)
        settings.append(probe_setting(name, SETTINGS[name], tuple(args.fractions), save_partial))

    print("\ngap closed on the test days (share of base rate -> oracle)")
    for setting in settings:
        models = list(setting["runs"][0]["gap_closed"])
        print(f"\n{setting['setting']}: {setting['impressions_per_user_in_train']} training impressions per user; "
              f"oracle without taste and interest terms: {setting['gap_closed_without_taste_and_interest']:.3f}")
        print(f"{'train days':>10}" + "".join(f"{model:>14}" for model in models))
        for run in setting["runs"]:
            print(f"{run['train_days']:>10}" + "".join(f"{run['gap_closed'][model]:>14.3f}" for model in models))
    result = {"fractions": args.fractions, "valid_days": VALID_DAYS, "test_days": TEST_DAYS, "seed": 0, "gbdt_params": GBDT_PARAMS,
              "counter_prior_weight": COUNTER_PRIOR_WEIGHT,
              "network_fit": {name: arguments for name, (_, arguments) in MODELS.items()},
              "settings": settings, "seconds": round(time.perf_counter() - start)}
    print("wrote", write_result("claim1_probe", result, __file__))


if __name__ == "__main__":
    main()
