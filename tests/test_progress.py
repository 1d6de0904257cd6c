"""The search summary printed at the end of ``raysearch search``."""

from __future__ import annotations

from raysearch.experiment import load_experiment
from raysearch.progress import summary_text
from raysearch.search import SearchResult


def test_summary_shows_best_against_pgd10_and_where_the_slot_time_went() -> None:
    best = {"objective": 0.1885, "robust_acc": 0.8433, "clean_acc": 0.99, "backprops": 210}
    pruned = {"objective": 0.5867, "robust_acc": 0.4467, "clean_acc": 0.7667, "backprops": 220}
    trials = [
        {"trial_id": "a", "status": "completed", "metrics": best, "warm_start": None},
        {"trial_id": "b", "status": "pruned", "metrics": pruned, "warm_start": "PGD-10"},
    ]
    result = SearchResult(run_dir="runs/demo-x", best_config={"method": "free", "k": 3}, best_metrics=best,
                          trials=trials, warm_start=[trials[1]], wall_seconds=100.0, trial_seconds_sum=180.0,
                          concurrency=2, reference_backprops=660, startup_seconds=5.3)
    lines = summary_text(result, load_experiment("demo")).splitlines()
    assert lines[0] == "raysearch search demo: 2 trials (1 completed, 1 pruned)"
    assert lines[1] == ("best trial a: objective 0.1885, robust acc 0.843, clean acc 0.990, backprops 210 "
                        "(0.32x PGD-10)")
    assert "warm start PGD-10 [pruned]: objective 0.5867" in lines[3] and "(0.33x PGD-10)" in lines[3]
    assert "wall 100.0 s (start-up 5.3 s), trial time 180.0 s on 2 slot(s): 90% of slot time inside trials" in lines
