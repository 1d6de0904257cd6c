"""The search budget as a searcher wrapper: no new trial once the budget is committed, whatever
searcher proposes them (as Ray Tune's ``ConcurrencyLimiter`` caps how many run at once).

The ledger, in backprops: what every trial has spent (``trial_backprops``: all its fidelity
levels so far), what each running trial is still planned to spend (its remaining levels by the
cost model, fixed when it was suggested), and what the search spent before the searcher
started (the reference run of ``target_robust_acc: reference``). A new trial starts only when
its costliest possible first level still fits (:meth:`~raysearch.tuning.budget.Budget.fits`);
otherwise the limiter answers None (wait: a running trial may be stopped early and free its
plan) while trials run, and FINISHED once none does. Each decision is O(running trials): the
plans are computed once per trial, not on every suggestion.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher

from raysearch.rundir.records import spent_in
from raysearch.tuning.budget import Budget
from raysearch.tuning.searcher import hparam_config
from trainables.trials.setup import TRIAL_PREFIX

BEFORE = "(before the search)"  # the ledger's line for a stage that ran before the searcher


class BudgetLimiter(Searcher):
    """``searcher``'s suggestions while ``budget`` allows another trial (see the module docstring).

    Args:
        searcher: the searcher that proposes trials (Optuna's, a fixed list, any Tune searcher).
        budget: ``search.budget`` / ``search.budget_seconds`` with the cost model.
        spent_before: backprops this search spent before the searcher started.
    """

    def __init__(self, searcher: Searcher, budget: Budget, spent_before: float = 0.0) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher, self.budget = searcher, budget
        self.spent: dict[str, tuple[float, float]] = {}  # trial id -> (backprops, train seconds)
        if spent_before:
            self.spent[BEFORE] = (float(spent_before), 0.0)
        self.planned: dict[str, float] = {}  # trial id -> backprops through every level it will run
        self.running: set[str] = set()
        self.adopt = False  # a 0.2 searcher's own ledger to take over (limit_legacy_budget)

    # -- Tune's Searcher interface, passed through -----------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # FINISHED is a str
        self._adopt()
        if trial_id not in self.planned and not self.allows_another():
            return Searcher.FINISHED if not self.running else None
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self.planned[trial_id] = self.plan(config)
            self.running.add(trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._adopt()
        self._track(trial_id, result)
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self._adopt()
        if result:
            self._track(trial_id, result)
        self.running.discard(trial_id)
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    # -- the ledger ------------------------------------------------------------------------------
    def plan(self, config: dict[str, Any]) -> float:
        """A trial's planned backprops: every level, from the last for a paper default."""
        cost = self.budget.cost
        start = len(cost.levels) - 1 if config.get(f"{TRIAL_PREFIX}warm_start") else 0
        return float(cost.trial_backprops(hparam_config(config), start)) if config else 0.0

    def _track(self, trial_id: str, result: dict[str, Any]) -> None:
        backprops, seconds = spent_in(result)
        if isinstance(backprops, (int, float)):
            self.spent[trial_id] = (float(backprops), seconds)

    def spent_backprops(self) -> float:
        """Backprops on the ledger: every trial started, all levels, and the stage before."""
        return sum(b for b, _ in self.spent.values())

    def allows_another(self) -> bool:
        """Whether a new trial's costliest first level fits beside what is spent and committed."""
        spent = self.spent_backprops()
        seconds = sum(s for _, s in self.spent.values())
        committed = sum(max(0.0, self.planned[t] - self.spent.get(t, (0.0, 0.0))[0]) for t in self.running)
        return self.budget.fits(spent, seconds, committed, self.budget.first_level)

    # -- Tune's checkpointing: as for ConcurrencyLimiter, Tune saves a wrapper's state (the ledger)
    # beside its wrapped searcher's own checkpoint -------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        return {"spent": dict(self.spent), "planned": dict(self.planned), "running": set(self.running),
                "adopt": self.adopt}

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)

    def _adopt(self) -> None:
        """Take over the ledger of a wrapped 0.2 ``OptunaSearcher``, which counted the budget
        itself (``_spent``, the configs it handed out, the trials it was told had ended); Tune
        restores that searcher's checkpoint after wrapping, so this runs at the first call."""
        if not self.adopt:
            return
        self.adopt = False
        old = self.searcher.__dict__
        self.spent = dict(old.get("_spent", {}))
        configs: dict[str, dict[str, Any]] = old.get("_configs", {})
        self.planned = {trial_id: self.plan(config) for trial_id, config in configs.items()}
        self.running = set(configs) - set(old.get("_done", ()))


def limit_legacy_budget(searcher: Any) -> Any:
    """A searcher unpickled from a run directory written before the budget became a wrapper
    (0.2's ``OptunaSearcher`` held ``_budget`` itself), wrapped so that its budget still holds
    after ``--resume``; any other searcher as it is."""
    budget = getattr(searcher, "_budget", None)
    if isinstance(searcher, BudgetLimiter) or not isinstance(budget, Budget):
        return searcher
    limiter = BudgetLimiter(searcher, budget)
    limiter.adopt = True
    return limiter


__all__ = ["BEFORE", "BudgetLimiter", "limit_legacy_budget"]
