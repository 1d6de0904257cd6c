"""The confirmation stage on a real tiny search: one row per recipe and seed, scored on the
validation split (which chooses) and the test split (which measures), intervals from those
rows, racing rounds recorded; `--resume` of a finished run repeats nothing, a larger
`raysearch confirm` trains only the seeds it adds, and a second search on the same storage
reuses what the first measured."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest

from raysearch.reporting.stats import mean_ci, t_quantile

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("shared_ray")]  # one Ray for its five stages

ARGS = ["epochs=2", "max_batches=4", "eval.examples=60", "search.space=baselines", "search.scheduler=none",
        "search.time_attr=backprops", "search.reuse=false", "search.reference=true", "search.confirm.top=2",
        "search.confirm.seeds=2", "search.confirm.attacks=pgd5", "search.confirm.examples=60"]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "confirmation.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_confirmation_rows_intervals_racing_and_resume(tmp_path: Path) -> None:
    from raysearch.commands.confirm import confirm
    from raysearch.commands.search import search

    result = search("demo", ARGS, samples=4, storage=str(tmp_path), name="tiny", progress=False)
    run_dir = Path(result.run_dir)
    rows = _rows(run_dir)
    summary = json.loads((run_dir / "search_summary.json").read_text())
    # the two best searched recipes race; PGD-10 (search.reference: true) is measured beside them, 2 seeds each
    recipes = {r["trial_id"] for r in rows}
    reference = {r["trial_id"] for r in rows if r["warm_start"] == "PGD-10"}
    assert len(recipes) == 3 and len(reference) == 1
    assert sorted((r["trial_id"], int(r["seed"])) for r in rows) == sorted((t, s) for t in recipes for s in (0, 1))
    assert {r["source"] for r in rows if r["seed"] == "0"} == {"search run"}
    for r in rows:  # both splits scored, validation objective = (1 - val robust) + 0.1 * cost ratio
        assert 0 <= float(r["test_pgd5"]) <= float(r["clean_acc"]) <= 1 and r["test_examples"] == "60"
        assert 0 <= float(r["val_robust_acc"]) <= float(r["val_clean_acc"]) <= 1
        ratio = int(r["backprops"]) / summary["reference_backprops"]
        assert float(r["val_objective"]) == pytest.approx(1 - float(r["val_robust_acc"]) + 0.1 * ratio, abs=1e-6)
    new_backprops = sum(int(r["backprops"]) for r in rows if r["source"] == "this run")
    assert summary["confirm_backprops"] == new_backprops > 0 and summary["confirm_state"] == "finished"
    assert summary["total_cost_runs"] == pytest.approx(summary["search_cost_runs"] + summary["confirm_cost_runs"],
                                                       abs=1e-3)
    # the racing rounds: seed 1 (own runs, both alive), then seed 2 with the elimination test
    rounds = summary["confirm_rounds"]
    assert [r["seeds"] for r in rounds] == [1, 2] and len(rounds[0]["alive"]) == 2
    chosen = summary["chosen_trial"]
    assert chosen in recipes - reference and summary["chosen_by"] == "validation"
    assert summary["payback_trainings"] == pytest.approx(
        summary["total_cost_runs"] / (1 - summary["chosen_cost_ratio"]), rel=1e-3)
    # the pick is the lowest mean validation objective among the raced recipes, whatever the test split says
    val = {t: statistics.fmean(float(r["val_objective"]) for r in rows if r["trial_id"] == t)
           for t in recipes - reference if not any(r["dropped"] for r in rows if r["trial_id"] == t)}
    assert chosen == min(val, key=val.__getitem__)

    # the intervals are those of the rows: mean ± t(0.975, 1)·s/√2
    assert result.confirmation is not None
    for stats in result.confirmation.stats:
        values = [float(r["robust_acc"]) for r in rows if r["trial_id"] == stats.trial_id]
        half = t_quantile(1) * statistics.stdev(values) / len(values) ** 0.5
        assert stats.robust.mean == pytest.approx(statistics.fmean(values))
        assert stats.robust.high - stats.robust.mean == pytest.approx(half) or math.isnan(half)
        assert stats.robust == mean_ci(values)

    # --resume of the finished run: the same rows and cost, no confirmation run started again
    def runs() -> set[str]:
        return {p.name for p in run_dir.glob("confirm*/trial_*") if p.is_dir()}

    before = runs()
    assert len(before) == 6  # 3 recipes x 2 seeds (seed 0 re-attacks the search's checkpoint)
    again = search(resume=str(run_dir), progress=False)
    assert again.confirmation is not None and again.confirmation.backprops == new_backprops
    assert _rows(run_dir) == rows and runs() == before

    # one more seed: only the candidates still in the race (and the reference) train it
    more = confirm(run_dir, top=2, seeds=3, progress=False)
    extended = _rows(run_dir)
    alive = {r["trial_id"] for r in rows if not r["dropped"]}
    decided = len([t for t in alive if t not in reference]) == 1
    third = {r["trial_id"] for r in extended if r["seed"] == "2"}
    assert third == (set() if decided else alive) and [r for r in extended if r["seed"] != "2"] == rows
    assert len(runs() - before) == len(third)
    assert more.backprops == new_backprops + sum(int(r["backprops"]) for r in extended if r["seed"] == "2")

    # a second search on the same storage: rows measured by the first are found in the results
    # cache, named by the run that trained them, and cost nothing
    assert (tmp_path / "known_results.jsonl").exists()
    second = search("demo", [*ARGS, "search.seed=1"], samples=4, storage=str(tmp_path), name="tiny2", progress=False)
    rows2 = _rows(Path(second.run_dir))
    reused = [r for r in rows2 if r["source"] == str(run_dir)]
    assert any(r["warm_start"] == "PGD-10" and r["seed"] == "1" for r in reused)
    summary2 = json.loads((Path(second.run_dir) / "search_summary.json").read_text())
    assert summary2["confirm_reused_rows"] == len(reused) and str(run_dir) in summary2["confirm_reused_from"]
    assert summary2["confirm_backprops"] == sum(int(r["backprops"]) for r in rows2 if r["source"] == "this run")
