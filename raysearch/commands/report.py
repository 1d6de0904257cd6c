"""``raysearch report``: results people can act on, written into the run directory (SPEC §9).

From a finished (or interrupted) run directory, read without Ray (:mod:`raysearch.results`):

- ``trials.csv``: one row per trial (recipe, every parameter it set, status, accuracy, cost,
  objective, warm-start label, whether it is on the Pareto front);
- ``pareto.png``: robust accuracy against training backprops for every trial, the Pareto front
  (maximize robust accuracy, minimize backprops; completed trials) as a staircase, the paper
  defaults and the PGD-10 budget (11·M·epochs backprops) marked;
- ``schedules.png``: K(t) (and α(t) where it moves) of the best trials and the paper defaults;
- ``best.yaml``: the best recipe as an experiment file that ``raysearch train best.yaml`` re-runs;
- ``report.md``: the headline (best recipe against PGD-10 and each paper default), the Pareto
  table, every trial, the plots, and ``evaluation.md`` when ``raysearch evaluate`` wrote one.

A compact table is printed to the terminal as well.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from raysearch.reporting.plots import plot_pareto, plot_schedules
from raysearch.rundir.records import TrialRecord, finite
from raysearch.rundir.results import RunInfo, best_trial, load_run, metric, ranked, write_csv
from trainables.labels import describe
from trainables.status import Status

TRIALS_CSV, PARETO_PNG, SCHEDULES_PNG = "trials.csv", "pareto.png", "schedules.png"
REPORT_MD, BEST_YAML, EVALUATION_MD = "report.md", "best.yaml", "evaluation.md"
# trial-config keys that are columns of their own or belong to the experiment, not the recipe
_NOT_PARAMS = frozenset({"method", "loss", "schedule", "data_root", "device", "download"})


@dataclass
class ReportResult:
    """What :func:`report` wrote and found: file paths, the best trial, the Pareto trial ids,
    the headline comparisons and any status that disagrees with the Optuna study."""

    run_dir: Path
    files: dict[str, Path]
    best: TrialRecord | None
    pareto: list[str]
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    text: str = ""


# ---------------------------------------------------------------------------- pure helpers


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (robust_acc, backprops) points: True where no other point is at least as good in both
    (higher or equal accuracy, fewer or equal backprops) and better in one. Duplicates do not
    dominate each other, so both stay on the front; a point with a NaN is never on it."""
    from raysearch.tuning.objective import pareto_front as front_indices

    finite = [i for i, (acc, cost) in enumerate(points) if math.isfinite(acc) and math.isfinite(cost)]
    front = front_indices([{"robust_acc": points[i][0], "backprops": points[i][1]} for i in finite])
    on = {finite[j] for j in front}
    return [i in on for i in range(len(points))]


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.1f}%"


def _fmt(value: Any, spec: str) -> str:
    number = finite(value)
    return "" if math.isnan(number) else format(number, spec)


def _ratio(value: float, reference: float | None) -> float:
    return value / reference if reference and not math.isnan(value) else math.nan


def _pareto_flags(trials: list[TrialRecord]) -> list[bool]:
    """Pareto membership among finished full runs (a stopped trial's point is a partial budget)."""
    points = [(metric(t, "robust_acc"), metric(t, "backprops")) if t.status == Status.COMPLETED and t.full_fidelity
              else (math.nan, math.nan) for t in trials]
    return pareto_front(points)


def _param_columns(run: RunInfo) -> list[str]:
    """Config keys the search set (not in the experiment) or that differ between trials."""
    keys: set[str] = set()
    for trial in run.trials:
        keys.update(trial.config)
    columns = []
    for key in keys - _NOT_PARAMS:
        values = {repr(t.config.get(key)) for t in run.trials}
        if key not in run.experiment or len(values) > 1:
            columns.append(key)
    first = {"k": 0, "alpha": 1}
    return sorted(columns, key=lambda k: (first.get(k, 2), "." in k, k))


def _resolved(config: dict[str, Any], keys: tuple[str, ...]) -> dict[str, str]:
    """``keys`` of the parsed config (defaults filled in), or as written when it does not parse."""
    from trainables.config import parse_config

    try:
        parsed = parse_config(config)
    except Exception:
        return {key: str(config.get(key, "")) for key in keys}
    return {key: str(getattr(parsed, key)) for key in keys}


def trial_rows(run: RunInfo, pareto_flags: list[bool] | None = None) -> list[dict[str, Any]]:
    """The rows of ``trials.csv``, best first (completed by objective, then the rest);
    ``pareto_flags``: each trial's (in ``run.trials`` order), computed when not given."""
    if pareto_flags is None:
        pareto_flags = _pareto_flags(run.trials)
    flags = dict(zip((t.trial_id for t in run.trials), pareto_flags, strict=True))
    order = ranked(run.trials)
    order += [t for t in run.trials if t not in order]
    params = _param_columns(run)
    rows = []
    for trial in order:
        m, cfg = trial.metrics, trial.config
        row: dict[str, Any] = {"trial_id": trial.trial_id, "recipe": describe(cfg)}
        row.update(_resolved(cfg, ("method", "loss", "schedule")))
        row.update({key: cfg.get(key, "") for key in params})
        backprops = metric(trial, "backprops")
        row.update({
            "status": trial.status.value, "optuna_state": trial.optuna_state or "",
            "fidelity_level": f"{int(m.get('level', 0)) + 1}/{m.get('levels', 1)}",
            "epochs": m.get("epoch", ""), "clean_acc": m.get("clean_acc", ""), "robust_acc": m.get("robust_acc", ""),
            "fgsm_acc": m.get("fgsm_acc", ""), "best_robust_acc": m.get("best_robust_acc", ""),
            "backprops": m.get("backprops", ""),
            "backprops_vs_pgd10": "" if math.isnan(_ratio(backprops, run.reference_backprops))
            else round(_ratio(backprops, run.reference_backprops), 4),
            "train_seconds": m.get("train_seconds", ""), "objective": m.get("objective", ""),
            "spent_backprops": trial.spent_backprops, "stage": trial.stage,
            "warm_start": trial.warm_start or "", "on_pareto": flags[trial.trial_id],
        })
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------- best.yaml


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys to nested mappings, top-level keys first, in TrainConfig's field order."""
    from trainables.config import config_keys

    order = {key: i for i, key in enumerate(config_keys())}
    nested: dict[str, Any] = {}
    for key in sorted(flat, key=lambda k: ("." in k, order.get(k, len(order)), k)):
        section, _, name = key.partition(".")
        if name:
            nested.setdefault(section, {})[name] = flat[key]
        else:
            nested[key] = flat[key]
    return nested


def best_experiment(run: RunInfo, trial: TrialRecord) -> dict[str, Any]:
    """The trial's training config as an experiment (nested, named ``<run>-best``) that
    ``raysearch train`` re-runs with the same seed."""
    return {"name": f"{run.name}-best", **_nest(trial.config)}


def _best_yaml(run: RunInfo, trial: TrialRecord) -> str:
    m = trial.metrics
    ratio = _ratio(metric(trial, "backprops"), run.reference_backprops)
    lines = [
        f"# Best recipe of run {run.name}: trial {trial.trial_id} ({trial.status.value}), {describe(trial.config)}",
        f"# validation after {m.get('epoch')} epochs: robust acc {_pct(metric(trial, 'robust_acc'))}, "
        f"clean acc {_pct(metric(trial, 'clean_acc'))}, {m.get('backprops')} backprops"
        + ("" if math.isnan(ratio) else f" ({ratio:.2f}x PGD-10)") + f", objective {metric(trial, 'objective'):.4f}",
        f"# Re-run: raysearch train best.yaml   (written by raysearch {run.version or 'unknown'})",
    ]
    body = yaml.safe_dump(best_experiment(run, trial), sort_keys=False, allow_unicode=True, default_flow_style=None)
    return "\n".join(lines) + "\n" + body


# ---------------------------------------------------------------------------- report.md


def compare(best: TrialRecord, other: TrialRecord) -> dict[str, Any]:
    """Robust-accuracy difference (points) and compute ratio backprops_best / backprops_other."""
    diff = 100 * (metric(best, "robust_acc") - metric(other, "robust_acc"))
    other_bp = metric(other, "backprops")
    ratio = metric(best, "backprops") / other_bp if other_bp > 0 else math.nan
    return {"against": other.warm_start or other.trial_id, "trial_id": other.trial_id,
            "status": other.status.value, "robust_points": diff, "compute_ratio": ratio}


def _comparisons(run: RunInfo, best: TrialRecord) -> list[dict[str, Any]]:
    """The best recipe against every paper default that finished its run (never a cut-short one)."""
    defaults = sorted((t for t in run.trials if t.warm_start and t is not best and t.metrics
                       and t.status == Status.COMPLETED and t.full_fidelity),
                      key=lambda t: (t.warm_start != "PGD-10", t.warm_start or ""))
    return [compare(best, t) for t in defaults]


def _comparison_line(c: dict[str, Any]) -> str:
    status = "" if c["status"] == "completed" else f" ({c['status']})"
    sign = "+" if c["robust_points"] >= 0 else ""
    # one seed on the validation split supports no claim: the line says what was seen, not what holds
    return (f"beside {c['against']}{status}, one seed each (a reading, not a claim): robust accuracy "
            f"{sign}{c['robust_points']:.1f} points, {c['compute_ratio']:.2f}× its backprops")


def _md_table(rows: list[dict[str, Any]], run: RunInfo) -> str:
    header = "| trial | recipe | status | robust acc | clean acc | backprops | × PGD-10 | objective | warm start |"
    lines = [header, "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        pareto = " ★" if r["on_pareto"] else ""
        lines.append(f"| {r['trial_id']}{pareto} | {r['recipe']} | {r['status']} | {_pct(finite(r['robust_acc']))} | "
                     f"{_pct(finite(r['clean_acc']))} | {r['backprops']} | {_fmt(r['backprops_vs_pgd10'], '.2f')} | "
                     f"{_fmt(r['objective'], '.4f')} | {r['warm_start']} |")
    return "\n".join(lines)


def _headline(run: RunInfo, best: TrialRecord | None, comparisons: list[dict[str, Any]],
              confirmed: list[str]) -> list[str]:
    """Confirmed claims first (test split, several seeds), then the search's own view
    (validation split, one seed), compared with finished paper defaults only."""
    lines = [*confirmed, ""] if confirmed else []
    if best is None:
        return [*lines, "No trial finished with a usable result; see the table below."]
    m = best.metrics
    ratio = _ratio(metric(best, "backprops"), run.reference_backprops)
    scope = "In the search (validation split, one seed" + ("" if confirmed else
                                                          "; not confirmed: `raysearch confirm` re-trains with more seeds") + "):"
    lines += [scope, "",
              f"Best recipe: **{describe(best.config)}** (trial {best.trial_id}, {best.status.value}"
              + (f", the {best.warm_start} default" if best.warm_start else "") + "): "
              f"robust accuracy {_pct(metric(best, 'robust_acc'))}, clean accuracy {_pct(metric(best, 'clean_acc'))}, "
              f"{m.get('backprops')} backprops" + ("" if math.isnan(ratio) else f" ({ratio:.2f}× the PGD-10 budget)")
              + f", objective {metric(best, 'objective'):.4f}."]
    lines += [f"- {_comparison_line(c)}" for c in comparisons]
    unfinished = [t for t in run.trials if t.warm_start and not (t.status == Status.COMPLETED and t.full_fidelity)]
    lines += [f"- {t.warm_start} did not finish ({t.status.value}): not compared." for t in unfinished]
    if not any(t.warm_start == "PGD-10" for t in run.trials) and best.warm_start != "PGD-10":
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


def _markdown(run: RunInfo, rows: list[dict[str, Any]], front: list[dict[str, Any]], best: TrialRecord | None,
              headline: list[str], warnings: list[str], extra: list[str]) -> str:
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
        lines += [f"Re-run it: `raysearch train {BEST_YAML}` (the file is in this directory).", ""]
    if warnings:
        lines += ["**Warnings:**", "", *[f"- {w}" for w in warnings], ""]
    lines += [*extra, *_cost_section(run)]
    lines += ["## Pareto front", "", "Completed trials that no other completed trial beats on both robust accuracy "
              "(higher) and backprops (fewer), cheapest first:", "", _md_table(front, run) if front else "(none)", "",
              f"![robust accuracy vs backprops]({PARETO_PNG})", "",
              "## Schedules", "", f"![K and step size per epoch]({SCHEDULES_PNG})", "",
              "## All trials", "", "Best first (★: on the Pareto front); every parameter is in "
              f"[{TRIALS_CSV}]({TRIALS_CSV}).", "", _md_table(rows, run), "",
              *_evaluation_section(run.run_dir), "",
              "## Files", "",
              f"- [{BEST_YAML}]({BEST_YAML}): the best recipe as an experiment file",
              f"- [{TRIALS_CSV}]({TRIALS_CSV}): every trial, one row each",
              "- `optuna.db`: the Optuna study (`optuna-dashboard sqlite:///" + str(run.run_dir / "optuna.db") + "`)",
              f"- `tensorboard/`: `tensorboard --logdir {run.run_dir / 'tensorboard'}`", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- terminal


def _print_summary(run: RunInfo, rows: list[dict[str, Any]], headline: list[str], files: dict[str, Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    table = Table(title=f"raysearch report: {run.name}", title_justify="left")
    for name, justify in (("trial", "left"), ("recipe", "left"), ("status", "left"), ("robust", "right"),
                          ("clean", "right"), ("backprops", "right"), ("×PGD-10", "right"), ("objective", "right"),
                          ("warm start", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows[:15]:
        table.add_row(r["trial_id"] + (" ★" if r["on_pareto"] else ""), r["recipe"], r["status"],
                      _pct(finite(r["robust_acc"])), _pct(finite(r["clean_acc"])), str(r["backprops"]),
                      _fmt(r["backprops_vs_pgd10"], ".2f"), _fmt(r["objective"], ".4f"), r["warm_start"])
    console.print(table)
    if len(rows) > 15:
        console.print(f"... {len(rows) - 15} more trials in {files[TRIALS_CSV]}")
    for line in headline:
        console.print(line.replace("**", ""))
    console.print("written: " + ", ".join(sorted(files)) + f" in {run.run_dir}")


# ---------------------------------------------------------------------------- entry point


def _confirmation(run: RunInfo) -> tuple[list[str], list[str]]:
    """(confirmed headline lines, the confirmation section) from ``confirmation.csv``."""
    from raysearch.commands.confirm import CONFIRMATION_CSV, read_rows
    from raysearch.reporting.stats import recipe_stats
    from raysearch.reporting.text import confirmed_headline

    rows = read_rows(run.run_dir / CONFIRMATION_CSV)
    if not rows:
        return [], []
    cost_weight = float(run.experiment.get("cost_weight", 0.1) or 0.1)
    stats = recipe_stats(rows, run.reference_backprops, cost_weight)
    margin = float((run.search.get("confirm") or {}).get("margin", 0.02))
    target = run.summary.get("target_robust_acc")
    summary = run.summary
    cost = (float(summary.get("search_cost_runs", 0.0) or 0.0), float(summary.get("confirm_cost_runs", 0.0) or 0.0))
    headline = ["Confirmed (chosen on the validation split over every seed; measured on the test split):", "",
                *confirmed_headline(stats, rows, target, margin, cost)]
    attacks = summary.get("confirm_attacks", "pgd50x10")
    rounds = summary.get("confirm_rounds") or []
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
    return headline, [*table, ""]


def report(run_dir: str | os.PathLike[str], progress: bool = True) -> ReportResult:
    """Write trials.csv, pareto.png, schedules.png, best.yaml and report.md into ``run_dir``.

    Reads the run without Ray (:func:`raysearch.results.load_run`); the trial statuses are
    checked against the Optuna study in ``optuna.db`` and disagreements are reported.
    Raises :class:`~trainables.registry.ConfigError` when ``run_dir`` holds no trials.
    """
    run = load_run(run_dir)
    try:
        return _write_report(run, progress)
    except OSError as err:
        from raysearch.rundir.storage import StorageError

        raise StorageError.of(str(run.run_dir), err, "writing the report into") from None


def _write_report(run: RunInfo, progress: bool) -> ReportResult:
    root = run.run_dir
    files = {name: root / name for name in (TRIALS_CSV, PARETO_PNG, SCHEDULES_PNG, REPORT_MD)}
    flags = _pareto_flags(run.trials)
    rows = trial_rows(run, flags)
    write_csv(rows, files[TRIALS_CSV])
    plot_pareto(run, files[PARETO_PNG], flags)
    plot_schedules(run, files[SCHEDULES_PNG])
    best = best_trial(run.trials)
    warnings = [f"{w} (the Optuna study and the trial's own status disagree)" for w in run.mismatches]
    if best is not None:
        files[BEST_YAML] = root / BEST_YAML
        files[BEST_YAML].write_text(_best_yaml(run, best))
        if best.status != Status.COMPLETED:
            warnings.append(f"no trial completed its budget; the best recipe is trial {best.trial_id} "
                            f"({best.status.value})")
    comparisons = _comparisons(run, best) if best is not None else []
    confirmed, extra = _confirmation(run)
    if run.interrupted:
        warnings.append("the search was interrupted: trials marked interrupted were cut short; "
                        f"continue with raysearch search --resume {root}")
    headline = _headline(run, best, comparisons, confirmed)
    front = sorted((r for r in rows if r["on_pareto"]), key=lambda r: finite(r["backprops"]))  # cheapest first
    files[REPORT_MD].write_text(_markdown(run, rows, front, best, headline, warnings, extra))
    if (root / EVALUATION_MD).exists():
        files[EVALUATION_MD] = root / EVALUATION_MD
    headline += [f"warning: {w}" for w in warnings]
    if progress:
        _print_summary(run, rows, headline, files)
    pareto = [r["trial_id"] for r in front]
    return ReportResult(root, files, best, pareto, comparisons, warnings, "\n".join(headline))


__all__ = ["ReportResult", "best_experiment", "compare", "pareto_front", "plot_pareto", "plot_schedules",
           "report", "trial_rows"]
