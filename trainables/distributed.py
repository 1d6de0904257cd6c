"""One trial across several GPUs: data-parallel training with DistributedDataParallel.

With ``gpus_per_trial`` = N ≥ 2 (whole) the trial process is rank 0 (it alone evaluates,
checkpoints and calls ``tune.report``) and spawns ranks 1 … N−1 with
:mod:`torch.multiprocessing`; NCCL joins them on CUDA, gloo on the CPU (tests).

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
  writes its shard of the per-example memories next to rank 0's checkpoint.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from trainables.checkpoint import load_run_state
from trainables.config import TrainConfig, parse_config
from trainables.data import (
    Augment,
    Batch,
    Split,
    load_config_dataset,
    materialize,
    train_subset,
    training_augment,
)
from trainables.engine import Run, seed_process
from trainables.parts import (
    RunParts,
    make_context,
    make_forward,
    make_method,
    make_model,
    make_optimizer,
    make_schedule,
)
from trainables.registry import ConfigError
from trainables.tune_report import node_metrics, report_epoch

EpochCallback = Callable[[Run, dict[str, Any], str], None]  # (rank 0's run, record, directory)
SHARD_FILE = "rank{rank}.pt"
TIMEOUT = datetime.timedelta(minutes=30)


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
                          f"must be divisible by gpus_per_trial ({world}): a global batch is split evenly over the GPUs")


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
                         make_context(cfg, forward, optimizer, schedule, device), self._reduce_sums)
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


def _init_group(rank: int, world: int, rendezvous: str, device_type: str) -> torch.device:
    """Join the trial's process group. The ranks of one trial share a node, so they meet in a
    file (``file://``): unlike a TCP port picked in advance, it cannot be taken by another
    process between picking and binding (seen as a rare SIGABRT under load)."""
    if device_type == "cuda":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method=f"file://{rendezvous}",
                            rank=rank, world_size=world, timeout=TIMEOUT)
    return device


def _load(run: DataParallelRun, directory: str | None) -> None:
    if directory is None:
        return
    state = load_run_state(directory)
    if run.rank > 0:
        shard = torch.load(Path(directory) / SHARD_FILE.format(rank=run.rank), map_location="cpu", weights_only=True)
        state["method"] = shard["method"]
    run.run.load_state_dict(state)


def _save_shard(run: DataParallelRun, directory: str | None = None) -> None:
    """The end-of-epoch shard handshake, which every rank goes through: rank 0 announces
    ``directory`` (None: no checkpoint; the other ranks' argument is not used), the other
    ranks write their shard state into it, and all return once every shard is written."""
    where: list[str | None] = [directory]
    dist.broadcast_object_list(where, src=0)
    if where[0] is not None and run.rank > 0:
        torch.save(run.shard_state(), Path(where[0]) / SHARD_FILE.format(rank=run.rank))
    dist.barrier()


def _worker(index: int, flat: dict[str, Any], world: int, rendezvous: str, device_type: str, threads: int,
            restore: str | None) -> None:
    """Ranks 1 … world−1 (spawned)."""
    torch.set_num_threads(threads)
    rank = index + 1
    device = _init_group(rank, world, rendezvous, device_type)
    try:
        cfg = parse_config(flat)
        seed_process(cfg)  # every rank builds the same initial weights
        run = DataParallelRun(cfg, rank, world, device)
        _load(run, restore)
        run.wrap()
        while not run.finished:
            run.epoch()
            _save_shard(run)
    finally:
        dist.destroy_process_group()


def train_data_parallel(config: dict[str, Any] | TrainConfig, world: int, on_epoch: EpochCallback | None = None,
                        restore: str | os.PathLike[str] | None = None, device_type: str | None = None,
                        checkpoint: bool = True) -> Run:
    """Train ``config`` on ``world`` processes in this process (rank 0) and ``world − 1`` spawned
    ones; returns rank 0's finished :class:`~trainables.engine.Run`.

    ``on_epoch(run, record, directory)`` is called on rank 0 after every epoch, with a
    directory in which the other ranks have saved their shards (``rank{r}.pt``) when
    ``checkpoint``: save rank 0's state there and report it. ``restore``: a checkpoint
    directory written that way. ``device_type``: "cuda" (default when there are ``world``
    GPUs) or "cpu" (gloo).
    """
    import torch.multiprocessing as mp

    cfg = config if isinstance(config, TrainConfig) else parse_config(config)
    if world < 2:
        raise ConfigError("gpus_per_trial", world, "a data-parallel trial needs at least 2 processes")
    check_world(cfg, world)
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() and torch.cuda.device_count() >= world else "cpu"
    if device_type == "cuda" and torch.cuda.device_count() < world:
        raise ConfigError("gpus_per_trial", world, f"this trial sees only {torch.cuda.device_count()} GPUs")
    meeting = tempfile.TemporaryDirectory(prefix="raysearch-ddp-")
    rendezvous = os.path.join(meeting.name, "rendezvous")
    threads = torch.get_num_threads()
    per_rank = max(1, (cfg.threads or threads) // world)  # the trial's CPUs, split over its processes
    if cfg.threads:
        cfg = dataclasses.replace(cfg, threads=per_rank)
    restore_dir = None if restore is None else str(restore)
    workers = mp.start_processes(_worker, args=(cfg.to_flat(), world, rendezvous, device_type, per_rank, restore_dir),
                                 nprocs=world - 1, join=False, start_method="spawn")
    torch.set_num_threads(per_rank)
    device = _init_group(0, world, rendezvous, device_type)
    try:
        seed_process(cfg)
        run = DataParallelRun(cfg, 0, world, device)
        _load(run, restore_dir)
        run.wrap()
        while not run.finished:
            record = run.epoch()
            assert record is not None
            with tempfile.TemporaryDirectory() as directory:
                _save_shard(run, directory if checkpoint else None)  # the other ranks have written their shards
                if on_epoch is not None:
                    on_epoch(run.run, record, directory)
    except BaseException:
        for process in workers.processes:
            if process.is_alive():
                process.terminate()
        raise
    finally:
        dist.destroy_process_group()
        torch.set_num_threads(threads)
    while not workers.join():
        pass
    meeting.cleanup()
    return run.run


def tune_data_parallel(cfg: TrainConfig, world: int) -> None:
    """The Ray Tune trainable's body for a trial across ``world`` GPUs: rank 0 (this process)
    reports every epoch with a checkpoint holding its state and the other ranks' shards."""
    from ray import tune

    node = {**node_metrics(), "world_size": world}

    def report(run: Run, record: dict[str, Any], directory: str) -> None:
        report_epoch(run, record, directory, node)

    checkpoint = tune.get_checkpoint()
    with tempfile.TemporaryDirectory() as restore:
        if checkpoint is not None:
            checkpoint.to_directory(restore)
        train_data_parallel(cfg, world, report, restore=restore if checkpoint is not None else None)


__all__ = ["DataParallelRun", "ShardedBatchLoader", "check_world", "epoch_seed", "train_data_parallel",
           "tune_data_parallel"]
