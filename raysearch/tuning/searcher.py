"""Optuna behind Ray Tune's ``Searcher`` interface, through Optuna's public ask/tell API.

Ray's ``OptunaSearch`` (2.60) reports intermediate values at ``training_iteration`` and, when
a trial ends, tells Optuna ``COMPLETE`` with whatever the last result said -- also for a trial
the scheduler stopped after a fraction of its budget, so TPE would learn from partial-budget
scores as if they were final (SPEC §8 forbids this). :class:`OptunaSearcher` is a small
``Searcher`` of its own around an :class:`optuna.Study` that

* asks Optuna for a trial, runs the define-by-run space on it and hands Tune a config of
  training keys only (Optuna's own ``optuna.*`` parameter names are dropped here, once) plus
  the search's per-trial controls ``trial.family`` and ``trial.warm_start``;
* evaluates the papers' defaults first (``study.enqueue_trial`` with their label as a user
  attribute, so they are told apart from a later identical suggestion);
* reports every intermediate value at the scheduler's time axis (``step_attr``: the fidelity
  level, backprops or epoch), once per step;
* decides the Optuna state of an ended trial from the trainable's own ``status`` metric:
  ended by itself (``completed``, ``diverged``, ``catastrophic_overfitting``) -> COMPLETE;
  stopped from outside (the scheduler, the budget) -> PRUNED, its last intermediate value
  standing for it; an error after its retry (or ``failed``) -> FAIL; a trial cut short by an
  interrupted search is not told at all, so ``--resume`` continues it;
* with ``objective: target`` gives Optuna the cost as the value and the shortfall
  ``target − robust_acc`` as a constraint (``Trial.set_constraint``, which Optuna 5's TPE and
  NSGA-II read), so a trial under the target is recorded infeasible;
* names the objective(s) (``study.set_metric_names``), describes the experiment in study user
  attributes and gives every trial its config under the names TensorBoard uses
  (``config.<key>``), its recipe label and its Tune id (``ray_trial_id``).

The budget is not its business: :class:`~raysearch.tuning.budget_limiter.BudgetLimiter` wraps
it (or any searcher) and stops asking for trials once the budget is committed.

The study lives in an Optuna storage (``sqlite:///<run_dir>/optuna.db``) when the run
directory is local, so it outlives the driver and can be opened with Optuna's own tools; Tune
pickles the searcher into the experiment directory on every experiment checkpoint.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from raysearch.rundir.study_store import set_user_attrs
from search_spaces import family_of, strip_search_keys
from trainables.labels import describe
from trainables.status import Status
from trainables.trials.setup import TRIAL_PREFIX

logger = logging.getLogger(__name__)

# A trial's last metrics kept as Optuna user attributes.
OUTCOME_METRICS = ("robust_acc", "clean_acc", "backprops", "train_seconds", "cost_runs", "trial_backprops", "level")
CONFIG_ATTR = "config."


TARGET_CONSTRAINT = "target"  # the constraint's key: target − robust_acc (≤ 0 feasible)


def target_shortfall(result: Mapping[str, Any], target: float) -> float:
    """``target − robust_acc`` of a result (1.0 when nothing was measured: as far as can be)."""
    robust = result.get("robust_acc")
    if not isinstance(robust, (int, float)) or not math.isfinite(robust):
        return 1.0
    return target - float(robust)


def make_sampler(algorithm: str | None, *, seed: int, multi_objective: bool = False, samples: int = 16,
                 fixed_points: int = 0, startup: int | None = None) -> optuna.samplers.BaseSampler:
    """A seeded Optuna sampler: multivariate TPE (default), NSGA-II (default for pareto) or random.

    ``group=True`` lets multivariate TPE model each conditional sub-space of a define-by-run
    space jointly (without it, TPE falls back to independent sampling for parameters that
    are not in every trial). TPE models after ``startup`` random trials (None: a third of
    ``samples``, 4 to 10) that come on top of the ``fixed_points`` (paper defaults run or
    reused, the reference): those are chosen by people, not drawn, so they explore nothing.
    Constraints (``objective: target``) need no sampler argument: Optuna 5 samplers read each
    trial's ``Trial.set_constraint`` values (``constraints_func`` is deprecated there).
    """
    algorithm = algorithm or ("nsga2" if multi_objective else "tpe")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if algorithm == "tpe":
            return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed, constant_liar=True,
                                              n_startup_trials=fixed_points + (
                                                  max(4, min(10, samples // 3)) if startup is None else startup))
        if algorithm == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=max(4, min(50, samples // 3)), seed=seed)
        if algorithm == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown search algorithm {algorithm!r}")


def hparam_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's config as TensorBoard and Optuna show it: the training keys it set."""
    return {k: v for k, v in config.items() if not k.startswith(TRIAL_PREFIX) and k != "data_root"}


class OptunaSearcher(Searcher):
    """Optuna's define-by-run search as a Ray Tune ``Searcher`` (see the module docstring).

    Args:
        space: define-by-run function (``trial -> dict of constants | None``), keys are config keys.
        metric, mode: one metric and mode, or lists of them for a multi-objective study.
        sampler: the Optuna sampler (:func:`make_sampler`).
        study_name, storage: the study's name and an Optuna storage URL (None: in memory).
        step_attr: result key used as the Optuna step (the scheduler's ``time_attr``).
        warm_starts: (label, parameters) of the papers' defaults, evaluated first.
        metric_names: names of the objective(s) in the study (``study.set_metric_names``).
        study_attrs: user attributes of the study (the experiment, dataset, model, ε, ...).
        space_name: the search space, for the trials' ``trial.family`` control.
        prior: (parameters, value, user attributes) of trials that finished elsewhere (paper
            defaults reused from an earlier run), told to a new study before anything else.
        target: ``objective: target``'s robust accuracy; each told trial gets the constraint
            ``target − robust_acc``.
        enqueue: (parameters, user attributes) of earlier studies' best recipes on a related
            problem, suggested right after the warm starts (``search.warm_start_from``).
    """

    def __init__(self, space: Callable[[optuna.Trial], dict[str, Any] | None], *,
                 metric: str | list[str], mode: str | list[str],
                 sampler: optuna.samplers.BaseSampler | None = None, study_name: str = "raysearch",
                 storage: str | None = None, step_attr: str = "training_iteration",
                 warm_starts: Sequence[tuple[str, dict[str, Any]]] = (),
                 metric_names: Sequence[str] | None = None, study_attrs: Mapping[str, Any] | None = None,
                 space_name: str = "all",
                 prior: Sequence[tuple[dict[str, Any], Any, dict[str, Any]]] = (), target: float | None = None,
                 enqueue: Sequence[tuple[dict[str, Any], dict[str, Any]]] = ()) -> None:
        super().__init__(metric=metric, mode=mode)  # type: ignore[arg-type]
        self._space, self._step_attr, self._space_name = space, step_attr, space_name
        self._target = target
        directions: list[Any] = [("maximize" if m == "max" else "minimize")
                                 for m in (mode if isinstance(mode, list) else [mode])]
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # raysearch prints its own lines per trial
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler,
                                             directions=directions, load_if_exists=True)
            if metric_names:
                self.study.set_metric_names(list(metric_names))
        fresh = not self.study.get_trials(deepcopy=False)
        for key, value in (study_attrs or {}).items():
            self.study.set_user_attr(key, value)
        if fresh:
            for params, value, attrs in prior:
                add_finished_trial(self.study, space, params, value, attrs, target)
            for label, params in warm_starts:
                self.study.enqueue_trial(params, user_attrs={"warm_start": label})
            for params, attrs in enqueue:
                self.study.enqueue_trial(params, user_attrs=dict(attrs))
        self._trials: dict[str, optuna.Trial] = {}
        self._reported: dict[str, float] = {}
        self._done: set[str] = set()
        self._told_fail: set[str] = set()  # FAIL in the study at restore; told as new trials if Tune continues them
        self.interrupted = False  # set by the driver on Ctrl-C: cut-short trials stay unfinished

    # -- Tune's Searcher interface -------------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              **spec: Any) -> bool:
        return True  # metric and mode come with the constructor; the space is define-by-run

    @property
    def multi_objective(self) -> bool:
        return isinstance(self.metric, list)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # FINISHED is a str
        ot_trial = self.study.ask()
        constants = self._space(ot_trial) or {}
        params = dict(ot_trial.params)
        train = strip_search_keys({**params, **constants})
        controls = {f"{TRIAL_PREFIX}family": family_of(params, self._space_name)}
        label = ot_trial.user_attrs.get("warm_start")
        if label:
            controls[f"{TRIAL_PREFIX}warm_start"] = label
        set_user_attrs(ot_trial, {"ray_trial_id": trial_id, "label": describe(train),
                                  **{CONFIG_ATTR + key: value for key, value in hparam_config(train).items()}})
        self._trials[trial_id] = ot_trial
        return {**train, **controls}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self._told_fail:  # told FAIL by the interrupted search, yet Tune continued it
            self._done.discard(trial_id)
        elif trial_id not in self._done:
            self._report(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id in self._done or trial_id not in self._trials:
            return
        state, values = self.outcome(result, error)
        if state is None:  # cut short by an interrupted search: leave it unfinished for --resume
            return
        constraints = ({TARGET_CONSTRAINT: target_shortfall(result or {}, self._target)}
                       if self._target is not None and state in (TrialState.COMPLETE, TrialState.PRUNED) else {})
        if trial_id in self._told_fail:
            self._tell_as_new(trial_id, state, values, self._outcome_attrs(result or {}), constraints)
            self._done.add(trial_id)
            return
        if result and state != TrialState.FAIL:
            # The result on which the scheduler said STOP never reached on_trial_result.
            self._report(trial_id, result)
        trial = self._trials[trial_id]
        try:
            set_user_attrs(trial, self._outcome_attrs(result or {}))
            for key, value in constraints.items():
                trial.set_constraint(key, value)
            self.study.tell(trial, values, state=state)
        except Exception as exc:  # already finished in a shared storage
            logger.warning("Optuna did not take the outcome of trial %s: %s", trial_id, exc)
        self._done.add(trial_id)

    def _tell_as_new(self, trial_id: str, state: TrialState, values: Any, attrs: dict[str, Any],
                     constraints: dict[str, float]) -> None:
        """A trial whose Optuna trial an interrupted search had told FAIL (0.2 did so on Ctrl-C)
        and that has now ended after ``--resume``: its outcome joins the study as a trial of the
        same parameters and attributes, since Optuna cannot change a finished trial's state
        (the FAIL stays as history). A trial that failed again adds nothing."""
        self._told_fail.discard(trial_id)
        if state == TrialState.FAIL:
            return
        number = self._trials[trial_id].number
        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == number)
        self.study.add_trial(optuna.trial.create_trial(
            state=state, values=values if values is None or isinstance(values, list) else [values],
            params=frozen.params, distributions=frozen.distributions, user_attrs={**frozen.user_attrs, **attrs},
            intermediate_values=frozen.intermediate_values, constraints=constraints or None))

    # -- outcome ---------------------------------------------------------------------------------
    def outcome(self, result: Mapping[str, Any] | None, error: bool = False) -> tuple[TrialState | None, Any]:
        """The Optuna state and value(s) to tell for a trial that ended with ``result``
        (state None: an interrupted search cut it short; tell nothing)."""
        if error:
            return TrialState.FAIL, None
        status = Status.of(result.get("status"), Status.RUNNING) if result else Status.RUNNING
        if result and "status" not in result:  # a trainable without the status metric: its epochs tell
            epoch, epochs = result.get("epoch"), result.get("config/epochs")
            status = Status.COMPLETED if epoch is None or epochs is None or epoch >= epochs else Status.RUNNING
        if status == Status.FAILED:
            return TrialState.FAIL, None
        if not status.final:
            if self.interrupted:
                return None, None
            return TrialState.PRUNED, None
        assert result is not None
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        raw = [result.get(m) for m in metrics]
        if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in raw):
            return TrialState.FAIL, None
        values = [float(v) for v in raw]  # type: ignore[arg-type]  # checked just above
        return TrialState.COMPLETE, values if self.multi_objective else values[0]

    def _report(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """Report the scheduler's metric at step ``result[step_attr]``, once per step."""
        if self.multi_objective:
            return  # Optuna's Trial.report is single-objective only
        ot_trial = self._trials.get(trial_id)
        value, step = result.get(self._scheduler_metric()), result.get(self._step_attr)
        if ot_trial is None or value is None or step is None or not math.isfinite(float(value)):
            return
        last = self._reported.get(trial_id)
        if last is not None and float(step) <= last:  # Tune repeats results; fidelity holds between levels
            return
        try:
            ot_trial.report(float(value), int(round(float(step))))
        except Exception as exc:  # e.g. the trial was already finished in a shared storage
            logger.warning("Optuna did not take an intermediate value for trial %s: %s", trial_id, exc)
            return
        self._reported[trial_id] = float(step)

    def _scheduler_metric(self) -> str:
        return "objective"  # what the scheduler compares at a rung (one number in every mode)

    @staticmethod
    def _outcome_attrs(result: Mapping[str, Any]) -> dict[str, Any]:
        """The trade-off's two sides and the status, kept as user attributes (Optuna's own plots
        work on a single-objective study too; the target constraint reads ``robust_acc``)."""
        attrs: dict[str, Any] = {}
        for key in (*OUTCOME_METRICS, "status"):
            value = result.get(key)
            if key == "status" and isinstance(value, str):
                attrs[key] = value
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
                attrs[key] = float(value)
        return attrs

    # -- Tune's checkpointing --------------------------------------------------------------------
    def save(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def _study_where(self) -> None:
        """Re-open the study on the run directory's own ``optuna.db`` where the run directory
        is now, when it was moved or copied since the checkpoint (the search resolved that:
        :func:`~raysearch.rundir.study_store.own_study`); the copy holds the same rows."""
        from raysearch.rundir.study_store import OwnStudyStorage, open_storage, recall

        storage = self.study._storage  # a 0.2 pickle holds Optuna's own cached RDB storage
        url = getattr(storage, "url", None) or getattr(getattr(storage, "_backend", None), "url", None)
        if not url or recall(url) == url:
            return
        own = isinstance(getattr(storage, "_backend", storage), OwnStudyStorage)
        self.study = optuna.load_study(study_name=self.study.study_name, storage=open_storage(recall(url), own=own),
                                       sampler=self.study.sampler, pruner=self.study.pruner)
        # optuna.Trial keeps its study and its row id (_trial_id): the copy has the same rows
        self._trials = {tid: optuna.trial.Trial(self.study, trial._trial_id) for tid, trial in self._trials.items()}

    def restore(self, checkpoint_path: str) -> None:
        """Restore Tune's searcher checkpoint, then reconcile it with a persistent study.

        With an RDB storage the database is newer than the checkpoint: a driver killed after
        the last experiment checkpoint may have asked Optuna for trials that Tune never
        recorded. They would stay RUNNING forever (and, with constant-liar TPE, bias
        sampling), so they are told FAIL; a lost warm-start point is enqueued again. A trial the
        interrupted search had told FAIL (0.2 did on Ctrl-C) that Tune continues is running again
        at its first result, and its outcome is told as a new trial (:meth:`_tell_as_new`).
        """
        import pickle

        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
        self.interrupted = False
        self._study_where()
        failed = {t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
        self._told_fail = {tid for tid, trial in self._trials.items() if trial.number in failed}
        known = {t.number for t in self._trials.values()}
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.number in known:
                continue
            self.study.tell(frozen.number, state=TrialState.FAIL)
            label = frozen.user_attrs.get("warm_start")
            if label:
                self.study.enqueue_trial(frozen.params, user_attrs={"warm_start": label})


def add_finished_trial(study: optuna.Study, space: Callable[..., Any], params: dict[str, Any], value: Any,
                       user_attrs: Mapping[str, Any], target: float | None = None) -> None:
    """Tell the study a trial that finished elsewhere (a reused paper default), through the
    public API: enqueue its parameters, ask, run the space (which records the distributions),
    set its attributes and tell its value. The sampler's ``after_trial`` then computes its
    constraints like any other trial's."""
    study.enqueue_trial(params, user_attrs=dict(user_attrs))
    trial = study.ask()
    space(trial)
    if target is not None:
        trial.set_constraint(TARGET_CONSTRAINT, target_shortfall(user_attrs, target))
    study.tell(trial, value)


__all__ = ["OUTCOME_METRICS", "TARGET_CONSTRAINT", "target_shortfall", "OptunaSearcher", "add_finished_trial", "hparam_config", "make_sampler"]
