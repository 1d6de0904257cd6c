"""OptunaSearcher: Optuna states, intermediate values, warm starts, constraints, the budget and
the names a user sees, driven without Ray running."""

from __future__ import annotations

import pickle
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from raysearch.tuning.budget import Budget, CostModel
from raysearch.tuning.budget_limiter import BudgetLimiter, limit_legacy_budget
from raysearch.tuning.searcher import TARGET_CONSTRAINT, OptunaSearcher, hparam_config, make_sampler
from trainables.trials.setup import TRIAL_PREFIX


def space(trial: optuna.Trial) -> dict[str, Any]:
    method = trial.suggest_categorical("method", ["pgd", "free"])
    if method == "pgd":
        trial.suggest_int("k", 1, 10)
    return {"schedule": "constant"}


def result(epoch: int, objective: float, status: str = "running", per_epoch: int = 100) -> dict[str, Any]:
    return {"epoch": epoch, "backprops": epoch * per_epoch, "objective": objective, "robust_acc": 1 - objective,
            "status": status, "training_iteration": epoch}


def make(tmp_path=None, **kwargs: Any) -> OptunaSearcher:
    storage = f"sqlite:///{tmp_path}/optuna.db" if tmp_path else None
    kwargs.setdefault("metric", "objective")
    kwargs.setdefault("mode", "min")
    return OptunaSearcher(space, step_attr="backprops", sampler=make_sampler("tpe", seed=0),
                          storage=storage, study_name="unit", space_name="baselines", **kwargs)


def test_scheduler_stopped_trial_is_pruned_with_intermediate_values() -> None:
    searcher = make()
    assert searcher.suggest("a")["schedule"] == "constant"
    searcher.on_trial_result("a", result(1, 0.9))
    searcher.on_trial_result("a", result(2, 0.8))
    # ASHA's STOP result never reaches on_trial_result; Tune marks it done=True.
    searcher.on_trial_complete("a", {**result(3, 0.7), "done": True})
    trial = searcher.study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert trial.intermediate_values == {100: 0.9, 200: 0.8, 300: 0.7}
    assert trial.value == pytest.approx(0.7)  # Optuna ranks a pruned trial by its last value


def test_completed_trial_is_complete_and_duplicate_results_are_ignored() -> None:
    searcher = make()
    searcher.suggest("a")
    searcher.on_trial_result("a", result(1, 0.9))
    searcher.on_trial_result("a", result(2, 0.6, "completed"))
    searcher.on_trial_result("a", result(2, 0.6, "completed"))  # Tune's duplicate final result
    searcher.on_trial_complete("a", result(2, 0.6, "completed"))
    trial = searcher.study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.value == pytest.approx(0.6)
    assert trial.intermediate_values == {100: 0.9, 200: 0.6}
    # the trade-off's sides are kept for Optuna's own plots
    assert trial.user_attrs["robust_acc"] == pytest.approx(0.4) and trial.user_attrs["backprops"] == 200.0


@pytest.mark.parametrize("status", ["diverged", "catastrophic_overfitting"])
def test_self_stopped_trials_complete_with_their_penalized_value(status: str) -> None:
    searcher = make()
    searcher.suggest("a")
    searcher.on_trial_result("a", result(1, 0.9))
    searcher.on_trial_complete("a", result(2, 10.0, status))
    trial = searcher.study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.value == pytest.approx(10.0)


def test_errored_and_never_started_trials() -> None:
    searcher = make()
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.suggest("c")
    searcher.on_trial_result("a", result(1, 0.9))
    searcher.on_trial_complete("a", error=True)
    searcher.on_trial_complete("b")  # stopped while pending
    searcher.on_trial_complete("c", {"status": "failed", "failed_before": True})  # failed before a resume
    states = [t.state for t in searcher.study.trials]
    assert states == [TrialState.FAIL, TrialState.PRUNED, TrialState.FAIL]
    searcher.on_trial_complete("a", result(1, 0.9, "completed"))  # a second completion is ignored
    assert searcher.study.trials[0].state == TrialState.FAIL


def test_interrupted_search_leaves_cut_short_trials_unfinished() -> None:
    searcher = make()
    searcher.suggest("a")
    searcher.on_trial_result("a", result(1, 0.9))
    searcher.interrupted = True  # the driver's Ctrl-C watch says so
    searcher.on_trial_complete("a", result(1, 0.9))
    assert searcher.study.trials[0].state == TrialState.RUNNING  # --resume continues it


def test_missing_status_falls_back_to_epoch_budget() -> None:
    searcher = make()
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", {"epoch": 2, "backprops": 200, "objective": 0.5, "config/epochs": 4})
    searcher.on_trial_complete("b", {"epoch": 4, "backprops": 400, "objective": 0.4, "config/epochs": 4})
    assert [t.state for t in searcher.study.trials] == [TrialState.PRUNED, TrialState.COMPLETE]


def test_warm_start_points_are_suggested_first_and_marked() -> None:
    searcher = make(warm_starts=[("PGD-10", {"method": "pgd", "k": 10}), ("Free", {"method": "free"})])
    first, second, third = searcher.suggest("a"), searcher.suggest("b"), searcher.suggest("c")
    assert first == {"method": "pgd", "k": 10, "schedule": "constant", f"{TRIAL_PREFIX}family": "baselines",
                     f"{TRIAL_PREFIX}warm_start": "PGD-10"}
    assert second[f"{TRIAL_PREFIX}warm_start"] == "Free" and second["method"] == "free"
    assert f"{TRIAL_PREFIX}warm_start" not in third  # a sampled trial, even if it repeats a default


def test_trials_carry_their_config_label_and_tune_id_and_the_study_its_names(tmp_path) -> None:
    searcher = make(tmp_path, warm_starts=[("PGD-10", {"method": "pgd", "k": 10})],
                    metric_names=["objective = 1 - robust acc + 0.1 * cost"],
                    study_attrs={"experiment": "demo", "dataset": "digits", "epsilon": 0.1})
    searcher.suggest("a")
    study = optuna.load_study(study_name="unit", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert study.metric_names == ["objective = 1 - robust acc + 0.1 * cost"]
    assert study.user_attrs == {"experiment": "demo", "dataset": "digits", "epsilon": 0.1}
    attrs = study.trials[0].user_attrs
    assert attrs["ray_trial_id"] == "a" and attrs["warm_start"] == "PGD-10"
    assert attrs["config.method"] == "pgd" and attrs["config.k"] == 10 and attrs["config.schedule"] == "constant"
    assert attrs["label"] == "PGD, K=10"


def test_a_trial_under_the_target_is_recorded_infeasible() -> None:
    searcher = make(metric="cost_runs", target=0.5)
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", {**result(2, 0.7, "completed"), "robust_acc": 0.3, "cost_runs": 0.2})
    searcher.on_trial_complete("b", {**result(2, 0.4, "completed"), "robust_acc": 0.6, "cost_runs": 0.9})
    a, b = searcher.study.trials
    assert a.constraints == {TARGET_CONSTRAINT: pytest.approx(0.2)}  # 0.5 - 0.3 > 0: infeasible
    assert b.constraints == {TARGET_CONSTRAINT: pytest.approx(-0.1)}
    assert a.value == pytest.approx(0.2) and b.value == pytest.approx(0.9)  # the cost is the value
    assert searcher.study.best_trial.number == b.number  # Optuna skips the infeasible cheaper one


def _budget(limit: float = 500) -> tuple[CostModel, Budget]:
    # 100 examples, batch 10: 10 batches per epoch, 2 epochs; one level; PGD-10 costs 220 backprops.
    cost = CostModel(train_size=100, batch_size=10, max_batches=0, epochs=2, levels=((1.0, 1.0),),
                     base=(("epochs", 2), ("batch_size", 10)))
    return cost, Budget(cost, limit=limit, first_level=220)


def test_the_budget_stops_new_trials_once_committed() -> None:
    cost, budget = _budget()
    searcher = BudgetLimiter(make(), budget)
    configs = [searcher.suggest(t) for t in "abc"]  # seed 0: Free, PGD K=5, PGD K=9
    assert [hparam_config(c) for c in configs] == [{"method": "free", "schedule": "constant"},
                                                   {"method": "pgd", "k": 5, "schedule": "constant"},
                                                   {"method": "pgd", "k": 9, "schedule": "constant"}]
    # each planned once, by the cost model: backprops per batch x 10 batches x 2 epochs
    assert searcher.planned == {"a": 80, "b": 120, "c": 200} == {
        t: cost.trial_backprops(hparam_config(c)) for t, c in zip("abc", configs, strict=True)}
    # c fitted (80 + 120 committed + 220 for a new first level <= 500); d does not: it waits
    assert searcher.suggest("d") is None and len(searcher.searcher.study.trials) == 3
    for trial_id, spent in (("a", 80), ("b", 120)):
        searcher.on_trial_complete(trial_id, {**result(2, 0.5, "completed"), "trial_backprops": spent})
        assert searcher.suggest("d") is None  # c's 200 still committed: 400 + 220 > 500
    searcher.on_trial_complete("c", {**result(2, 0.5, "completed"), "trial_backprops": 200})
    assert searcher.spent_backprops() == 400
    assert searcher.suggest("d") == "FINISHED"  # nothing running and no room for a first level: over
    assert len(searcher.searcher.study.trials) == 3  # Optuna was asked for no more


def test_the_budget_counts_the_stage_before_and_frees_what_a_stopped_trial_did_not_spend() -> None:
    cost, budget = _budget(limit=700)
    searcher = BudgetLimiter(make(), budget, spent_before=220)  # the reference, trained first
    first = searcher.suggest("a")
    plan = cost.trial_backprops(hparam_config(first))
    assert searcher.spent_backprops() == 220 and searcher.allows_another() == (220 + plan + 220 <= 700)
    searcher.on_trial_result("a", {**result(1, 0.9), "trial_backprops": 10})
    searcher.on_trial_complete("a", {**result(1, 0.9), "trial_backprops": 10})  # stopped after 10 backprops
    assert searcher.running == set() and searcher.spent_backprops() == 230
    assert searcher.allows_another()  # its unspent plan is free again: 230 + 220 <= 700


def _tune_checkpoint(searcher: Any, folder) -> None:
    """What Tune's SearchGenerator does: each wrapper's state, then the base searcher's own file."""
    from ray.tune.search import SearchGenerator

    SearchGenerator(searcher).save_to_dir(str(folder), session_str="s")


def _tune_restore(searcher: Any, folder) -> None:
    from ray.tune.search import SearchGenerator

    SearchGenerator(searcher).restore_from_dir(str(folder))


def test_the_ledger_and_the_study_survive_tunes_checkpoint(tmp_path) -> None:
    _, budget = _budget()
    searcher = BudgetLimiter(make(tmp_path), budget, spent_before=100)
    searcher.suggest("a")
    searcher.on_trial_result("a", {**result(1, 0.9), "trial_backprops": 40})
    _tune_checkpoint(searcher, tmp_path)

    restored = BudgetLimiter(make(tmp_path), budget)
    _tune_restore(restored, tmp_path)
    assert restored.spent == {"(before the search)": (100.0, 0.0), "a": (40.0, 0.0)}
    assert restored.planned == searcher.planned and restored.running == {"a"}
    restored.on_trial_complete("a", result(2, 0.7, "completed"))
    study = optuna.load_study(study_name="unit", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].intermediate_values == {100: 0.9, 200: 0.7}


def test_a_searcher_that_counted_its_own_budget_is_wrapped_on_restore(tmp_path) -> None:
    """0.2's OptunaSearcher held the budget (``_budget``) and its ledger (``_spent``, ``_configs``,
    ``_done``), unwrapped: after ``--resume`` the limiter takes them over, so the budget holds."""
    cost, budget = _budget()
    old = make(tmp_path)
    config = old.suggest("a")
    old.__dict__.update(_budget=budget, _spent={"(before the search)": (220.0, 0.0), "a": (30.0, 1.0)},
                        _configs={"a": config}, _done=set())
    _tune_checkpoint(old, tmp_path)  # 0.2's checkpoint: the searcher alone
    assert type(limit_legacy_budget(make())) is OptunaSearcher  # no budget of its own: left as it is

    unpickled = pickle.loads(pickle.dumps(old))  # what tuner.pkl gives back
    wrapped = limit_legacy_budget(unpickled)
    assert isinstance(wrapped, BudgetLimiter) and wrapped.searcher is unpickled and limit_legacy_budget(wrapped) is wrapped
    _tune_restore(wrapped, tmp_path)
    assert wrapped.suggest("b") is None  # 250 spent, a's 50 still committed: 300 + 220 > 500, so it waits
    assert wrapped.spent_backprops() == 250 and wrapped.running == {"a"}
    assert wrapped.planned == {"a": cost.trial_backprops(hparam_config(config))} == {"a": 80}
    # the ledger is Tune's from now on: a second resume takes it, not the 0.2 fields again
    wrapped.on_trial_result("a", {**result(1, 0.9), "trial_backprops": 60})
    (tmp_path / "later").mkdir()
    _tune_checkpoint(wrapped, tmp_path / "later")
    again = limit_legacy_budget(pickle.loads(pickle.dumps(old)))
    _tune_restore(again, tmp_path / "later")
    again.suggest("c")
    assert again.spent["a"] == (60.0, 0.0) and again.spent_backprops() == 280


def test_pareto_study_prunes_without_intermediate_values() -> None:
    searcher = OptunaSearcher(space, metric=["robust_acc", "backprops"], mode=["max", "min"],
                              step_attr="backprops", sampler=make_sampler(None, seed=0, multi_objective=True))
    assert isinstance(searcher.study.sampler, optuna.samplers.NSGAIISampler)
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_result("a", result(1, 0.9))
    searcher.on_trial_complete("a", result(2, 0.8))
    searcher.on_trial_complete("b", result(4, 0.5, "completed"))
    a, b = searcher.study.trials
    assert a.state == TrialState.PRUNED and a.intermediate_values == {}
    assert b.state == TrialState.COMPLETE and b.values == pytest.approx([0.5, 400])


def test_sqlite_storage_and_checkpoint_restore(tmp_path) -> None:
    searcher = make(tmp_path)
    searcher.suggest("a")
    searcher.on_trial_result("a", result(1, 0.9))
    ckpt = tmp_path / "searcher.pkl"
    searcher.save(str(ckpt))
    searcher.suggest("orphan")  # asked after the checkpoint: Tune never recorded it

    restored = make(tmp_path)  # a fresh driver reattaches to the same study ...
    restored.restore(str(ckpt))  # ... and loads Tune's searcher checkpoint
    restored.on_trial_result("a", result(1, 0.9))  # re-reported after resume: ignored
    restored.on_trial_result("a", result(2, 0.7, "completed"))
    restored.on_trial_complete("a", result(2, 0.7, "completed"))

    study = optuna.load_study(study_name="unit", storage=f"sqlite:///{tmp_path}/optuna.db")
    a, orphan = study.trials[:2]
    assert a.state == TrialState.COMPLETE and a.intermediate_values == {100: 0.9, 200: 0.7}
    assert orphan.state == TrialState.FAIL
    pickle.dumps(restored.study.sampler)  # Tune pickles the searcher into the experiment dir


def _leading_random_draws(fixed: int, startup: int | None, samples: int = 12, trials: int = 16) -> int:
    """How many trials after ``fixed`` enqueued points TPE draws exactly as RandomSampler(seed=0)."""
    def objective(trial: optuna.Trial) -> float:
        return (trial.suggest_float("x", 0, 1) - 0.3) ** 2 + (trial.suggest_float("y", 0, 1) - 0.7) ** 2

    tpe = optuna.create_study(sampler=make_sampler("tpe", seed=0, samples=samples, fixed_points=fixed,
                                                   startup=startup))
    for i in range(fixed):
        tpe.enqueue_trial({"x": 0.1 * i, "y": 0.9 - 0.1 * i})
    tpe.optimize(objective, n_trials=trials)
    random = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    random.optimize(objective, n_trials=trials)
    same = 0
    for drawn, reference in zip(tpe.trials[fixed:], random.trials, strict=False):
        if drawn.params != reference.params:
            break
        same += 1
    return same


@pytest.mark.parametrize(("fixed", "startup", "samples", "expected"), [
    (0, None, 12, 4),   # a third of the samples, at least 4
    (4, None, 12, 4),   # the paper defaults do not use up the random start
    (4, 6, 12, 6),      # raysearch 0.1's 10 start-up trials, 4 of them defaults
    (0, None, 40, 10),  # at most 10
    (2, 0, 12, 0),      # modelling from the defaults alone
])
def test_paper_defaults_come_on_top_of_tpe_start_up_trials(fixed: int, startup: int | None, samples: int,
                                                           expected: int) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert _leading_random_draws(fixed, startup, samples, trials=fixed + expected + 3) == expected
