"""``raysearch report``: results people can act on, written into the run directory (SPEC §9).

From a finished (or interrupted) run directory, read without Ray (:mod:`raysearch.rundir.results`):

- ``trials.csv``: one row per trial (recipe, every parameter it set, status, accuracy, cost,
  objective, warm-start label, whether it is on the Pareto front);
- ``pareto.png``: robust accuracy against training backprops for every trial, the Pareto front
  (maximize robust accuracy, minimize backprops; completed trials) as a staircase, the paper
  defaults and the PGD-10 budget (11·M·epochs backprops) marked;
- ``schedules.png``: K(t) (and α(t) where it moves) of the best trials and the paper defaults;
- ``best.yaml``: the best recipe as an experiment file that ``raysearch train best.yaml`` re-runs;
- ``report.md``: the headline (best recipe against PGD-10 and each paper default), the Pareto
  table, every trial, the plots, and ``evaluation.md`` when ``raysearch evaluate`` wrote one.

A compact table is printed to the terminal as well. The rows, the Markdown and the files are
:mod:`raysearch.reporting`'s (``run_report``, ``markdown``, ``report_files``); this module turns
a run directory into that call and its result into the terminal table.
"""

from __future__ import annotations

import os
import sys

from raysearch.reporting.markdown import (
    BEST_YAML,
    EVALUATION_MD,
    PARETO_PNG,
    REPORT_MD,
    SCHEDULES_PNG,
    TRIALS_CSV,
)
from raysearch.reporting.plots import plot_pareto, plot_schedules
from raysearch.reporting.report_files import ReportResult, write_report
from raysearch.reporting.run_report import (
    best_experiment,
    compare,
    fmt,
    pareto_front,
    pct,
    trial_rows,
)
from raysearch.rundir.records import finite
from raysearch.rundir.results import RunInfo, load_run


def _print_summary(run: RunInfo, result: ReportResult) -> None:
    from rich.console import Console
    from rich.table import Table

    rows, files = result.rows, result.files
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    table = Table(title=f"raysearch report: {run.name}", title_justify="left")
    for name, justify in (("trial", "left"), ("recipe", "left"), ("status", "left"), ("robust", "right"),
                          ("clean", "right"), ("backprops", "right"), ("×PGD-10", "right"), ("objective", "right"),
                          ("warm start", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows[:15]:
        table.add_row(r["trial_id"] + (" ★" if r["on_pareto"] else ""), r["recipe"], r["status"],
                      pct(finite(r["robust_acc"])), pct(finite(r["clean_acc"])), str(r["backprops"]),
                      fmt(r["backprops_vs_pgd10"], ".2f"), fmt(r["objective"], ".4f"), r["warm_start"])
    console.print(table)
    if len(rows) > 15:
        console.print(f"... {len(rows) - 15} more trials in {files[TRIALS_CSV]}")
    for line in result.text.split("\n"):  # the headline, then its warnings
        console.print(line.replace("**", ""))
    console.print("written: " + ", ".join(sorted(files)) + f" in {run.run_dir}")


def report(run_dir: str | os.PathLike[str], progress: bool = True) -> ReportResult:
    """Write trials.csv, pareto.png, schedules.png, best.yaml and report.md into ``run_dir``.

    Reads the run without Ray (:func:`raysearch.rundir.results.load_run`); the trial statuses are
    checked against the Optuna study in ``optuna.db`` and disagreements are reported.
    Raises :class:`~trainables.registry.ConfigError` when ``run_dir`` holds no trials.
    """
    run = load_run(run_dir)
    try:
        result = write_report(run)
        if progress:
            _print_summary(run, result)
        return result
    except OSError as err:
        from raysearch.rundir.storage import StorageError

        raise StorageError.of(str(run.run_dir), err, "writing the report into") from None


__all__ = ["BEST_YAML", "EVALUATION_MD", "PARETO_PNG", "REPORT_MD", "SCHEDULES_PNG", "TRIALS_CSV", "ReportResult",
           "best_experiment", "compare", "pareto_front", "plot_pareto", "plot_schedules", "report", "trial_rows"]
