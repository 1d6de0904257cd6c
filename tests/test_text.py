"""What a user reads: the search summary, the confirmed headline and the claims it allows."""

from __future__ import annotations

from raysearch.commands.search import SearchResult
from raysearch.reporting.stats import mean_ci, recipe_stats
from raysearch.reporting.text import confirmed_headline, search_summary_text
from raysearch.rundir.experiment import load_experiment
from raysearch.rundir.records import TrialRecord
from trainables.status import Status


def _trial(trial_id: str, status: Status, metrics: dict, warm_start: str | None = None) -> TrialRecord:
    return TrialRecord(trial_id, status, {"method": "free", "k": 3}, metrics, warm_start=warm_start)


def test_summary_shows_cost_best_and_only_finished_defaults() -> None:
    best = {"objective": 0.1885, "robust_acc": 0.8433, "clean_acc": 0.99, "backprops": 210}
    cut = {"objective": 0.5867, "robust_acc": 0.4467, "clean_acc": 0.7667, "backprops": 220}
    done = {"objective": 0.2312, "robust_acc": 0.79, "clean_acc": 0.98, "backprops": 140}
    trials = [_trial("a", Status.COMPLETED, best), _trial("b", Status.PRUNED, cut, "PGD-10"),
              _trial("c", Status.COMPLETED, done, "M+DEAT (gamma=1.01)")]
    summary = {"search_backprops": 1650, "search_train_seconds": 42.0}
    result = SearchResult(run_dir="runs/demo-x", trials=trials, best=trials[0], wall_seconds=100.0,
                          trial_seconds_sum=180.0, concurrency=2, reference_backprops=660, startup_seconds=5.3,
                          summary=summary)
    lines = search_summary_text(result, load_experiment("demo")).splitlines()
    assert lines[0] == "raysearch search demo: 3 trials (2 completed, 1 pruned) — finished"
    assert lines[1] == "search cost: 2.50 reference runs (1650 backprops, 42.0 s of training) of a budget of 4"
    assert lines[2].startswith("best trial a (validation, one seed): Free, K=3: objective 0.1885, robust acc 0.843")
    assert "(0.32x PGD-10)" in lines[2]
    assert "paper default PGD-10 [pruned, not compared]" in lines
    assert any(line.startswith("paper default M+DEAT (gamma=1.01) [finished]: objective 0.2312") for line in lines)
    assert "wall 100.0 s (start-up 5.3 s), trial time 180.0 s on 2 slot(s): 90% of slot time inside trials" in lines


def test_interrupted_summary_ends_with_the_resume_line() -> None:
    result = SearchResult(run_dir="runs/demo-x", trials=[], best=None, wall_seconds=10.0, trial_seconds_sum=1.0,
                          concurrency=2, interrupted=True)
    lines = search_summary_text(result, load_experiment("demo")).splitlines()
    assert lines[0].endswith("— INTERRUPTED")
    assert lines[-1] == "interrupted: continue with   raysearch search --resume runs/demo-x"


def _rows(trial_id: str, label: str, robust: list[float], backprops: int, warm: str = "") -> list[dict]:
    return [{"trial_id": trial_id, "label": label, "seed": s, "robust_acc": r, "clean_acc": 0.95,
             "backprops": backprops, "warm_start": warm} for s, r in enumerate(robust)]


def test_headline_claims_only_what_the_intervals_support() -> None:
    # the recipe beats PGD-10 on every seed by 5-7 points: the paired interval excludes 0
    rows = _rows("r", "#1 Free", [0.80, 0.81, 0.79], 200) + _rows("p", "PGD-10", [0.74, 0.75, 0.73], 660, "PGD-10")
    stats = recipe_stats(rows, 660)
    lines = confirmed_headline(stats, rows, None, margin=0.02)
    assert lines[0].startswith("Best confirmed recipe: #1 Free")
    assert lines[1].startswith("Against PGD-10 (finished, same seeds): more robust than the reference: +6.0 points")
    # noisy seeds: same means, no claim either way
    noisy = _rows("r", "#1 Free", [0.70, 0.90, 0.75], 200) + _rows("p", "PGD-10", [0.80, 0.68, 0.74], 660, "PGD-10")
    lines = confirmed_headline(recipe_stats(noisy, 660), noisy, None, margin=0.02)
    assert "not distinguishable from the reference at 3 seeds" in lines[1]


def test_headline_says_whether_the_seeds_separate_the_best_from_the_runner_up() -> None:
    # the demo's confirmed figures: Free K=2 leads on the mean objective, not on robustness
    rows = (_rows("k2", "#2 Free, K=2", [0.88, 0.82, 0.87], 180) + _rows("m", "M+DEAT", [0.83, 0.83, 0.84], 140, "M+DEAT")
            + _rows("p", "PGD-10", [0.70, 0.72, 0.75], 660, "PGD-10"))
    lines = confirmed_headline(recipe_stats(rows, 660), rows, None, margin=0.02)
    assert lines[0].startswith("Best confirmed recipe: #2 Free, K=2")
    assert lines[1].startswith("Against PGD-10 (finished, same seeds): more robust than the reference")
    assert lines[2].startswith("Against the runner-up M+DEAT (objective 0.1879, same seeds): not distinguishable "
                               "from it at 3 seeds: +2.3 points (95% CI")
    assert lines[2].endswith("; 1.29x its backprops.")


def test_target_is_met_only_when_the_lower_bound_reaches_it() -> None:
    rows = _rows("r", "#1 cheap", [0.70, 0.72, 0.71], 100) + _rows("s", "#2 dear", [0.80, 0.81, 0.80], 400)
    stats = recipe_stats(rows, 660)
    lines = confirmed_headline(stats, rows, 0.75, margin=0.02)
    assert lines[0].startswith("Cheapest recipe that meets the target: #2 dear")
    lines = confirmed_headline(stats, rows, 0.85, margin=0.02)
    assert lines[0].startswith("No confirmed recipe meets the target 0.850") and "#2 dear" in lines[0]


def test_mean_ci_matches_the_student_t_interval() -> None:
    ci = mean_ci([0.70, 0.76, 0.73])
    assert round(ci.mean, 6) == 0.73 and ci.n == 3
    # s = 0.03, t(0.975, 2) = 4.303: half width 4.303 * 0.03 / sqrt(3) = 0.0745
    assert abs(ci.half_width - 0.07453) < 1e-4
    assert mean_ci([0.5]).n == 1 and str(mean_ci([0.5])) == "0.500 (1 seed, no interval)"
