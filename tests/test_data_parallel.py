"""Data-parallel trials on Ray Train (trainables.distributed.data_parallel, trainables.distributed.workers) on the
CPU with gloo and two workers.

The equivalence being checked: a 2-process run with global batch B is one process training
on the same global batches of B, except that batch-norm statistics are computed per rank
(over B/2 examples). So against a single process whose model normalizes each half of the
batch separately the loss trajectory must agree to float round-off, and against a plain
single process with the same global batches it must agree within a few percent (smaller
than what changing the seed does to the same run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainables.config import parse_config
from trainables.data import Batch, Split
from trainables.distributed.data_parallel import ShardedBatchLoader, check_world
from trainables.distributed.workers import train_data_parallel
from trainables.registry import ConfigError
from trainables.training.checkpoint import load_run_state
from trainables.training.engine import Run, start_run

CONFIG = {"dataset": "digits", "model": "small_cnn", "batch_size": 32, "max_batches": 12, "epochs": 3,
          "method": "pgd", "k": 2, "init": "zero", "lr": 0.05, "eval.examples": 50, "eval.steps": 2,
          "co.enabled": False}
WORLD = 2


def _split(n: int) -> Split:
    return Split(torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1), torch.arange(n))


def test_ranks_own_fixed_disjoint_shards_shuffled_per_epoch() -> None:
    split = _split(11)
    loaders = [ShardedBatchLoader(split, 2, r, 3, seed=0) for r in range(3)]
    assert {len(loader) for loader in loaders} == {2}  # the smallest shard (3) in batches of 2
    seen: list[int] = []
    for loader in loaders:
        assert loader.positions.tolist() == list(range(loader.rank, 11, 3))
        for batch in loader:
            # index is the position within the shard; the images are the shard's examples
            assert torch.equal(batch.x.view(-1), loader.positions[batch.index].float())
            seen += batch.y.tolist()
    assert len(seen) == len(set(seen))
    first = loaders[0].order()
    assert torch.equal(first, loaders[0].order())  # the same epoch: the same order
    orders = set()
    for epoch in range(6):
        loaders[0].set_epoch(epoch)
        orders.add(tuple(loaders[0].order().tolist()))
    assert len(orders) > 1 and all(sorted(o) == [0, 1, 2, 3] for o in orders)


def test_global_batch_must_split_evenly() -> None:
    with pytest.raises(ConfigError, match="divisible by the trial's workers") as info:
        check_world(parse_config(batch_size=33), 2)
    assert info.value.key == "batch_size"


class _Joined:
    """One process seeing the global batches of a 2-rank run: each rank's local batch, concatenated."""

    def __init__(self, run: Run) -> None:
        cfg = run.config
        self.loaders = [ShardedBatchLoader(run.loader.split, cfg.batch_size // WORLD, r, WORLD, cfg.seed,
                                           max_batches=cfg.max_batches) for r in range(WORLD)]

    def __len__(self) -> int:
        return len(self.loaders[0])

    def __iter__(self):
        for parts in zip(*(iter(loader) for loader in self.loaders), strict=True):
            index = torch.cat([loader.positions[p.index] for loader, p in zip(self.loaders, parts, strict=True)])
            yield Batch(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]), index, None)


class _PerHalfNorm(nn.Module):
    """The model applied to each rank's half of the batch: batch norm per half, as in DDP."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(half) for half in x.chunk(WORLD)])


def _single(per_half_norm: bool, **values: Any) -> Run:
    """One process on the 2-rank run's global batches."""
    run = start_run(parse_config({**CONFIG, **values}), "cpu")
    joined = _Joined(run)
    run.loader = joined  # type: ignore[assignment]
    if per_half_norm:
        run.ctx = dataclasses.replace(run.ctx, model=_PerHalfNorm(run.model))
    while not run.finished:
        for loader in joined.loaders:
            loader.set_epoch(run.epoch)
        run.step()
    return run


def _losses(history: list[dict[str, Any]]) -> list[float]:
    return [record["train_loss"] for record in history]


@pytest.fixture(scope="module")
def ray_two_cpus() -> Iterator[None]:
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)  # the session's head (conftest ray_head), else local
    yield
    ray.shutdown()


@pytest.mark.slow
def test_two_workers_match_one_process_with_the_same_global_batch(ray_two_cpus: None, tmp_path: Path) -> None:
    ddp = train_data_parallel(CONFIG, WORLD, storage=str(tmp_path), name="two")
    exact = _single(per_half_norm=True)
    plain = _single(per_half_norm=False)
    assert len(ddp.history) == 3 and ddp.metrics["world_size"] == WORLD
    # Same arithmetic up to the order of float sums (gradients averaged over ranks).
    assert _losses(ddp.history) == pytest.approx(_losses(exact.history), rel=1e-5)
    # Batch norm over 16 instead of 32 examples: a few percent by epoch 3 (seen: 0.1, 1.2, 2.9 %);
    # a different seed moves the same single-process run further (seen: 0.1, 2.4, 7.3 %).
    assert _losses(ddp.history) == pytest.approx(_losses(plain.history), rel=0.05)
    # Cost is counted per global batch: exactly what one process with batch 32 counts.
    reference = start_run(parse_config(CONFIG), "cpu")
    assert ddp.metrics["batches_per_epoch"] == reference.batches_per_epoch == 12
    assert ddp.cost["backprops"] == plain.cost.backprops == 3 * 12 * (2 + 1)
    assert ddp.cost["forwards"] == plain.cost.forwards
    assert 0 <= ddp.history[-1]["robust_acc"] <= 1


@pytest.mark.slow
def test_checkpoint_restores_sharded_memories_exactly(ray_two_cpus: None, tmp_path: Path) -> None:
    config = {**CONFIG, "method": "atta", "k": 1, "epochs": 2, "max_batches": 6}
    whole = train_data_parallel(config, WORLD, storage=str(tmp_path), name="whole")
    first, last = sorted((tmp_path / "whole").glob("checkpoint_*"))[:2]
    assert (first / "rank1.pt").exists() and (first / "state.pt").exists()  # the workers' parts, merged
    shard = load_run_state(first)["method"]["memory"]["delta"]
    assert shard.shape[0] == 1200 // WORLD  # rank 0's memory holds its shard of digits' 1200 examples
    resumed = train_data_parallel(config, WORLD, storage=str(tmp_path), name="resumed", restore=str(first))
    assert resumed.state["epoch"] == 2 and resumed.cost["backprops"] == whole.cost["backprops"]
    assert resumed.history[-1]["train_loss"] == whole.history[-1]["train_loss"]
    assert torch.equal(resumed.state["method"]["memory"]["delta"], load_run_state(last)["method"]["memory"]["delta"])


@pytest.mark.slow
def test_a_tune_trial_runs_its_workers_on_ray_train_and_reports_each_epoch(ray_two_cpus: None,
                                                                          tmp_path: Path) -> None:
    from ray import tune

    from trainables.distributed.workers import DRIVER_CPUS
    from trainables.trials.setup import TrialSetup
    from trainables.tune.functions import tune_trainable

    config = {**CONFIG, "method": "atta", "k": 1, "epochs": 2, "max_batches": 4, "threads": 2}
    setup = TrialSetup(workers=WORLD, cpus_per_trial=2, train_storage=str(tmp_path / "train"))
    grid = tune.Tuner(
        tune.with_resources(tune.with_parameters(tune_trainable, setup=setup), {"cpu": DRIVER_CPUS}),
        param_space=config, run_config=tune.RunConfig(name="ddp", storage_path=str(tmp_path), verbose=0),
    ).fit()
    result = grid[0]
    assert result.error is None and result.metrics is not None
    assert result.metrics["epoch"] == 2 and result.metrics["world_size"] == WORLD
    assert result.metrics["backprops"] == 2 * 4 * 2 and result.metrics["full_fidelity"]
    assert len(result.metrics["worker_nodes"].split(",")) == WORLD
    checkpoint = Path(result.metrics["checkpoint_path"])
    assert {p.name for p in checkpoint.iterdir()} >= {"state.pt", "rank1.pt", "trial.json"}
    assert checkpoint.is_relative_to(tmp_path / "train")
