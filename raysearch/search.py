"""``raysearch search``: run an experiment's search on Ray Tune and summarize it (SPEC §§8-11).

Three roles, kept apart as Ray Tune intends: :class:`~raysearch.searcher.PruneAwareOptunaSearch`
decides *what* to try (multivariate TPE, warm-started with the papers' defaults), ASHA
(:mod:`raysearch.scheduler`) decides *whether a trial goes on*, and the trainable
(``trainables.trainable.tune_trainable``) is a plain function that reports every epoch.

Everything the user can get wrong is checked before ``ray.init``: the experiment file, the
space, the data (loading it also gives batches per epoch for ASHA's budget), resources and
whether the storage is writable. The run directory ``<storage>/<name>`` holds Ray Tune's
experiment state, the Optuna study (``optuna.db``), one TensorBoard log directory and
``experiment.yaml`` (the resolved experiment and the raysearch version), so that
``search(resume=run_dir)`` needs nothing else.

Ray 2.60 notes: the Tuner is configured with ``ray.tune.RunConfig`` / ``CheckpointConfig`` /
``FailureConfig`` (the ``ray.train`` ones are Train V2's and only warn here); ``Tuner.fit``
never raises for failed trials (``raise_on_failed_trial=False`` inside), so a trial that crashes
twice (``FailureConfig(max_failures=1)``) is recorded as failed and the search goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import importlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from raysearch import __version__
from raysearch.experiment import Experiment, experiment_from_dict, load_experiment
from raysearch.progress import progress_callback, summary_text
from raysearch.results import EXPERIMENT_FILE, STUDY_FILE, best_trial
from trainables.registry import ConfigError

logger = logging.getLogger(__name__)


def search_overhead_fraction(trial_seconds_sum: float, wall_seconds: float, slots: int) -> float:
    """Summed trial seconds / (wall seconds × concurrent slots): the share of slot time in trials."""
    capacity = wall_seconds * max(1, slots)
    return min(1.0, trial_seconds_sum / capacity) if capacity > 0 else 0.0


@dataclass
class SearchResult:
    """What a search leaves: where it is, the best recipe, and every trial.

    ``trials``: one dict per trial with ``trial_id``, ``status`` (completed, pruned, diverged,
    catastrophic_overfitting, failed), ``optuna_state``, ``params`` (Optuna's parameters),
    ``config`` (the full trial config), ``metrics`` (its last result), ``warm_start`` (the
    paper default's label or None) and ``path``. ``warm_start``: the warm-start trials.
    ``search_overhead``: summed trial seconds (training + evaluation) / (wall seconds ×
    concurrent slots): the share of the slots' time spent inside trials; the rest is Ray
    start-up, scheduling, checkpointing and idle slots (target ≥ 0.90). ``startup_seconds``:
    from the call to the start of Tune (checking the input, starting Ray, building the Tuner).
    """

    run_dir: str
    best_config: dict[str, Any] | None
    best_metrics: dict[str, Any] | None
    trials: list[dict[str, Any]]
    warm_start: list[dict[str, Any]]
    wall_seconds: float
    trial_seconds_sum: float
    concurrency: int
    reference_backprops: int = 0
    pareto: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0

    @property
    def search_overhead(self) -> float:
        return search_overhead_fraction(self.trial_seconds_sum, self.wall_seconds, self.concurrency)

    @property
    def tensorboard_dir(self) -> str:
        return _join(self.run_dir, "tensorboard")


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if "://" in base else str(Path(base, *parts))


def _is_uri(path: str) -> bool:
    return "://" in path


def _import(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError("trainable", path, f"cannot be imported ({err})") from None


# ---------------------------------------------------------------------------- validation


def _space_and_points(experiment: Experiment) -> tuple[Callable[..., Any], list[dict[str, Any]]]:
    import search_spaces

    epsilon = experiment.train_config.epsilon
    space = search_spaces.get_space(experiment.search.space, epsilon)
    points = search_spaces.warm_start_points(experiment.search.space, epsilon) if experiment.search.warm_start else []
    return space, points


def _load_data(experiment: Experiment) -> Any:
    """The experiment's dataset; loading it checks that it is there."""
    from trainables.data import load_dataset

    cfg = experiment.train_config
    return load_dataset(cfg.dataset, _abs_data_root(cfg.data_root), cfg.download, cfg.synthetic_size)


def batches_per_epoch(experiment: Experiment, data: Any) -> int:
    """M for the configured dataset and batch size."""
    from trainables.data import BatchLoader

    cfg = experiment.train_config
    return len(BatchLoader(data.train, cfg.batch_size, shuffle=False, max_batches=cfg.max_batches))


class _Probe:
    """A stand-in Optuna trial that walks one branch of a define-by-run space, taking the
    upper end of every numeric range (K is never larger elsewhere)."""

    def __init__(self, path: list[int]) -> None:
        self.path, self.depth = list(path), 0
        self.params: dict[str, Any] = {}
        self.branches: list[tuple[int, int]] = []

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        if self.depth >= len(self.path):
            self.path.append(0)
            self.branches.append((self.depth, len(choices)))
        value = choices[self.path[self.depth]]
        self.depth += 1
        self.params[name] = value
        return value

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        self.params[name] = high
        return high

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        self.params[name] = high
        return high


def _branches(space: Callable[..., Any]) -> Iterator[dict[str, Any]]:
    stack: list[list[int]] = [[]]
    while stack:
        probe = _Probe(stack.pop())
        constants = space(probe) or {}
        yield {**probe.params, **constants}
        for depth, n in probe.branches:
            stack.extend(probe.path[:depth] + [i] for i in range(1, n))


def branch_configs(experiment: Experiment, space: Callable[..., Any]) -> list[Any]:
    """One TrainConfig per branch of the space, every numeric range at its upper end."""
    from search_spaces import strip_search_keys
    from trainables.config import parse_config

    return [parse_config({**experiment.train, **strip_search_keys(b)}) for b in _branches(space)]


def max_k(configs: Iterable[Any], epochs: int) -> int:
    """The largest K (adversarial backprops per batch) any of ``configs`` can reach."""
    from trainables.schedules import build_schedule

    return max(build_schedule(cfg).max_k(epochs) for cfg in configs)


def _check_gpu_share(experiment: Experiment, configs: Iterable[Any], data: Any, share: float) -> None:
    """Refuse, before Ray starts, a GPU fraction whose memory cannot hold the costliest method
    of the space (a measured estimate; :mod:`trainables.memory_estimate`)."""
    if not 0 < share < 1:
        return
    import torch

    if not torch.cuda.is_available():
        return
    from trainables.memory_estimate import check_gpu_share

    train = {**experiment.train, "data_root": _abs_data_root(experiment.train_config.data_root)}
    check_gpu_share(train, share, torch.cuda.get_device_properties(0).total_memory, data=data,
                    methods={cfg.method for cfg in configs})


def _abs_data_root(root: str) -> str:
    # Ray runs each trial in its own working directory: a relative data_root would move.
    return root if _is_uri(root) else os.path.abspath(os.path.expanduser(root))


def _check_storage(storage: str) -> str:
    if _is_uri(storage):
        return storage.rstrip("/")
    path = os.path.abspath(os.path.expanduser(storage))
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".raysearch-write-test-"):
            pass
    except OSError as err:
        raise ConfigError("storage", storage, f"is not a writable directory ({err.strerror or err})") from None
    return path


def _write_text(path: str, text: str) -> None:
    if _is_uri(path):
        import pyarrow.fs

        fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
        with fs.open_output_stream(fs_path) as f:
            f.write(text.encode())
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def _read_experiment_file(run_dir: str) -> Experiment:
    path = _join(run_dir, EXPERIMENT_FILE)
    try:
        if _is_uri(run_dir):
            import pyarrow.fs

            fs, fs_path = pyarrow.fs.FileSystem.from_uri(path)
            with fs.open_input_stream(fs_path) as f:
                text = f.read().decode()
        else:
            text = Path(path).read_text()
    except (OSError, FileNotFoundError):
        raise ConfigError("resume", run_dir, f"is not a raysearch run directory (no {EXPERIMENT_FILE})") from None
    data = yaml.safe_load(text) or {}
    data.pop("raysearch_version", None)
    return experiment_from_dict(data, default_name=Path(run_dir.rstrip("/")).name)


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _trial_dirname(trial: Any) -> str:
    """Short trial folders (Ray's default repeats every parameter in the name)."""
    return f"trial_{trial.trial_id}"


def _build_tuner(experiment: Experiment, *, run_dir: str, storage: str, name: str, trainable: Any,
                 space: Callable[..., Any], points: list[dict[str, Any]], max_t: int,
                 request: dict[str, float], max_concurrent: int | None, callbacks: list[Any]) -> Any:
    import optuna
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from raysearch.objective import search_metric
    from raysearch.scheduler import make_scheduler
    from raysearch.searcher import PruneAwareOptunaSearch, make_sampler
    from raysearch.tensorboard import TensorBoardCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours to print
    s, cfg = experiment.search, experiment.train_config
    metric, mode = search_metric(cfg.objective)
    study_storage = None if _is_uri(run_dir) else f"sqlite:///{_join(run_dir, STUDY_FILE)}"
    searcher = PruneAwareOptunaSearch(
        space, metric=metric, mode=mode, step_attr=s.time_attr, points_to_evaluate=points or None,
        sampler=make_sampler(s.algorithm, seed=s.seed, multi_objective=isinstance(metric, list), samples=s.samples),
        storage=study_storage, study_name=name)
    param_space = {
        **experiment.train,
        "data_root": _abs_data_root(cfg.data_root),
        # CPU results depend on the thread count: record it so best.yaml re-runs exactly.
        "threads": cfg.threads or max(1, int(s.cpus_per_trial)),
        "search.cpus_per_trial": s.cpus_per_trial,
        "search.gpus_per_trial": request.get("gpu", 0.0),
    }
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=make_scheduler(s, epochs=cfg.epochs, max_t=max_t),
            num_samples=s.samples,
            # As many trials at once as there are slots. This also lets Tune start every
            # slot's actor at once: without a limit it keeps one trial pending for a custom
            # searcher, so the second slot's actor is only requested once the first runs
            # (~3 s idle on the demo), and a queued suggestion waits with stale information.
            max_concurrent_trials=max_concurrent,
            trial_dirname_creator=_trial_dirname,
            # A fresh actor per trial costs a process start and the torch import (seconds),
            # a large share of a small trial: keep the actors and hand them the next trial.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            # Keep two checkpoints: Tune forces an experiment snapshot every `num_to_keep`
            # trial checkpoints, so the one a snapshot points at still exists after a kill.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=1),
            callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), TensorBoardCallback(), *callbacks],
            verbose=0,
        ),
    )


def _trial_rows(grid: Any, study: Any) -> list[dict[str, Any]]:
    """One dict per trial, in creation order, shaped like :func:`raysearch.results.load_run`'s
    (read from Tune's ResultGrid, so it also works for a run in cloud storage)."""
    from raysearch.results import label_warm_starts, optuna_trials, trial_status

    optuna_info = optuna_trials(study) if study is not None else {}
    params = {str(t.user_attrs["ray_trial_id"]): dict(t.params) for t in study.get_trials(deepcopy=False)
              if "ray_trial_id" in t.user_attrs} if study is not None else {}
    rows = []
    for result in grid:
        metrics = {k: v for k, v in (result.metrics or {}).items() if k != "config"}
        trial_id = metrics.get("trial_id") or Path(result.path).name.removeprefix("trial_")
        errored = result.error is not None
        rows.append({
            "trial_id": trial_id,
            "status": trial_status([metrics] if metrics else [], "ERROR" if errored else None, errored),
            "optuna_state": optuna_info[trial_id][0] if trial_id in optuna_info else None,
            "params": params.get(trial_id, {}),
            "config": {k: v for k, v in (result.config or {}).items() if not k.startswith("search.")},
            "metrics": metrics,
            "warm_start": None,
            "path": result.path,
        })
    label_warm_starts(rows, {tid for tid, (_, fixed) in optuna_info.items() if fixed} if study is not None else None)
    return rows


def _load_study(run_dir: str, name: str) -> Any:
    from raysearch.results import load_study

    if _is_uri(run_dir) or not Path(run_dir, STUDY_FILE).exists():
        return None
    try:
        return load_study(run_dir, name)
    except Exception:
        return None


def search(experiment: str | Path = "demo", overrides: Iterable[str] = (), samples: int | None = None,
           gpus_per_trial: float | None = None, cpus_per_trial: float | None = None, address: str | None = None,
           storage: str | None = None, name: str | None = None, resume: str | Path | None = None,
           time_attr: str | None = None, progress: bool = True, *, trainable: str | None = None) -> SearchResult:
    """Search an experiment's space on Ray Tune; return the best recipe and every trial.

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

    Raises:
        ConfigError: bad input, before Ray or any training starts.
    """
    start = time.monotonic()
    if resume is not None:
        run_dir = str(resume) if _is_uri(str(resume)) else os.path.abspath(os.path.expanduser(str(resume)))
        exp = _read_experiment_file(run_dir)
        storage_path, run_name = run_dir.rstrip("/").rsplit("/", 1) if _is_uri(run_dir) else (
            str(Path(run_dir).parent), Path(run_dir).name)
    else:
        exp = load_experiment(experiment, overrides).replace_search(
            samples=samples, gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial, time_attr=time_attr)
        if trainable:
            exp = dataclasses.replace(exp, trainable=trainable)
        run_name = name or f"{exp.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
        if "/" in run_name or not run_name.strip():
            raise ConfigError("name", run_name, "must be a non-empty name without '/'")
        storage_path = _check_storage(storage or "runs")
        run_dir = _join(storage_path, run_name)
    if not _is_uri(run_dir) and resume is None and Path(run_dir, "tuner.pkl").exists():
        raise ConfigError("name", run_name, f"run directory {run_dir} already holds a search; "
                                            f"continue it with --resume {run_dir} or pick another --name")
    if resume is not None and not _is_uri(run_dir) and not Path(run_dir, "tuner.pkl").exists():
        raise ConfigError("resume", run_dir, "holds no Ray Tune experiment state to resume")

    fn = _import(exp.trainable)
    space, points = _space_and_points(exp)
    data = _load_data(exp)
    m = batches_per_epoch(exp, data)
    cfg = exp.train_config
    configs = branch_configs(exp, space)
    budget = (max_k(configs, cfg.epochs) + 1) * m * cfg.epochs

    import ray
    from ray import tune

    from raysearch.objective import pareto_front, reference_backprops
    from raysearch.resources import concurrent_slots, local_resources, trial_resources

    # Resources are checked before any trial starts: against this machine before Ray is
    # started, against the cluster once joined (``--address``) or when Ray already runs.
    joined = address is not None or ray.is_initialized()
    if not joined:
        available = local_resources()
        request = trial_resources(exp.search.cpus_per_trial, exp.search.gpus_per_trial, available)
        _check_gpu_share(exp, configs, data, request.get("gpu", 0.0))
    if resume is None:
        _write_text(_join(run_dir, EXPERIMENT_FILE),
                    yaml.safe_dump({**exp.to_dict(), "raysearch_version": __version__}, sort_keys=False))

    # We pass Tune's CSV and JSON loggers ourselves and write TensorBoard with our own
    # callback, so Ray's automatic loggers (which add TBXLoggerCallback) are switched off.
    # Snapshots forced by CheckpointConfig(num_to_keep) are intended: no warning for them.
    # RAY_AIR_NEW_OUTPUT=0 + verbose=0: the legacy reporter, silent (the new one still prints
    # a header box); our ProgressLines callback prints instead.
    with _env(TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1", TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S="0",
              RAY_AIR_NEW_OUTPUT="0"):
        if not ray.is_initialized():
            if address is None:
                ray.init(num_cpus=int(available["CPU"]), num_gpus=int(available["GPU"]), include_dashboard=False,
                         log_to_driver=False, logging_level=logging.WARNING)
            else:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)
        if joined:
            available = {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
            request = trial_resources(exp.search.cpus_per_trial, exp.search.gpus_per_trial, available)
        wrapped = tune.with_resources(fn, request)
        concurrency = concurrent_slots(request, available, exp.search.max_concurrent)
        callbacks = [progress_callback(exp.search.samples)] if progress else []
        if resume is None:
            tuner = _build_tuner(exp, run_dir=run_dir, storage=storage_path, name=run_name, trainable=wrapped,
                                 space=space, points=points, max_t=budget, request=request, max_concurrent=concurrency,
                                 callbacks=callbacks)
        else:
            # Finished trials are kept; unfinished ones continue from their last checkpoint;
            # errored ones already had their retry and are recorded FAIL in the study, so
            # they stay failed (resume_errored=False) rather than run a third time.
            tuner = tune.Tuner.restore(run_dir, trainable=wrapped, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False)
        startup = time.monotonic() - start
        grid = tuner.fit()

    wall = time.monotonic() - start
    rows = _trial_rows(grid, _load_study(run_dir, run_name))
    best = best_trial(rows)
    trial_seconds = sum(float(r["metrics"].get("train_seconds", 0) or 0) + float(r["metrics"].get("eval_seconds", 0) or 0)
                        for r in rows)
    pareto: list[str] = []
    if cfg.objective == "pareto":
        done = [r for r in rows if r["status"] == "completed"]
        pareto = [done[i]["trial_id"] for i in pareto_front([r["metrics"] for r in done])]
    result = SearchResult(
        run_dir=run_dir,
        best_config=best["config"] if best else None,
        best_metrics=best["metrics"] if best else None,
        trials=rows,
        warm_start=[r for r in rows if r["warm_start"]],
        wall_seconds=wall,
        trial_seconds_sum=trial_seconds,
        concurrency=concurrency,
        reference_backprops=reference_backprops(cfg.epochs, m),
        pareto=pareto,
        startup_seconds=startup,
    )
    if progress:
        print(summary_text(result, exp), flush=True)
    return result
