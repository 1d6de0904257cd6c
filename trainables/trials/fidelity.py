"""Fidelity levels: a trial trains a recipe as a sequence of complete, shorter runs (fewer
epochs, less data, each with its own full schedules), the experiment itself last.

:func:`level_report` is what a trial reports after each epoch of a level's run (the record,
the trial's metrics beside it, and where it is), for one process and for Ray Train's workers
alike; :class:`LevelProgress` is what its checkpoint remembers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainables.config import TrainConfig
from trainables.status import Status
from trainables.training.engine import Run


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


@dataclass
class LevelProgress:
    """Where a trial is: its level, what finished levels cost, and which level the saved run
    state belongs to (the checkpoint at a level's last epoch already points at the next)."""

    level: int = 0
    spent_backprops: int = 0
    spent_seconds: float = 0.0
    state_level: int = -1
    spent_eval_seconds: float = 0.0  # evaluation seconds of the finished levels (0.2 checkpoints lack it)

    def next_level(self, backprops: int, train_seconds: float, eval_seconds: float) -> LevelProgress:
        """The progress once this level's run ended with that cost: the next level, from its start."""
        return LevelProgress(self.level + 1, self.spent_backprops + backprops, self.spent_seconds + train_seconds,
                             spent_eval_seconds=self.spent_eval_seconds + eval_seconds)


@dataclass(frozen=True)
class LevelAt:
    """Where a level's run sits in its trial: its index among ``levels``, the first level the
    trial runs (a paper default starts at the last), the experiment's epochs and ASHA's η."""

    level: int
    levels: tuple[tuple[float, float], ...]
    first: int
    epochs: int
    reduction_factor: float

    @property
    def last(self) -> bool:
        return self.level == len(self.levels) - 1

    def epochs_before(self) -> int:
        """Epochs the trial trained in the levels before this one."""
        return sum(level_epochs(self.levels[lv][0], self.epochs) for lv in range(self.first, self.level))


def level_report(run: Run, record: dict[str, Any], at: LevelAt,
                 progress: LevelProgress) -> tuple[dict[str, Any], dict[str, Any], LevelProgress]:
    """(the record, the trial's metrics beside it, the progress to checkpoint) after an epoch of
    a level's run: what a trial reports, the same for one process and for Ray Train workers."""
    done = run.finished
    spent = progress.next_level(run.cost.backprops, run.cost.train_seconds, run.cost.eval_seconds)  # with this run
    promoted = done and not at.last and run.status == Status.COMPLETED
    after = dataclasses.replace(spent if promoted else progress, level=at.level + promoted, state_level=at.level)
    if promoted:  # the level's run ended; the trial goes on (or the scheduler stops it: pruned)
        record = {**record, "status": Status.RUNNING.value}
    # A trial's rungs are the ends of the levels it ran: a paper default, which starts at the
    # last level, is compared at no rung below it.
    milestone = at.level if done else (at.level - 1 if at.level > at.first else -1)
    extra = {
        "level": at.level, "levels": len(at.levels), "level_end": done, "full_fidelity": at.last,
        "fidelity": fidelity_value(milestone, at.reduction_factor) if milestone >= 0 else 0.0,
        "trial_backprops": spent.spent_backprops, "trial_train_seconds": spent.spent_seconds,
        "trial_eval_seconds": spent.spent_eval_seconds,
        "trial_epoch": at.epochs_before() + run.epoch,
        "level_epochs": run.config.epochs, "level_data_fraction": run.config.data_fraction,
    }
    return record, extra, after


@dataclass(frozen=True)
class LevelEnd:
    """How a level's run ended: its status and what it cost."""

    status: Status
    backprops: int
    train_seconds: float
    eval_seconds: float


def run_levels(cfg: TrainConfig, levels: tuple[tuple[float, float], ...], first: int, progress: LevelProgress,
               reduction_factor: float, run_level: Callable[[TrainConfig, LevelAt, LevelProgress], LevelEnd]) -> None:
    """A trial's fidelity levels from where ``progress`` says (never before ``first``): each a
    complete run by ``run_level`` (in this process, or on Ray Train workers), the next only
    after it completed; the experiment itself last. The one level loop of every trial."""
    progress = dataclasses.replace(progress, level=max(progress.level, first))
    for level in range(progress.level, len(levels)):
        at = LevelAt(level, levels, first, cfg.epochs, reduction_factor)
        end = run_level(level_config(cfg, levels[level]), at, progress)
        if at.last or end.status != Status.COMPLETED:
            return  # the full run ended, or the recipe diverged / overfitted at this level
        progress = progress.next_level(end.backprops, end.train_seconds, end.eval_seconds)


__all__ = ["LevelAt", "LevelEnd", "LevelProgress", "fidelity_value", "level_config", "level_epochs", "level_report",
           "run_levels"]
