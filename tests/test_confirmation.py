"""The confirmation stage on a real tiny search: one row per recipe and seed, tested on the test
split, intervals from those rows; `--resume` of a finished run repeats nothing, and a larger
`raysearch confirm` trains only the seeds it adds."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from raysearch.reporting.stats import mean_ci, t_quantile

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("shared_ray")]  # one Ray for its five stages

ARGS = ["epochs=2", "max_batches=4", "eval.examples=60", "search.space=baselines", "search.scheduler=none",
        "search.time_attr=backprops", "search.reuse=false", "search.confirm.top=1", "search.confirm.seeds=2",
        "search.confirm.attacks=pgd5", "search.confirm.examples=60"]


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "confirmation.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_confirmation_rows_intervals_and_resume(tmp_path: Path) -> None:
    from raysearch.commands.confirm import confirm
    from raysearch.commands.search import search

    result = search("demo", ARGS, samples=3, storage=str(tmp_path), name="tiny", progress=False)
    run_dir = Path(result.run_dir)
    rows = _rows(run_dir)
    # the best searched recipe and the finished PGD-10 default, 2 seeds each (seed 0: the search's run)
    recipes = {r["trial_id"] for r in rows}
    assert len(recipes) == 2 and any(r["warm_start"] == "PGD-10" for r in rows)
    assert sorted((r["trial_id"], int(r["seed"])) for r in rows) == sorted((t, s) for t in recipes for s in (0, 1))
    assert {r["source"] for r in rows if r["seed"] == "0"} == {"search run"}
    assert all(r["test_examples"] == "60" and 0 <= float(r["test_pgd5"]) <= float(r["clean_acc"]) <= 1 for r in rows)
    summary = json.loads((run_dir / "search_summary.json").read_text())
    new_backprops = sum(int(r["backprops"]) for r in rows if r["source"] == "this run")
    assert summary["confirm_backprops"] == new_backprops > 0 and summary["confirm_state"] == "finished"

    # the intervals are those of the rows: mean ± t(0.975, 1)·s/√2
    assert result.confirmation is not None
    for stats in result.confirmation.stats:
        values = [float(r["robust_acc"]) for r in rows if r["trial_id"] == stats.trial_id]
        half = t_quantile(1) * statistics.stdev(values) / len(values) ** 0.5
        assert stats.robust.mean == pytest.approx(statistics.fmean(values))
        assert stats.robust.high - stats.robust.mean == pytest.approx(half)
        assert stats.robust == mean_ci(values)

    # --resume of the finished run: the same rows and cost, no confirmation run started again
    def runs() -> set[str]:
        return {p.name for p in run_dir.glob("confirm*/trial_*") if p.is_dir()}

    before = runs()
    assert len(before) == 4  # 2 recipes x 2 seeds (seed 0 re-attacks the search's checkpoint)
    again = search(resume=str(run_dir), progress=False)
    assert again.confirmation is not None and again.confirmation.backprops == new_backprops
    assert _rows(run_dir) == rows and runs() == before

    # one more seed: only the new seed trains, the earlier rows are kept as they were
    more = confirm(run_dir, top=1, seeds=3, progress=False)
    extended = _rows(run_dir)
    assert len(extended) == 6 and [r for r in extended if r["seed"] != "2"] == rows
    assert len(runs() - before) == 2
    assert more.backprops == new_backprops + sum(int(r["backprops"]) for r in extended if r["seed"] == "2")

    # a second search beside it: rows measured there are reused, named by that folder, and cost nothing
    second = search("demo", [*ARGS, "search.seed=1"], samples=3, storage=str(tmp_path), name="tiny2", progress=False)
    rows2 = _rows(Path(second.run_dir))
    reused = [r for r in rows2 if r["source"] == str(run_dir)]
    assert any(r["warm_start"] == "PGD-10" and r["seed"] == "1" for r in reused)
    summary2 = json.loads((Path(second.run_dir) / "search_summary.json").read_text())
    assert summary2["confirm_reused_rows"] == len(reused)
    assert summary2["confirm_backprops"] == sum(int(r["backprops"]) for r in rows2 if r["source"] == "this run")
