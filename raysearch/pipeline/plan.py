"""The plan of a search: everything :func:`~raysearch.pipeline.launch.launch` needs, decided
before Ray starts, in four parts: the experiment and its run directory
(:mod:`raysearch.pipeline.inputs`), the resources of a trial, the budget (fidelity levels and
what they cost), and the warm starts (paper defaults to run first or take from an earlier run,
the reference, earlier studies).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysearch.pipeline.inputs import (
    Asked,
    Place,
    abs_data_root,
    directions,
    load_data,
    new_experiment,
    population_time_attr,
    problem_hash,
    resumed_experiment,
    shared_train,
)
from raysearch.pipeline.reuse import Prior, reused_priors
from raysearch.pipeline.study import study_place
from raysearch.rundir.experiment import Experiment
from raysearch.rundir.storage import free_bytes, is_uri
from trainables.labels import REFERENCE_LABEL
from trainables.registry import ConfigError

CHECKPOINT_HEADROOM = 4  # a trial keeps two checkpoints; room for twice that is asked for


@dataclass(frozen=True)
class Costs:
    """The budget part: what the fidelity levels cost and the limit on the whole search."""

    batches_per_epoch: int
    cost: Any  # raysearch.tuning.budget.CostModel
    budget: Any  # Budget | None
    max_t: int


@dataclass(frozen=True)
class WarmStarts:
    """The warm-start part: what runs first, what is taken instead of run, what studies tell."""

    points: list[Any]  # search_spaces.WarmStart, those still to run
    reused: list[Prior]
    needs_reference: bool
    sources: list[Any]  # raysearch.rundir.warm_sources.Source


@dataclass
class SearchPlan:
    """Everything :func:`~raysearch.pipeline.launch.launch` needs, decided before Ray starts."""

    experiment: Experiment
    run_dir: str
    storage_path: str
    run_name: str
    resume: bool
    batches_per_epoch: int
    cost: Any  # CostModel
    budget: Any  # Budget | None
    space: Callable[..., Any]
    warm_starts: list[Any]  # search_spaces.WarmStart, those still to run
    reused: list[Prior]
    needs_reference: bool
    max_t: int
    request: dict[str, float]
    available: dict[str, float]
    concurrency: int
    joined: bool
    address: str | None
    plugins: tuple[tuple[str, str, Any], ...] = ()
    start: float = field(default_factory=time.monotonic)
    study_url: str | None = None  # where the Optuna study lives (None: in memory, a cloud run directory)
    study: str = ""  # its name: <experiment>-<run name>
    sources: list[Any] = field(default_factory=list)  # raysearch.rundir.warm_sources.Source
    callbacks: tuple[Any, ...] = ()  # the caller's own Ray Tune callbacks for the search stage

    @property
    def workers(self) -> int:
        """Ray Train workers per trial: ``workers_per_trial``, or one per GPU of a multi-GPU trial."""
        return workers_per_trial(self.experiment, self.request)

    @property
    def trial_request(self) -> dict[str, float]:
        """What Tune reserves for a trial's own process: all of ``request``, or for a trial on
        several workers only its driver (Ray Train reserves the workers when they start, and
        ``concurrency`` keeps room for every running trial's workers)."""
        from trainables.distributed.workers import DRIVER_CPUS

        return dict(self.request) if self.workers == 1 else {"cpu": DRIVER_CPUS}

    @property
    def train(self) -> dict[str, Any]:
        return shared_train(self.experiment)

    @property
    def levels(self) -> tuple[tuple[float, float], ...]:
        return self.cost.levels


def workers_per_trial(exp: Experiment, request: dict[str, float]) -> int:
    """The one rule for workers per trial: ``workers_per_trial``, or one per GPU of a multi-GPU trial."""
    gpus = request.get("gpu", 0.0)
    return max(exp.search.workers_per_trial, int(gpus) if gpus >= 2 else 1)


def plan(experiment: str | Path = "demo", overrides: Iterable[str] = (), *, samples: int | None = None,
         gpus_per_trial: float | None = None, cpus_per_trial: float | None = None, address: str | None = None,
         storage: str | None = None, name: str | None = None, resume: str | Path | None = None,
         time_attr: str | None = None, trainable: str | None = None, model: Any = None,
         dataset: Any = None, study_storage: str | None = None) -> SearchPlan:
    """Check the input and decide what to run (no Ray started unless joining a cluster).

    Raises:
        ConfigError: bad input.
    """
    import search_spaces

    start = time.monotonic()
    plugins: tuple[tuple[str, str, Any], ...] = ()
    if resume is not None:
        exp, place = resumed_experiment(resume)
    else:
        exp, place, plugins = new_experiment(Asked(experiment, overrides, samples, gpus_per_trial, cpus_per_trial,
                                                   storage, name, time_attr, trainable, model, dataset,
                                                   study_storage))
    study_url, study = study_place(exp, place.run_dir, place.run_name, resume is not None, study_storage)
    if plugins:
        from trainables.trials.setup import register_plugins

        register_plugins(plugins)
    exp = population_time_attr(exp)
    space = search_spaces.get_space(exp.search.space, exp.train_config.epsilon)
    data = load_data(exp.train_config)
    costs, configs = plan_costs(exp, data, space)
    joined, available, request = plan_resources(exp, address, configs, data)
    concurrency = _concurrency(exp, request, available)
    warm = plan_warm_starts(exp, place, resume is not None, study_url, space)
    return SearchPlan(exp, place.run_dir, place.storage_path, place.run_name, resume is not None,
                      costs.batches_per_epoch, costs.cost, costs.budget, space, warm.points, warm.reused,
                      warm.needs_reference, costs.max_t, request, available, concurrency, joined, address, plugins,
                      start, study_url, study, warm.sources)


def plan_costs(exp: Experiment, data: Any, space: Callable[..., Any]) -> tuple[Costs, list[Any]]:
    """The budget part, and the branch configs of the space it is priced on."""
    from raysearch.tuning.budget import Budget, CostModel, branch_configs, max_k
    from trainables.data import train_subset

    s, cfg = exp.search, exp.train_config
    levels = tuple(s.fidelity.levels()) if s.time_attr == "fidelity" else ((1.0, 1.0),)
    train_size = len(train_subset(data.train, cfg.data_fraction))
    base = tuple((k, v) for k, v in exp.train.items() if k != "data_root")
    cost = CostModel(train_size, cfg.batch_size, cfg.max_batches, cfg.epochs, levels, base)
    m = cost.level_batches(len(levels) - 1)
    configs = branch_configs(exp.train, space)
    max_t = (max_k(configs, cfg.epochs) + 1) * m * cfg.epochs
    budget = None
    if (s.budget is not None or s.budget_seconds is not None) and not s.population_based:
        first = max(cost.level_backprops(c, 0) for c in configs)
        budget = Budget(cost, first, limit=s.budget * cost.reference_backprops if s.budget is not None else None,
                        seconds=s.budget_seconds)
    return Costs(m, cost, budget, max_t), configs


def plan_resources(exp: Experiment, address: str | None, configs: Iterable[Any],
                   data: Any) -> tuple[bool, dict[str, float], dict[str, float]]:
    """(joined, available, request): checked against this machine before Ray is started,
    against the cluster once joined (``--address``) or when Ray already runs."""
    import ray

    from raysearch.tuning.resources import check_trial_device, local_resources, trial_resources

    s, cfg = exp.search, exp.train_config
    joined = address is not None or ray.is_initialized()
    available, request = local_resources(), {"cpu": float(s.cpus_per_trial)}
    if not joined:
        request = trial_resources(s.cpus_per_trial, s.gpus_per_trial, available)
        check_trial_device(cfg.device, request)
        _check_gpu_share(exp, configs, data, request.get("gpu", 0.0))
    return joined, available, request


def _concurrency(exp: Experiment, request: dict[str, float], available: dict[str, float]) -> int:
    """Trials at once, after checking that a trial's workers can train together."""
    from raysearch.tuning.resources import concurrent_slots

    s = exp.search
    concurrency = concurrent_slots(request, available, s.max_concurrent)
    workers = workers_per_trial(exp, request)
    if workers > 1:
        from trainables.distributed.data_parallel import check_world

        check_world(exp.train_config, workers)
        if s.population_based:
            raise ConfigError("search.workers_per_trial", workers, "a population-based search trains each member in "
                                                                   "one process (workers_per_trial: 1)")
    return concurrency


def plan_warm_starts(exp: Experiment, place: Place, resume: bool, study_url: str | None,
                     space: Callable[..., Any]) -> WarmStarts:
    """The warm-start part: paper defaults to run or reuse, the reference, earlier studies."""
    import search_spaces

    s, cfg = exp.search, exp.train_config
    points = search_spaces.warm_starts(s.space, cfg.epsilon) if s.warm_start and not s.population_based else []
    reused: list[Prior] = []
    if s.reuse and points and not resume:
        reused = reused_priors(points, shared_train(exp), place.storage_path, place.run_name)
    needs_reference = (cfg.objective == "target" and cfg.target_robust_acc == "reference"
                       and not any(p.label == REFERENCE_LABEL for p in reused))
    if not s.reference:  # its cost is known without training it: trained only for a claim that needs it
        points = [p for p in points if p.label != REFERENCE_LABEL]
    taken = {p.label for p in reused} | ({REFERENCE_LABEL} if needs_reference else set())
    sources = []
    if s.warm_start_from and not resume and not s.population_based:
        from raysearch.rundir.warm_sources import read_sources

        sources = read_sources(s.warm_start_from, problem_hash(exp), study_url, s.warm_start_best,
                               directions(cfg.objective), space)
    return WarmStarts([p for p in points if p.label not in taken], reused, needs_reference, sources)


def _check_gpu_share(experiment: Experiment, configs: Iterable[Any], data: Any, share: float) -> None:
    """Refuse, before Ray starts, a GPU fraction whose memory cannot hold the costliest method
    of the space (a measured estimate; :mod:`trainables.training.memory_estimate`)."""
    if not 0 < share < 1:
        return
    import torch

    if not torch.cuda.is_available():
        return
    from trainables.training.memory_estimate import check_gpu_share

    train = {**experiment.train, "data_root": abs_data_root(experiment.train_config.data_root)}
    check_gpu_share(train, share, torch.cuda.get_device_properties(0).total_memory, data=data,
                    methods={cfg.method for cfg in configs})


def check_disk(plan: SearchPlan) -> str | None:
    """A warning when the storage's free space looks too small for the run's checkpoints."""
    if is_uri(plan.run_dir):
        return None
    from trainables.training.memory_estimate import checkpoint_bytes

    per_trial = checkpoint_bytes(plan.experiment.train_config)
    need = per_trial * CHECKPOINT_HEADROOM * max(plan.experiment.search.samples, 1)
    free = free_bytes(plan.storage_path)
    if free is not None and free < need:
        return (f"warning: {plan.storage_path} has {free / 2**20:.0f} MiB free; the search's checkpoints may need "
                f"~{need / 2**20:.0f} MiB ({per_trial / 2**20:.1f} MiB per checkpoint)")
    return None
