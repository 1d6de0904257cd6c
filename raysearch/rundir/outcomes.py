"""What a search and its confirmation leave, as typed results: read by the commands that
produce them and by :mod:`raysearch.reporting`, which is why they live below both."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysearch.rundir.records import TrialRecord
from raysearch.rundir.storage import join


def search_overhead_fraction(trial_seconds_sum: float, wall_seconds: float, slots: int) -> float:
    """Summed trial seconds / (wall seconds × concurrent slots): the share of slot time in trials."""
    capacity = wall_seconds * max(1, slots)
    return min(1.0, trial_seconds_sum / capacity) if capacity > 0 else 0.0




@dataclass
class SearchResult:
    """What a search leaves: where it is, every trial, the best recipe, and what it cost.

    ``trials``: one :class:`~raysearch.rundir.records.TrialRecord` per trial; ``best``: the
    lowest objective among finished full runs; ``warm_start``: the paper defaults' trials;
    ``search_overhead``: summed trial seconds (training + evaluation) of this session / (wall
    seconds × concurrent slots); ``startup_seconds``: from the call to the start of Tune;
    ``interrupted``: Ctrl-C ended it (``--resume`` continues); ``summary``: what
    ``search_summary.json`` says; ``confirmation``: the confirmation stage's result.
    """

    run_dir: str
    trials: list[TrialRecord]
    best: TrialRecord | None
    wall_seconds: float
    trial_seconds_sum: float
    concurrency: int
    reference_backprops: int = 0
    pareto: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0
    interrupted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    confirmation: Any = None

    @property
    def warm_start(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.warm_start]

    @property
    def best_config(self) -> dict[str, Any] | None:
        return self.best.config if self.best else None

    @property
    def best_metrics(self) -> dict[str, Any] | None:
        return self.best.metrics if self.best else None

    @property
    def search_overhead(self) -> float:
        return search_overhead_fraction(self.trial_seconds_sum, self.wall_seconds, self.concurrency)

    @property
    def tensorboard_dir(self) -> str:
        return join(self.run_dir, "tensorboard")

    @property
    def resume_command(self) -> str:
        return f"raysearch search --resume {self.run_dir}"


@dataclass
class ConfirmResult:
    """The confirmation's rows, per-recipe statistics, what it cost and whether it was cut short.

    ``rounds``: the racing rounds, each ``{"seeds": n, "alive": [...], "dropped": [...]}``."""

    run_dir: Path
    rows: list[dict[str, Any]]
    stats: list[Any] = field(default_factory=list)
    backprops: int = 0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    reused_rows: int = 0
    interrupted: bool = False
    rounds: list[dict[str, Any]] = field(default_factory=list)


__all__ = ["ConfirmResult", "SearchResult", "search_overhead_fraction"]


@dataclass
class EvaluationResult:
    """What ``raysearch evaluate`` leaves: one row per model (accuracy by attack name, plus label,
    recipe, examples, seconds), gradient-masking warnings, attacks skipped (with why) and the
    files written."""

    target: str
    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    csv_path: Path | None = None
    md_path: Path | None = None


__all__ += ["EvaluationResult"]
