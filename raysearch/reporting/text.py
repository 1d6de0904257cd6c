"""The words a user acts on: the search's terminal summary, the confirmation table and the
headline, shared by ``raysearch search``, ``raysearch confirm`` and ``report.md``.

Every comparison is with *finished* runs: a paper default that was cut short is listed with
its status and never compared; the confirmed headline claims only what the 95 % intervals
support (:mod:`raysearch.reporting.stats`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from raysearch.reporting.stats import RecipeStats, paired_difference, robustness_claim, target_claim
from trainables.labels import describe
from trainables.status import Status

if TYPE_CHECKING:
    from raysearch.commands.confirm import ConfirmResult
    from raysearch.commands.search import SearchResult
    from raysearch.rundir.experiment import Experiment
    from raysearch.rundir.records import TrialRecord

REFERENCE = "PGD-10"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def runs(backprops: float, reference: float | None) -> str:
    return f"{backprops / reference:.2f}" if reference else "?"


def trial_line(trial: TrialRecord, reference: int | None) -> str:
    m = trial.metrics
    ratio = m.get("backprops", 0) / reference if reference else math.nan
    return (f"objective {trial.metric('objective'):.4f}, robust acc {trial.metric('robust_acc'):.3f}, "
            f"clean acc {trial.metric('clean_acc'):.3f}, backprops {m.get('backprops', 0)} ({ratio:.2f}x PGD-10)")


def confirmed_headline(stats: Sequence[RecipeStats], rows: Sequence[dict[str, Any]], target: float | None,
                       margin: float) -> list[str]:
    """The headline from confirmed numbers (test split, all seeds): the best confirmed recipe by
    the trade-off objective (or, with a target, the cheapest that meets it), then what it can
    be said to do against the reference and the target."""
    if not stats:
        return ["No recipe was confirmed."]
    reference = next((s for s in stats if s.warm_start == REFERENCE), None)
    if target is not None:
        meeting = [s for s in stats if s.robust.n >= 2 and not math.isnan(s.robust.low) and s.robust.low >= target]
        pick = min(meeting, key=lambda s: s.backprops) if meeting else None
        if pick is None:
            closest = max(stats, key=lambda s: s.robust.mean)
            lines = [f"No confirmed recipe meets the target {target:.3f} with 95% confidence; the closest is "
                     f"{closest.label}: {target_claim(closest.robust, target)}, at {closest.cost_ratio:.2f}x the "
                     "reference's compute."]
            return lines
        best = pick
        lines = [f"Cheapest recipe that meets the target: {best.label}, {best.cost_ratio:.2f}x the reference's "
                 f"compute; {target_claim(best.robust, target)}."]
    else:
        best = min(stats, key=lambda s: s.objective)
        lines = [f"Best confirmed recipe: {best.label}: test robust accuracy {best.robust}, clean {best.clean} "
                 f"over {best.robust.n} seeds, {best.cost_ratio:.2f}x the reference's compute, confirmed objective "
                 f"{best.objective:.4f}."]
    if reference is not None and reference is not best:
        diff = paired_difference(rows, best.trial_id, reference.trial_id)
        lines.append(f"Against {REFERENCE} (finished, same seeds): {robustness_claim(diff, margin)}; "
                     f"{best.backprops / reference.backprops:.2f}x its backprops.")
    elif reference is None:
        lines.append(f"{REFERENCE} was not confirmed, so no claim is made against it.")
    runner_up = min((s for s in stats if s is not best), key=lambda s: s.objective, default=None)
    if target is None and runner_up is not None and runner_up is not reference:
        # "best" ranks by the mean objective; say whether the seeds separate it from the next one
        diff = paired_difference(rows, best.trial_id, runner_up.trial_id)
        lines.append(f"Against the runner-up {runner_up.label} (objective {runner_up.objective:.4f}, same seeds): "
                     f"{robustness_claim(diff, margin, 'it')}; {best.backprops / runner_up.backprops:.2f}x its "
                     "backprops.")
    lines.append(f"How this was decided: {best.robust.n} seeds per recipe on the test split; 95% Student-t "
                 "intervals; a claim against another recipe needs the paired difference's interval to exclude 0 "
                 f"(more/less robust) or to lie within ±{100 * margin:.0f} points (as robust).")
    return lines


def confirmation_table(stats: Sequence[RecipeStats]) -> list[str]:
    lines = [f"  {'recipe':<52} {'seeds':>5} {'test robust':>17} {'test clean':>17} {'x PGD-10':>8} {'objective':>9}"]
    for s in stats:
        lines.append(f"  {s.label[:52]:<52} {s.robust.n:>5} {str(s.robust):>17} {str(s.clean):>17} "
                     f"{s.cost_ratio:>8.2f} {s.objective:>9.4f}")
    return lines


def confirmation_text(result: ConfirmResult, target: float | None = None, margin: float = 0.02,
                      reference_backprops: int | None = None) -> str:
    from raysearch.rundir.summary import read_summary

    summary = read_summary(result.run_dir)
    reference_backprops = reference_backprops or summary.get("reference_backprops")
    lines = [f"confirmation (test split, {summary.get('confirm_attacks', 'pgd50x10')}, mean ± 95% CI):",
             *confirmation_table(result.stats), *confirmed_headline(result.stats, result.rows, target, margin)]
    lines.append(f"confirmation cost: {runs(result.backprops, reference_backprops)} reference runs "
                 f"({result.backprops} backprops, {result.train_seconds:.1f} s of training)"
                 + (f"; {result.reused_rows} rows reused from earlier runs" if result.reused_rows else ""))
    if result.interrupted:
        lines.append(f"confirmation interrupted: continue it with raysearch search --resume {result.run_dir}")
    return "\n".join(lines)


def search_summary_text(result: SearchResult, experiment: Experiment) -> str:
    """The terminal summary of a search (see the module docstring)."""
    counts: dict[str, int] = {}
    for trial in result.trials:
        counts[trial.status.value] = counts.get(trial.status.value, 0) + 1
    state = "INTERRUPTED" if result.interrupted else "finished"
    reference = result.reference_backprops
    summary = result.summary
    lines = [f"raysearch search {experiment.name}: {len(result.trials)} trials ("
             + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f") — {state}"]
    spent = summary.get("search_backprops", 0)
    budget = summary.get("budget_runs", experiment.search.budget)
    reused = summary.get("reused") or []
    lines.append(f"search cost: {runs(spent, reference)} reference runs ({spent} backprops, "
                 f"{summary.get('search_train_seconds', 0):.1f} s of training)"
                 + (f" of a budget of {budget:g}" if budget else "")
                 + (f" (a population of {experiment.search.population}, {experiment.search.algorithm.upper()})"
                    if experiment.search.population_based and experiment.search.algorithm else "")
                 + (f"; reused from earlier runs: {', '.join(r['label'] for r in reused)}" if reused else ""))
    if summary.get("target_robust_acc") is not None:
        lines.append(f"target robust accuracy: {summary['target_robust_acc']:.4f}")
    if result.best is not None:
        best = result.best
        lines.append(f"best trial {best.trial_id} (validation, one seed): {describe(best.config)}: "
                     f"{trial_line(best, reference)}")
        changed = {k: v for k, v in best.config.items() if experiment.train.get(k) != v
                   and k not in ("data_root", "threads")}
        lines.append("  config: " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(changed.items())))
    for trial in result.warm_start:
        if trial.status == Status.COMPLETED and trial.full_fidelity:
            lines.append(f"paper default {trial.warm_start} [finished]: {trial_line(trial, reference)}")
        else:
            lines.append(f"paper default {trial.warm_start} [{trial.status.value}, not compared]")
    lines.append(f"reference PGD-10 run: {reference} backprops ({experiment.train_config.epochs} epochs)")
    if result.confirmation is not None and result.confirmation.stats:
        conf = experiment.search.confirm
        lines.append(confirmation_text(result.confirmation, summary.get("target_robust_acc"), conf.margin, reference))
    lines.append(f"wall {result.wall_seconds:.1f} s (start-up {result.startup_seconds:.1f} s), trial time "
                 f"{result.trial_seconds_sum:.1f} s on {result.concurrency} slot(s): "
                 f"{result.search_overhead:.0%} of slot time inside trials")
    lines.append(f"run directory: {result.run_dir}")
    lines.append(f"report:        raysearch report {result.run_dir}")
    lines.append(f"TensorBoard:   tensorboard --logdir {result.tensorboard_dir}")
    if result.interrupted:
        lines.append(f"interrupted: continue with   {result.resume_command}")
    return "\n".join(lines)


__all__ = ["confirmation_table", "confirmation_text", "confirmed_headline", "search_summary_text", "trial_line"]
