"""One typed record per trial, read from a trial folder or a Tune result, and the one rule for
a trial's final status.

A trial folder (SPEC §9) holds Ray Tune's ``params.json`` (the trial config) and
``result.json`` (one JSON line per reported epoch), its ``checkpoint_*/`` folders
(``state.pt``: the full run state; ``best.pt``: the best weights) and, after a crash,
``error.txt`` ("Failure # N" per failure). :class:`TrialRecord` is what every reader uses:
summary, report, plots, TensorBoard, evaluate, confirm.

:func:`final_status` decides a trial's :class:`~trainables.status.Status` from what the trial
itself recorded, so a stale Tune snapshot cannot overrule it:

1. the trial's last record says it ended by itself (completed, diverged, catastrophic
   overfitting): that;
2. it failed more often than its retries allow (``error.txt``, or Tune's ERROR): failed;
3. the search was interrupted while it ran or waited: interrupted (``--resume`` continues it);
4. it reported but did not end by itself: pruned (stopped early by the scheduler or the budget);
5. it never reported: failed if it errored, else interrupted.
"""

from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.status import Status
from trainables.trials.faults import own_failures

PARAMS_FILE, RESULT_FILE, ERROR_FILE = "params.json", "result.json", "error.txt"
STATE_FILE, BEST_FILE = "state.pt", "best.pt"
MAX_RETRIES = 1  # FailureConfig(max_failures=1): a crashed trial is retried once
CONTROL_PREFIX = "trial."  # per-trial keys the search sets beside the config (warm start, family)
# Tune's bookkeeping in every result line, not a metric of the run
TUNE_KEYS = frozenset({"config", "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "date",
                       "time_this_iter_s", "pid", "hostname", "time_since_restore",
                       "iterations_since_restore", "experiment_tag", "training_iteration"})


def finite(value: Any) -> float:
    """``value`` as a float, NaN when it is missing, not a number or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def failures(trial_dir: str | os.PathLike[str]) -> int:
    """How often the trial crashed on its own, from Tune's ``error.txt`` (0 when it never did;
    failures of the storage are not the trial's)."""
    path = Path(trial_dir, ERROR_FILE)
    return own_failures(path.read_text(errors="replace")) if path.exists() else 0


def final_status(last_status: str | None, crashes: int, tune_status: str | None, interrupted: bool,
                 reported: bool) -> Status:
    """The one rule for a trial's status (see the module docstring)."""
    status = Status.of(last_status, Status.RUNNING)
    if status.final or status in (Status.FAILED, Status.PRUNED):
        return status
    if crashes > MAX_RETRIES or tune_status == "ERROR":
        return Status.FAILED
    if interrupted and tune_status in (None, "RUNNING", "PENDING", "PAUSED"):
        return Status.INTERRUPTED
    if reported:
        return Status.PRUNED
    return Status.FAILED if crashes else Status.INTERRUPTED


def read_history(trial_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The trial's records from ``result.json`` (Tune keys dropped), in order. A restored trial
    may report a record twice; the later one wins. A torn last line (killed run) is skipped."""
    path = Path(trial_dir, RESULT_FILE)
    by_key: dict[Any, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                key = (record.get("level", 0), record.get("epoch", record.get("training_iteration", len(by_key))))
                by_key[key] = {k: v for k, v in record.items() if k not in TUNE_KEYS}
    return list(by_key.values())


def latest_checkpoint(trial_dir: str | os.PathLike[str]) -> Path | None:
    """The newest ``checkpoint_*`` folder of a trial that holds a state or best file."""
    folders = sorted(glob.glob(str(Path(trial_dir, "checkpoint_*"))))
    for folder in reversed(folders):
        if Path(folder, STATE_FILE).exists() or Path(folder, BEST_FILE).exists():
            return Path(folder)
    return None


def split_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training keys, the search's ``trial.*`` controls without the prefix) of a trial config."""
    train = {k: v for k, v in config.items() if not k.startswith(CONTROL_PREFIX)}
    controls = {k[len(CONTROL_PREFIX):]: v for k, v in config.items() if k.startswith(CONTROL_PREFIX)}
    return train, controls


def spent_in(result: dict[str, Any]) -> tuple[Any, float]:
    """What a trial has trained so far, by one of its results: backprops over every fidelity
    level (``trial_backprops``; ``backprops`` for a trainable of one level), and those training
    seconds. The budget, its stopper and the progress lines all read it so."""
    return (result.get("trial_backprops", result.get("backprops")),
            float(result.get("trial_train_seconds", result.get("train_seconds", 0.0)) or 0.0))


@dataclass
class TrialRecord:
    """One trial of a search, as every reader sees it.

    ``config``: its training config (flat keys); ``metrics``: the last record of its final
    run (the recipe's result: at full fidelity when it got there); ``history``: that run's
    per-epoch records (for schedules); ``levels``: the result at the end of each fidelity
    level it completed; ``spent_backprops``: everything the trial trained, all levels.
    """

    trial_id: str
    status: Status
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    levels: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    optuna_state: str | None = None
    warm_start: str | None = None
    family: str | None = None
    path: str = ""
    checkpoint: Path | None = None
    error: str = ""
    stage: str = "search"
    reused_from: str | None = None
    population: bool = False  # a member of a population-based search: ``config`` replays its learned schedule

    def metric(self, key: str) -> float:
        """The last value of ``key`` (NaN when missing or not finite)."""
        return finite(self.metrics.get(key))

    @property
    def objective(self) -> float:
        """The last objective, +inf when it has none."""
        value = self.metric("objective")
        return math.inf if math.isnan(value) else value

    @property
    def spent_backprops(self) -> int:
        value = finite(spent_in(self.metrics)[0])
        return 0 if math.isnan(value) else int(value)

    @property
    def full_fidelity(self) -> bool:
        """Whether its metrics come from a run of the experiment's full epochs and data."""
        return bool(self.metrics.get("full_fidelity", True))


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def split_levels(history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the last run's epoch records, the end record of every level) of a trial's records."""
    if not history:
        return [], []
    last_level = history[-1].get("level", 0)
    run = [r for r in history if r.get("level", 0) == last_level]
    ends = [r for r in history if r.get("level_end")]
    return run, ends


def learned_member(config: dict[str, Any], last: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A population member as a recipe: its config with the learned ``piecewise`` schedule
    (inherited epochs included) in place of its last K and α, and that schedule as its history
    (one row per epoch with ``k`` and ``alpha``: the member's own reported rows before an
    exploit belong to the path it left, not to its final model)."""
    from trainables.tune.pbt_member import decode, learned_schedule, replay_config

    ks, alphas = decode(last["schedule_k"], int), decode(last.get("schedule_alpha", ""))
    history = [{"epoch": t + 1, "k": k, "alpha": alphas[t] if t < len(alphas) else math.nan}
               for t, k in enumerate(ks)]
    return replay_config(config, learned_schedule(history)), history


def _train_checkpoint(metrics: dict[str, Any]) -> Path | None:
    """A multi-worker trial's last checkpoint: its Ray Train run's, whose path it reported."""
    path = metrics.get("checkpoint_path")
    if isinstance(path, str) and "://" not in path and Path(path, STATE_FILE).exists():
        return Path(path)
    return None


def record_from_folder(trial_dir: Path, tune: dict[str, Any] | None = None, *, interrupted: bool = False,
                       optuna_state: str | None = None, params: dict[str, Any] | None = None,
                       stage: str = "search") -> TrialRecord:
    """The record of the trial in ``trial_dir``; ``tune``: its entry in Tune's experiment state
    (status, config) when readable; ``interrupted``: the search did not finish."""
    tune = tune or {}
    params_file = trial_dir / PARAMS_FILE
    try:
        raw = json.loads(params_file.read_text()) if params_file.exists() else dict(tune.get("config") or {})
    except (OSError, ValueError):
        raw = dict(tune.get("config") or {})
    train, controls = split_config(raw)
    records = read_history(trial_dir)
    run, ends = split_levels(records)
    metrics = dict(run[-1]) if run else {}
    if controls.get("population") and metrics.get("schedule_k"):
        train, run = learned_member(train, metrics)
    crashes = failures(trial_dir)
    status = final_status(metrics.get("status"), crashes, tune.get("status"), interrupted, bool(records))
    trial_id = str(metrics.get("trial_id") or tune.get("trial_id") or trial_dir.name.removeprefix("trial_"))
    return TrialRecord(
        trial_id=trial_id, status=status, config=train, metrics=metrics, history=run, levels=ends,
        params=dict(params or {}), optuna_state=optuna_state,
        warm_start=controls.get("warm_start") or None, family=controls.get("family"),
        path=str(trial_dir), checkpoint=latest_checkpoint(trial_dir) or _train_checkpoint(metrics),
        error=_last_line(trial_dir / ERROR_FILE) if crashes else "", stage=stage,
        reused_from=controls.get("reused_from"), population=bool(controls.get("population")))


__all__ = ["spent_in", "BEST_FILE", "CONTROL_PREFIX", "ERROR_FILE", "MAX_RETRIES", "PARAMS_FILE", "RESULT_FILE", "STATE_FILE",
           "TrialRecord", "failures", "final_status", "finite", "latest_checkpoint", "learned_member", "read_history",
           "record_from_folder", "split_config", "split_levels"]
