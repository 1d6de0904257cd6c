"""The confirmation's part of ``report.md``: the confirmed headline and the table of every
re-trained candidate (validation and test columns, racing rounds), read from
``confirmation.csv`` and ``search_summary.json``.
"""

from __future__ import annotations

from typing import Any

from raysearch.reporting.stats import RecipeStats, recipe_stats
from raysearch.reporting.text import confirmed_headline
from raysearch.rundir.confirmation_rows import CONFIRMATION_CSV, read_rows
from raysearch.rundir.results import RunInfo


def _table(stats: list[RecipeStats], attacks: Any, rounds: list[dict[str, Any]]) -> list[str]:
    table = ["## Confirmed: chosen on validation, measured on test", "",
             f"Each candidate re-trained with up to {max((s.robust.n for s in stats), default=0)} seeds (the search's "
             f"own run is one), scored on the validation split and attacked with {attacks} on the test split; "
             f"mean ± 95% interval ([{CONFIRMATION_CSV}]({CONFIRMATION_CSV}) has every row). The pick reads the "
             "validation columns only.", "",
             "| recipe | seeds | validation robust | validation objective | test robust | test clean | × PGD-10 | "
             "test objective | race |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for st in stats:
        table.append(f"| {st.label} | {st.robust.n} | {st.val_robust} | {st.val_objective:.4f} | {st.robust} | "
                     f"{st.clean} | {st.cost_ratio:.2f} | {st.objective:.4f} | {st.dropped or 'finished'} |")
    if rounds:
        table += ["", "Racing rounds (irace's paired t-test on the validation objective):", ""]
        for r in rounds:
            dropped = "; ".join(f"{d['label']} {d['reason']}" for d in r.get("dropped") or []) or "none dropped"
            table.append(f"- after seed {r['seeds']}: leader {r.get('leader', '')}, racing {len(r['alive'])}: "
                         f"{dropped}")
    return table


def confirmation(run: RunInfo) -> tuple[list[str], list[str]]:
    """(confirmed headline lines, the confirmation section) from ``confirmation.csv``; both
    empty when the run has no confirmation."""
    rows = read_rows(run.run_dir / CONFIRMATION_CSV)
    if not rows:
        return [], []
    cost_weight = float(run.experiment.get("cost_weight", 0.1) or 0.1)
    stats = recipe_stats(rows, run.reference_backprops, cost_weight)
    margin = float((run.search.get("confirm") or {}).get("margin", 0.02))
    summary = run.summary
    target = summary.get("target_robust_acc")
    cost = (float(summary.get("search_cost_runs", 0.0) or 0.0), float(summary.get("confirm_cost_runs", 0.0) or 0.0))
    headline = ["Confirmed (chosen on the validation split over every seed; measured on the test split):", "",
                *confirmed_headline(stats, rows, target, margin, cost)]
    table = _table(stats, summary.get("confirm_attacks", "pgd50x10"), summary.get("confirm_rounds") or [])
    return headline, [*table, ""]


__all__ = ["confirmation"]
