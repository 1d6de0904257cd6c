"""``raysearch search``: plan → launch → collect (→ confirm) an experiment's search (SPEC §§8-11).

Three roles, kept apart as Ray Tune intends: :class:`~raysearch.tuning.searcher.OptunaSearcher`
decides *what* to try (multivariate TPE, the papers' defaults first), the scheduler
(:mod:`raysearch.tuning.scheduler`: ASHA over complete low-fidelity runs, wrapped so the
defaults finish and the budget holds) decides *whether a trial goes on*, and the trainable
(:func:`trainables.trainable.tune_trainable`) trains and reports.

- :func:`plan` checks everything the user can get wrong before Ray starts (the experiment,
  the space, the data, resources, the storage) and decides what to run: the fidelity levels,
  the budget, which paper defaults can be taken from an earlier run of the same experiment,
  whether a ``reference`` target needs the reference run first.
- :func:`launch` runs the Tune stages (reference, search) in one Ray session; a Ctrl-C ends
  it as *interrupted*.
- :func:`collect` reads the run directory back into :class:`TrialRecord` objects, writes
  ``search_summary.json`` and returns the :class:`SearchResult`.

The run directory ``<storage>/<name>`` holds Ray Tune's experiment state, the Optuna study
(``optuna.db``), one TensorBoard log directory and ``experiment.yaml`` (the resolved
experiment and the raysearch version), so ``search(resume=run_dir)`` needs nothing else.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysearch._version import __version__
from raysearch.rundir.experiment import DEFAULT_TRAINABLE, Experiment, load_experiment
from raysearch.rundir.outcomes import SearchResult, search_overhead_fraction
from raysearch.rundir.records import TrialRecord
from raysearch.rundir.results import (
    EXPERIMENT_FILE,
    RunInfo,
    best_trial,
    finished_runs,
    load_run,
)
from raysearch.rundir.storage import (
    check_storage,
    free_bytes,
    is_uri,
    join,
    read_experiment_file,
    write_text,
)
from raysearch.rundir.summary import write_summary
from raysearch.tuning.tuner import INTERRUPT, fit, quiet_tune
from trainables.labels import describe
from trainables.registry import ConfigError
from trainables.status import Status

logger = logging.getLogger(__name__)
POPULATION_TRAINABLE = "trainables.population:population_trainable"

REFERENCE_LABEL = "PGD-10"
CHECKPOINT_HEADROOM = 4  # a trial keeps two checkpoints; room for twice that is asked for


# ---------------------------------------------------------------------------------- plan


@dataclass
class Prior:
    """A trial the search takes instead of running it: a paper default finished in an earlier
    run of the same experiment (``reused``) or the reference stage of this one."""

    record: TrialRecord
    label: str
    params: dict[str, Any]

    @property
    def origin(self) -> str:
        """Where the run was trained (a reused one is read from its copy in this run)."""
        return self.record.reused_from or self.record.path


@dataclass
class SearchPlan:
    """Everything :func:`launch` needs, decided before Ray starts."""

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
        gpus = self.request.get("gpu", 0.0)
        return max(self.experiment.search.workers_per_trial, int(gpus) if gpus >= 2 else 1)

    @property
    def trial_request(self) -> dict[str, float]:
        """What Tune reserves for a trial's own process: all of ``request``, or for a trial on
        several workers only its driver (Ray Train reserves the workers when they start, and
        ``concurrency`` keeps room for every running trial's workers)."""
        from trainables.train_workers import DRIVER_CPUS

        return dict(self.request) if self.workers == 1 else {"cpu": DRIVER_CPUS}

    @property
    def train(self) -> dict[str, Any]:
        return shared_train(self.experiment)

    @property
    def levels(self) -> tuple[tuple[float, float], ...]:
        return self.cost.levels


def shared_train(experiment: Experiment) -> dict[str, Any]:
    """The training keys every trial of ``experiment`` gets: data_root absolute (trials run
    elsewhere) and the thread count (the config's, else the trial's CPUs). CPU results depend
    on it, so every trial records it: ``best.yaml`` re-runs exactly, reuse compares it."""
    cfg = experiment.train_config
    return {**experiment.train, "data_root": abs_data_root(cfg.data_root),
            "threads": cfg.threads or max(1, int(experiment.search.cpus_per_trial))}


def abs_data_root(root: str) -> str:
    # Ray runs each trial in its own working directory: a relative data_root would move.
    return root if is_uri(root) else os.path.abspath(os.path.expanduser(root))


def _load_data(cfg: Any) -> Any:
    from trainables.data import load_dataset

    return load_dataset(cfg.dataset, abs_data_root(cfg.data_root), cfg.download, cfg.synthetic_size, cfg.image_size)


def _check_gpu_share(experiment: Experiment, configs: Iterable[Any], data: Any, share: float) -> None:
    """Refuse, before Ray starts, a GPU fraction whose memory cannot hold the costliest method
    of the space (a measured estimate; :mod:`trainables.memory_estimate`)."""
    if not 0 < share < 1:
        return
    import torch

    if not torch.cuda.is_available():
        return
    from trainables.memory_estimate import check_gpu_share

    train = {**experiment.train, "data_root": abs_data_root(experiment.train_config.data_root)}
    check_gpu_share(train, share, torch.cuda.get_device_properties(0).total_memory, data=data,
                    methods={cfg.method for cfg in configs})


def _comparable(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """A config resolved for comparing runs (every key, defaults filled; paths left out)."""
    from trainables.config import parse_config

    try:
        flat = parse_config(dict(config)).to_flat()
    except ConfigError:
        return None
    flat.pop("data_root", None)
    return flat


def find_reusable(storage_path: str, run_name: str, configs: Mapping[str, dict[str, Any]]) -> dict[str, TrialRecord]:
    """Finished paper defaults of the same experiment in run directories beside this one:
    label -> the newest completed full-fidelity trial whose resolved config is identical."""
    if is_uri(storage_path) or not Path(storage_path).is_dir():
        return {}
    wanted = {label: _comparable(cfg) for label, cfg in configs.items()}
    found: dict[str, tuple[float, TrialRecord]] = {}
    for run_dir in Path(storage_path).iterdir():
        if run_dir.name == run_name or not (run_dir / EXPERIMENT_FILE).exists():
            continue
        try:
            run = load_run(run_dir)
        except Exception:  # an unreadable neighbour is simply not reused
            continue
        for trial in finished_runs(run.trials):
            label = trial.warm_start
            if not label or label not in wanted or trial.checkpoint is None or trial.reused_from:
                continue
            if _comparable(trial.config) == wanted[label]:
                stamp = Path(trial.path).stat().st_mtime
                if label not in found or stamp > found[label][0]:
                    found[label] = (stamp, trial)
    return {label: trial for label, (_, trial) in found.items()}


def plan(experiment: str | Path = "demo", overrides: Iterable[str] = (), *, samples: int | None = None,
         gpus_per_trial: float | None = None, cpus_per_trial: float | None = None, address: str | None = None,
         storage: str | None = None, name: str | None = None, resume: str | Path | None = None,
         time_attr: str | None = None, trainable: str | None = None, model: Any = None,
         dataset: Any = None, study_storage: str | None = None) -> SearchPlan:
    """Check the input and decide what to run (no Ray started unless joining a cluster).

    Raises:
        ConfigError: bad input.
    """
    import ray

    import search_spaces
    from raysearch.tuning.budget import Budget, CostModel, branch_configs, max_k
    from raysearch.tuning.resources import (
        check_trial_device,
        concurrent_slots,
        local_resources,
        trial_resources,
    )
    from trainables.data import train_subset

    start = time.monotonic()
    plugins: tuple[tuple[str, str, Any], ...] = ()
    if resume is not None:
        run_dir = str(resume) if is_uri(str(resume)) else os.path.abspath(os.path.expanduser(str(resume)))
        exp = read_experiment_file(run_dir)
        storage_path, run_name = run_dir.rstrip("/").rsplit("/", 1) if is_uri(run_dir) else (
            str(Path(run_dir).parent), Path(run_dir).name)
        from raysearch.tuning.tuner import can_restore

        if not can_restore(run_dir):
            raise ConfigError("resume", run_dir, "holds no Ray Tune experiment state to resume")
    else:
        extra = list(overrides)
        from trainables.trial import plugin_reference

        for kind, value in (("model", model), ("dataset", dataset)):
            if value is None:
                continue
            if callable(value):
                value, registered = plugin_reference(kind, value)
                plugins += registered
            extra.append(f"{kind}={value}")
        exp = load_experiment(experiment, extra).replace_search(
            samples=samples, gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial, time_attr=time_attr,
            study_storage=study_storage)
        if trainable:
            exp = dataclasses.replace(exp, trainable=trainable)
        run_name = name or f"{exp.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
        if "/" in run_name or not run_name.strip():
            raise ConfigError("name", run_name, "must be a non-empty name without '/'")
        storage_path = check_storage(storage or "runs")
        run_dir = join(storage_path, run_name)
        if not is_uri(run_dir) and Path(run_dir, "tuner.pkl").exists():
            raise ConfigError("name", run_name, f"run directory {run_dir} already holds a search; "
                                                f"continue it with --resume {run_dir} or pick another --name")
    study_url, study = _study(exp, run_dir, run_name, resume is not None, study_storage)
    if plugins:
        from trainables.trial import register_plugins

        register_plugins(plugins)
    s, cfg = exp.search, exp.train_config
    if s.population_based and s.time_attr == "fidelity":
        s = dataclasses.replace(s, time_attr="epoch")  # a population trains full runs side by side
        exp = dataclasses.replace(exp, search=s)
    space = search_spaces.get_space(s.space, cfg.epsilon)
    data = _load_data(cfg)
    levels = tuple(s.fidelity.levels()) if s.time_attr == "fidelity" else ((1.0, 1.0),)
    train_size = len(train_subset(data.train, cfg.data_fraction))
    base = tuple((k, v) for k, v in exp.train.items() if k != "data_root")
    cost = CostModel(train_size, cfg.batch_size, cfg.max_batches, cfg.epochs, levels, base)
    m = cost.level_batches(len(levels) - 1)
    configs = branch_configs(exp.train, space)
    budget_t = (max_k(configs, cfg.epochs) + 1) * m * cfg.epochs
    budget = None
    if (s.budget is not None or s.budget_seconds is not None) and not s.population_based:
        first = max(cost.level_backprops(c, 0) for c in configs)
        budget = Budget(cost, first, limit=s.budget * cost.reference_backprops if s.budget is not None else None,
                        seconds=s.budget_seconds)
    # Resources are checked before any trial starts: against this machine before Ray is
    # started, against the cluster once joined (``--address``) or when Ray already runs.
    joined = address is not None or ray.is_initialized()
    available, request = local_resources(), {"cpu": float(s.cpus_per_trial)}
    if not joined:
        request = trial_resources(s.cpus_per_trial, s.gpus_per_trial, available)
        check_trial_device(cfg.device, request)
        _check_gpu_share(exp, configs, data, request.get("gpu", 0.0))
    points = search_spaces.warm_starts(s.space, cfg.epsilon) if s.warm_start and not s.population_based else []
    reused: list[Prior] = []
    if s.reuse and points and resume is None:
        wanted = {p.label: {**shared_train(exp), **p.config} for p in points}
        for label, record in find_reusable(storage_path, run_name, wanted).items():
            point = next(p for p in points if p.label == label)
            reused.append(Prior(record, label, point.params))
    needs_reference = (cfg.objective == "target" and cfg.target_robust_acc == "reference"
                       and not any(p.label == REFERENCE_LABEL for p in reused))
    if not s.reference:  # its cost is known without training it: trained only for a claim that needs it
        points = [p for p in points if p.label != REFERENCE_LABEL]
    taken = {p.label for p in reused} | ({REFERENCE_LABEL} if needs_reference else set())
    concurrency = concurrent_slots(request, available, s.max_concurrent)
    workers = max(s.workers_per_trial, int(request.get("gpu", 0.0)) if request.get("gpu", 0.0) >= 2 else 1)
    if workers > 1:
        from trainables.data_parallel import check_world

        check_world(cfg, workers)
        if s.population_based:
            raise ConfigError("search.workers_per_trial", workers, "a population-based search trains each member in "
                                                                   "one process (workers_per_trial: 1)")
    sources = []
    if s.warm_start_from and resume is None and not s.population_based:
        from raysearch.rundir.warm_sources import read_sources

        sources = read_sources(s.warm_start_from, problem_hash(exp), study_url, s.warm_start_best,
                               directions(cfg.objective), space)
    return SearchPlan(exp, run_dir, storage_path, run_name, resume is not None, m, cost, budget, space,
                      [p for p in points if p.label not in taken], reused, needs_reference, budget_t, request,
                      available, concurrency, joined, address, plugins, start, study_url, study, sources)


def problem_hash(experiment: Experiment) -> str:
    """What makes two searches' trials comparable: every training key they share (data, model,
    epochs, ε, objective, seed, threads), resolved with defaults, paths left out."""
    from raysearch.rundir.known import config_hash

    return config_hash(shared_train(experiment))


def directions(objective: str) -> list[str]:
    from raysearch.tuning.objective import search_metric

    _, mode = search_metric(objective)
    return [("maximize" if m == "max" else "minimize") for m in (mode if isinstance(mode, list) else [mode])]


def _study(exp: Experiment, run_dir: str, run_name: str, resume: bool, given: str | None) -> tuple[str | None, str]:
    """(storage URL, study name) of the search, checked before Ray starts (None, "" for a
    population-based search, which has no Optuna study). A resumed run finds
    them in its summary (0.2's runs: ``optuna.db``, the study named after the run); a URL given
    again (``--study-storage``) supplies the password the run files do not hold."""
    from raysearch.rundir.study_store import check_study_storage, remember, study_name, study_url

    if given:
        remember(given)
    if exp.search.population_based:  # PBT and PB2 schedule without Optuna: no study to keep
        return None, ""
    if resume:
        from raysearch.rundir.summary import read_summary

        summary = read_summary(run_dir) if not is_uri(run_dir) else {}
        url = summary.get("study_storage") or (exp.search.study_storage and study_url(exp.search.study_storage, run_dir))
        name = summary.get("study_name") or run_name
        if not url and not is_uri(run_dir):
            url = study_url(None, run_dir)
    else:
        url = study_url(exp.search.study_storage, run_dir) if exp.search.study_storage or not is_uri(run_dir) else None
        name = study_name(exp.name, run_name)
    if url and exp.search.study_storage:
        check_study_storage(url)
    return url, name


# ---------------------------------------------------------------------------------- launch


def _init_ray(plan: SearchPlan) -> None:
    import ray

    from raysearch.tuning.resources import (
        check_trial_device,
        concurrent_slots,
        init_ray,
        trial_resources,
    )

    init_ray(plan.address, plan.available)
    if plan.joined:
        plan.available = {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        s = plan.experiment.search
        plan.request = trial_resources(s.cpus_per_trial, s.gpus_per_trial, plan.available)
        check_trial_device(plan.experiment.train_config.device, plan.request)
        plan.concurrency = concurrent_slots(plan.request, plan.available, s.max_concurrent)


def _setup(plan: SearchPlan, levels: tuple[tuple[float, float], ...] | None = None) -> Any:
    from trainables.trial import TrialSetup

    s = plan.experiment.search
    return TrialSetup(gpus_per_trial=plan.request.get("gpu", 0.0), workers=plan.workers,
                      levels=levels or plan.levels, reduction_factor=s.reduction_factor, plugins=plan.plugins,
                      cpus_per_trial=plan.request["cpu"], train_storage=join(plan.run_dir, "train"))


def _import(path: str) -> Callable[..., Any]:
    from trainables.registry import import_object

    return import_object(path, "trainable")  # type: ignore[no-any-return]


def _trainable(plan: SearchPlan, function: Callable[..., Any], setup: Any) -> Any:
    from ray import tune

    return tune.with_resources(tune.with_parameters(function, setup=setup), plan.trial_request)


def _reference_record(plan: SearchPlan, progress: bool) -> TrialRecord | None:
    """Run (or continue) the reference stage: PGD-10 with the experiment's settings, whose
    finished robust accuracy is the target of ``target_robust_acc: reference``."""
    import search_spaces
    from raysearch.rundir.records import record_from_folder
    from raysearch.tuning.progress import ProgressLines
    from raysearch.tuning.tensorboard import TensorBoardCallback
    from raysearch.tuning.tuner import (
        InterruptWatch,
        Stage,
        build_tuner,
        can_restore,
        restore_tuner,
    )

    cfg = plan.experiment.train_config
    point = next(p for p in search_spaces.warm_starts("baselines", cfg.epsilon) if p.label == REFERENCE_LABEL)
    full = ((1.0, 1.0),)
    trainable = _trainable(plan, _import(plan.experiment.trainable), _setup(plan, full))
    path = join(plan.run_dir, "reference")
    callbacks = [InterruptWatch(), TensorBoardCallback(plan.run_dir)]
    if progress:
        callbacks.append(ProgressLines(1, plan.cost.reference_backprops, stage="reference"))
    if can_restore(path):
        tuner = restore_tuner(path, trainable)
    else:
        # its target is what it will reach: the reference itself trains under the trade-off
        # objective (the study is told its cost_runs, which does not depend on the objective)
        param_space = {**plan.train, **point.config, "objective": "tradeoff", "target_robust_acc": None,
                       "trial.warm_start": REFERENCE_LABEL, "trial.family": "baselines"}
        tuner = build_tuner(Stage("reference", plan.run_dir, trainable, param_space, callbacks=callbacks))
    if progress:
        print(f"[reference] training {REFERENCE_LABEL} first: its robust accuracy is the target", flush=True)
    fit(tuner, plan.run_dir)
    if INTERRUPT.is_set():
        return None
    folders = sorted(Path(path).glob("trial_*"))
    return record_from_folder(folders[0], stage="reference") if folders else None


def _copy_reused(plan: SearchPlan) -> None:
    """Copy each reused trial folder into ``<run_dir>/reused/`` (the run directory stays whole)."""
    if is_uri(plan.run_dir):
        return
    for prior in plan.reused:
        target = Path(plan.run_dir, "reused", Path(prior.record.path).name)
        if not target.exists():
            shutil.copytree(prior.record.path, target)
            params = target / "params.json"
            import json

            data = json.loads(params.read_text()) if params.exists() else {}
            data.update({"trial.reused_from": prior.record.path, "trial.warm_start": prior.label})
            params.write_text(json.dumps(data))
        prior.record.reused_from, prior.record.path = prior.record.path, str(target)


def _prior_trials(plan: SearchPlan, extra: list[Prior]) -> list[tuple[dict[str, Any], Any, dict[str, Any]]]:
    """What the Optuna study is told before it starts: reused defaults and the reference."""
    from raysearch.tuning.objective import search_metric

    metric, _ = search_metric(plan.experiment.train_config.objective)
    told = []
    for prior in [*plan.reused, *extra]:
        m = prior.record.metrics
        values = [m.get(k) for k in (metric if isinstance(metric, list) else [metric])]
        if any(not isinstance(v, (int, float)) for v in values):
            continue
        attrs = {"warm_start": prior.label, "ray_trial_id": prior.record.trial_id, "reused_from": prior.origin,
                 **{k: float(m[k]) for k in ("robust_acc", "clean_acc", "backprops") if isinstance(m.get(k), (int, float))}}
        told.append((prior.params, values if isinstance(metric, list) else values[0], attrs))
    return told


def _search_stage(plan: SearchPlan, target: float | None, prior: list[Prior], progress: bool) -> Any:
    """The search's Tune run (new or restored)."""
    from raysearch.tuning.objective import metric_names, search_metric
    from raysearch.tuning.progress import ProgressLines
    from raysearch.tuning.scheduler import make_scheduler
    from raysearch.tuning.searcher import OptunaSearcher, make_sampler
    from raysearch.tuning.tensorboard import TensorBoardCallback
    from raysearch.tuning.tuner import InterruptWatch, Stage, build_tuner, restore_tuner

    exp, s = plan.experiment, plan.experiment.search
    cfg = exp.train_config
    function = _import(POPULATION_TRAINABLE if s.population_based and exp.trainable == DEFAULT_TRAINABLE
                       else exp.trainable)
    trainable = _trainable(plan, function, _setup(plan))
    if plan.resume:
        return restore_tuner(plan.run_dir, trainable, after_storage_error=storage_failed(plan.run_dir))
    if s.population_based:
        return _population_stage(plan, trainable, target, progress)
    metric, mode = search_metric(cfg.objective)
    told = _prior_trials(plan, prior) + [t for source in plan.sources for t in source.told]
    enqueued = [e for source in plan.sources for e in source.enqueued]
    sampler = make_sampler(s.algorithm, seed=s.seed, multi_objective=isinstance(metric, list), samples=s.samples,
                           fixed_points=len(plan.warm_starts) + len(told) + len(enqueued),
                           startup=s.startup_trials)
    from raysearch.rundir.study_store import open_storage

    storage = open_storage(plan.study_url) if plan.study_url else None
    study_attrs = {"problem": problem_hash(exp), "run_name": plan.run_name, "experiment": exp.name, "dataset": cfg.dataset, "model": cfg.model, "epsilon": cfg.epsilon,
                   "epochs": cfg.epochs, "objective": cfg.objective, "space": s.space,
                   "reference_backprops": plan.cost.reference_backprops, "time_attr": s.time_attr,
                   "raysearch_version": __version__, "target_robust_acc": target}
    searcher = OptunaSearcher(
        plan.space, metric=metric, mode=mode, sampler=sampler, study_name=plan.study, storage=storage,
        step_attr=s.time_attr, warm_starts=[(p.label, p.params) for p in plan.warm_starts], enqueue=enqueued,
        metric_names=metric_names(cfg.objective, cfg.cost_weight), study_attrs=study_attrs, budget=plan.budget,
        space_name=s.space, prior=told, target=target if cfg.objective == "target" else None,
        spent_before=sum(p.record.spent_backprops for p in prior))
    watch = InterruptWatch(searcher)
    callbacks: list[Any] = [watch, TensorBoardCallback(time_attr=s.time_attr), *plan.callbacks]
    if progress:
        budget_runs = s.budget
        callbacks.append(ProgressLines(s.samples, plan.cost.reference_backprops, budget_runs))
    scheduler = make_scheduler(s, epochs=cfg.epochs, max_t=plan.max_t, levels=len(plan.levels), budget=plan.budget)
    param_space = dict(plan.train)
    if target is not None:
        param_space["target_robust_acc"] = target
    stage = Stage(plan.run_name, plan.storage_path, trainable, param_space, searcher, scheduler, s.samples,
                  plan.concurrency, callbacks)
    return build_tuner(stage)


def _population_stage(plan: SearchPlan, trainable: Any, target: float | None, progress: bool) -> Any:
    """A population-based search's Tune run (see :mod:`raysearch.tuning.population`)."""
    from raysearch.tuning.population import (
        make_population_scheduler,
        make_population_searcher,
        population_space,
    )
    from raysearch.tuning.progress import ProgressLines
    from raysearch.tuning.tensorboard import TensorBoardCallback
    from raysearch.tuning.tuner import InterruptWatch, Stage, build_tuner

    s, cfg = plan.experiment.search, plan.experiment.train_config
    callbacks: list[Any] = [InterruptWatch(), TensorBoardCallback(time_attr="epoch")]
    if progress:
        callbacks.append(ProgressLines(s.population, plan.cost.reference_backprops, stage="population"))
    param_space = population_space(plan.train, cfg.epsilon)
    if target is not None:
        param_space["target_robust_acc"] = target
    # Random initial members (Tune's own generator: it runs as many at once as there are slots);
    # checkpoints kept for every member, so the one a member exploits is never deleted first.
    stage = Stage(plan.run_name, plan.storage_path, trainable, param_space, make_population_searcher(s.seed),
                  make_population_scheduler(s, cfg.epsilon), s.population, None, callbacks,
                  keep_checkpoints=s.population + 1)
    return build_tuner(stage)


@dataclass
class Launched:
    """How the Tune stages ended."""

    interrupted: bool
    startup_seconds: float
    target: float | None


def launch(plan: SearchPlan, progress: bool = True) -> Launched:
    """Run the search's Tune stages in one Ray session (see the module docstring)."""
    cfg = plan.experiment.train_config
    INTERRUPT.clear()
    target = cfg.numeric_target
    prior: list[Prior] = []
    if not plan.resume:
        write_text(join(plan.run_dir, EXPERIMENT_FILE), _experiment_yaml(plan.experiment))
        _copy_reused(plan)
    _write_start(plan)
    with quiet_tune():
        _init_ray(plan)
        if cfg.objective == "target" and cfg.target_robust_acc == "reference":
            reference = next((p.record for p in plan.reused if p.label == REFERENCE_LABEL), None)
            if reference is None:
                reference = _reference_record(plan, progress)
                if reference is None or INTERRUPT.is_set():
                    return Launched(True, time.monotonic() - plan.start, None)
                if reference.status != Status.COMPLETED:
                    raise ConfigError("target_robust_acc", "reference", f"the reference run ended {reference.status.value}"
                                      "; give the target as a number")
                import search_spaces

                point = next(p for p in search_spaces.warm_starts(plan.experiment.search.space, cfg.epsilon)
                             if p.label == REFERENCE_LABEL)
                prior.append(Prior(reference, REFERENCE_LABEL, point.params))
            target = reference.metric("robust_acc")
            if progress:
                print(f"[search] target robust accuracy: {target:.4f} (the finished {REFERENCE_LABEL} reference)",
                      flush=True)
        tuner = _search_stage(plan, target, prior, progress)
        startup = time.monotonic() - plan.start
        fit(tuner, plan.run_dir, plan.experiment.search.samples)
    return Launched(INTERRUPT.is_set(), startup, target)


def storage_failed(run_dir: str) -> bool:
    """Whether a trial of the run crashed because the storage failed (a full disk)."""
    from trainables.faults import storage_words

    if is_uri(run_dir):
        return False
    for path in Path(run_dir).glob("trial_*/error.txt"):
        if storage_words(path.read_text(errors="replace")):
            return True
    return False


def _experiment_yaml(exp: Experiment) -> str:
    import yaml

    return yaml.safe_dump({**exp.to_dict(), "raysearch_version": __version__}, sort_keys=False)


def _write_start(plan: SearchPlan) -> None:
    from raysearch.rundir.study_store import redact

    if is_uri(plan.run_dir):
        return
    write_summary(plan.run_dir, {
        "raysearch_version": __version__, "experiment": plan.experiment.name, "state": "running",
        "reference_backprops": plan.cost.reference_backprops, "batches_per_epoch": plan.batches_per_epoch,
        "budget_runs": plan.experiment.search.budget if plan.budget else None,
        "budget_seconds": plan.experiment.search.budget_seconds if plan.budget else None,
        "algorithm": plan.experiment.search.algorithm,
        "fidelity_levels": [list(level) for level in plan.levels], "time_attr": plan.experiment.search.time_attr,
        "reused": [{"label": p.label, "from": p.origin} for p in plan.reused],
        "study_storage": redact(plan.study_url) if plan.study_url else None, "study_name": plan.study or None,
        **({"warm_started": [source.to_dict() for source in plan.sources]} if not plan.resume else {}),
    })


# ---------------------------------------------------------------------------------- collect


def _search_cost(run: RunInfo) -> tuple[int, float, float]:
    """(backprops, train seconds, trial seconds incl. evaluation) of the trials this search ran
    (reused ones cost this search nothing)."""
    backprops = seconds = with_eval = 0.0
    for trial in run.trials:
        if trial.stage == "reused":
            continue
        backprops += trial.spent_backprops
        train = trial.metrics.get("trial_train_seconds", trial.metrics.get("train_seconds", 0)) or 0
        seconds += float(train)
        with_eval += float(train) + float(trial.metrics.get("trial_eval_seconds", trial.metrics.get("eval_seconds", 0))
                                          or 0)
    return int(backprops), seconds, with_eval


def collect(plan: SearchPlan, launched: Launched, progress: bool = True) -> SearchResult:
    """Read the run back, write ``search_summary.json`` and return the result."""
    from raysearch.tuning.objective import pareto_front

    wall = time.monotonic() - plan.start
    cfg = plan.experiment.train_config
    interrupted = launched.interrupted
    if not is_uri(plan.run_dir):
        write_summary(plan.run_dir, {"state": "interrupted" if interrupted else "finished"})
        run = load_run(plan.run_dir, allow_empty=True)
        trials = run.trials
        # a trial left cut short (by an earlier Ctrl-C that a resume did not reach) is unfinished work too
        interrupted = interrupted or any(t.status == Status.INTERRUPTED for t in trials)
    else:
        run, trials = None, []
    state = "interrupted" if interrupted else "finished"
    best = best_trial(trials)
    backprops, train_seconds, trial_seconds = _search_cost(run) if run else (0, 0.0, 0.0)
    pareto: list[str] = []
    if cfg.objective == "pareto":
        done = finished_runs(trials)
        pareto = [done[i].trial_id for i in pareto_front([t.metrics for t in done])]
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
    summary: dict[str, Any] = {}
    if not is_uri(plan.run_dir):
        summary = write_summary(plan.run_dir, {
            "state": state, "trials": len(trials), "statuses": counts,
            "search_backprops": backprops, "search_train_seconds": round(train_seconds, 3),
            "search_wall_seconds": round(wall, 3), "startup_seconds": round(launched.startup_seconds, 3),
            "concurrency": plan.concurrency, "target_robust_acc": launched.target,
            "confirm_backprops": _previous(plan.run_dir, "confirm_backprops", 0),
            "best_trial": best.trial_id if best else None,
            **({"chosen_trial": best.trial_id, "chosen_label": describe(best.config), "chosen_by": "validation",
                "chosen_cost_ratio": round(best.metric("backprops") / plan.cost.reference_backprops, 4)}
               if best is not None and plan.cost.reference_backprops and not plan.resume else {}),
        })
    result = SearchResult(plan.run_dir, trials, best, wall, trial_seconds, plan.concurrency,
                          plan.cost.reference_backprops, pareto, launched.startup_seconds, interrupted, summary)
    return result


def _previous(run_dir: str, key: str, default: Any) -> Any:
    from raysearch.rundir.summary import read_summary

    return read_summary(run_dir).get(key, default)


# ---------------------------------------------------------------------------------- search


def check_disk(plan: SearchPlan) -> str | None:
    """A warning when the storage's free space looks too small for the run's checkpoints."""
    if is_uri(plan.run_dir):
        return None
    from trainables.memory_estimate import checkpoint_bytes

    per_trial = checkpoint_bytes(plan.experiment.train_config)
    need = per_trial * CHECKPOINT_HEADROOM * max(plan.experiment.search.samples, 1)
    free = free_bytes(plan.storage_path)
    if free is not None and free < need:
        return (f"warning: {plan.storage_path} has {free / 2**20:.0f} MiB free; the search's checkpoints may need "
                f"~{need / 2**20:.0f} MiB ({per_trial / 2**20:.1f} MiB per checkpoint)")
    return None


def search(experiment: str | Path = "demo", overrides: Iterable[str] = (), samples: int | None = None,
           gpus_per_trial: float | None = None, cpus_per_trial: float | None = None, address: str | None = None,
           storage: str | None = None, name: str | None = None, resume: str | Path | None = None,
           time_attr: str | None = None, progress: bool = True, *, trainable: str | None = None,
           model: Any = None, dataset: Any = None, confirm: bool = True,
           study_storage: str | None = None, callbacks: Iterable[Any] = ()) -> SearchResult:
    """Search an experiment's space on Ray Tune; return every trial and what it cost.

    Args:
        experiment: a YAML file or a built-in experiment name (``demo``).
        overrides: ``KEY=VALUE`` strings (``--set``); ``search.*`` keys reach the search section.
        samples, gpus_per_trial, cpus_per_trial, time_attr: override the experiment's search.
        address: join a running Ray cluster (``"auto"``) instead of starting a local one.
        storage: parent of the run directory (default ``runs``; a shared path or cloud URI).
        name: run name (default ``<experiment>-<YYYYmmdd-HHMMSS>``).
        resume: a run directory to continue; every other argument is read from its
            ``experiment.yaml``. Finished trials are kept, unfinished ones continue from their
            last checkpoint, failed ones stay failed.
        progress: print a line per finished trial and the summary.
        trainable: ``"module:function"`` of the Tune trainable (tests use a stand-in).
        model, dataset: the user's own, as callables (``(num_classes, input_shape) -> nn.Module``,
            ``(root) -> dict``) or ``"pkg.module:callable"`` paths.
        confirm: run the confirmation stage when the experiment asks for it.
        study_storage: the Optuna study's storage URL (``search.study_storage``); with
            ``resume``, the URL with its password (run files hold it masked).
        callbacks: more Ray Tune callbacks for the search stage (``raysearch bench`` times the
            driver with one); a resumed search runs without them.

    Raises:
        ConfigError: bad input, before Ray or any training starts.

    Example::

        >>> import raysearch
        >>> result = raysearch.search("demo", ["search.samples=8"])  # doctest: +SKIP
        >>> result.best.config["method"], result.summary["search_cost_runs"]  # doctest: +SKIP
    """
    the_plan = plan(experiment, overrides, samples=samples, gpus_per_trial=gpus_per_trial,
                    cpus_per_trial=cpus_per_trial, address=address, storage=storage, name=name, resume=resume,
                    time_attr=time_attr, trainable=trainable, model=model, dataset=dataset,
                    study_storage=study_storage)
    the_plan.callbacks = tuple(callbacks)
    warning = check_disk(the_plan)
    if warning and progress:
        print(warning, flush=True)
    from raysearch.tuning.resources import ray_session

    with ray_session(the_plan.address, the_plan.available):
        launched = launch(the_plan, progress)
        result = collect(the_plan, launched, progress)
        conf = the_plan.experiment.search.confirm
        if confirm and conf.top and not result.interrupted and not is_uri(result.run_dir) \
                and finished_runs(result.trials):
            from raysearch.commands.confirm import run_confirmation

            result.confirmation = run_confirmation(result.run_dir, conf.top, conf.seeds, plan=the_plan,
                                                   progress=progress)
            result.interrupted = result.confirmation.interrupted
            from raysearch.rundir.summary import read_summary

            result.summary = read_summary(result.run_dir)
    if progress:
        from raysearch.reporting.text import search_summary_text

        print(search_summary_text(result, the_plan.experiment), flush=True)
    return result


__all__ = ["Launched", "SearchPlan", "SearchResult", "collect", "launch", "plan", "search",
           "search_overhead_fraction"]
