"""The files ``raysearch report`` leaves in a run directory (SPEC §9): ``trials.csv``,
``pareto.png``, ``schedules.png``, ``best.yaml`` and ``report.md``, written from a
:class:`~raysearch.rundir.results.RunInfo`, and :class:`ReportResult`, what was written and found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysearch.reporting.confirmation_section import confirmation
from raysearch.reporting.markdown import (
    BEST_YAML,
    EVALUATION_MD,
    PARETO_PNG,
    REPORT_MD,
    SCHEDULES_PNG,
    TRIALS_CSV,
    headline,
    report_markdown,
)
from raysearch.reporting.plots import plot_pareto, plot_schedules
from raysearch.reporting.run_report import best_yaml, comparisons, front_flags, trial_rows
from raysearch.rundir.records import TrialRecord, finite
from raysearch.rundir.results import RunInfo, best_trial, write_csv
from trainables.status import Status


@dataclass
class ReportResult:
    """What ``raysearch report`` wrote and found: file paths, the best trial,
    the Pareto trial ids, the headline comparisons and any status that disagrees with the Optuna
    study; ``rows``: those of ``trials.csv``, best first."""

    run_dir: Path
    files: dict[str, Path]
    best: TrialRecord | None
    pareto: list[str]
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    text: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)


def chosen_recipe(run: RunInfo, best: TrialRecord | None) -> TrialRecord | None:
    """The recipe ``best.yaml`` re-runs: the one the run chose (``chosen_trial`` in its summary:
    the confirmation's pick once it ran, else the search's best), else the best trial."""
    chosen = run.summary.get("chosen_trial")
    return next((t for t in run.trials if t.trial_id == chosen and t.metrics), best)


def _write_best(run: RunInfo, best: TrialRecord | None, files: dict[str, Path], warnings: list[str]) -> None:
    """``best.yaml`` (when a trial has a usable result), and a warning when none completed."""
    if best is None:
        return
    files[BEST_YAML] = run.run_dir / BEST_YAML
    files[BEST_YAML].write_text(best_yaml(run, best, confirmed=bool(run.summary.get("confirm_state"))))
    if best.status != Status.COMPLETED:
        warnings.append(f"no trial completed its budget; the best recipe is trial {best.trial_id} "
                        f"({best.status.value})")


def write_report(run: RunInfo) -> ReportResult:
    """Write trials.csv, pareto.png, schedules.png, best.yaml and report.md into the run's
    directory; ``text`` of the result: the headline, then one ``warning:`` line per warning."""
    root = run.run_dir
    files = {name: root / name for name in (TRIALS_CSV, PARETO_PNG, SCHEDULES_PNG, REPORT_MD)}
    flags = front_flags(run.trials)
    rows = trial_rows(run, flags)
    write_csv(rows, files[TRIALS_CSV])
    plot_pareto(run, files[PARETO_PNG], flags)
    plot_schedules(run, files[SCHEDULES_PNG])
    best = best_trial(run.trials)
    warnings = [f"{w} (the Optuna study and the trial's own status disagree)" for w in run.mismatches]
    recipe = chosen_recipe(run, best)
    _write_best(run, recipe, files, warnings)
    compared = comparisons(run, best) if best is not None else []
    confirmed, extra = confirmation(run)
    if run.interrupted:
        warnings.append("the search was interrupted: trials marked interrupted were cut short; "
                        f"continue with raysearch search --resume {root}")
    lines = headline(run, best, compared, confirmed)
    front = sorted((r for r in rows if r["on_pareto"]), key=lambda r: finite(r["backprops"]))  # cheapest first
    files[REPORT_MD].write_text(report_markdown(run, rows, front, recipe, lines, warnings, extra))
    if (root / EVALUATION_MD).exists():
        files[EVALUATION_MD] = root / EVALUATION_MD
    lines += [f"warning: {w}" for w in warnings]
    pareto = [r["trial_id"] for r in front]
    return ReportResult(root, files, best, pareto, compared, warnings, "\n".join(lines), rows)


__all__ = ["ReportResult", "write_report"]
