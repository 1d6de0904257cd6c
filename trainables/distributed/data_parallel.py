"""One run across several workers: data-parallel training with DistributedDataParallel.

The workers (Ray Train's, :mod:`trainables.distributed.workers`) share a process group that is
already initialized (NCCL on CUDA, gloo on the CPU); rank 0 alone evaluates. This module is
the arithmetic of such a run; it starts no processes.

- **Data.** Rank r owns a fixed partition of the training examples, positions r::N, and
  shuffles it each epoch with a generator seeded from (seed, epoch, rank), so per-example
  memories (ATTA, ATAS) live sharded with the data: each rank's memory holds its shard
  only. A global batch of ``batch_size`` is N local batches of ``batch_size / N``.
- **Model.** The weight update goes through :class:`~torch.nn.parallel.DistributedDataParallel`
  (gradients averaged over the global batch, communication overlapped with the backward).
  Attack steps use ``torch.autograd.grad`` on δ only, which never fires DDP's gradient
  hooks, so they cost no communication. Batch-norm statistics are per rank (as in any
  DDP run); running statistics are averaged over ranks once per epoch, before evaluation.
- **Cost.** Every rank does one local batch per global batch, and methods count K + 1
  backprops per batch, so backprops and forwards are counted per *global* batch: Table 2's
  counts do not depend on the world size. ``train_seconds`` is rank 0's wall time.
- **Statistics.** Loss, correct count, ‖∇x ℓ‖₁ and α are summed over ranks once per epoch
  (one all-reduce); ‖∇x ℓ‖₁ and α are divided by N so they read as for one process with
  the global batch (a local batch-mean gradient is N times the global one per example).
- **Randomness and resume.** Each rank reseeds its RNG from (seed, epoch, rank) at the
  start of every epoch, so a run restored from a checkpoint continues exactly; rank r > 0
  writes its shard of the per-example memories (``rank{r}.pt``) next to rank 0's state in
  the same checkpoint folder.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from trainables.config import TrainConfig
from trainables.data import (
    Augment,
    Batch,
    Split,
    load_config_dataset,
    materialize,
    train_subset,
    training_augment,
)
from trainables.registry import ConfigError
from trainables.training.checkpoint import load_run_state, save_run
from trainables.training.engine import Run
from trainables.training.run_parts import (
    RunParts,
    make_context,
    make_forward,
    make_method,
    make_model,
    make_optimizer,
    make_schedule,
)

SHARD_FILE = "rank{rank}.pt"


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The RNG seed of ``rank`` in ``epoch``: distinct per rank and epoch, fixed by the run seed."""
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63)


class ShardedBatchLoader:
    """Rank ``rank``'s local batches: its fixed partition r::world of ``split``, shuffled each
    epoch (:meth:`set_epoch`) with a generator seeded from (seed, epoch, rank).

    ``Batch.index`` holds positions within the shard, so a per-example memory sized to the
    shard indexes it directly. Every rank yields the same number of batches (that of the
    smallest shard), as DDP needs; a global batch is ``world`` local batches.
    """

    def __init__(self, split: Split, local_batch_size: int, rank: int, world: int, seed: int,
                 augment: Augment | None = None, max_batches: int = 0) -> None:
        self.split, self.batch_size, self.rank, self.world = split, local_batch_size, rank, world
        self.seed, self.max_batches, self.epoch = seed, max_batches, 0
        self.augment = None if augment is None or augment.is_identity else augment
        self.positions = torch.arange(rank, len(split), world, device=split.x.device)

    def __len__(self) -> int:
        batches = math.ceil((len(self.split) // self.world) / self.batch_size)
        return min(batches, self.max_batches) if self.max_batches else batches

    @property
    def shard_size(self) -> int:
        return len(self.positions)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        """This epoch's order of the shard (positions within the shard)."""
        g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, self.rank))
        return torch.randperm(self.shard_size, generator=g).to(self.positions.device)

    def __iter__(self) -> Iterator[Batch]:
        order = self.order()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            local = order[start : start + self.batch_size]
            where = self.positions[local]
            xb, yb = self.split.images(where), self.split.y[where]
            aug = None
            if self.augment is not None:
                aug = self.augment.sample(len(local), xb.device)
                xb = self.augment.apply(xb, aug)
            yield Batch(xb, yb, local, aug)


def check_world(cfg: TrainConfig, world: int) -> None:
    if cfg.batch_size % world:
        raise ConfigError("batch_size", cfg.batch_size,
                          f"must be divisible by the trial's workers ({world}): a global batch is split evenly over them")


class DataParallelRun:
    """Rank ``rank`` of a ``world``-process data-parallel run of ``cfg`` on ``device``
    (the process group must be initialized). Drive it with :meth:`epoch`.

    Its parts are built for the rank: the loader reads the rank's shard, the method's
    memories hold the shard, the reducer all-reduces; :meth:`wrap` adds DDP's forward."""

    def __init__(self, cfg: TrainConfig, rank: int, world: int, device: torch.device) -> None:
        check_world(cfg, world)
        self.rank, self.world, self.device = rank, world, device
        data = load_config_dataset(cfg)
        split = materialize(train_subset(data.train, cfg.data_fraction)).to(device)
        augment = training_augment(cfg, data)
        self.loader = ShardedBatchLoader(split, cfg.batch_size // world, rank, world, cfg.seed, augment,
                                         cfg.max_batches)
        model = make_model(cfg, data, device)
        optimizer = make_optimizer(cfg, model)
        schedule = make_schedule(cfg)
        method = make_method(cfg, self.loader.shard_size, data, device, augment)  # memories: this shard
        forward = make_forward(cfg, model, schedule)
        parts = RunParts(data, self.loader, model, optimizer, method, schedule, forward,
                         make_context(cfg, forward, optimizer, schedule, device, data.std), self._reduce_sums)
        self.run = Run(cfg, parts, device)
        self._ddp_ids = [device.index or 0] if device.type == "cuda" else None

    def wrap(self) -> None:
        """Wrap the model in DDP (after any checkpoint is loaded: DDP broadcasts rank 0's weights)."""
        from torch.nn.parallel import DistributedDataParallel

        run = self.run
        # Buffers are averaged once per epoch instead of broadcast at every forward.
        ddp = DistributedDataParallel(run.model, device_ids=self._ddp_ids, forward_sync_buffers=False)
        run.forward_model = make_forward(run.config, run.model, run.schedule, full=ddp)
        run.ctx = dataclasses.replace(run.ctx, model=run.forward_model)

    def _reduce_sums(self, sums: torch.Tensor) -> torch.Tensor:
        """The end of an epoch's training on every rank: sum the statistics over ranks and
        average batch-norm running statistics (rank 0 evaluates with them next)."""
        dist.all_reduce(sums)
        sums[2:4] /= self.world  # ‖∇x ℓ‖₁ and α as for one process with the global batch
        for buffer in self.run.model.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer /= self.world
        return sums

    def epoch(self) -> dict[str, Any] | None:
        """Train one epoch on every rank; rank 0 also evaluates. Rank 0 gets the epoch's record,
        others None. Afterwards every rank knows whether the run goes on (:attr:`finished`)."""
        run = self.run
        torch.manual_seed(epoch_seed(run.config.seed, run.epoch, self.rank))
        self.loader.set_epoch(run.epoch)
        record: dict[str, Any] | None = None
        if self.rank == 0:
            record = run.step()
        else:
            run.train_epoch()
        status = [run.status]
        dist.broadcast_object_list(status, src=0)
        run.status = status[0]
        return record

    @property
    def finished(self) -> bool:
        return self.run.finished

    def shard_state(self) -> dict[str, Any]:
        return {"method": self.run.method.state_dict()}


def load_shards(run: DataParallelRun, directory: str | os.PathLike[str] | None) -> None:
    """Restore ``run`` from a checkpoint folder written by every rank: rank 0's run state,
    with this rank's own shard of the per-example memories."""
    if directory is None:
        return
    state = load_run_state(directory)
    if run.rank > 0:
        shard = torch.load(Path(directory) / SHARD_FILE.format(rank=run.rank), map_location="cpu", weights_only=True)
        state["method"] = shard["method"]
    run.run.load_state_dict(state)


def save_shards(run: DataParallelRun, directory: str | os.PathLike[str]) -> None:
    """This rank's part of the run's checkpoint folder: rank 0 the whole run state, the
    others their shard of the per-example memories."""
    if run.rank == 0:
        save_run(run.run, directory)
    else:
        torch.save(run.shard_state(), Path(directory) / SHARD_FILE.format(rank=run.rank))


__all__ = ["SHARD_FILE", "DataParallelRun", "ShardedBatchLoader", "check_world", "epoch_seed", "load_shards",
           "save_shards"]
