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

from raysearch.reporting.stats import (
    RecipeStats,
    choose,
    paired_difference,
    payback_trainings,
    robustness_claim,
    target_claim,
)
from trainables.labels import REFERENCE_LABEL, describe
from trainables.status import Status

if TYPE_CHECKING:
    from raysearch.rundir.experiment import Experiment
    from raysearch.rundir.outcomes import ConfirmResult, SearchResult
    from raysearch.rundir.records import TrialRecord

REFERENCE = REFERENCE_LABEL


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def runs(backprops: float, reference: float | None) -> str:
    return f"{backprops / reference:.2f}" if reference else "?"


def trial_line(trial: TrialRecord, reference: int | None) -> str:
    m = trial.metrics
    ratio = m.get("backprops", 0) / reference if reference else math.nan
    return (f"objective {trial.metric('objective'):.4f}, robust acc {trial.metric('robust_acc'):.3f}, "
            f"clean acc {trial.metric('clean_acc'):.3f}, backprops {m.get('backprops', 0)} ({ratio:.2f}x PGD-10)")


def _measured(s: RecipeStats) -> str:
    return (f"test robust accuracy {s.robust}, clean {s.clean} over {s.robust.n} seeds, test objective "
            f"{s.objective:.4f}")


def cost_line(search_runs: float, confirm_runs: float, ratio: float | None) -> str:
    """"This answer cost X reference runs (search Y, confirmation Z); … pays that back after N trainings"."""
    total = search_runs + confirm_runs
    line = f"This answer cost {total:.2f} reference runs (search {search_runs:.2f}, confirmation {confirm_runs:.2f})"
    if ratio is None or not math.isfinite(ratio):
        return line + "."
    payback = payback_trainings(total, ratio)
    if payback is None:
        return line + f"; at {ratio:.2f}x PGD-10 the found recipe saves nothing per training, so it never pays back."
    return line + f"; at {ratio:.2f}x PGD-10 the found recipe pays that back after {payback:.1f} trainings."


def confirmed_headline(stats: Sequence[RecipeStats], rows: Sequence[dict[str, Any]], target: float | None,
                       margin: float, cost: tuple[float, float] | None = None) -> list[str]:
    """The headline of a confirmation. The pick is made on the *validation* split over all its
    seeds (:func:`~raysearch.reporting.stats.choose`): the best trade-off objective or, with a
    target, the cheapest recipe that meets it; every number that describes the pick, and every
    claim against the reference and the runner-up, is the *test* split's. ``cost``: (search,
    confirmation) in reference runs, for the cost and payback line."""
    if not stats:
        return ["No recipe was confirmed."]
    reference = next((s for s in stats if s.warm_start == REFERENCE), None)
    best = choose(stats, target, exclude=REFERENCE)
    lines: list[str] = []
    if target is not None and best is None:
        pool = [s for s in stats if s.warm_start != REFERENCE and math.isfinite(s.val_robust.mean)]
        if not pool:
            return ["No candidate has validation scores: nothing can be chosen without looking at the test split."]
        closest = max(pool, key=lambda s: s.val_robust.mean)
        lines.append(f"No candidate meets the target {target:.3f} on the validation split with 95% confidence; the "
                     f"closest is {closest.label}: validation robust accuracy {closest.val_robust}; on the test split "
                     f"it {target_claim(closest.robust, target)}, at {closest.cost_ratio:.2f}x the reference's compute.")
        best = closest
    elif best is None:
        return ["No candidate has validation scores: nothing can be chosen without looking at the test split."]
    elif target is not None:
        lines.append(f"Cheapest recipe that meets the target on the validation split: {best.label} (validation robust "
                     f"accuracy {best.val_robust}), {best.cost_ratio:.2f}x the reference's compute. Measured on the "
                     f"test split: it {target_claim(best.robust, target)}.")
    else:
        lines.append(f"Chosen on the validation split: {best.label} (validation objective {best.val_objective:.4f}, "
                     f"robust accuracy {best.val_robust}). Measured on the test split: {_measured(best)}, "
                     f"{best.cost_ratio:.2f}x the reference's compute.")
    if reference is not None:
        diff = paired_difference(rows, best.trial_id, reference.trial_id)
        lines.append(f"Against {REFERENCE} (finished, same seeds, test split): {robustness_claim(diff, margin)}; "
                     f"{best.backprops / reference.backprops:.2f}x its backprops.")
    else:
        lines.append(f"{REFERENCE} was not trained for this answer (its cost is known without training it), so no "
                     "robustness claim is made against it; search.reference: true trains and confirms it.")
    others = [s for s in stats if s is not best and s is not reference and not s.dropped
              and math.isfinite(s.val_objective)]
    runner_up = min(others, key=lambda s: s.val_objective, default=None)
    if target is None and runner_up is not None:
        # the pick ranks by the mean validation objective; say whether the test seeds separate it from the next one
        diff = paired_difference(rows, best.trial_id, runner_up.trial_id)
        lines.append(f"Against the runner-up {runner_up.label} (validation objective {runner_up.val_objective:.4f}; "
                     f"test objective {runner_up.objective:.4f}, same seeds): {robustness_claim(diff, margin, 'it')}; "
                     f"{best.backprops / runner_up.backprops:.2f}x its backprops.")
    for s in stats:
        if s.dropped:
            lines.append(f"Left behind by the race: {s.label}, {s.dropped}; test robust accuracy {s.robust}.")
    if cost is not None:
        lines.append(cost_line(cost[0], cost[1], best.cost_ratio))
    lines.append(f"How this was decided: the candidates raced on the validation split (seeds added in rounds, a "
                 "candidate dropped once its paired 95% interval against the leader lies above 0: irace's t-test "
                 "racing); the test split measured every run and chose nothing. A claim against another recipe needs "
                 "the test split's paired difference interval to exclude 0 (more/less robust) or to lie within "
                 f"±{100 * margin:.0f} points (as robust).")
    return lines


def confirmation_table(stats: Sequence[RecipeStats]) -> list[str]:
    lines = [f"  {'recipe':<44} {'seeds':>5} {'val objective':>13} {'test robust':>17} {'test clean':>17} "
             f"{'x PGD-10':>8} {'test obj.':>9}"]
    for s in stats:
        lines.append(f"  {s.label[:44]:<44} {s.robust.n:>5} {s.val_objective:>13.4f} {str(s.robust):>17} "
                     f"{str(s.clean):>17} {s.cost_ratio:>8.2f} {s.objective:>9.4f}" + ("  (dropped)" if s.dropped else ""))
    return lines


def confirmation_text(result: ConfirmResult, target: float | None = None, margin: float = 0.02,
                      reference_backprops: int | None = None) -> str:
    from raysearch.rundir.summary import read_summary

    summary = read_summary(result.run_dir)
    reference_backprops = reference_backprops or summary.get("reference_backprops")
    cost = (float(summary.get("search_cost_runs", 0.0) or 0.0), float(summary.get("confirm_cost_runs", 0.0) or 0.0))
    lines = [f"confirmation (chosen on the validation split; measured on the test split with "
             f"{summary.get('confirm_attacks', 'pgd50x10')}, mean ± 95% CI):",
             *confirmation_table(result.stats), *confirmed_headline(result.stats, result.rows, target, margin, cost)]
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
