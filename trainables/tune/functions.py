"""The Ray Tune function trainables: one search trial, one confirmation run.

A trial's config holds training keys and the search's per-trial controls under ``trial.``
(``trial.warm_start``: the paper default it runs; ``trial.family``: its search space), split
off in one place (:func:`trainables.trials.setup.split_trial_config`). What every trial of a search
shares (its resources, the fidelity levels, plug-in objects) comes as a
:class:`~trainables.trials.setup.TrialSetup` through ``tune.with_parameters``, not in the config.

:func:`tune_trainable` trains a recipe as a sequence of *complete* runs at increasing fidelity
(:mod:`trainables.trials.fidelity`; a trial with several workers runs each level on Ray Train:
:mod:`trainables.distributed.workers`) and reports every epoch with a checkpoint of the whole
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
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from trainables.config import TrainConfig, parse_config
from trainables.distributed.workers import trial_workers
from trainables.evaluation.accuracy import test_split_accuracy
from trainables.status import Status
from trainables.training.checkpoint import STATE_FILE, load_progress, load_run_state, scored_file
from trainables.training.engine import Run, start_run
from trainables.trials.faults import own_failures
from trainables.trials.fidelity import LevelAt, LevelEnd, LevelProgress, level_report, run_levels
from trainables.trials.report import node_metrics, report_epoch
from trainables.trials.setup import TrialSetup, apply_resources, enter_trial
from trainables.tune.multi_worker import tune_data_parallel

MAX_RETRIES = 1  # FailureConfig(max_failures=1)


def failed_before(trial_dir: str | None) -> bool:
    """Whether this trial already crashed more often than its retries allow (Tune appends
    "Failure # N" to its ``error.txt``): a resumed search must not run it a third time.
    Failures of the storage (a full disk) are not the trial's and do not count."""
    if not trial_dir:
        return False
    path = Path(trial_dir, "error.txt")
    return path.exists() and own_failures(path.read_text(errors="replace")) > MAX_RETRIES


def _trial_dir() -> str | None:
    from ray import tune

    try:
        return str(tune.get_context().get_trial_dir())
    except Exception:
        return None


def _restored() -> tuple[LevelProgress, dict[str, Any] | None]:
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return LevelProgress(), None
    with checkpoint.as_directory() as directory:
        progress = LevelProgress(**load_progress(directory))
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
    setup, train_keys, controls = enter_trial(config, setup)
    device = apply_resources(setup)
    cfg = parse_config(train_keys)
    if trial_workers(setup) > 1:
        tune_data_parallel(cfg, setup, controls)
        return
    node = node_metrics()
    progress, state = _restored()

    def run_level(level_cfg: TrainConfig, at: LevelAt, progress: LevelProgress) -> LevelEnd:
        run = start_run(level_cfg, device)
        if state is not None and progress.state_level == at.level:  # the level the checkpoint is of
            run.load_state_dict(state)
        while not run.finished:
            record, extra, after = level_report(run, run.step(), at, progress)
            with tempfile.TemporaryDirectory() as directory:
                report_epoch(run, record, directory, {**node, **extra}, dataclasses.asdict(after))
        return LevelEnd(run.status, run.cost.backprops, run.cost.train_seconds, run.cost.eval_seconds)

    first = len(setup.levels) - 1 if controls.get("warm_start") else 0  # a paper default runs the experiment only
    run_levels(cfg, tuple(setup.levels), first, progress, setup.reduction_factor, run_level)


def _epochs(run: Run) -> Iterator[dict[str, Any]]:
    while not run.finished:
        yield run.step()


# ----------------------------------------------------------------------------- confirmation


def _scored_weights(directory: str | os.PathLike[str], rule: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(the weights that count for a finished trial under ``rule``, its state) from a
    checkpoint folder (:func:`trainables.training.checkpoint.scored_file`)."""
    state = load_run_state(directory)
    path, key = scored_file(directory, rule, str(state.get("status", "")))
    if key is not None:
        return state.get(key) or state["model"], state
    return torch.load(path, map_location="cpu", weights_only=True), state


@guard_failed
def confirm_trainable(config: dict[str, Any], setup: TrialSetup | None = None) -> None:
    """Ray Tune function trainable of the confirmation stage: train the recipe with the config's
    seed (or, with ``trial.checkpoint``, take that finished run as it is), then report its
    test-split accuracy under ``trial.attacks`` and its cost."""
    from ray import tune

    setup, train_keys, controls = enter_trial(config, setup)
    cfg = parse_config(train_keys)
    if trial_workers(setup) > 1:
        tune_data_parallel(cfg, setup, {**controls, "attacks": controls.get("attacks") or "pgd50x10"})
        return
    run = start_run(cfg, apply_resources(setup))
    source = controls.get("checkpoint")
    if source:
        weights, state = _scored_weights(source, cfg.checkpoint)
        # The run as it ended, without its per-example memories (a multi-worker run's are
        # sharded, and measuring needs none).
        run.load_state_dict({**state, "method": run.method.state_dict()})
        run.model.load_state_dict(weights)
    else:
        _, saved = _restored()
        if saved is not None:
            run.load_state_dict(saved)
        for record in _epochs(run):
            if not run.finished:
                with tempfile.TemporaryDirectory() as directory:
                    report_epoch(run, record, directory, {"confirm_done": False})
        run.model.load_state_dict(run.scored_weights())
    chosen_by = run.validation_scores()  # validation chooses, the test split measures
    measured = test_split_accuracy(run.model, run.config, run.device, str(controls.get("attacks") or "pgd50x10"),
                                   controls.get("examples"))
    tune.report({**measured, **chosen_by, "confirm_done": True, "seed": cfg.seed, "status": run.status.value,
                 "backprops": run.cost.backprops, "train_seconds": run.cost.train_seconds,
                 "epoch": run.epoch, "reused_run": bool(source)})


__all__ = ["MAX_RETRIES", "confirm_trainable", "failed_before", "guard_failed", "tune_trainable"]
