"""What ``raysearch evaluate`` attacks: the models of a target, each with its weights file,
training config and in-loop numbers, found in a run directory (its top trials by objective) or
in one checkpoint (a ``best.pt`` / ``state.pt`` file or a folder holding them), and their weights
loaded back.

Which weights of a folder count is the training config's ``checkpoint`` rule
(:mod:`trainables.weights`): the final ones under ``last`` (the default), ``best.pt`` under
``best`` or for a run stopped for catastrophic overfitting. The training config comes from the
state's ``config`` key, the trial's ``params.json`` or ``raysearch train``'s ``config.yaml``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from raysearch.rundir.records import BEST_FILE, STATE_FILE
from trainables.registry import ConfigError
from trainables.weights import rule_of, scored_file

if TYPE_CHECKING:  # torch loads when an evaluation runs, not when raysearch is imported
    import torch


@dataclass
class Model:
    """One model to evaluate: its label, weights file, training config and in-loop numbers."""

    label: str
    weights: Path
    config: dict[str, Any]
    recipe: str = ""
    val_robust_acc: float = math.nan
    state_key: str | None = None  # for a state.pt file: which weights in it
    checkpoint: str = ""  # which weights these are: last, best (the rule's pick), or the file named


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:160]


def _read_state(state: Path) -> dict[str, Any]:
    """The ``config`` of a state.pt (memory-mapped: a state with ATTA/ATAS memories can be large)."""
    import pickle

    import torch

    try:
        return dict(torch.load(state, map_location="cpu", weights_only=True, mmap=True)["config"])
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError, KeyError, TypeError) as err:
        why = f"is not a readable raysearch run state ({_first_line(err)})"
        raise ConfigError("checkpoint", str(state), why) from None


def config_near(folder: Path) -> dict[str, Any] | None:
    """The training config of the checkpoint in ``folder``: the trial's params.json (this folder
    or its parent), raysearch train's config.yaml, else the ``config`` of a state.pt (last: a
    state with ATTA/ATAS memories can be large, so it is memory-mapped)."""
    for candidate in (folder / "params.json", folder.parent / "params.json"):
        if candidate.exists():
            try:
                return dict(json.loads(candidate.read_text()))
            except (ValueError, UnicodeDecodeError):
                raise ConfigError("target", str(candidate), "is not a readable params.json") from None
    config_yaml = folder / "config.yaml"
    if config_yaml.exists():
        try:
            data = yaml.safe_load(config_yaml.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            raise ConfigError("target", str(config_yaml), "is not readable YAML") from None
        return {k: v for k, v in data.items() if k not in ("name", "raysearch_version")}
    state = folder / STATE_FILE
    return _read_state(state) if state.exists() else None


def _state_status(folder: Path) -> str:
    """The status a run's ``state.pt`` in ``folder`` ended with ("" when unreadable)."""
    import torch

    try:
        return str(torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True, mmap=True)["status"])
    except Exception:
        return ""


def weights_in(path: Path, config: Mapping[str, Any] | None = None,
               status: str | None = None) -> tuple[Path, Path, str | None, str]:
    """(folder, weights file, key of the weights in it, which weights: last / best / file) of a
    checkpoint file (as named), or of a folder or a trial folder's newest checkpoint: the
    weights that count under the training config's ``checkpoint`` rule (``config``: the
    trial's; else the one beside the checkpoint) for a run that ended with ``status`` (else
    the state's own)."""
    from raysearch.rundir.records import latest_checkpoint

    if path.is_file():
        return path.parent, path, "model" if path.name == STATE_FILE else None, "file"
    has_weights = (path / BEST_FILE).exists() or (path / STATE_FILE).exists()
    folder = path if has_weights else (latest_checkpoint(path) or path)  # a trial folder: newest
    if not ((folder / BEST_FILE).exists() or (folder / STATE_FILE).exists()):
        raise ConfigError("target", str(path), f"holds no {BEST_FILE} or {STATE_FILE} checkpoint")
    rule = rule_of(config if config is not None else (config_near(folder) or {}))
    if status is None and rule != "best" and (folder / STATE_FILE).exists():
        status = _state_status(folder)
    weights, key = scored_file(folder, rule, status or "")
    return folder, weights, key, "best" if weights.name == BEST_FILE or key == "best_model" else "last"


def _checkpoint_model(path: Path) -> Model:
    from trainables.labels import describe
    from trainables.trials.setup import split_trial_config

    folder, weights, state_key, which = weights_in(path)
    config = config_near(folder)
    if config is None:
        raise ConfigError("target", str(path), "has no training config beside it (state.pt, params.json or "
                                               "config.yaml)")
    config, _ = split_trial_config(config)
    trial = next((p for p in (folder, *folder.parents) if p.name.startswith("trial_")), None)
    label = trial.name.removeprefix("trial_") if trial else folder.name
    return Model(label, weights, config, describe(config), state_key=state_key, checkpoint=which)


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "experiment.yaml").exists() or any(path.glob("*/params.json")))


def _run_models(path: Path, target: str | os.PathLike[str], top: int) -> tuple[list[Model], Path]:
    """The ``top`` trials of the run directory ``path`` (best objective first) with a checkpoint."""
    from raysearch.rundir.results import load_run, metric, ranked
    from trainables.labels import describe

    run = load_run(path)
    models: list[Model] = []
    for trial in ranked(run.trials):
        if len(models) == top:
            break
        if trial.checkpoint is None:
            continue
        _, weights, state_key, which = weights_in(trial.checkpoint, trial.config, trial.status.value)
        # robust_acc follows the same rule (trainables.weights); older runs: the best seen
        val = metric(trial, "robust_acc_best" if which == "best" else "robust_acc_last")
        models.append(Model(trial.trial_id, weights, trial.config, describe(trial.config),
                            val if math.isfinite(val) else metric(trial, "best_robust_acc"), state_key, which))
    if not models:
        raise ConfigError("target", str(target), "has no trial with a checkpoint to evaluate")
    return models, run.run_dir


def resolve_target(target: str | os.PathLike[str], top: int = 3) -> tuple[list[Model], Path]:
    """The models of ``target`` and the folder the evaluation files go to."""
    path = Path(target).expanduser()
    if not path.exists():
        raise ConfigError("target", str(target), "no such run directory or checkpoint")
    if _is_run_dir(path):
        return _run_models(path, target, top)
    return [_checkpoint_model(path)], path.parent if path.is_file() else path


def load_weights(model: Model) -> dict[str, torch.Tensor]:
    """The model's state dict, from its weights file (the ``state_key`` entry of a state.pt)."""
    import pickle

    import torch

    try:
        state = torch.load(model.weights, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError) as err:
        raise ConfigError("checkpoint", str(model.weights),
                          f"is not a readable torch checkpoint ({_first_line(err)})") from None
    if not isinstance(state, dict):
        raise ConfigError("checkpoint", str(model.weights), "does not hold a state dict")
    if model.state_key is None:
        return state
    weights = state.get(model.state_key, state.get("model"))
    if not isinstance(weights, dict):
        raise ConfigError("checkpoint", str(model.weights), f"holds no model weights (no {model.state_key!r} entry)")
    return weights


__all__ = ["Model", "config_near", "load_weights", "resolve_target", "weights_in"]
