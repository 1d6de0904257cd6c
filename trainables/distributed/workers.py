"""Trials that span several workers — GPUs of one machine or of several — on Ray Train.

A trial with ``search.workers_per_trial`` W ≥ 2 (or ``gpus_per_trial`` N ≥ 2: one worker per
GPU) is a Tune trial whose function only drives: for each fidelity level it runs Ray Train's
``TorchTrainer`` with W workers, which Ray places on any nodes that have the resources, joins
in one process group (NCCL on GPUs, gloo on CPUs) and restarts from their last checkpoint
when the trial is restarted. Each worker runs :func:`worker_loop`: a
:class:`~trainables.distributed.data_parallel.DataParallelRun` on its fixed shard of the data, with
``batch_size`` the global batch and backprops counted per global batch, as one process
would count them.

Every epoch every worker reports to Ray Train with its part of the checkpoint (rank 0 the run
state, the others their shard of the per-example memories: Ray Train merges them into one
folder), and rank 0's metrics — the same as a one-process trial's, plus ``world_size`` and
the nodes its workers ran on — reach Tune through ``TuneReportCallback``, with the
checkpoint's path. The inner run of level L of trial T is named ``T-levelL`` under
``<run dir>/train/``: re-running it after a crash continues it (Ray Train's own resume).

Resources: the Tune trial itself asks for almost nothing (:data:`DRIVER_CPUS`); the workers'
CPUs and GPUs are reserved by Ray Train's own placement group when the level starts, and the
search runs no more trials at once than the cluster has room for with all their workers (so
trials cannot starve each other of workers halfway). Tune stopping a trial (ASHA) leaves that
placement group behind in Ray 2.60; rank 0 reports its id (``worker_pg``) so that the search
removes it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from typing import Any

import torch

from trainables.config import TrainConfig, parse_config
from trainables.distributed.data_parallel import (
    DataParallelRun,
    check_world,
    load_shards,
    save_shards,
)
from trainables.evaluation.accuracy import test_split_accuracy
from trainables.status import Status
from trainables.training.checkpoint import load_run_state, save_progress
from trainables.training.engine import seed_process
from trainables.trials.fidelity import LevelAt, LevelProgress, level_report
from trainables.trials.report import node_metrics, tune_metrics
from trainables.trials.setup import TrialSetup, register_plugins

DRIVER_CPUS = 0.01  # a multi-worker trial's own process only waits for its workers
WORKER_PG = "worker_pg"  # the metric naming the workers' placement group


@dataclass(frozen=True)
class WorkerPlan:
    """What every worker of one inner run gets: the run's flat config, where it sits among
    the trial's levels (None: a plain run), the trial's progress before it, a checkpoint folder
    to start from when the inner run has none of its own, plug-ins, whether workers use GPUs,
    and (attacks, examples) to measure on the test split at the end (confirmation)."""

    config: dict[str, Any]
    at: LevelAt | None = None
    progress: LevelProgress = field(default_factory=LevelProgress)
    restore: str | None = None
    plugins: tuple[tuple[str, str, Any], ...] = ()
    use_gpu: bool = False
    test: tuple[str, int | None] | None = None


def _all_nodes(node_id: str) -> str:
    """The node ids of every rank, in rank order (one all-gather)."""
    import torch.distributed as dist

    nodes: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(nodes, node_id)
    return ",".join(str(n) for n in nodes)


def worker_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker (``train_loop_per_worker``) of a data-parallel run (module doc)."""
    import ray.train
    import ray.train.torch
    import ray.util

    plan: WorkerPlan = loop_config["plan"]
    register_plugins(plan.plugins)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device() if plan.use_gpu else torch.device("cpu")
    cfg = parse_config(plan.config)
    seed_process(cfg)  # every rank builds the same initial weights
    run = DataParallelRun(cfg, rank, world, device)
    checkpoint = ray.train.get_checkpoint()  # this inner run's own last one (a restarted trial)
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            load_shards(run, directory)
    else:
        load_shards(run, plan.restore)
    run.wrap()
    node = node_metrics()
    group = ray.util.get_current_placement_group()
    where = {**node, "world_size": world, "worker_nodes": _all_nodes(node["node_id"]),
             WORKER_PG: group.id.hex() if group is not None else ""}
    while not run.finished:
        record = run.epoch()
        with tempfile.TemporaryDirectory() as directory:
            save_shards(run, directory)
            metrics: dict[str, Any] = {}
            if record is not None:  # rank 0
                extra: dict[str, Any] = {"batches_per_epoch": run.run.batches_per_epoch}
                if plan.test is not None:
                    extra["confirm_done"] = False
                if plan.at is not None:
                    record, levels, after = level_report(run.run, record, plan.at, plan.progress)
                    extra.update(levels)
                    save_progress(directory, dataclasses.asdict(after))
                metrics = {**tune_metrics(record), **where, **extra}
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))
    if plan.test is not None:
        measured: dict[str, Any] = {}
        if rank == 0:
            run.run.model.load_state_dict(run.run.scored_weights())
            measured = {**run.run.validation_scores(), **test_split_accuracy(run.run.model, cfg, device, *plan.test),
                        **where,
                        "confirm_done": True, "seed": cfg.seed, "status": run.run.status.value,
                        "backprops": run.run.cost.backprops, "train_seconds": run.run.cost.train_seconds,
                        "epoch": run.run.epoch, "reused_run": plan.restore is not None}
        ray.train.report(measured)


@dataclass(frozen=True)
class WorkersResult:
    """An inner run's end: its final run state (rank 0's), checkpoint folder and last metrics."""

    state: dict[str, Any]
    checkpoint: str | None
    metrics: dict[str, Any]

    @property
    def status(self) -> Status:
        return Status(self.state.get("status", Status.FAILED.value))

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.state.get("history", []))

    @property
    def cost(self) -> dict[str, Any]:
        return dict(self.state.get("cost", {}))


def fit_workers(plan: WorkerPlan, workers: int, *, name: str, storage: str, cpus_per_worker: float = 1.0,
                gpus_per_worker: float = 0.0, in_tune: bool = False) -> WorkersResult:
    """Run ``plan`` on ``workers`` Ray Train workers as the inner run ``name`` under ``storage``
    (continuing it when it exists); ``in_tune``: forward rank 0's reports to the Tune trial."""
    import ray.train
    from ray.train.torch import TorchTrainer

    check_world(parse_config(plan.config), workers)
    callbacks: list[Any] = []
    if in_tune:
        from ray.tune.integration.ray_train import TuneReportCallback

        callbacks.append(TuneReportCallback())
    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if plan.use_gpu else {})}
    trainer = TorchTrainer(
        worker_loop, train_loop_config={"plan": plan},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=plan.use_gpu,
                                               resources_per_worker=resources),
        # A crashed worker fails the run (the Tune trial's one retry continues it from its last
        # checkpoint); workers that cannot be placed fail it after a few startup timeouts
        # instead of waiting forever.
        run_config=ray.train.RunConfig(name=name, storage_path=storage, callbacks=callbacks,
                                       failure_config=ray.train.FailureConfig(  # Train V2's; mypy sees V1's
                                           max_failures=0, controller_failure_limit=2)))  # type: ignore[call-arg]
    result = trainer.fit()
    state: dict[str, Any] = {}
    path = None
    if result.checkpoint is not None:
        with result.checkpoint.as_directory() as directory:
            state = load_run_state(directory)
        path = result.checkpoint.path
    return WorkersResult(state, path, dict(result.metrics or {}))


def train_data_parallel(config: dict[str, Any] | TrainConfig, workers: int, *, storage: str,
                        name: str = "data-parallel", restore: str | None = None,
                        use_gpu: bool = False) -> WorkersResult:
    """Train ``config`` on ``workers`` Ray Train workers outside any search (Ray must be
    running or is started locally); ``restore``: a checkpoint folder to start from."""
    cfg = config if isinstance(config, TrainConfig) else parse_config(config)
    plan = WorkerPlan(cfg.to_flat(), restore=restore, use_gpu=use_gpu)
    return fit_workers(plan, workers, name=name, storage=storage,
                       cpus_per_worker=worker_cpus(float(cfg.threads or 1), workers))


def worker_cpus(cpus_per_trial: float, workers: int) -> float:
    """CPUs per worker of a trial: its CPUs less its driver's sliver, split over its workers."""
    return max((cpus_per_trial - DRIVER_CPUS) / workers, DRIVER_CPUS)


def trial_workers(setup: TrialSetup) -> int:
    """How many workers a trial trains on: ``workers``, or one per GPU of a multi-GPU trial."""
    gpus = float(setup.gpus_per_trial or 0)
    return max(setup.workers, int(gpus) if gpus >= 2 and torch.cuda.is_available() else 1)


__all__ = ["DRIVER_CPUS", "WORKER_PG", "WorkerPlan", "WorkersResult", "fit_workers", "train_data_parallel",
           "trial_workers", "worker_cpus", "worker_loop"]
