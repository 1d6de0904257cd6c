"""The search's Tune stages, each a :class:`~raysearch.tuning.tuner.Stage` built for a
:class:`~raysearch.pipeline.plan.SearchPlan` (or restored from its run directory): the
reference (PGD-10 with the experiment's settings, when the target is its robust accuracy),
the search (Optuna proposes, ASHA stops) and the population (PBT/PB2).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from raysearch._version import __version__
from raysearch.pipeline.inputs import problem_hash
from raysearch.pipeline.plan import SearchPlan
from raysearch.pipeline.reuse import Prior, prior_trials
from raysearch.rundir.experiment import DEFAULT_TRAINABLE
from raysearch.rundir.records import TrialRecord
from raysearch.rundir.storage import is_uri, join
from raysearch.tuning.tuner import INTERRUPT, fit
from trainables.labels import REFERENCE_LABEL

POPULATION_TRAINABLE = "trainables.tune.pbt_member:population_trainable"


def trial_setup(plan: SearchPlan, levels: tuple[tuple[float, float], ...] | None = None) -> Any:
    """What every trial of ``plan`` is handed besides its config (``trainables.trials.setup.TrialSetup``)."""
    from trainables.trials.setup import TrialSetup

    s = plan.experiment.search
    return TrialSetup(gpus_per_trial=plan.request.get("gpu", 0.0), workers=plan.workers,
                      levels=levels or plan.levels, reduction_factor=s.reduction_factor, plugins=plan.plugins,
                      cpus_per_trial=plan.request["cpu"], train_storage=join(plan.run_dir, "train"))


def import_trainable(path: str) -> Callable[..., Any]:
    from trainables.registry import import_object

    return import_object(path, "trainable")  # type: ignore[no-any-return]


def with_setup(plan: SearchPlan, function: Callable[..., Any], setup: Any) -> Any:
    """``function`` as a Tune trainable holding ``setup`` and asking for a trial's resources."""
    from ray import tune

    return tune.with_resources(tune.with_parameters(function, setup=setup), plan.trial_request)


def reference_record(plan: SearchPlan, progress: bool) -> TrialRecord | None:
    """Run (or continue) the reference stage: PGD-10 with the experiment's settings, whose
    finished robust accuracy is the target of ``target_robust_acc: reference``."""
    import search_spaces
    from raysearch.rundir.records import record_from_folder
    from raysearch.tuning.progress import ProgressLines
    from raysearch.tuning.tensorboard import TensorBoardCallback
    from raysearch.tuning.tuner import (
        InterruptWatch,
        Stage,
        build_tuner,
        can_restore,
        restore_tuner,
    )

    cfg = plan.experiment.train_config
    point = next(p for p in search_spaces.warm_starts("baselines", cfg.epsilon) if p.label == REFERENCE_LABEL)
    trainable = with_setup(plan, import_trainable(plan.experiment.trainable), trial_setup(plan, ((1.0, 1.0),)))
    path = join(plan.run_dir, "reference")
    callbacks = [InterruptWatch(), TensorBoardCallback(plan.run_dir)]
    if progress:
        callbacks.append(ProgressLines(1, plan.cost.reference_backprops, stage="reference"))
    if can_restore(path):
        tuner = restore_tuner(path, trainable)
    else:
        # its target is what it will reach: the reference itself trains under the trade-off
        # objective (the study is told its cost_runs, which does not depend on the objective)
        param_space = {**plan.train, **point.config, "objective": "tradeoff", "target_robust_acc": None,
                       "trial.warm_start": REFERENCE_LABEL, "trial.family": "baselines"}
        tuner = build_tuner(Stage("reference", plan.run_dir, trainable, param_space, callbacks=callbacks))
    if progress:
        print(f"[reference] training {REFERENCE_LABEL} first: its robust accuracy is the target", flush=True)
    fit(tuner, plan.run_dir)
    if INTERRUPT.is_set():
        return None
    folders = sorted(Path(path).glob("trial_*"))
    return record_from_folder(folders[0], stage="reference") if folders else None


def search_tuner(plan: SearchPlan, target: float | None, prior: list[Prior], progress: bool) -> Any:
    """The search's Tune run (new or restored)."""
    from raysearch.tuning.budget_limiter import BudgetLimiter
    from raysearch.tuning.progress import ProgressLines
    from raysearch.tuning.scheduler import make_scheduler
    from raysearch.tuning.tensorboard import TensorBoardCallback
    from raysearch.tuning.tuner import InterruptWatch, Stage, build_tuner, restore_tuner

    exp, s = plan.experiment, plan.experiment.search
    cfg = exp.train_config
    function = import_trainable(POPULATION_TRAINABLE if s.population_based and exp.trainable == DEFAULT_TRAINABLE
                                else exp.trainable)
    trainable = with_setup(plan, function, trial_setup(plan))
    if plan.resume:
        return restore_tuner(plan.run_dir, trainable, after_storage_error=storage_failed(plan.run_dir))
    if s.population_based:
        return population_tuner(plan, trainable, target, progress)
    searcher = optuna_searcher(plan, target, prior)
    callbacks: list[Any] = [InterruptWatch(searcher), TensorBoardCallback(time_attr=s.time_attr), *plan.callbacks]
    if progress:
        callbacks.append(ProgressLines(s.samples, plan.cost.reference_backprops, s.budget))
    scheduler = make_scheduler(s, epochs=cfg.epochs, max_t=plan.max_t, levels=len(plan.levels), budget=plan.budget)
    param_space = dict(plan.train)
    if target is not None:
        param_space["target_robust_acc"] = target
    proposer = searcher if plan.budget is None else BudgetLimiter(
        searcher, plan.budget, spent_before=sum(p.record.spent_backprops for p in prior))
    stage = Stage(plan.run_name, plan.storage_path, trainable, param_space, proposer, scheduler, s.samples,
                  plan.concurrency, callbacks)
    return build_tuner(stage)


def optuna_searcher(plan: SearchPlan, target: float | None, prior: list[Prior]) -> Any:
    """The search's Optuna searcher, told the runs it takes instead of training them."""
    from raysearch.rundir.study_store import open_storage
    from raysearch.tuning.objective import metric_names, search_metric
    from raysearch.tuning.searcher import OptunaSearcher, make_sampler

    exp, s = plan.experiment, plan.experiment.search
    cfg = exp.train_config
    metric, mode = search_metric(cfg.objective)
    told = prior_trials(cfg.objective, [*plan.reused, *prior]) + [t for source in plan.sources for t in source.told]
    enqueued = [e for source in plan.sources for e in source.enqueued]
    sampler = make_sampler(s.algorithm, seed=s.seed, multi_objective=isinstance(metric, list), samples=s.samples,
                           fixed_points=len(plan.warm_starts) + len(told) + len(enqueued),
                           startup=s.startup_trials)
    own = s.study_storage is None  # the run directory's optuna.db: this driver is its one writer
    storage = open_storage(plan.study_url, own=own) if plan.study_url else None
    study_attrs = {"problem": problem_hash(exp), "run_name": plan.run_name, "experiment": exp.name,
                   "dataset": cfg.dataset, "model": cfg.model, "epsilon": cfg.epsilon,
                   "epochs": cfg.epochs, "objective": cfg.objective, "space": s.space,
                   "reference_backprops": plan.cost.reference_backprops, "time_attr": s.time_attr,
                   "raysearch_version": __version__, "target_robust_acc": target}
    return OptunaSearcher(
        plan.space, metric=metric, mode=mode, sampler=sampler, study_name=plan.study, storage=storage,
        step_attr=s.time_attr, warm_starts=[(p.label, p.params) for p in plan.warm_starts], enqueue=enqueued,
        metric_names=metric_names(cfg.objective, cfg.cost_weight), study_attrs=study_attrs,
        space_name=s.space, prior=told, target=target if cfg.objective == "target" else None)


def population_tuner(plan: SearchPlan, trainable: Any, target: float | None, progress: bool) -> Any:
    """A population-based search's Tune run (see :mod:`raysearch.tuning.population`)."""
    from raysearch.tuning.population import (
        make_population_scheduler,
        make_population_searcher,
        population_space,
    )
    from raysearch.tuning.progress import ProgressLines
    from raysearch.tuning.tensorboard import TensorBoardCallback
    from raysearch.tuning.tuner import InterruptWatch, Stage, build_tuner

    s, cfg = plan.experiment.search, plan.experiment.train_config
    callbacks: list[Any] = [InterruptWatch(), TensorBoardCallback(time_attr="epoch")]
    if progress:
        callbacks.append(ProgressLines(s.population, plan.cost.reference_backprops, stage="population"))
    param_space = population_space(plan.train, cfg.epsilon)
    if target is not None:
        param_space["target_robust_acc"] = target
    # Random initial members (Tune's own generator: it runs as many at once as there are slots);
    # checkpoints kept for every member, so the one a member exploits is never deleted first.
    stage = Stage(plan.run_name, plan.storage_path, trainable, param_space, make_population_searcher(s.seed),
                  make_population_scheduler(s, cfg.epsilon), s.population, None, callbacks,
                  keep_checkpoints=s.population + 1)
    return build_tuner(stage)


def storage_failed(run_dir: str) -> bool:
    """Whether a trial of the run crashed because the storage failed (a full disk)."""
    from trainables.trials.faults import storage_words

    if is_uri(run_dir):
        return False
    for path in Path(run_dir).glob("trial_*/error.txt"):
        if storage_words(path.read_text(errors="replace")):
            return True
    return False
