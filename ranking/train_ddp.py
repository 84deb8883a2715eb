"""Train the book's click model (EmbeddingMLP) on several processes with ``fit_ddp``.

    torchrun --standalone --nproc_per_node=2 -m ranking.train_ddp --scale smoke --epochs 1 \\
        --out runs/ddp

Every rank reads the same log and encodes the same training days; ``fit_ddp``
then gives each rank its shard of every global batch. The valid days score the
trained model on rank 0, which writes <out>/model.pt (the state dict) and
<out>/history.json (losses and examples per second).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.distributed as dist

from .distributed import cleanup, fit_ddp, setup
from .features import FeatureEncoder, FeatureSpec, time_split
from .nn import EmbeddingMLP
from .simulate import AdLogConfig, AdLogs, load_or_simulate
from .train import evaluate_loss


def load_log(scale: str, rank: int) -> AdLogs:
    """The log at ``scale``; rank 0 simulates and caches it first, so that ranks do not all
    simulate the same log at once."""
    config = AdLogConfig.preset(scale)
    if rank != 0:
        dist.barrier()                   # wait until rank 0 has it
    logs = load_or_simulate(config)
    if rank == 0:
        dist.barrier()
    return logs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="smoke", choices=["smoke", "moderate", "book"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--global-batch-size", type=int, default=4096,
                        help="rows per step over all ranks (a multiple of the number of ranks)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="folder for model.pt and history.json")
    args = parser.parse_args(argv)

    rank, world_size, device = setup()
    try:
        logs = load_log(args.scale, rank)
        train_frame, valid_frame, _ = time_split(logs.impressions, valid_days=2, test_days=2)
        encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",)))
        train = encoder.fit(train_frame).transform(train_frame)
        torch.manual_seed(args.seed)
        model = EmbeddingMLP(encoder.cardinalities, encoder.n_dense)
        result = fit_ddp(model, train, epochs=args.epochs, global_batch_size=args.global_batch_size,
                         lr=args.lr, seed=args.seed, device=device)
        if rank == 0:
            valid_loss = evaluate_loss(model, encoder.transform(valid_frame), device=device)["loss"]
            for row in result.history.to_dict("records"):
                print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, "
                      f"{row['examples_per_s']:,.0f} examples/s on {world_size} process(es)")
            print(f"valid loss {valid_loss:.4f}")
            if args.out is not None:
                summary = {"scale": args.scale, "world_size": world_size,
                           "backend": dist.get_backend(), "device": str(device),
                           "global_batch_size": args.global_batch_size,
                           "per_rank_batch_size": args.global_batch_size // world_size,
                           "lr": args.lr, "seed": args.seed, "train_rows": len(train_frame),
                           "valid_loss": valid_loss,
                           "history": result.history.to_dict("records")}
                args.out.mkdir(parents=True, exist_ok=True)
                torch.save(result.state_dict, args.out / "model.pt")
                (args.out / "history.json").write_text(json.dumps(summary, indent=2) + "\n")
                print("wrote", args.out / "model.pt", "and", args.out / "history.json")
    finally:
        cleanup()


if __name__ == "__main__":
    main()
