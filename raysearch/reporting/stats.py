"""Means, 95 % intervals and the claims they support, from ``confirmation.csv`` rows.

Each recipe was trained with S seeds (the search's own run and S − 1 more), scored on the
validation split and tested on the test split. :func:`choose` picks from the validation numbers
only; the test numbers are what is reported for the pick. :func:`mean_ci` gives the mean and a two-sided 95 % Student-t interval;
:func:`paired_difference` compares two recipes on the seeds they share (same seed: same
initialization and data order, so the difference has less noise than two separate means).

The headline's words follow fixed rules (:func:`robustness_claim`, :func:`target_claim`):

- "more (less) robust than the reference": the 95 % interval of the paired difference in
  robust accuracy lies above (below) zero;
- "as robust as the reference (within M points)": the interval lies inside ±M (the
  equivalence margin, ``search.confirm.margin``);
- otherwise "not distinguishable from the reference at S seeds", with the interval;
- "meets the target": the lower end of the robust accuracy's interval reaches the target;
  "misses the target": its upper end is below it; otherwise the interval straddles it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# two-sided 95 % Student-t quantiles t_{0.975, df}
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t_quantile(df: int) -> float:
    """t_{0.975, df} (the nearest tabulated df at or below; 1.96 beyond 30)."""
    if df >= 31:
        return 1.96
    return _T975[max(d for d in _T975 if d <= df)]


@dataclass(frozen=True)
class Interval:
    """A mean and its 95 % interval over ``n`` values (no interval for n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        if self.n < 2 or math.isnan(self.low):
            return f"{self.mean:.3f} (1 seed, no interval)"
        return f"{self.mean:.3f} ± {self.half_width:.3f}"


def mean_ci(values: Iterable[float]) -> Interval:
    """Mean and two-sided 95 % Student-t interval of the finite ``values``."""
    data = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not data:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = statistics.fmean(data)
    if len(data) < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = t_quantile(len(data) - 1) * statistics.stdev(data) / math.sqrt(len(data))
    return Interval(mean, mean - half, mean + half, len(data))


@dataclass(frozen=True)
class RecipeStats:
    """One confirmed recipe: test robust and clean accuracy over its seeds, cost and the
    trade-off objective of the test mean (what is *reported*), and the validation robust
    accuracy and objective (what *chooses*); ``dropped``: why the race left it behind."""

    trial_id: str
    label: str
    warm_start: str
    robust: Interval
    clean: Interval
    backprops: float
    cost_ratio: float
    objective: float
    seeds: tuple[int, ...]
    val_robust: Interval = Interval(math.nan, math.nan, math.nan, 0)
    val_objective: float = math.nan
    dropped: str = ""


def recipe_stats(rows: Sequence[dict[str, Any]], reference_backprops: int | None,
                 cost_weight: float = 0.1) -> list[RecipeStats]:
    """Per recipe (``trial_id``), in the rows' order."""
    order: list[str] = []
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = str(row["trial_id"])
        if key not in groups:
            order.append(key)
            groups[key] = []
        groups[key].append(row)
    out = []
    for key in order:
        group = groups[key]
        robust = mean_ci(r.get("robust_acc", math.nan) for r in group)
        clean = mean_ci(r.get("clean_acc", math.nan) for r in group)
        costs = [float(r["backprops"]) for r in group if r.get("backprops") not in (None, "")]
        backprops = statistics.fmean(costs) if costs else math.nan
        ratio = backprops / reference_backprops if reference_backprops else math.nan
        objective = (1 - robust.mean) + cost_weight * ratio if not math.isnan(ratio) else math.nan
        val_robust = mean_ci(r.get("val_robust_acc", math.nan) for r in group)
        val_objective = mean_ci(r.get("val_objective", math.nan) for r in group).mean
        out.append(RecipeStats(key, str(group[0].get("label", key)), str(group[0].get("warm_start") or ""), robust,
                               clean, backprops, ratio, objective, tuple(int(r["seed"]) for r in group),
                               val_robust, val_objective, str(group[0].get("dropped") or "")))
    return out


def choose(stats: Sequence[RecipeStats], target: float | None = None,
           exclude: str = "") -> RecipeStats | None:
    """The pick, from validation numbers only (the test split never changes it): the lowest
    mean validation objective among candidates not dropped; with a ``target``, the cheapest
    whose validation robust accuracy's 95 % lower bound reaches it (None when none does).
    ``exclude``: a warm-start label that is never picked (the reference)."""
    pool = [s for s in stats if not s.dropped and s.warm_start != exclude and math.isfinite(s.val_objective)]
    if target is not None:
        meeting = [s for s in pool if s.val_robust.n >= 2 and s.val_robust.low >= target]
        return min(meeting, key=lambda s: s.backprops) if meeting else None
    return min(pool, key=lambda s: s.val_objective, default=None)


def payback_trainings(total_cost_runs: float, cost_ratio: float) -> float | None:
    """How many trainings with the found recipe repay ``total_cost_runs``: each one saves
    ``1 − cost_ratio`` reference runs against training the reference (None: it saves nothing)."""
    saved = 1.0 - cost_ratio
    return total_cost_runs / saved if saved > 0 and math.isfinite(total_cost_runs) else None


def paired_difference(rows: Sequence[dict[str, Any]], a: str, b: str, key: str = "robust_acc") -> Interval:
    """``key`` of recipe ``a`` minus recipe ``b`` on the seeds both have: mean and 95 % interval."""
    by_seed: dict[str, dict[int, float]] = {a: {}, b: {}}
    for row in rows:
        trial = str(row["trial_id"])
        if trial in by_seed:
            by_seed[trial][int(row["seed"])] = float(row.get(key, math.nan))
    shared = sorted(set(by_seed[a]) & set(by_seed[b]))
    return mean_ci(by_seed[a][s] - by_seed[b][s] for s in shared)


def robustness_claim(diff: Interval, margin: float, other: str = "the reference") -> str:
    """What the paired difference (recipe − ``other``) supports (rules in the module doc)."""
    if diff.n < 2 or math.isnan(diff.low):
        return f"robust accuracy {100 * diff.mean:+.1f} points vs {other} on {diff.n} seed(s): too few to tell"
    points = f"{100 * diff.mean:+.1f} points (95% CI {100 * diff.low:+.1f} to {100 * diff.high:+.1f})"
    if diff.low > 0:
        return f"more robust than {other}: {points}"
    if diff.high < 0:
        return f"less robust than {other}: {points}"
    if -margin <= diff.low and diff.high <= margin:
        return f"as robust as {other} (within ±{100 * margin:.0f} points): {points}"
    return f"not distinguishable from {other} at {diff.n} seeds: {points}"


def target_claim(robust: Interval, target: float) -> str:
    """What the robust accuracy's interval supports about ``target`` (rules in the module doc)."""
    if robust.n < 2 or math.isnan(robust.low):
        verb = "reaches" if robust.mean >= target else "misses"
        return f"{verb} the target {target:.3f} on one seed (no interval)"
    ci = f"{robust.mean:.3f}, 95% CI {robust.low:.3f}–{robust.high:.3f}"
    if robust.low >= target:
        return f"meets the target {target:.3f} ({ci})"
    if robust.high < target:
        return f"misses the target {target:.3f} ({ci})"
    return f"target {target:.3f} inside the interval ({ci}): more seeds needed to say it is met"


__all__ = ["Interval", "RecipeStats", "choose", "mean_ci", "paired_difference", "payback_trainings", "recipe_stats",
           "robustness_claim",
           "t_quantile", "target_claim"]
