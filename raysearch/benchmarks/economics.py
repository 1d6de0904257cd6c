"""The search's economics (``raysearch bench --search``): what a whole answer costs and what it
is worth, measured.

Searches of the demo experiment (same data, epochs, trade-off objective), each with ``seeds``
search seeds, side by side, each *with its own confirmation* (the answer a user gets):

- ``baseline``: raysearch 0.2's default: the search with the PGD-10 reference among the paper
  defaults, then a fixed confirmation (top 2 and every finished paper default, 3 seeds each)
  whose pick is the best *test* objective (0.2's rule);
- ``new``: today's default: no reference training, racing confirmation over up to 3 seeds of
  the top 2, the pick made on the validation split;
- ``random`` (only when asked for): random configurations, full runs only, at the new search's
  budget, with the new confirmation.

The *total cost* is search + confirmation in reference runs; *payback* is that total over what
the pick saves per training (1 − its cost ratio). The *confirmed objective* is the trade-off
objective of the pick's mean test robust accuracy over ``confirm_seeds`` seeds (a pick that the
race confirmed with fewer seeds is topped up to ``confirm_seeds``, outside its cost, so every
variant is measured alike). The figures are medians over the search seeds.

``fidelity`` (off unless ``fidelity_recipes`` > 0) measures how well each fidelity level predicts
the full run: ``recipes`` random recipes of the space run at every level and, at full
fidelity, with ``confirm_seeds`` seeds on the test split; the Spearman rank correlation between
each level's validation objective and the confirmed objective.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIANTS: dict[str, list[str]] = {
    "baseline": ["search.reuse=false", "search.reference=true", "search.confirm.racing=false",
                 "search.confirm.defaults=true", "search.budget=4"],
    "new": ["search.reuse=false"],
    "random": ["search.algorithm=random", "search.scheduler=none", "search.time_attr=backprops", "search.reuse=false"],
}
DEFAULT_VARIANTS = ("baseline", "new")
QUICK = ["epochs=2", "max_batches=4", "eval.examples=100", "search.samples=4", "search.budget=null",
         "search.space=baselines", "search.confirm.seeds=2", "search.confirm.top=1"]


def _log(message: str) -> None:
    print(f"[bench --search] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SearchRow:
    variant: str
    seed: int
    cost_runs: float
    seconds: float
    trials: int
    best: str
    confirmed_robust: float
    confirmed_objective: float
    confirm_cost_runs: float = math.nan
    total_cost_runs: float = math.nan
    payback_trainings: float = math.nan
    cost_ratio: float = math.nan
    rounds: int = 0


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN with fewer than 3 pairs."""
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return math.nan

    def ranks(values: Sequence[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return out

    rx, ry = ranks([p[0] for p in pairs]), ranks([p[1] for p in pairs])
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (sx * sy) if sx and sy else math.nan


def _pick(variant: str, stats: Sequence[Any], summary: dict[str, Any]) -> Any:
    """The variant's answer: 0.2 picked the best *test* objective, today's default the
    validation pick the confirmation wrote down."""
    if variant == "baseline":
        return min(stats, key=lambda s: s.objective, default=None)
    return next((s for s in stats if s.trial_id == summary.get("chosen_trial")), None)


def run_variant(variant: str, seed: int, storage: str, extra: Sequence[str], confirm_seeds: int) -> SearchRow:
    """One search of the demo with its own confirmation, and the pick measured alike for every variant."""
    from raysearch.pipeline.confirmation import run_confirmation
    from raysearch.pipeline.run import search
    from raysearch.reporting.stats import payback_trainings

    overrides = [*VARIANTS[variant], f"search.seed={seed}", f"search.confirm.seeds={confirm_seeds}", *extra]
    if variant == "random":
        overrides.append(f"search.budget={_new_budget(extra)}")
    start = time.monotonic()
    result = search("demo", overrides, storage=storage, name=f"{variant}-{seed}", progress=False)
    seconds = time.monotonic() - start
    summary = result.summary
    cost_runs = float(summary.get("search_cost_runs", math.nan))
    confirm_runs = float(summary.get("confirm_cost_runs", 0.0) or 0.0)
    total = cost_runs + confirm_runs
    conf = result.confirmation
    pick = _pick(variant, conf.stats if conf else [], summary)
    if pick is None:
        return SearchRow(variant, seed, cost_runs, seconds, len(result.trials), "", math.nan, math.nan, confirm_runs,
                         total)
    payback = payback_trainings(total, pick.cost_ratio)
    if pick.robust.n < confirm_seeds:  # measured alike: top the pick up to confirm_seeds (outside its cost)
        topped = run_confirmation(result.run_dir, 1, confirm_seeds, progress=False, trial_ids=[pick.trial_id])
        pick = next(s for s in topped.stats if s.trial_id == pick.trial_id)
    _log(f"{variant} seed {seed}: search {cost_runs:.2f} + confirmation {confirm_runs:.2f} = {total:.2f} reference "
         f"runs in {seconds:.0f} s, pick {pick.label}: confirmed robust {pick.robust}, objective {pick.objective:.4f}, "
         f"payback {payback if payback is not None else math.inf:.1f} trainings")
    return SearchRow(variant, seed, cost_runs, seconds, len(result.trials), pick.label, pick.robust.mean,
                     pick.objective, confirm_runs, total, payback if payback is not None else math.inf,
                     pick.cost_ratio, len(summary.get("confirm_rounds") or []))


def _new_budget(extra: Sequence[str]) -> float | None:
    from raysearch.rundir.experiment import load_experiment

    budget = load_experiment("demo", list(extra)).search.budget
    if budget is None:  # --quick runs the new search without one: random gets the demo's own
        budget = load_experiment("demo").search.budget
    return budget


def measure_fidelity(recipes: int, confirm_seeds: int, seed: int, storage: str, extra: Sequence[str]) -> dict[str, Any]:
    """Every level's validation objective of ``recipes`` random recipes against their confirmed
    full-fidelity objective (Spearman per level)."""
    from raysearch.pipeline.confirmation import run_confirmation
    from raysearch.pipeline.run import search

    overrides = ["search.algorithm=random", "search.scheduler=none", "search.budget=null", "search.warm_start=false",
                 f"search.seed={seed}", "search.confirm.top=0", "search.reuse=false", *extra]
    result = search("demo", overrides, samples=recipes, storage=storage, name="fidelity", progress=False,
                    confirm=False)
    confirmed = run_confirmation(result.run_dir, recipes, confirm_seeds, progress=False, defaults=False)
    by_trial = {s.trial_id: s.objective for s in confirmed.stats}
    trials = [t for t in result.trials if t.trial_id in by_trial]
    levels = max((len(t.levels) for t in trials), default=0)
    out: dict[str, Any] = {"recipes": len(trials), "levels": []}
    for level in range(levels):
        scores = [float(t.levels[level].get("objective", math.nan)) if level < len(t.levels) else math.nan
                  for t in trials]
        confirmed_scores = [by_trial[t.trial_id] for t in trials]
        rho = spearman(scores, confirmed_scores)
        fraction = (trials[0].levels[level].get("level_epochs"), trials[0].levels[level].get("level_data_fraction"))
        out["levels"].append({"level": level, "epochs": fraction[0], "data_fraction": fraction[1], "spearman": rho})
        _log(f"fidelity level {level} ({fraction[0]} epochs, {fraction[1]} of the data): Spearman {rho:.3f} "
             f"over {len(trials)} recipes")
    return out


def compare_searches(seeds: Sequence[int] = (0, 1, 2), confirm_seeds: int = 3, quick: bool = False,
                     fidelity_recipes: int = 0, variants: Sequence[str] = DEFAULT_VARIANTS) -> dict[str, Any]:
    """The comparison of the module docstring; ``quick``: tiny searches (smoke tests)."""
    from raysearch.tuning.resources import ray_session

    extra = QUICK if quick else []
    rows: list[SearchRow] = []
    # one Ray session for every search and confirmation of the comparison (each would otherwise
    # start and stop its own, seconds apiece): a row's seconds are its search's, not Ray's start
    with ray_session(), tempfile.TemporaryDirectory(prefix="raysearch-bench-") as tmp:
        for seed in seeds:
            for variant in variants:
                _log(f"{variant} search, seed {seed}")
                rows.append(run_variant(variant, seed, str(Path(tmp, f"{variant}-{seed}")), extra,
                                        2 if quick else confirm_seeds))
        fidelity = measure_fidelity(3 if quick else fidelity_recipes, confirm_seeds, seeds[0],
                                    str(Path(tmp, "fidelity")), extra) if fidelity_recipes else None
    from raysearch.rundir.experiment import load_experiment

    attacks = load_experiment("demo", list(extra)).search.confirm.attacks
    result: dict[str, Any] = {"seeds": list(seeds), "confirm_seeds": confirm_seeds, "quick": quick, "attacks": attacks,
                              "rows": [r.__dict__ for r in rows], "fidelity": fidelity}
    for variant in variants:
        mine = [r for r in rows if r.variant == variant]
        result[f"{variant}_cost_runs"] = _median([r.cost_runs for r in mine])
        result[f"{variant}_confirmed_objective"] = _median([r.confirmed_objective for r in mine])
        result[f"{variant}_seconds"] = _median([r.seconds for r in mine])
        result[f"{variant}_total_cost_runs"] = _median([r.total_cost_runs for r in mine])
        result[f"{variant}_payback_trainings"] = _median([r.payback_trainings for r in mine])
    return result


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def print_comparison(result: dict[str, Any]) -> None:
    print(f"search comparison on the demo (medians over search seeds {result['seeds']}; each pick measured with "
          f"{result['confirm_seeds']} seeds, {result.get('attacks', 'pgd20')} on the test split):")
    print(f"  {'search':<10} {'search runs':>11} {'total runs':>10} {'payback':>8} {'confirmed objective':>20} "
          f"{'wall s':>7}")
    for variant in ("baseline", "new", "random"):
        if f"{variant}_cost_runs" in result:
            print(f"  {variant:<10} {result[f'{variant}_cost_runs']:>11.2f} {result[f'{variant}_total_cost_runs']:>10.2f} "
                  f"{result[f'{variant}_payback_trainings']:>8.1f} {result[f'{variant}_confirmed_objective']:>20.4f} "
                  f"{result[f'{variant}_seconds']:>7.0f}")
    for level in (result.get("fidelity") or {}).get("levels", []):
        print(f"  fidelity level {level['level']} ({level['epochs']} epochs, data {level['data_fraction']}): "
              f"Spearman {level['spearman']:.3f} against the confirmed full runs")


__all__ = ["VARIANTS", "SearchRow", "compare_searches", "measure_fidelity", "print_comparison", "spearman"]
