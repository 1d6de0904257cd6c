"""``objective: target`` with ``target_robust_acc: reference`` end to end: PGD-10 trains first,
its finished robust accuracy becomes the target every trial is held to, and its cost is on the
budget's ledger (0.2 left it off and overspent by 0.74 runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BUDGET_RUNS = 2.5  # the reference takes 1; a trial starts only when its costliest run (1) still fits


def test_the_reference_trains_first_sets_the_target_and_is_charged_to_the_budget(tmp_path: Path) -> None:
    from raysearch.commands.search import search

    result = search("demo", ["epochs=2", "eval.examples=60", "max_batches=4", "batch_size=32", "objective=target",
                             "target_robust_acc=reference", "search.space=baselines", "search.scheduler=none",
                             "search.time_attr=backprops", "search.confirm.top=0", "search.reuse=false",
                             f"search.budget={BUDGET_RUNS}"],
                    samples=8, storage=str(tmp_path), name="target", progress=False)
    lines = (tmp_path / "target" / "reference").glob("*/result.json")
    (reference,) = [json.loads(path.read_text().splitlines()[-1]) for path in lines]
    assert reference["k"] == 10 and reference["epoch"] == 2
    summary = result.summary
    assert summary["target_robust_acc"] == pytest.approx(reference["robust_acc"])

    ref_backprops = result.reference_backprops
    assert reference["backprops"] == ref_backprops
    searched = [t for t in result.trials if t.stage != "reference"]
    assert searched, "the search ran after the reference"
    spent = sum(t.spent_backprops for t in searched)
    # the ledger held the reference's run: what the search itself started fits in what was left
    assert summary["search_backprops"] == pytest.approx(ref_backprops + spent)
    assert summary["search_backprops"] <= BUDGET_RUNS * ref_backprops
    assert spent <= (BUDGET_RUNS - 1) * ref_backprops
    for trial in searched:  # every trial is held to the reference's accuracy
        assert trial.config["target_robust_acc"] == pytest.approx(reference["robust_acc"])
