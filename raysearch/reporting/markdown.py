"""``report.md``: the headline (confirmed claims, then the search's own view), the cost of the
answer, the confirmation table, the Pareto and trial tables, the plots and the final
evaluation, as Markdown, and the names of the files it links to.

Pure text: :mod:`raysearch.reporting.report_files` gathers the rows and writes the file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from raysearch.reporting.run_report import fmt, pct, ratio
from raysearch.rundir.records import TrialRecord, finite
from raysearch.rundir.results import RunInfo, metric
from trainables.labels import REFERENCE_LABEL, describe
from trainables.status import Status

TRIALS_CSV, PARETO_PNG, SCHEDULES_PNG = "trials.csv", "pareto.png", "schedules.png"
REPORT_MD, BEST_YAML, EVALUATION_MD = "report.md", "best.yaml", "evaluation.md"


def _comparison_line(c: dict[str, Any]) -> str:
    status = "" if c["status"] == "completed" else f" ({c['status']})"
    sign = "+" if c["robust_points"] >= 0 else ""
    # one seed on the validation split supports no claim: the line says what was seen, not what holds
    return (f"beside {c['against']}{status}, one seed each (a reading, not a claim): robust accuracy "
            f"{sign}{c['robust_points']:.1f} points, {c['compute_ratio']:.2f}× its backprops")


def trials_table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of ``rows`` (``trials.csv``'s), ★ marking the Pareto front."""
    header = "| trial | recipe | status | robust acc | clean acc | backprops | × PGD-10 | objective | warm start |"
    lines = [header, "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        pareto = " ★" if r["on_pareto"] else ""
        lines.append(f"| {r['trial_id']}{pareto} | {r['recipe']} | {r['status']} | {pct(finite(r['robust_acc']))} | "
                     f"{pct(finite(r['clean_acc']))} | {r['backprops']} | {fmt(r['backprops_vs_pgd10'], '.2f')} | "
                     f"{fmt(r['objective'], '.4f')} | {r['warm_start']} |")
    return "\n".join(lines)


def headline(run: RunInfo, best: TrialRecord | None, comparisons: list[dict[str, Any]],
             confirmed: list[str]) -> list[str]:
    """Confirmed claims first (test split, several seeds), then the search's own view
    (validation split, one seed), compared with finished paper defaults only."""
    lines = [*confirmed, ""] if confirmed else []
    if best is None:
        return [*lines, "No trial finished with a usable result; see the table below."]
    m = best.metrics
    vs_pgd10 = ratio(metric(best, "backprops"), run.reference_backprops)
    scope = "In the search (validation split, one seed" + ("" if confirmed else
                                                          "; not confirmed: `raysearch confirm` re-trains with more seeds") + "):"
    lines += [scope, "",
              f"Best recipe: **{describe(best.config)}** (trial {best.trial_id}, {best.status.value}"
              + (f", the {best.warm_start} default" if best.warm_start else "") + "): "
              f"robust accuracy {pct(metric(best, 'robust_acc'))}, clean accuracy {pct(metric(best, 'clean_acc'))}, "
              f"{m.get('backprops')} backprops" + ("" if math.isnan(vs_pgd10) else f" ({vs_pgd10:.2f}× the PGD-10 budget)")
              + f", objective {metric(best, 'objective'):.4f}."]
    lines += [f"- {_comparison_line(c)}" for c in comparisons]
    unfinished = [t for t in run.trials if t.warm_start and not (t.status == Status.COMPLETED and t.full_fidelity)]
    lines += [f"- {t.warm_start} did not finish ({t.status.value}): not compared." for t in unfinished]
    if not any(t.warm_start == REFERENCE_LABEL for t in run.trials) and best.warm_start != REFERENCE_LABEL:
        lines.append("- PGD-10 itself was not run in this search; its budget is "
                     f"{run.reference_backprops or 'unknown'} backprops.")
    return lines


def _cost_section(run: RunInfo) -> list[str]:
    """What the search and its confirmation cost, in reference runs and seconds."""
    s = run.summary
    if not s:
        return []
    ref = s.get("reference_backprops") or run.reference_backprops
    lines = ["## What it cost", "", "| stage | backprops | reference runs | training seconds |", "|---|---:|---:|---:|"]
    for stage, key in (("search", "search"), ("confirmation", "confirm")):
        backprops = s.get(f"{key}_backprops")
        if backprops is None:
            continue
        runs = f"{backprops / ref:.2f}" if ref else "?"
        lines.append(f"| {stage} | {backprops} | {runs} | {float(s.get(f'{key}_train_seconds') or 0):.1f} |")
    if s.get("total_cost_runs") is not None:
        payback = s.get("payback_trainings")
        lines += ["", f"The whole answer: {s['total_cost_runs']:.2f} reference runs; "
                  + (f"the chosen recipe ({s.get('chosen_cost_ratio', 0):.2f}× PGD-10) pays that back after "
                     f"{payback:.1f} trainings." if payback is not None else "the chosen recipe saves nothing per "
                     "training against PGD-10, so it never pays back.")]
    reused_from = s.get("confirm_reused_from") or []
    if reused_from:
        lines += ["", "Confirmation rows reused from earlier runs on this storage (no cost here): "
                  + ", ".join(reused_from) + "."]
    if s.get("budget_runs"):
        lines += ["", f"Budget: {s['budget_runs']:g} reference runs (the confirmation is not charged to it)."]
    reused = s.get("reused") or []
    if reused:
        lines += ["", "Reused from earlier runs of the same experiment (no cost here): "
                  + ", ".join(f"{r['label']} ({r['from']})" for r in reused) + "."]
    return [*lines, ""]


def _evaluation_section(run_dir: Path) -> list[str]:
    path = run_dir / EVALUATION_MD
    if not path.exists():
        return ["## Final evaluation", "",
                f"Not run yet: `raysearch evaluate {run_dir}` attacks the best trials on the test split "
                "(PGD-50×10, CW-20, AutoAttack) and writes evaluation.md here."]
    body = [line for line in path.read_text().splitlines() if not line.startswith("# ")]
    body = ["#" + line if line.startswith("## ") else line for line in body]
    while body and not body[0].strip():
        body.pop(0)
    return ["## Final evaluation (test split)", "", f"From [{EVALUATION_MD}]({EVALUATION_MD}):", "", *body]


def _tables(run: RunInfo, rows: list[dict[str, Any]], front: list[dict[str, Any]]) -> list[str]:
    """The Pareto front, the plots, every trial, the final evaluation and the list of files."""
    return ["## Pareto front", "", "Completed trials that no other completed trial beats on both robust accuracy "
            "(higher) and backprops (fewer), cheapest first:", "", trials_table(front) if front else "(none)", "",
            f"![robust accuracy vs backprops]({PARETO_PNG})", "",
            "## Schedules", "", f"![K and step size per epoch]({SCHEDULES_PNG})", "",
            "## All trials", "", "Best first (★: on the Pareto front); every parameter is in "
            f"[{TRIALS_CSV}]({TRIALS_CSV}).", "", trials_table(rows), "",
            *_evaluation_section(run.run_dir), "",
            "## Files", "",
            f"- [{BEST_YAML}]({BEST_YAML}): the best recipe as an experiment file",
            f"- [{TRIALS_CSV}]({TRIALS_CSV}): every trial, one row each",
            "- `optuna.db`: the Optuna study (`optuna-dashboard sqlite:///" + str(run.run_dir / "optuna.db") + "`)",
            f"- `tensorboard/`: `tensorboard --logdir {run.run_dir / 'tensorboard'}`", ""]


def report_markdown(run: RunInfo, rows: list[dict[str, Any]], front: list[dict[str, Any]], best: TrialRecord | None,
                    headline: list[str], warnings: list[str], extra: list[str]) -> str:
    """The text of ``report.md``; ``best``: the recipe ``best.yaml`` holds; ``extra``: the
    confirmation section (before the cost)."""
    counts: dict[str, int] = {}
    for trial in run.trials:
        counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
    e = run.experiment
    lines = [f"# raysearch report: {run.name}", "",
             f"{len(run.trials)} trials (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ") on "
             f"{e.get('dataset', '?')} / {e.get('model', '?')}, {run.epochs} epochs, "
             f"search space `{run.search.get('space', '?')}`. Accuracy is measured on the validation split "
             f"during training; the PGD-10 budget is 11·M·epochs = {run.reference_backprops or '?'} backprops "
             f"(M = {run.batches_per_epoch or '?'} batches per epoch).", "",
             "## Headline", "", *headline, ""]
    if best is not None:
        lines += [f"Re-run {describe(best.config)}: `raysearch train {BEST_YAML}` (the file is in this directory).", ""]
    if warnings:
        lines += ["**Warnings:**", "", *[f"- {w}" for w in warnings], ""]
    lines += [*extra, *_cost_section(run), *_tables(run, rows, front)]
    return "\n".join(lines)


__all__ = ["BEST_YAML", "EVALUATION_MD", "PARETO_PNG", "REPORT_MD", "SCHEDULES_PNG", "TRIALS_CSV", "headline",
           "report_markdown", "trials_table"]
