"""What a search prints while it runs: a line per finished trial and a heartbeat at most every
30 s with the budget spent (CI-log friendly; Ray's own table reprints every few seconds and is
silenced)."""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

from ray.tune import Callback

from raysearch.rundir.records import spent_in
from trainables.labels import describe
from trainables.status import Status
from trainables.trials.setup import split_trial_config

# the metrics a trial's line shows
LINE_METRICS = ("objective", "robust_acc", "clean_acc", "backprops", "epoch")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def live_status(trial: Any, failed: bool, interrupted: bool) -> Status:
    """A trial's status as the driver sees it when the trial ends (the same rule as
    :func:`raysearch.rundir.records.final_status`, from Tune's in-memory trial)."""
    from raysearch.rundir.records import final_status

    last = trial.last_result or {}
    crashes = 2 if failed else 0
    return final_status(last.get("status"), crashes, "ERROR" if failed else None, interrupted, bool(last))


class ProgressLines(Callback):
    """One line per finished trial and a heartbeat at most every 30 s (see module doc).

    ``reference_backprops``: one reference run, the unit the budget is shown in;
    ``budget_runs``: the budget in reference runs (None: none)."""

    def __init__(self, total: int, reference_backprops: int, budget_runs: float | None = None,
                 stage: str = "search") -> None:
        self.total, self.reference, self.budget, self.stage = total, reference_backprops, budget_runs, stage
        self.last_beat = time.monotonic()
        self.best: float | None = None
        self.spent: dict[str, float] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "last_beat": 0.0}

    def _interrupted(self) -> bool:
        from raysearch.tuning.tuner import INTERRUPT

        return INTERRUPT.is_set()

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        with contextlib.suppress(Exception):  # Tune would fail the trial for our print
            self._beat(trials, trial, result)

    def spent_runs(self) -> float:
        return sum(self.spent.values()) / self.reference if self.reference else math.nan

    def _beat(self, trials: list[Any], trial: Any, result: dict[str, Any]) -> None:
        # a confirmation's test of the search's own run (reused_run) was paid for by the search
        spent = 0 if result.get("reused_run") else spent_in(result)[0]
        if isinstance(spent, (int, float)):
            self.spent[trial.trial_id] = float(spent)
        objective = result.get("objective")
        final = result.get("full_fidelity", True) and result.get("status", Status.COMPLETED.value) != Status.RUNNING.value
        if final and isinstance(objective, (int, float)) and math.isfinite(objective):
            self.best = objective if self.best is None else min(self.best, objective)
        now = time.monotonic()
        if now - self.last_beat >= 30:
            self.last_beat = now
            running = sum(t.status == "RUNNING" for t in trials)
            ended = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
            print(self.heartbeat(running, ended), flush=True)

    def heartbeat(self, running: int, ended: int) -> str:
        """The periodic line: trials, compute spent (of the budget) and the best full run."""
        budget = f" of {self.budget:g}" if self.budget else ""
        line = (f"[{self.stage}] {ended}/{self.total} trials ended, {running} running; compute spent "
                f"{self.spent_runs():.2f}{budget} reference runs")
        if self.best is not None:
            line += f"; best full-run objective so far {self.best:.4f}"
        elif self.stage == "search":  # a confirmation reports no objective
            line += "; best full-run objective so far -"
        return line

    def _line(self, trial: Any, failed: bool) -> None:
        result = trial.last_result or {}
        train, controls = split_trial_config(trial.config or {})
        status = live_status(trial, failed, self._interrupted())
        metrics = " ".join(f"{k}={_fmt(result[k])}" for k in LINE_METRICS if k in result)
        level = result.get("level")
        where = f" (level {level + 1}/{result.get('levels')})" if isinstance(level, int) and result.get("levels", 1) > 1 \
            else ""
        tag = f" [{controls['warm_start']}]" if controls.get("warm_start") else ""
        print(f"[{self.stage}] trial {trial.trial_id} {status.value}{where}: {metrics} | {describe(train)}{tag}",
              flush=True)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        with contextlib.suppress(Exception):
            self._line(trial, failed=False)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        with contextlib.suppress(Exception):
            print(f"[{self.stage}] trial {trial.trial_id} crashed, retrying from its last checkpoint: "
                  f"{error_line(trial)}", flush=True)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        with contextlib.suppress(Exception):
            self._line(trial, failed=True)
            print(f"[{self.stage}] trial {trial.trial_id} failed after its retry: {error_line(trial)}", flush=True)


def error_line(trial: Any) -> str:
    """The last line of a trial's error (its exception) and where the whole traceback is."""
    path = getattr(trial, "error_file", None)
    try:
        with open(path or "", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "(no error file could be read)"
    return f"{lines[-1] if lines else 'unknown error'} (traceback: {path})"


__all__ = ["ProgressLines", "error_line", "live_status"]
