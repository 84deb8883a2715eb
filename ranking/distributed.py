"""Training on more than one process: data parallelism with DistributedDataParallel.

Every process (a *rank*) holds a whole copy of the model and of the training
rows. Each step, every rank cuts the same global batch that ``ranking.train.fit``
would cut, and runs forward and backward on its own share of it. During
backward, DistributedDataParallel (DDP) averages the gradients across ranks, so
every rank takes the same Adam step and the copies never drift apart. The
result is the single-process training at the same global batch, up to float
rounding, with each rank doing 1 / world_size of the work. (Over hundreds of
steps Adam amplifies that rounding, as it amplifies any change in the order of
a sum: running ``fit`` on 2 threads instead of 1 drifts as far.)

torchrun starts the processes and tells each who it is:

    torchrun --standalone --nproc_per_node=2 -m ranking.train_ddp --scale smoke
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer

from . import checks
from .batches import Batches, to_device
from .checks import TensorDict, num_rows
from .objective import LossSums, Objective, task_loss_sums
from .train import LossFunction, check_data, train_step

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What torchrun sets in each process it starts, and ``setup`` reads."""


def shard(data: TensorDict, rank: int, world_size: int) -> TensorDict:
    """Rank ``rank``'s rows of ``data``: every world_size-th row from row rank on.

    Strided, as torch's DistributedSampler does, rather than in contiguous blocks:
    the shards differ in size by at most one row whatever the number of rows,
    and sharding a whole epoch's shuffled order, then cutting per-rank batches,
    hands each rank the same rows per step as cutting global batches, then
    sharding each one. The tensors are views: nothing is copied.
    """
    checks.positive_int("world_size", world_size)
    if not checks.is_integer(rank):
        raise ValueError(f"rank must be an integer, got {rank!r}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}) for "
                         f"world_size={world_size}, got {rank}")
    num_rows(data)
    return {key: tensor[rank::world_size] for key, tensor in data.items()}


def setup(backend: str | None = None) -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes; returns (rank, world_size, device).

    backend: None picks "nccl" (GPU to GPU) when CUDA is available, else "gloo"
    (CPU, over TCP). With nccl each rank drives its own GPU, cuda:<LOCAL_RANK>.
    """
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise RuntimeError(f"environment variable(s) {missing} are not set: start this process "
                           "with torchrun, e.g. torchrun --standalone --nproc_per_node=2 ...")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo', 'nccl' or None, got {backend!r}")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError("backend 'nccl' needs CUDA; on a CPU use 'gloo'")
    dist.init_process_group(backend)            # reads the torchrun variables (env://)
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return dist.get_rank(), dist.get_world_size(), device


def cleanup() -> None:
    """Leave the process group (if this process joined one)."""
    if dist.is_initialized():
        dist.destroy_process_group()


@dataclass
class DDPResult:
    """What ``fit_ddp`` returns on every rank."""

    state_dict: dict[str, torch.Tensor] | None
    """The trained weights on the CPU, without DDP's "module." prefix; on rank 0 only, else None."""
    history: pd.DataFrame
    """One row per epoch: epoch, train_loss (mean log loss over every rank's rows), seconds,
    examples_per_s (rows of the whole training set per second, all ranks together)."""


def fit_ddp(model: nn.Module, train: TensorDict, *, epochs: int = 1,
            global_batch_size: int = 4096, lr: float = 1e-3, seed: int = 0,
            device: str | torch.device = "cpu") -> DDPResult:
    """Train ``model`` in place on the click task as ``fit`` would, over all ranks.

    Every rank passes the same ``train`` and draws the same global batches from it
    (``Batches`` with ``seed``, as ``fit`` does), then trains on its ``shard`` of
    each: global_batch_size / world_size rows. Holding every row (megabytes at the
    book's scales) is what lets a rank take its part of fit's very batches; a rank
    that held a fixed shard could only shuffle within it. DDP's constructor copies
    rank 0's initial weights to every rank. Ranks seed dropout with seed + rank: a
    model with dropout trains as well, but not on the very masks of one process.
    """
    rank, world_size = _check_ddp_inputs(model, train, epochs, global_batch_size)
    device = torch.device(device)
    train = to_device(train, device)
    _check_same_rows(train, device)
    torch.manual_seed(seed + rank)
    model.to(device)
    device_ids = [device] if device.type == "cuda" else None
    ddp = DistributedDataParallel(model, device_ids=device_ids)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=lr)
    batches = Batches(train, global_batch_size, seed=seed)
    rows = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        loss = ddp_epoch(ddp, batches, optimizer, rank, world_size)
        seconds = time.perf_counter() - start
        rows.append({"epoch": epoch, "train_loss": loss, "seconds": seconds,
                     "examples_per_s": batches.n_rows / seconds})
    state_dict = None
    if rank == 0:
        state_dict = {key: value.detach().cpu().clone()
                      for key, value in model.state_dict().items()}
    return DDPResult(state_dict=state_dict, history=pd.DataFrame(rows))


def ddp_epoch(ddp: DistributedDataParallel, batches: Batches, optimizer: Optimizer,
              rank: int, world_size: int) -> float:
    """One pass over the global batches: a train_step on this rank's shard of each.

    Returns the mean log loss over every rank's rows.
    """
    ddp.train()
    totals = torch.zeros(2, dtype=torch.float64, device=batches.device)  # sum, rows
    for batch in batches:
        mine = shard(batch, rank, world_size)
        loss = share_of_global_mean(num_rows(batch), world_size)
        loss_sum, count = train_step(ddp, mine, loss, optimizer)["click"]
        totals += torch.stack([loss_sum.detach().double(), count.double()])
    dist.all_reduce(totals)                                  # summed over ranks
    return float(totals[0] / totals[1])


def share_of_global_mean(global_rows: int, world_size: int) -> LossFunction:
    """The loss of one rank's shard of a global batch of ``global_rows`` rows.

    ``fit`` minimizes the mean log loss over a global batch of n rows,
    (1 / n) sum_i l_i. Each rank here minimizes (world_size / n) * (the sum of
    l_i over its rows), and DDP averages the gradients, (1 / world_size) sum_r:
    together the gradient of (1 / n) sum_i l_i. Unlike averaging per-rank
    means, this stays exact when the shares differ by a row (an epoch's last,
    smaller batch), so no row is dropped or padded. With world_size=1 this is
    fit(..., batch_size=global_batch_size) step for step; with more ranks the
    same up to float rounding (sums are added in another order).
    """
    def loss(logits: dict[str, torch.Tensor], shard: TensorDict
             ) -> tuple[torch.Tensor, LossSums]:
        sums = task_loss_sums(logits, shard, ("click",))
        return sums["click"][0] * world_size / global_rows, sums
    return loss


def _check_ddp_inputs(model: nn.Module, train: TensorDict, epochs: int,
                      global_batch_size: int) -> tuple[int, int]:
    """This process's (rank, world_size), after refusing what ``fit_ddp`` cannot train."""
    if not dist.is_initialized():
        raise RuntimeError("fit_ddp needs a process group: call setup() in a process "
                           "started by torchrun (or init_process_group)")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    checks.positive_int("epochs", epochs)
    checks.positive_int("global_batch_size", global_batch_size)
    if global_batch_size % world_size:
        raise ValueError(f"global_batch_size={global_batch_size} must be a multiple of "
                         f"world_size={world_size}, so that every rank gets an "
                         "equal share")
    check_data(train, "train", Objective(("click",)), model)
    return rank, world_size


def _check_same_rows(train: TensorDict, device: torch.device) -> None:
    """Refuse ranks that hold different training sets (say, each its own shard already)."""
    n = num_rows(train, "train")
    mine = torch.tensor([n, float(train["label_click"].double().sum())],
                        dtype=torch.float64, device=device)
    everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, mine)
    if any(not torch.equal(other, everyone[0]) for other in everyone):
        counts = [int(other[0]) for other in everyone]
        raise ValueError("every rank must pass the same train rows (fit_ddp shards each batch "
                         f"itself); rows per rank: {counts}, clicks per rank: "
                         f"{[float(other[1]) for other in everyone]}")
