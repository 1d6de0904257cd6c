"""The Ray Tune function trainables: one search trial, one confirmation run.

A trial's config holds training keys and the search's per-trial controls under ``trial.``
(``trial.warm_start``: the paper default it runs; ``trial.family``: its search space),
split off here, in one place (:func:`split_trial_config`). What every trial of a search
shares (its resources, the fidelity levels, plug-in objects) comes as a :class:`TrialSetup`
through ``tune.with_parameters``, not in the config.

:func:`tune_trainable` trains a recipe as a sequence of *complete* runs at increasing fidelity
(fewer epochs and less data first, each with its own full learning-rate and K schedules; the
last level is the experiment itself) and reports every epoch with a checkpoint of the whole
run state, so a restored trial continues exactly. A paper default (warm start) runs only the
last level. The time attribute ``fidelity`` advances only when a level ends (to
``reduction_factor ** level``), so ASHA's rungs compare complete runs of one level and its
promotion is "run the next level".

:func:`confirm_trainable` re-trains a recipe with another seed (or takes the search's own
run) and measures it on the *test* split.

Ray is imported inside the functions: ``trainables`` is usable without Ray.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainables.checkpoint import BEST_FILE, STATE_FILE, load_progress, load_run_state
from trainables.config import TrainConfig, parse_config
from trainables.engine import Run, start_run
from trainables.faults import own_failures
from trainables.status import Status
from trainables.tune_report import node_metrics, report_epoch

TRIAL_PREFIX = "trial."
MAX_RETRIES = 1  # FailureConfig(max_failures=1)
CUDA_RESERVE_BYTES = 768 * 1024**2  # CUDA context and library workspaces, outside the allocator's cap


def split_trial_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training keys, the search's ``trial.*`` controls without the prefix) of a Tune config."""
    train = {k: v for k, v in config.items() if not k.startswith(TRIAL_PREFIX)}
    controls = {k[len(TRIAL_PREFIX):]: v for k, v in config.items() if k.startswith(TRIAL_PREFIX)}
    return train, controls


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a search shares (handed over with ``tune.with_parameters``).

    ``levels``: (fraction of the epochs, fraction of the training data) per fidelity level,
    the full run last; ``reduction_factor``: ASHA's η, whose powers are the levels' values of
    the ``fidelity`` time attribute; ``plugins``: (kind, name, object) entries to register in
    the trial's process (a model or dataset callable given to the Python API).
    """

    gpus_per_trial: float = 0.0
    workers: int = 1
    levels: tuple[tuple[float, float], ...] = ((1.0, 1.0),)
    reduction_factor: float = 3.0
    plugins: tuple[tuple[str, str, Any], ...] = ()


def plugin_reference(kind: str, value: Any) -> tuple[str, tuple[tuple[str, str, Any], ...]]:
    """A model or dataset given to the Python API as a callable: (its config value, plug-ins to
    register). Its import path when every process can import it; else a name registered in
    each trial's process (the object travels with the trial's setup)."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if module and qualname and module != "__main__" and "<" not in qualname:
        return f"{module}:{qualname}", ()
    name = f"{kind}:{qualname or id(value)}"
    return name, ((kind, name, value),)


def register_plugins(plugins: tuple[tuple[str, str, Any], ...]) -> None:
    """Put the API's plug-in objects into this process's registries."""
    if not plugins:
        return
    from trainables.data.datasets import DATASETS, plugin_dataset
    from trainables.models import MODELS, plugin_model

    for kind, name, obj in plugins:
        if kind == "model":
            MODELS[name] = plugin_model(name, obj)
        elif kind == "dataset":
            DATASETS[name] = plugin_dataset(name, obj)


def apply_resources(setup: TrialSetup) -> torch.device | None:
    """This trial's device and memory cap, from what it asked Ray for.

    A trial that asked for no GPU trains on the CPU even on a GPU node (Ray 2.60 no longer
    hides the GPUs from it). With a fractional GPU the CUDA allocator is capped to the share
    minus the CUDA context, which the cap does not cover, so a neighbour on the same GPU
    cannot be pushed out of memory. Returns the device to use (None: the config's own).
    """
    gpus = float(setup.gpus_per_trial or 0)
    if gpus <= 0:
        return torch.device("cpu")
    if 0 < gpus < 1 and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(max(0.01, gpus - CUDA_RESERVE_BYTES / total))
    return None


def failed_before(trial_dir: str | None) -> bool:
    """Whether this trial already crashed more often than its retries allow (Tune appends
    "Failure # N" to its ``error.txt``): a resumed search must not run it a third time.
    Failures of the storage (a full disk) are not the trial's and do not count."""
    if not trial_dir:
        return False
    path = Path(trial_dir, "error.txt")
    return path.exists() and own_failures(path.read_text(errors="replace")) > MAX_RETRIES


def level_epochs(fraction: float, epochs: int) -> int:
    """A level's epochs: the fraction of the run's, rounded to the nearest (at least 1)."""
    return max(1, math.floor(fraction * epochs + 0.5))


def level_config(cfg: TrainConfig, level: tuple[float, float]) -> TrainConfig:
    """The complete, shorter run of ``cfg`` at a fidelity ``level`` (epoch and data fractions).

    Below full fidelity the run is evaluated once, at its end: a proxy is scored on its final
    model, and evaluating every epoch would cost a cheap proxy more than its training."""
    epochs_fraction, data_fraction = level
    if level == (1.0, 1.0):
        return cfg
    epochs = level_epochs(epochs_fraction, cfg.epochs)
    return dataclasses.replace(cfg, epochs=epochs, data_fraction=cfg.data_fraction * data_fraction,
                               eval=dataclasses.replace(cfg.eval, every=epochs))


def fidelity_value(level: int, reduction_factor: float) -> float:
    """The ``fidelity`` time attribute at the end of level ``level`` (ASHA's rung milestones)."""
    return float(reduction_factor**level)


def _trial_dir() -> str | None:
    from ray import tune

    try:
        return str(tune.get_context().get_trial_dir())
    except Exception:
        return None


@dataclass
class _Progress:
    """Where a trial is: its level, what finished levels cost, and which level the saved run
    state belongs to (the checkpoint at a level's last epoch already points at the next)."""

    level: int = 0
    spent_backprops: int = 0
    spent_seconds: float = 0.0
    state_level: int = -1


def _restored() -> tuple[_Progress, dict[str, Any] | None]:
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return _Progress(), None
    with checkpoint.as_directory() as directory:
        progress = _Progress(**load_progress(directory))
        state = load_run_state(directory) if Path(directory, STATE_FILE).exists() else None
    return progress, state


def guard_failed(trainable: Callable[..., None]) -> Callable[..., None]:
    """Wrap a Tune function trainable so that a trial which already crashed on its own more
    often than its retry allows ends at once as ``failed`` (a resumed search whose snapshot
    still lists it as running would otherwise run it a third time). Custom trainables given
    to ``raysearch search`` should be wrapped too."""

    @functools.wraps(trainable)
    def guarded(config: dict[str, Any], setup: TrialSetup | None = None) -> None:
        if failed_before(_trial_dir()):
            from ray import tune

            tune.report({"status": Status.FAILED.value, "failed_before": True})
            return
        trainable(config, setup)

    return guarded


@guard_failed
def tune_trainable(config: dict[str, Any], setup: TrialSetup | None = None) -> None:
    """Ray Tune function trainable: one recipe through its fidelity levels (see module doc)."""
    setup = setup or TrialSetup()
    register_plugins(setup.plugins)
    train_keys, controls = split_trial_config(config)
    device = apply_resources(setup)
    cfg = parse_config(train_keys)
    if setup.workers > 1 or (setup.gpus_per_trial >= 2 and torch.cuda.is_available()):
        from trainables.distributed import tune_data_parallel

        tune_data_parallel(cfg, max(setup.workers, int(setup.gpus_per_trial)))
        return
    node = node_metrics()
    levels = list(setup.levels)
    progress, state = _restored()
    first = len(levels) - 1 if controls.get("warm_start") else 0  # a paper default runs the experiment only
    progress.level = max(progress.level, first)
    for level in range(progress.level, len(levels)):
        last = level == len(levels) - 1
        run = start_run(level_config(cfg, levels[level]), device)
        if state is not None and progress.state_level == level:
            run.load_state_dict(state)
        state = None
        while not run.finished:
            record = run.step()
            done = run.finished
            spent = progress.spent_backprops + run.cost.backprops
            seconds = progress.spent_seconds + run.cost.train_seconds
            promoted = done and not last and run.status == Status.COMPLETED
            after = _Progress(level + 1, spent, seconds, level) if promoted else \
                _Progress(level, progress.spent_backprops, progress.spent_seconds, level)
            if promoted:  # the level's run ended; the trial goes on (or the scheduler stops it: pruned)
                record = {**record, "status": Status.RUNNING.value}
            # A trial's rungs are the ends of the levels it ran: a paper default, which starts at
            # the last level, is compared at no rung below it.
            milestone = level if done else (level - 1 if level > first else -1)
            extra = {
                **node, "level": level, "levels": len(levels), "level_end": done, "full_fidelity": last,
                "fidelity": fidelity_value(milestone, setup.reduction_factor) if milestone >= 0 else 0.0,
                "trial_backprops": spent, "trial_train_seconds": seconds,
                "trial_epoch": sum(level_epochs(levels[lv][0], cfg.epochs) for lv in range(first, level)) + run.epoch,
                "level_epochs": run.config.epochs, "level_data_fraction": run.config.data_fraction,
            }
            with tempfile.TemporaryDirectory() as directory:
                report_epoch(run, record, directory, extra, dataclasses.asdict(after))
        if last or run.status != Status.COMPLETED:
            return  # the full run ended, or the recipe diverged / overfitted at this level
        progress = _Progress(level + 1, progress.spent_backprops + run.cost.backprops,
                             progress.spent_seconds + run.cost.train_seconds)


def _epochs(run: Run) -> Iterator[dict[str, Any]]:
    while not run.finished:
        yield run.step()


# ----------------------------------------------------------------------------- confirmation


def _scored_weights(directory: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(the weights a finished trial was scored on, its state) from a checkpoint folder."""
    state = load_run_state(directory)
    weights = state["model"]
    if state.get("status") == Status.CO.value and Path(directory, BEST_FILE).exists():
        weights = torch.load(Path(directory, BEST_FILE), map_location="cpu", weights_only=True)
    return weights, state


def test_accuracy(run: Run, attacks: str, examples: int | None) -> dict[str, float]:
    """Clean accuracy and accuracy under each attack on the *test* split; ``robust_acc`` is the
    lowest (the strongest attack's)."""
    from trainables.data import load_config_dataset, materialize
    from trainables.evaluation import attack_accuracy, evaluate_accuracy, parse_attacks

    data = load_config_dataset(run.config)
    test = materialize(data.test, examples)
    x, y = test.images().to(run.device), test.y.to(run.device)
    model = run.model
    model.eval()
    eps = run.config.epsilon
    out = {"clean_acc": evaluate_accuracy(model, x, y, eps, 1, eps, fgsm=False).clean_acc, "test_examples": len(y)}
    parsed = parse_attacks(attacks, allow_autoattack=False)
    for attack in parsed:
        out[f"test_{attack.name}"] = attack_accuracy(model, x, y, eps, attack)
    out["robust_acc"] = min(out[f"test_{a.name}"] for a in parsed)
    return out


@guard_failed
def confirm_trainable(config: dict[str, Any], setup: TrialSetup | None = None) -> None:
    """Ray Tune function trainable of the confirmation stage: train the recipe with the config's
    seed (or, with ``trial.checkpoint``, take that finished run as it is), then report its
    test-split accuracy under ``trial.attacks`` and its cost."""
    from ray import tune

    setup = setup or TrialSetup()
    register_plugins(setup.plugins)
    train_keys, controls = split_trial_config(config)
    device = apply_resources(setup)
    cfg = parse_config(train_keys)
    run = start_run(cfg, device)
    source = controls.get("checkpoint")
    if source:
        weights, state = _scored_weights(source)
        run.load_state_dict(state)
        run.model.load_state_dict(weights)
    else:
        _, saved = _restored()
        if saved is not None:
            run.load_state_dict(saved)
        for record in _epochs(run):
            if not run.finished:
                with tempfile.TemporaryDirectory() as directory:
                    report_epoch(run, record, directory, {"confirm_done": False})
        if run.status == Status.CO and run.best_model is not None:
            run.model.load_state_dict(run.best_model)
    measured = test_accuracy(run, str(controls.get("attacks") or "pgd50x10"), controls.get("examples"))
    tune.report({**measured, "confirm_done": True, "seed": cfg.seed, "status": run.status.value,
                 "backprops": run.cost.backprops, "train_seconds": run.cost.train_seconds,
                 "epoch": run.epoch, "reused_run": bool(source)})


__all__ = ["TRIAL_PREFIX", "TrialSetup", "apply_resources", "confirm_trainable", "failed_before", "fidelity_value",
           "guard_failed",
           "level_config", "plugin_reference", "register_plugins", "split_trial_config", "test_accuracy", "tune_trainable"]
