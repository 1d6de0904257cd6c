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
    assert lines[1] == "search cost: 2.50 reference runs (1650 backprops, 42.0 s of training) of a budget of 3"
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


def _rows(trial_id: str, label: str, robust: list[float], backprops: int, warm: str = "",
          val: list[float] | None = None) -> list[dict]:
    """Rows of one recipe; validation robust accuracy equal to the test one unless ``val`` is given."""
    val = val if val is not None else robust
    return [{"trial_id": trial_id, "label": label, "seed": s, "robust_acc": r, "clean_acc": 0.95,
             "val_robust_acc": v, "val_objective": (1 - v) + 0.1 * backprops / 660, "backprops": backprops,
             "warm_start": warm} for s, (r, v) in enumerate(zip(robust, val, strict=True))]


def test_headline_claims_only_what_the_intervals_support() -> None:
    # the recipe beats PGD-10 on every seed by 5-7 points: the paired interval excludes 0
    rows = _rows("r", "#1 Free", [0.80, 0.81, 0.79], 200) + _rows("p", "PGD-10", [0.74, 0.75, 0.73], 660, "PGD-10")
    stats = recipe_stats(rows, 660)
    lines = confirmed_headline(stats, rows, None, margin=0.02)
    assert lines[0].startswith("Chosen on the validation split: #1 Free (validation objective 0.2303")
    assert "Measured on the test split: test robust accuracy 0.800 ± 0.025" in lines[0]
    assert lines[1].startswith("Against PGD-10 (finished, same seeds, test split): more robust than the reference: "
                               "+6.0 points")
    # noisy seeds: same means, no claim either way
    noisy = _rows("r", "#1 Free", [0.70, 0.90, 0.75], 200) + _rows("p", "PGD-10", [0.80, 0.68, 0.74], 660, "PGD-10")
    lines = confirmed_headline(recipe_stats(noisy, 660), noisy, None, margin=0.02)
    assert "not distinguishable from the reference at 3 seeds" in lines[1]


def test_without_the_reference_no_claim_is_made_against_it() -> None:
    rows = _rows("r", "#1 Free", [0.80, 0.81, 0.79], 200)
    lines = confirmed_headline(recipe_stats(rows, 660), rows, None, margin=0.02)
    assert lines[1].startswith("PGD-10 was not trained for this answer") and "no robustness claim" in lines[1]


def test_the_pick_follows_validation_and_reports_the_test_split() -> None:
    # validation prefers A (0.85 vs 0.80), the test split prefers B (0.70 vs 0.82): A is chosen,
    # and the numbers printed for it are its test numbers
    rows = (_rows("a", "#1 A", [0.70, 0.71, 0.69], 200, val=[0.85, 0.86, 0.84])
            + _rows("b", "#2 B", [0.82, 0.83, 0.81], 200, val=[0.80, 0.81, 0.79]))
    stats = recipe_stats(rows, 660)
    lines = confirmed_headline(stats, rows, None, margin=0.02)
    assert lines[0].startswith("Chosen on the validation split: #1 A")
    assert "test robust accuracy 0.700 ± 0.025" in lines[0]
    assert lines[2].startswith("Against the runner-up #2 B") and "less robust than it: -12.0 points" in lines[2]
    # the same with a target: the cheapest that meets it on validation, whatever the test split says
    cheap = _rows("c", "#1 cheap", [0.60, 0.61, 0.59], 100, val=[0.80, 0.81, 0.80])
    dear = _rows("d", "#2 dear", [0.80, 0.81, 0.80], 400, val=[0.70, 0.71, 0.69])
    lines = confirmed_headline(recipe_stats(cheap + dear, 660), cheap + dear, 0.75, margin=0.02)
    assert lines[0].startswith("Cheapest recipe that meets the target on the validation split: #1 cheap")
    assert "it misses the target 0.750" in lines[0]


def test_headline_says_whether_the_seeds_separate_the_best_from_the_runner_up() -> None:
    rows = (_rows("k2", "#2 Free, K=2", [0.88, 0.82, 0.87], 180) + _rows("m", "M+DEAT", [0.83, 0.83, 0.84], 140, "M+DEAT")
            + _rows("p", "PGD-10", [0.70, 0.72, 0.75], 660, "PGD-10"))
    lines = confirmed_headline(recipe_stats(rows, 660), rows, None, margin=0.02)
    assert lines[0].startswith("Chosen on the validation split: #2 Free, K=2")
    assert lines[1].startswith("Against PGD-10 (finished, same seeds, test split): more robust than the reference")
    assert lines[2].startswith("Against the runner-up M+DEAT (validation objective 0.1879; test objective 0.1879, "
                               "same seeds): not distinguishable from it at 3 seeds: +2.3 points (95% CI")
    assert lines[2].endswith("; 1.29x its backprops.")


def test_the_cost_line_gives_the_payback() -> None:
    rows = _rows("r", "#1 Free", [0.80, 0.81, 0.79], 198)  # 0.30x the reference
    lines = confirmed_headline(recipe_stats(rows, 660), rows, None, margin=0.02, cost=(2.9, 1.3))
    assert ("This answer cost 4.20 reference runs (search 2.90, confirmation 1.30); at 0.30x PGD-10 the found recipe "
            "pays that back after 6.0 trainings.") in lines


def test_a_dropped_candidate_is_listed_with_why_and_never_picked() -> None:
    rows = _rows("a", "#1 A", [0.70, 0.71], 200, val=[0.70, 0.71]) + _rows("b", "#2 B", [0.90, 0.91], 200,
                                                                         val=[0.90, 0.91])
    for row in rows:
        if row["trial_id"] == "b":
            row["dropped"] = "dropped after 2 seeds: ..."
    # B is better on validation too, but a dropped row never picks: the race's verdict stands
    lines = confirmed_headline(recipe_stats(rows, 660), rows, None, margin=0.02)
    assert lines[0].startswith("Chosen on the validation split: #1 A")
    assert any(line.startswith("Left behind by the race: #2 B, dropped after 2 seeds") for line in lines)


def test_target_is_met_only_when_the_lower_bound_reaches_it() -> None:
    rows = _rows("r", "#1 cheap", [0.70, 0.72, 0.71], 100) + _rows("s", "#2 dear", [0.80, 0.81, 0.80], 400)
    stats = recipe_stats(rows, 660)
    lines = confirmed_headline(stats, rows, 0.75, margin=0.02)
    assert lines[0].startswith("Cheapest recipe that meets the target on the validation split: #2 dear")
    lines = confirmed_headline(stats, rows, 0.85, margin=0.02)
    assert lines[0].startswith("No candidate meets the target 0.850") and "#2 dear" in lines[0]


def test_mean_ci_matches_the_student_t_interval() -> None:
    ci = mean_ci([0.70, 0.76, 0.73])
    assert round(ci.mean, 6) == 0.73 and ci.n == 3
    # s = 0.03, t(0.975, 2) = 4.303: half width 4.303 * 0.03 / sqrt(3) = 0.0745
    assert abs(ci.half_width - 0.07453) < 1e-4
    assert mean_ci([0.5]).n == 1 and str(mean_ci([0.5])) == "0.500 (1 seed, no interval)"
