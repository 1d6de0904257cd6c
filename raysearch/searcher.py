"""Optuna through Ray Tune, telling Optuna the truth about trials that ASHA stopped.

Ray's :class:`~ray.tune.search.optuna.OptunaSearch` (Ray 2.60) reports intermediate values
at ``training_iteration`` and, when a trial ends, tells Optuna ``COMPLETE`` with whatever the
last result said -- also for a trial the scheduler stopped after a fraction of its budget.
TPE then learns from partial-budget scores as if they were final (SPEC §8 forbids this).
Two details of Tune's controller matter here:

* the result on which the scheduler decides STOP is *not* passed to ``on_trial_result``,
  and Tune sets ``done=True`` on it, so ``done`` cannot tell "finished" from "stopped";
* ``on_trial_complete`` then receives that last result.

:class:`PruneAwareOptunaSearch` therefore reports every intermediate value at the
scheduler's time axis (``step_attr``: ``backprops`` or ``epoch``) as results arrive, and on
completion decides the Optuna state from the trainable's own ``status`` metric:

* ``completed`` (ran its whole budget) -> COMPLETE with its final value;
* ``diverged`` / ``catastrophic_overfitting`` -> COMPLETE with its (penalized) value: the
  trial stopped *itself* because the recipe is bad, which is a real, full answer for that
  configuration, not a budget cut by the scheduler, and TPE should learn to avoid it;
* ``running`` (stopped from outside: ASHA, a stopper, the end of the experiment) -> PRUNED,
  after reporting the stopping result as its last intermediate value (Optuna ranks a pruned
  trial by its last intermediate value);
* an error (after Tune's retry) -> FAIL.

The study can live in an Optuna storage (``sqlite:///<run_dir>/optuna.db``; OptunaSearch in
2.60 accepts ``storage`` and ``study_name`` and creates the study with
``load_if_exists=True``), so the study outlives the driver and can be inspected with Optuna's
own tools. Tune pickles the searcher into the experiment directory (``searcher-state-*.pkl``)
on every experiment checkpoint; with an RDB storage the pickle reconnects by URL.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from raysearch.results import FINAL_STATUSES

logger = logging.getLogger(__name__)

# A trial's last metrics kept as Optuna user attributes.
OUTCOME_METRICS = ("robust_acc", "clean_acc", "backprops", "train_seconds")


def make_sampler(algorithm: str | None, *, seed: int, multi_objective: bool = False,
                 samples: int = 16) -> optuna.samplers.BaseSampler:
    """A seeded Optuna sampler: multivariate TPE (default), NSGA-II (default for pareto) or random.

    ``group=True`` lets multivariate TPE model each conditional sub-space of a define-by-run
    space jointly (without it, TPE falls back to independent sampling for parameters that
    are not in every trial). ``n_startup_trials`` shrinks for small budgets so TPE starts
    modelling after about a third of the trials (warm-start points count as startup trials).
    """
    algorithm = algorithm or ("nsga2" if multi_objective else "tpe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if algorithm == "tpe":
            return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed, constant_liar=True,
                                              n_startup_trials=max(4, min(10, samples // 3)))
        if algorithm == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, samples // 3)), seed=seed)
        if algorithm == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown search algorithm {algorithm!r}")


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that reports at the scheduler's time axis and tells stopped trials PRUNED.

    Args:
        space: define-by-run function (``trial -> dict of constants | None``).
        metric, mode: one metric and mode, or lists of them for a multi-objective study
            (Optuna's ``Trial.report`` is single-objective only, so a multi-objective study
            gets no intermediate values; stopped trials are still told PRUNED).
        step_attr: result key used as the Optuna step (ASHA's ``time_attr``).
        storage: an Optuna storage or a database URL (``sqlite:///run/optuna.db``);
            None keeps the study in memory (Tune's searcher checkpoint then carries it).
        study_name: the study's name in ``storage`` (the run name).
    """

    def __init__(self, space: Callable[[optuna.Trial], dict[str, Any] | None], *,
                 metric: str | list[str], mode: str | list[str], step_attr: str = "training_iteration",
                 points_to_evaluate: list[dict[str, Any]] | None = None,
                 sampler: optuna.samplers.BaseSampler | None = None,
                 storage: optuna.storages.BaseStorage | str | None = None,
                 study_name: str | None = None, seed: int | None = None) -> None:
        if isinstance(storage, str):
            storage = optuna.storages.RDBStorage(storage)
        self._step_attr = step_attr
        self._reported_steps: dict[str, int] = {}
        super().__init__(space, metric=metric, mode=mode, points_to_evaluate=points_to_evaluate,
                         sampler=sampler, study_name=study_name, storage=storage, seed=seed)

    @property
    def study(self) -> optuna.Study:
        return self._ot_study  # type: ignore[return-value]  # set in OptunaSearch.__init__

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = super().suggest(trial_id)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and "ray_trial_id" not in ot_trial.user_attrs:
            ot_trial.set_user_attr("ray_trial_id", trial_id)  # find Tune's trial in the study
        return config

    def _multi_objective(self) -> bool:
        return isinstance(self.metric, list)

    def _report(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """Report ``result[metric]`` at step ``result[step_attr]`` once per step."""
        if self._multi_objective():
            return
        ot_trial = self._ot_trials.get(trial_id)
        value, step = result.get(self.metric), result.get(self._step_attr)
        if ot_trial is None or value is None or step is None or not math.isfinite(float(value)):
            return
        step = int(step)
        last = self._reported_steps.get(trial_id)
        if last is not None and step <= last:  # Tune repeats the last result when a function returns
            return
        try:
            ot_trial.report(float(value), step)
        except Exception as exc:  # e.g. the trial was already finished in a shared storage
            logger.warning("Optuna did not take an intermediate value for trial %s: %s", trial_id, exc)
            return
        self._reported_steps[trial_id] = step

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self._completed_trials:
            return
        self._report(trial_id, result)

    def outcome(self, result: Mapping[str, Any] | None, error: bool = False) -> tuple[TrialState, Any]:
        """The Optuna state and value(s) to tell for a trial that ended with ``result``."""
        if error:
            return TrialState.FAIL, None
        if not result:
            return TrialState.PRUNED, None  # removed before it reported anything
        status = result.get("status")
        if status is not None:
            finished = status in FINAL_STATUSES  # the trainable ended it; else someone stopped it
        else:  # a trainable without the status metric: compare epochs with its budget
            epoch, epochs = result.get("epoch"), result.get("config/epochs")
            finished = epoch is None or epochs is None or epoch >= epochs
        if not finished:
            return TrialState.PRUNED, None
        metrics = self.metric if self._multi_objective() else [self.metric]
        raw = [result.get(m) for m in metrics]
        if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in raw):
            return TrialState.FAIL, None
        values = [float(v) for v in raw]  # type: ignore[arg-type]  # checked just above
        return TrialState.COMPLETE, values if self._multi_objective() else values[0]

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        state, values = self.outcome(result, error)
        if result and state != TrialState.FAIL:
            # The result on which the scheduler said STOP (also at max_t, a trial's last
            # epoch) never reached on_trial_result: record it as the last intermediate value.
            self._report(trial_id, result)
        if result:
            self._record_outcome_metrics(trial_id, result)
        try:
            self.study.tell(self._ot_trials[trial_id], values, state=state)
        except Exception as exc:  # already finished (a resumed run re-completing a trial)
            logger.warning("Optuna did not take the outcome of trial %s: %s", trial_id, exc)
        self._completed_trials.add(trial_id)
        self._reported_steps.pop(trial_id, None)

    def _record_outcome_metrics(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """Keep the trade-off's two sides as user attributes, so Optuna's own plots
        (``plot_pareto_front(study, targets=...)``) work on a single-objective study too."""
        ot_trial = self._ot_trials[trial_id]
        for key in OUTCOME_METRICS:
            value = result.get(key)
            if isinstance(value, (int, float)) and math.isfinite(float(value)):
                try:
                    ot_trial.set_user_attr(key, float(value))
                except Exception as exc:  # a finished trial in a shared storage
                    logger.warning("Optuna did not take %s for trial %s: %s", key, trial_id, exc)
                    return

    def restore(self, checkpoint_path: str) -> None:
        """Restore Tune's searcher checkpoint, then reconcile it with a persistent study.

        With an RDB storage the database is newer than the checkpoint: a driver killed after
        the last experiment checkpoint may have asked Optuna for trials that Tune never
        recorded. They would stay RUNNING forever (and, with constant-liar TPE, bias
        sampling), so they are told FAIL; a lost warm-start point is enqueued again.
        """
        super().restore(checkpoint_path)
        self._reported_steps = getattr(self, "_reported_steps", {})
        known = {t._trial_id for t in self._ot_trials.values()}
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen._trial_id in known:
                continue
            self.study.tell(frozen.number, state=TrialState.FAIL)
            fixed = frozen.system_attrs.get("fixed_params")
            if fixed:
                self.study.enqueue_trial(fixed)
