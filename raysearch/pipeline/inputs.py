"""What a search is asked to run and where: the experiment (new, or read back from the run
directory it resumes), the run directory's place, and the training keys every trial shares.

Everything here is checked before Ray starts; bad input raises :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysearch.rundir.experiment import Experiment, load_experiment
from raysearch.rundir.storage import check_storage, is_uri, join, read_experiment_file
from trainables.registry import ConfigError


@dataclass(frozen=True)
class Place:
    """Where a search's run directory is: ``<storage_path>/<run_name>``."""

    run_dir: str
    storage_path: str
    run_name: str


@dataclass(frozen=True)
class Asked:
    """The search's own arguments (the CLI's flags, ``raysearch.search``'s keywords)."""

    experiment: str | Path = "demo"
    overrides: Iterable[str] = ()
    samples: int | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    storage: str | None = None
    name: str | None = None
    time_attr: str | None = None
    trainable: str | None = None
    model: Any = None
    dataset: Any = None
    study_storage: str | None = None


def resumed_experiment(resume: str | Path) -> tuple[Experiment, Place]:
    """The experiment of the run directory ``resume`` and its place (it must hold Tune's state)."""
    from raysearch.tuning.tuner import can_restore

    run_dir = str(resume) if is_uri(str(resume)) else os.path.abspath(os.path.expanduser(str(resume)))
    exp = read_experiment_file(run_dir)
    storage_path, run_name = run_dir.rstrip("/").rsplit("/", 1) if is_uri(run_dir) else (
        str(Path(run_dir).parent), Path(run_dir).name)
    if not can_restore(run_dir):
        raise ConfigError("resume", run_dir, "holds no Ray Tune experiment state to resume")
    return exp, Place(run_dir, storage_path, run_name)


def new_experiment(asked: Asked) -> tuple[Experiment, Place, tuple[tuple[str, str, Any], ...]]:
    """The experiment ``asked`` for, its new run directory and the plug-ins it registered."""
    from trainables.trials.setup import plugin_overrides

    extra, plugins = plugin_overrides(asked.model, asked.dataset)
    exp = load_experiment(asked.experiment, [*asked.overrides, *extra]).replace_search(
        samples=asked.samples, gpus_per_trial=asked.gpus_per_trial, cpus_per_trial=asked.cpus_per_trial,
        time_attr=asked.time_attr, study_storage=asked.study_storage)
    if asked.trainable:
        exp = dataclasses.replace(exp, trainable=asked.trainable)
    run_name = asked.name or f"{exp.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    if "/" in run_name or not run_name.strip():
        raise ConfigError("name", run_name, "must be a non-empty name without '/'")
    storage_path = check_storage(asked.storage or "runs")
    run_dir = join(storage_path, run_name)
    if not is_uri(run_dir) and Path(run_dir, "tuner.pkl").exists():
        raise ConfigError("name", run_name, f"run directory {run_dir} already holds a search; "
                                            f"continue it with --resume {run_dir} or pick another --name")
    return exp, Place(run_dir, storage_path, run_name), plugins


def population_time_attr(exp: Experiment) -> Experiment:
    """A population trains full runs side by side: its time attribute is the epoch."""
    if exp.search.population_based and exp.search.time_attr == "fidelity":
        return dataclasses.replace(exp, search=dataclasses.replace(exp.search, time_attr="epoch"))
    return exp


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


def load_data(cfg: Any) -> Any:
    """The experiment's dataset, loaded once on the driver (sizes, the GPU-share check)."""
    from trainables.data import load_dataset

    return load_dataset(cfg.dataset, abs_data_root(cfg.data_root), cfg.download, cfg.synthetic_size, cfg.image_size)


def problem_hash(experiment: Experiment) -> str:
    """What makes two searches' trials comparable: every training key they share (data, model,
    epochs, ε, objective, seed, threads), resolved with defaults, paths left out."""
    from raysearch.rundir.known import config_hash

    return config_hash(shared_train(experiment))


def directions(objective: str) -> list[str]:
    """Optuna's study directions for ``objective``."""
    from raysearch.tuning.objective import search_metric

    _, mode = search_metric(objective)
    return [("maximize" if m == "max" else "minimize") for m in (mode if isinstance(mode, list) else [mode])]
