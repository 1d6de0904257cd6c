"""Who goes on: ASHA on the chosen time axis, wrapped so that the papers' defaults always
finish and the budget is kept (SPEC §8).

ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020) stops
a trial at a rung when its metric is not in the top 1/η of the trials that reached that
rung. Ray's :class:`~ray.tune.schedulers.ASHAScheduler` reads the rung position from any
monotone result key (``time_attr``):

- ``fidelity`` (default): each level is a complete, shorter run; the trainable advances the
  key to η^level only when a level ends, so the rungs (1, η, η², …) compare complete runs of
  one level and promotion means "run the next level" (``max_t`` = η^(levels − 1));
- ``backprops``: one run per trial, rungs at equal attack compute. The grace period is then
  the backprops the costliest configuration of the space spends in ``grace_period`` epochs,
  ``grace_period * max_t / epochs``, where ``max_t = (K_max + 1) * batches_per_epoch *
  epochs`` is the largest budget any trial can spend (``max_t`` must not be below a real
  trial's budget: ASHA stops any trial whose ``time_attr`` reaches ``max_t``);
- ``epoch``: the classic.

Two wrappers compose around it, as ``ConcurrencyLimiter`` wraps a searcher:
:class:`FinishWarmStarts` lets every paper default run to its end whatever the inner scheduler
decides (ASHA still records their values, so they set the bar at each rung), and
:class:`KeepBudget` stops a trial at a level's end when its next level would not fit the
budget. Catastrophic overfitting and divergence need no stopper: the trainable detects both,
reports its final ``status`` and returns. ASHA's rung state is not part of Tune's experiment
checkpoint (Ray 2.60 does not save the scheduler), so after ``--resume`` the rungs refill
from the results that arrive afterwards.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from raysearch.rundir.experiment import SearchConfig
from raysearch.rundir.records import spent_in
from raysearch.tuning.budget import Budget
from raysearch.tuning.objective import METRIC, MODE
from trainables.trials.setup import TRIAL_PREFIX

WARM_START_KEY = f"{TRIAL_PREFIX}warm_start"


def _whole(value: float) -> int:
    # ASHA's rung milestones are grace_period * η^k: whole numbers when η is (fidelity levels)
    return int(round(value)) if abs(value - round(value)) < 1e-9 else value  # type: ignore[return-value]


def time_budget(time_attr: str, *, epochs: int, max_t: int, levels: int = 1, reduction_factor: float = 3.0) -> int:
    """ASHA's ``max_t`` on the chosen axis."""
    if time_attr == "fidelity":
        return _whole(reduction_factor ** (levels - 1))
    return epochs if time_attr == "epoch" else max(1, int(max_t))


def grace_t(search: SearchConfig, *, epochs: int, max_t: int, levels: int) -> int:
    """The grace period on the chosen axis (see the module docstring), at most the budget."""
    budget = time_budget(search.time_attr, epochs=epochs, max_t=max_t, levels=levels,
                         reduction_factor=search.reduction_factor)
    if search.time_attr == "fidelity":
        return 1
    if search.time_attr == "epoch":
        grace = math.ceil(search.grace_period)
    else:
        grace = math.ceil(search.grace_period * budget / epochs)
    return max(1, min(grace, budget))


class Delegating(TrialScheduler):
    """A scheduler that hands everything to ``inner`` (the base of the wrappers below)."""

    def __init__(self, inner: TrialScheduler) -> None:
        super().__init__()
        self.inner = inner

    @property
    def metric(self) -> Any:
        return self.inner.metric

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        return self.inner.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        self.inner.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self.inner.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        return self.inner.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return f"{type(self).__name__}({self.inner.debug_string()})"

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)


def is_warm_start(trial: Any) -> bool:
    return bool((getattr(trial, "config", None) or {}).get(WARM_START_KEY))


class FinishWarmStarts(Delegating):
    """Every paper default runs all its epochs: the inner scheduler sees its results (they
    count at the rungs) but cannot stop or pause it."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = self.inner.on_trial_result(tune_controller, trial, result)
        return TrialScheduler.CONTINUE if is_warm_start(trial) else decision


class KeepBudget(Delegating):
    """At the end of a fidelity level, a trial whose next level would not fit the budget
    (with what every other running trial is committed to) is stopped; paper defaults are
    counted but never stopped."""

    def __init__(self, inner: TrialScheduler, budget: Budget) -> None:
        super().__init__(inner)
        self.budget = budget

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = self.inner.on_trial_result(tune_controller, trial, result)
        if decision != TrialScheduler.CONTINUE or not result.get("level_end") or result.get("full_fidelity"):
            return decision
        if is_warm_start(trial):
            return decision
        next_level = int(result.get("level", 0)) + 1
        cost = self.budget.cost
        config = _train_keys(trial.config)
        more = cost.level_backprops(config, next_level)  # not the full run: a next level exists
        spent, seconds, committed = self._ledger(tune_controller, trial)
        if not self.budget.fits(spent, seconds, committed, more):
            return TrialScheduler.STOP
        return decision

    def _ledger(self, tune_controller: Any, current: Any) -> tuple[float, float, float]:
        """(backprops spent by every trial, their train seconds, what the other running trials
        are committed to), from the trials' own last results."""
        spent = seconds = committed = 0.0
        cost = self.budget.cost
        for trial in tune_controller.get_trials():
            last = trial.last_result or {}
            backprops, trained = spent_in(last)
            used = float(backprops or 0)
            spent += used
            seconds += trained
            if trial is current or trial.status not in ("RUNNING", "PENDING", "PAUSED"):
                continue
            level = int(last.get("level", len(cost.levels) - 1 if is_warm_start(trial) else 0))
            start = level + 1 if last.get("level_end") else level
            planned = sum(cost.level_backprops(_train_keys(trial.config), lv) for lv in range(start, len(cost.levels)))
            committed += planned
        return spent, seconds, committed


def _train_keys(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith(TRIAL_PREFIX)}


def make_scheduler(search: SearchConfig, *, epochs: int, max_t: int, levels: int = 1,
                   budget: Budget | None = None) -> TrialScheduler:
    """ASHA reading the one-number ``objective`` (also for Pareto and target studies: a rung
    needs one number), or FIFO (no early stopping) for ``scheduler: none``; wrapped so the
    paper defaults finish and the budget is kept."""
    if search.scheduler == "none":
        inner: TrialScheduler = FIFOScheduler()
    else:
        inner = ASHAScheduler(
            time_attr=search.time_attr,  # the result key ASHA reads
            metric=METRIC,
            mode=MODE,
            max_t=time_budget(search.time_attr, epochs=epochs, max_t=max_t, levels=levels,
                              reduction_factor=search.reduction_factor),
            grace_period=grace_t(search, epochs=epochs, max_t=max_t, levels=levels),
            reduction_factor=search.reduction_factor,
        )
    wrapped: TrialScheduler = FinishWarmStarts(inner)
    return KeepBudget(wrapped, budget) if budget is not None else wrapped


__all__ = ["Delegating", "FinishWarmStarts", "KeepBudget", "grace_t", "make_scheduler", "time_budget"]
