"""Data-parallel training: sharding, and DDP on 1 and 2 processes against the one-process loop."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ranking.distributed import fit_ddp, shard
from ranking.nn import EmbeddingMLP
from ranking.train import FitResult, fit

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[2]
CARDINALITIES = {"user_id": 50, "surface": 3}
GLOBAL_BATCH = 64
ROWS = 999
"""15 full global batches and a last one of 39 rows: the ranks' shares differ by a row."""
TRAINING = dict(epochs=2, lr=3e-3, seed=5)


def make_data(n: int = ROWS) -> dict[str, torch.Tensor]:
    """Clicks that depend on the user, the surface and the dense features."""
    generator = torch.Generator().manual_seed(0)
    user = torch.randint(0, 50, (n,), generator=generator)
    surface = torch.randint(0, 3, (n,), generator=generator)
    dense = torch.randn(n, 3, generator=generator)
    logit = torch.randn(50, generator=generator)[user] + surface - 1.0 + dense[:, 0]
    click = torch.bernoulli(torch.sigmoid(logit), generator=generator)
    return {"user_id": user, "surface": surface, "dense": dense, "label_click": click}


def build() -> EmbeddingMLP:
    torch.manual_seed(0)
    return EmbeddingMLP(CARDINALITIES, n_dense=3, embedding_dim=4, hidden=(16,))


def single_process() -> FitResult:
    """The reference: the book's own loop, at the global batch size."""
    return fit(build(), make_data(), batch_size=GLOBAL_BATCH, device="cpu", progress=False,
               **TRAINING)


def test_shard_covers_every_row_exactly_once():
    data = {"row": torch.arange(11), "dense": torch.randn(11, 3)}
    for world_size in (1, 2, 3, 4, 11, 12):
        shards = [shard(data, rank, world_size) for rank in range(world_size)]
        rows = torch.cat([part["row"] for part in shards])
        assert sorted(rows.tolist()) == list(range(11))
        sizes = [len(part["row"]) for part in shards]
        assert max(sizes) - min(sizes) <= 1
        for part in shards:
            assert torch.equal(part["dense"], data["dense"][part["row"]])   # rows stay aligned
    assert shard(data, 1, 3)["row"].tolist() == [1, 4, 7, 10]


@pytest.mark.parametrize("rank, world_size, match", [
    (2, 2, "rank must be in"), (-1, 2, "rank must be in"), (0, 0, "world_size"),
    (0, 1.0, "world_size must be a positive integer"), (True, 2, "rank must be an integer"),
])
def test_shard_rejects_a_bad_rank_or_world_size(rank, world_size, match):
    with pytest.raises(ValueError, match=match):
        shard({"row": torch.arange(4)}, rank, world_size)


def test_fit_ddp_needs_a_process_group():
    with pytest.raises(RuntimeError, match="process group"):
        fit_ddp(build(), make_data())


@pytest.fixture
def one_process_group(tmp_path):
    """A gloo group of one process (this one), rendezvousing through a file: no port needed."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}",
                            rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_one_process_is_exactly_the_single_process_loop(one_process_group):
    result = fit_ddp(build(), make_data(), global_batch_size=GLOBAL_BATCH, **TRAINING)
    reference = single_process()
    weights = reference.model.state_dict()
    assert result.state_dict.keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(result.state_dict[key], value), key          # bit for bit
    assert result.history["epoch"].tolist() == [1, 2]
    assert result.history["train_loss"].tolist() == pytest.approx(
        reference.history["train_loss"].tolist(), rel=1e-6)
    assert (result.history["examples_per_s"] > 0).all()


@pytest.mark.parametrize("change, match", [
    (dict(epochs=0), "epochs must be a positive"),
    (dict(global_batch_size=0), "global_batch_size must be a positive"),
])
def test_fit_ddp_rejects_bad_arguments(one_process_group, change, match):
    with pytest.raises(ValueError, match=match):
        fit_ddp(build(), make_data(), **change)


def _refuse_on_two_ranks(rank: int, rendezvous: str) -> None:
    """Mistakes only two ranks can make; every rank must raise, or the other would hang."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        with pytest.raises(ValueError, match="must be a multiple of world_size=2"):
            fit_ddp(build(), make_data(), global_batch_size=63)
        with pytest.raises(ValueError, match=r"same train rows.*rows per rank: \[500, 499\]"):
            fit_ddp(build(), shard(make_data(), rank, 2))     # sharded twice: a classic slip
    finally:
        dist.destroy_process_group()


def test_two_ranks_refuse_an_odd_global_batch_and_different_rows(tmp_path):
    mp.spawn(_refuse_on_two_ranks, args=(str(tmp_path / "rendezvous"),), nprocs=2)


def _train_on_two_ranks(rank: int, rendezvous: str, out: str) -> None:
    """One of the two spawned processes: join the group, train, rank 0 saves the weights."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        torch.manual_seed(100 + rank)     # different initial weights: DDP must copy rank 0's
        model = EmbeddingMLP(CARDINALITIES, n_dense=3, embedding_dim=4, hidden=(16,))
        if rank == 0:
            model.load_state_dict(build().state_dict())
        result = fit_ddp(model, make_data(), global_batch_size=GLOBAL_BATCH, **TRAINING)
        if rank == 0:
            torch.save(result.state_dict, out)
    finally:
        dist.destroy_process_group()


def test_two_processes_match_the_single_process_loop(tmp_path):
    """THE equivalence: averaged gradients of two half batches are the full batch's gradient."""
    out = tmp_path / "rank0.pt"
    mp.spawn(_train_on_two_ranks, args=(str(tmp_path / "rendezvous"), str(out)), nprocs=2)
    trained = torch.load(out)
    reference = single_process().model.state_dict()
    untrained = build().state_dict()
    for key, value in reference.items():
        assert not torch.allclose(value, untrained[key]), key            # training moved it
        difference = float((trained[key] - value).abs().max())
        assert difference <= 1e-5, f"{key}: rank 0 is {difference:.2e} away from one process"


def test_torchrun_smoke_run_writes_the_weights_and_the_history(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "ranking.train_ddp", "--scale", "smoke",
               "--epochs", "1", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "history.json").read_text())
    assert summary["world_size"] == 2 and len(summary["history"]) == 1
    assert 0 < summary["history"][0]["train_loss"] < 1
    state_dict = torch.load(tmp_path / "model.pt")
    assert "heads.click.weight" in state_dict
