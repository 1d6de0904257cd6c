"""The Ray Tune function trainable: one engine run per trial.

Parses the trial's flat config once (keys under ``search.`` belong to raysearch and carry
the trial's resources), restores from the trial's checkpoint if Tune hands one, and reports
every epoch's record with a checkpoint holding the full run state (``state.pt``) and the best
weights so far (``best.pt``). A trial restored from its checkpoint continues exactly as if it
had never been interrupted. Ray is imported inside the function: ``trainables`` is usable
without Ray.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from trainables.config import parse_config
from trainables.engine import Run
from trainables.objective import DIVERGED_OBJECTIVE

SEARCH_PREFIX = "search."
STATE_FILE, BEST_FILE = "state.pt", "best.pt"


def split_trial_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training keys, raysearch's ``search.*`` keys) of a Tune trial config."""
    train = {k: v for k, v in config.items() if not k.startswith(SEARCH_PREFIX)}
    search = {k[len(SEARCH_PREFIX):]: v for k, v in config.items() if k.startswith(SEARCH_PREFIX)}
    return train, search


def apply_resources(search: dict[str, Any]) -> None:
    """With a fractional GPU, cap this process's CUDA memory to its share so a neighbour on the
    same GPU cannot be pushed out of memory. (CPU threads are the ``threads`` config key, which
    raysearch sets to the trial's CPUs, so a recipe re-runs with the same numbers.)"""
    gpus = float(search.get("gpus_per_trial") or 0)
    if 0 < gpus < 1 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(gpus)


def save_run(run: Run, directory: str | os.PathLike[str]) -> None:
    torch.save(run.state_dict(), Path(directory) / STATE_FILE)
    if run.best_model is not None:
        torch.save(run.best_model, Path(directory) / BEST_FILE)


def load_run_state(directory: str | os.PathLike[str]) -> dict[str, Any]:
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)


def tune_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """Tune's metrics for one epoch record; the objective is always finite, so that ASHA and
    Optuna can rank every trial (a non-finite one gets the divergence penalty)."""
    objective = record.get("objective", DIVERGED_OBJECTIVE)
    return {**record, "objective": objective if math.isfinite(objective) else DIVERGED_OBJECTIVE}


def node_metrics() -> dict[str, str]:
    """Where this trial runs: Ray's node id and the node's IP address."""
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address()}


def report_epoch(run: Run, record: dict[str, Any], directory: str, extra: dict[str, Any]) -> None:
    """Save the run's state into ``directory`` and report the epoch to Tune with it as checkpoint."""
    from ray import tune

    save_run(run, directory)
    tune.report({**tune_metrics(record), **extra}, checkpoint=tune.Checkpoint.from_directory(directory))


def tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable wrapping one :class:`~trainables.engine.Run` (with two or
    more whole GPUs per trial: a data-parallel run, :mod:`trainables.distributed`)."""
    from ray import tune

    train_keys, search = split_trial_config(config)
    apply_resources(search)
    gpus = float(search.get("gpus_per_trial") or 0)
    if gpus >= 2 and torch.cuda.is_available():
        from trainables.distributed import tune_data_parallel

        tune_data_parallel(parse_config(train_keys), int(gpus))
        return
    node = node_metrics()
    run = Run(parse_config(train_keys))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            run.load_state_dict(load_run_state(directory))
    while not run.finished:
        record = run.step()
        with tempfile.TemporaryDirectory() as directory:
            report_epoch(run, record, directory, node)
