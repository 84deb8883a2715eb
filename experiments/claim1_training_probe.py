"""Probe for claim 1, part 2: which training setup lets EmbeddingMLP / DCNv2 learn the user x item cross?

    .venv/bin/python experiments/claim1_training_probe.py

A measurement, not a claim. Setting: the "dense ids" generator of
``claim1_probe.py`` (book preset, 2k users, 1k items, latent_dim 4, affinity
scale 1.5), all training days, the same time split (2 valid days, 2 test days).
There EmbeddingMLP and DCNv2 trained with ``ranking.train.fit`` (Adam, weight
decay 1e-4 on every parameter) closed 0.38-0.39 of the base-rate -> oracle gap,
below LightGBM with historical CTRs (0.40) and a plain LR + <user, item> dot
product (0.50). This script trains the same two models with its own loop (the
optimizer and the regularizer are the variables) and scores each run on the
test days with ``oracle_report``. Every run: max 8 epochs, stop after 1 epoch
without a lower validation log loss, best epoch restored. Two runs at a time
(one thread each); results are written after every run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import json
import math
import multiprocessing as mp
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import results_dir, write_result  # noqa: E402

RESULTS_DIR = results_dir(__file__)
from ranking.batches import Batches
from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.metrics import oracle_report
from ranking.nn import DCNv2, EmbeddingMLP
from ranking.simulate import AdLogConfig, load_or_simulate
from ranking.train import evaluate_loss, predict

OVERRIDES = dict(n_users=2_000, n_items=1_000, n_advertisers=100, latent_dim=4, affinity_scale=1.5)
VALID_DAYS, TEST_DAYS = 2.0, 2.0
MAX_EPOCHS, PATIENCE = 8, 1
REFERENCE = {"GBDT": 0.4018, "dot product": 0.5035, "EmbeddingMLP (fit, Adam wd 1e-4)": 0.3843,
             "DCNv2 (fit, Adam wd 1e-4)": 0.3903}
"""Full-data gap closed in the "dense ids" setting, from results/claim1_probe-cpu.json."""

SETUPS: dict[str, dict] = {
    # controls: torch.optim.Adam with coupled L2 on every parameter, as ``fit`` does
    "Adam wd 1e-4 all (control)": dict(optimizer="adam", wd_all=1e-4),
    "Adam no wd": dict(optimizer="adam"),
    # 1. decoupled decay on the dense (MLP / cross / head) parameters only
    "AdamW wd 1e-2 dense only": dict(wd_dense=1e-2),
    # 2. L2 on the embedding rows looked up in the batch
    "row L2 1e-4": dict(row_l2=1e-4),
    "row L2 1e-3": dict(row_l2=1e-3),
    "row L2 1e-3 + AdamW 1e-2 dense": dict(row_l2=1e-3, wd_dense=1e-2),
    # 3. slower embeddings, bigger batch, dropout
    "emb lr 1e-4": dict(emb_lr=1e-4),
    "batch 16384": dict(batch_size=16384),
    "dropout 0.3": dict(dropout=0.3),
    # 4. embedding width and fields
    "dim 4, row L2 1e-3": dict(embedding_dim=4, row_l2=1e-3),
    "ids user,item,surface only, row L2 1e-3": dict(fields=("user_id", "item_id", "surface"), row_l2=1e-3),
    # second round: the weak regularizers above did nothing, so stronger ones
    "row L2 1e-2": dict(row_l2=1e-2),
    "row L2 1e-1": dict(row_l2=1e-1),
    "AdamW wd 1.0 embeddings only": dict(wd_emb=1.0),
    "Adam wd 1e-3 all": dict(optimizer="adam", wd_all=1e-3),
}
MODELS = ("EmbeddingMLP", "DCNv2")

DATA: dict = {}


def load_data() -> None:
    config = AdLogConfig.preset("book", **OVERRIDES)
    logs = load_or_simulate(config, seed=0)
    train, valid, test = time_split(logs.impressions, valid_days=VALID_DAYS, test_days=TEST_DAYS)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",))).fit(train)
    DATA.update(encoder=encoder, train=encoder.transform(train), valid=encoder.transform(valid),
                test=encoder.transform(test), test_click=test["click"].to_numpy(),
                test_p=test["p_click"].to_numpy(), base_rate=float(train["click"].mean()))


def build(model_name: str, setup: dict):
    cardinalities = DATA["encoder"].cardinalities
    if "fields" in setup:
        cardinalities = {name: cardinalities[name] for name in setup["fields"]}
    kwargs = dict(embedding_dim=setup.get("embedding_dim", 16), dropout=setup.get("dropout", 0.0))
    n_dense = DATA["encoder"].n_dense
    if model_name == "EmbeddingMLP":
        return EmbeddingMLP(cardinalities, n_dense, **kwargs)
    return DCNv2(cardinalities, n_dense, cross_layers=3, **kwargs)


def train_one(model_name: str, setup_name: str, seed: int) -> dict:
    torch.set_num_threads(1)
    setup = SETUPS[setup_name]
    torch.manual_seed(seed)
    model = build(model_name, setup)
    lr = setup.get("lr", 1e-3)
    embedding_params = list(model.input.embedding.parameters())
    embedding_ids = {id(p) for p in embedding_params}
    dense_params = [p for p in model.parameters() if id(p) not in embedding_ids]
    groups = [{"params": dense_params, "weight_decay": setup.get("wd_dense", 0.0)},
              {"params": embedding_params, "weight_decay": setup.get("wd_emb", 0.0), "lr": setup.get("emb_lr", lr)}]
    if setup.get("optimizer") == "adam":   # coupled L2 on everything, as ranking.train.fit
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=setup.get("wd_all", 0.0))
    else:
        optimizer = torch.optim.AdamW(groups, lr=lr)
    row_l2 = setup.get("row_l2", 0.0)
    looked_up = {}
    model.input.embedding.register_forward_hook(lambda module, inputs, output: looked_up.__setitem__("e", output))

    batches = Batches(DATA["train"], setup.get("batch_size", 4096), seed=seed)
    start, best_loss, best_state, best_epoch, history = time.perf_counter(), math.inf, None, 0, []
    for epoch in range(1, MAX_EPOCHS + 1):
        model.train()
        for batch in batches:
            logit = model(batch)["click"]
            loss = F.binary_cross_entropy_with_logits(logit, batch["label_click"])
            if row_l2:
                # lambda * mean over the batch of sum over fields ||e||^2: frequent rows pay more often
                loss = loss + row_l2 * looked_up["e"].pow(2).sum(dim=(1, 2)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        valid_loss = evaluate_loss(model, DATA["valid"], device="cpu")["loss"]
        history.append(round(valid_loss, 5))
        if valid_loss < best_loss:
            best_loss, best_epoch = valid_loss, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= PATIENCE:
            break
    model.load_state_dict(best_state)
    probs = predict(model, DATA["test"], device="cpu")["click"]
    report = oracle_report(DATA["test_click"], {"m": probs}, DATA["test_p"], base_rate=DATA["base_rate"])
    return {"model": model_name, "setup": setup_name, "seed": seed,
            "gap_closed": round(float(report.loc["m", "gap_closed"]), 4),
            "auc": round(float(report.loc["m", "auc"]), 4), "best_epoch": best_epoch,
            "valid_loss_by_epoch": history, "seconds": round(time.perf_counter() - start, 1)}


def _run(task):
    return train_one(*task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", default="claim1_training_probe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    load_data()
    tasks = [(model, setup, seed) for seed in args.seeds for setup in args.setups for model in MODELS]
    previous = RESULTS_DIR / f"{args.name}-cpu.json"   # resume: keep runs of earlier invocations
    runs = [r for r in json.loads(previous.read_text())["runs"]] if previous.exists() else []
    done = {(r["model"], r["setup"], r["seed"]) for r in runs}
    tasks = [task for task in tasks if task not in done]
    with mp.get_context("fork").Pool(args.workers) as pool:
        for run in pool.imap_unordered(_run, tasks):
            print(run, flush=True)
            runs.append(run)
            write_result(args.name, {"setting": "dense ids", "overrides": OVERRIDES, "valid_days": VALID_DAYS,
                                     "test_days": TEST_DAYS, "max_epochs": MAX_EPOCHS, "patience": PATIENCE,
                                     "reference_gap_closed": REFERENCE, "setups": SETUPS, "runs": runs,
                                     "seconds": round(time.perf_counter() - start)}, __file__)
    print(f"\n{'setup':<44}" + "".join(f"{m:>16}" for m in MODELS))
    for setup in dict.fromkeys(r["setup"] for r in runs):
        cells = []
        for m in MODELS:
            hits = sorted((r for r in runs if r["setup"] == setup and r["model"] == m), key=lambda r: r["seed"])
            cells.append(" / ".join(f"{r['gap_closed']:.3f}@{r['best_epoch']}" for r in hits))
        print(f"{setup:<44}" + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
