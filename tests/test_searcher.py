"""PruneAwareOptunaSearch: Optuna states and intermediate values, driven without Ray running."""

from __future__ import annotations

import pickle
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from raysearch.searcher import PruneAwareOptunaSearch, make_sampler


def space(trial: optuna.Trial) -> dict[str, Any]:
    method = trial.suggest_categorical("method", ["pgd", "free"])
    if method == "pgd":
        trial.suggest_int("k", 1, 10)
    return {"schedule": "constant"}


def result(epoch: int, objective: float, status: str = "running", per_epoch: int = 100) -> dict[str, Any]:
    return {"epoch": epoch, "backprops": epoch * per_epoch, "objective": objective, "robust_acc": 1 - objective,
            "status": status, "training_iteration": epoch}


def make(tmp_path=None, **kwargs: Any) -> PruneAwareOptunaSearch:
    storage = f"sqlite:///{tmp_path}/optuna.db" if tmp_path else None
    kwargs.setdefault("metric", "objective")
    kwargs.setdefault("mode", "min")
    return PruneAwareOptunaSearch(space, step_attr="backprops", sampler=make_sampler("tpe", seed=0),
                                  storage=storage, study_name="unit", **kwargs)


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
    searcher.on_trial_result("a", result(1, 0.9))
    searcher.on_trial_complete("a", error=True)
    searcher.on_trial_complete("b")  # stopped while pending
    states = [t.state for t in searcher.study.trials]
    assert states == [TrialState.FAIL, TrialState.PRUNED]
    searcher.on_trial_complete("a", result(1, 0.9, "completed"))  # a second completion is ignored
    assert searcher.study.trials[0].state == TrialState.FAIL


def test_missing_status_falls_back_to_epoch_budget() -> None:
    searcher = make()
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", {"epoch": 2, "backprops": 200, "objective": 0.5, "config/epochs": 4})
    searcher.on_trial_complete("b", {"epoch": 4, "backprops": 400, "objective": 0.4, "config/epochs": 4})
    assert [t.state for t in searcher.study.trials] == [TrialState.PRUNED, TrialState.COMPLETE]


def test_warm_start_points_are_suggested_first() -> None:
    searcher = make(points_to_evaluate=[{"method": "pgd", "k": 10}, {"method": "free"}])
    assert searcher.suggest("a") == {"method": "pgd", "k": 10, "schedule": "constant"}
    assert searcher.suggest("b") == {"method": "free", "schedule": "constant"}


def test_pareto_study_prunes_without_intermediate_values() -> None:
    searcher = PruneAwareOptunaSearch(space, metric=["robust_acc", "backprops"], mode=["max", "min"],
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
