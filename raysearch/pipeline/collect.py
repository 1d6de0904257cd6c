"""Collecting a launched search: the run directory read back into trial records, what the
search cost, ``search_summary.json`` written with the outcome, and the
:class:`~raysearch.rundir.outcomes.SearchResult`.
"""

from __future__ import annotations

import time
from typing import Any

from raysearch.pipeline.launch import Launched
from raysearch.pipeline.plan import SearchPlan
from raysearch.rundir.outcomes import SearchResult
from raysearch.rundir.records import TrialRecord
from raysearch.rundir.results import RunInfo, best_trial, finished_runs, load_run
from raysearch.rundir.storage import is_uri
from raysearch.rundir.summary import read_summary, write_summary
from trainables.labels import describe
from trainables.status import Status


def search_cost(run: RunInfo) -> tuple[int, float, float]:
    """(backprops, train seconds, trial seconds incl. evaluation) of the trials this search ran
    (reused ones cost this search nothing)."""
    backprops = seconds = with_eval = 0.0
    for trial in run.trials:
        if trial.stage == "reused":
            continue
        backprops += trial.spent_backprops
        train = trial.metrics.get("trial_train_seconds", trial.metrics.get("train_seconds", 0)) or 0
        seconds += float(train)
        with_eval += float(train) + float(trial.metrics.get("trial_eval_seconds", trial.metrics.get("eval_seconds", 0))
                                          or 0)
    return int(backprops), seconds, with_eval


def collect(plan: SearchPlan, launched: Launched, progress: bool = True) -> SearchResult:
    """Read the run back, write ``search_summary.json`` once with the outcome and return the result."""
    from raysearch.tuning.objective import pareto_front

    wall = time.monotonic() - plan.start
    interrupted = launched.interrupted
    run, trials = None, []
    if not is_uri(plan.run_dir):
        run = load_run(plan.run_dir, allow_empty=True, interrupted=interrupted)
        trials = run.trials
        # a trial left cut short (by an earlier Ctrl-C that a resume did not reach) is unfinished work too
        interrupted = interrupted or any(t.status == Status.INTERRUPTED for t in trials)
    best = best_trial(trials)
    pareto: list[str] = []
    if plan.experiment.train_config.objective == "pareto":
        done = finished_runs(trials)
        pareto = [done[i].trial_id for i in pareto_front([t.metrics for t in done])]
    cost = search_cost(run) if run else (0, 0.0, 0.0)
    summary: dict[str, Any] = {}
    if not is_uri(plan.run_dir):
        summary = write_summary(plan.run_dir, _outcome(plan, launched, cost, trials, best, interrupted, wall))
    trial_seconds = cost[2]
    return SearchResult(plan.run_dir, trials, best, wall, trial_seconds, plan.concurrency,
                        plan.cost.reference_backprops, pareto, launched.startup_seconds, interrupted, summary)


def _outcome(plan: SearchPlan, launched: Launched, cost: tuple[int, float, float], trials: list[TrialRecord],
             best: TrialRecord | None, interrupted: bool, wall: float) -> dict[str, Any]:
    """The summary's keys for how the search ended and what it cost."""
    backprops, train_seconds, _ = cost
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
    chosen = {}
    if best is not None and plan.cost.reference_backprops and not plan.resume:
        chosen = {"chosen_trial": best.trial_id, "chosen_label": describe(best.config), "chosen_by": "validation",
                  "chosen_cost_ratio": round(best.metric("backprops") / plan.cost.reference_backprops, 4)}
    return {
        "state": "interrupted" if interrupted else "finished", "trials": len(trials), "statuses": counts,
        "search_backprops": backprops, "search_train_seconds": round(train_seconds, 3),
        "search_wall_seconds": round(wall, 3), "startup_seconds": round(launched.startup_seconds, 3),
        "concurrency": plan.concurrency, "target_robust_acc": launched.target,
        "confirm_backprops": read_summary(plan.run_dir).get("confirm_backprops", 0),
        "best_trial": best.trial_id if best else None, **chosen,
    }
