"""The search's progress lines: compute spent in reference runs, the best full run, and a
confirmation that does not charge the search's own runs again."""

from __future__ import annotations

from types import SimpleNamespace

from raysearch.tuning.progress import ProgressLines


def _trial(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status="RUNNING", config={}, last_result={})


def test_spent_counts_each_trials_latest_backprops_in_reference_runs() -> None:
    lines = ProgressLines(total=4, reference_backprops=660, budget_runs=4)
    a, b = _trial("a"), _trial("b")
    lines._beat([a, b], a, {"trial_backprops": 330, "objective": 0.5, "full_fidelity": False, "status": "running"})
    lines._beat([a, b], a, {"trial_backprops": 660, "objective": 0.4, "full_fidelity": True, "status": "completed"})
    lines._beat([a, b], b, {"backprops": 165, "objective": 0.3, "full_fidelity": False, "status": "pruned"})
    assert lines.spent_runs() == 1.25
    assert lines.best == 0.4  # only a finished full run sets the bar
    assert lines.heartbeat(running=1, ended=1) == ("[search] 1/4 trials ended, 1 running; compute spent 1.25 of 4 "
                                                   "reference runs; best full-run objective so far 0.4000")


def test_confirmation_does_not_count_the_searchs_own_runs() -> None:
    lines = ProgressLines(total=3, reference_backprops=660, stage="confirm")
    own, again = _trial("own"), _trial("again")
    lines._beat([own, again], own, {"backprops": 660, "reused_run": True, "robust_acc": 0.7})
    lines._beat([own, again], again, {"backprops": 330, "reused_run": False, "robust_acc": 0.7})
    assert lines.spent_runs() == 0.5
    assert lines.heartbeat(running=1, ended=1) == "[confirm] 1/3 trials ended, 1 running; compute spent 0.50 reference runs"
