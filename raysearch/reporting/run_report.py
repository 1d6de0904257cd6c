"""The rows of a run's report: one per trial (``trials.csv``), the Pareto front, the best
recipe as an experiment file (``best.yaml``) and the best recipe beside each paper default.

Everything here is pure: it reads a :class:`~raysearch.rundir.results.RunInfo` and returns
rows, flags and text; :mod:`raysearch.reporting.report_files` writes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import yaml

from raysearch.rundir.records import TrialRecord, finite
from raysearch.rundir.results import RunInfo, metric, ranked
from trainables.evaluation.scoring import non_dominated
from trainables.labels import REFERENCE_LABEL, describe
from trainables.status import Status

# trial-config keys that are columns of their own or belong to the experiment, not the recipe
_NOT_PARAMS = frozenset({"method", "loss", "schedule", "data_root", "device", "download"})


def pct(value: float) -> str:
    """An accuracy as a percentage with one decimal ("–" for NaN)."""
    return "–" if math.isnan(value) else f"{100 * value:.1f}%"


def fmt(value: Any, spec: str) -> str:
    """A number formatted with ``spec``, "" when it is missing or not finite."""
    number = finite(value)
    return "" if math.isnan(number) else format(number, spec)


def ratio(value: float, reference: float | None) -> float:
    """``value / reference``, NaN without a reference or a value."""
    return value / reference if reference and not math.isnan(value) else math.nan


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (robust_acc, backprops) points: True where no other point is at least as good in both
    (higher or equal accuracy, fewer or equal backprops) and better in one
    (:func:`trainables.evaluation.scoring.non_dominated`); a point with a NaN is never on it."""
    on = set(non_dominated([(-acc, cost) for acc, cost in points]))
    return [i in on for i in range(len(points))]


def front_flags(trials: list[TrialRecord]) -> list[bool]:
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


def _row(run: RunInfo, trial: TrialRecord, params: list[str], on_pareto: bool) -> dict[str, Any]:
    m, cfg = trial.metrics, trial.config
    row: dict[str, Any] = {"trial_id": trial.trial_id, "recipe": describe(cfg)}
    row.update(_resolved(cfg, ("method", "loss", "schedule")))
    row.update({key: cfg.get(key, "") for key in params})
    vs_pgd10 = ratio(metric(trial, "backprops"), run.reference_backprops)
    row.update({
        "status": trial.status.value, "optuna_state": trial.optuna_state or "",
        "fidelity_level": f"{int(m.get('level', 0)) + 1}/{m.get('levels', 1)}",
        "epochs": m.get("epoch", ""), "clean_acc": m.get("clean_acc", ""), "robust_acc": m.get("robust_acc", ""),
        "fgsm_acc": m.get("fgsm_acc", ""), "best_robust_acc": m.get("best_robust_acc", ""),
        "backprops": m.get("backprops", ""),
        "backprops_vs_pgd10": "" if math.isnan(vs_pgd10) else round(vs_pgd10, 4),
        "train_seconds": m.get("train_seconds", ""), "objective": m.get("objective", ""),
        "spent_backprops": trial.spent_backprops, "stage": trial.stage,
        "warm_start": trial.warm_start or "", "on_pareto": on_pareto,
    })
    return row


def trial_rows(run: RunInfo, pareto_flags: list[bool] | None = None) -> list[dict[str, Any]]:
    """The rows of ``trials.csv``, best first (completed by objective, then the rest);
    ``pareto_flags``: each trial's (in ``run.trials`` order), computed when not given."""
    if pareto_flags is None:
        pareto_flags = front_flags(run.trials)
    flags = dict(zip((t.trial_id for t in run.trials), pareto_flags, strict=True))
    order = ranked(run.trials)
    order += [t for t in run.trials if t not in order]
    params = _param_columns(run)
    return [_row(run, trial, params, flags[trial.trial_id]) for trial in order]


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


def best_yaml(run: RunInfo, trial: TrialRecord, confirmed: bool = False) -> str:
    """``best.yaml``'s text: a comment saying what the trial reached (and, ``confirmed``, that the
    confirmation chose it), then its experiment."""
    m = trial.metrics
    vs_pgd10 = ratio(metric(trial, "backprops"), run.reference_backprops)
    what = "Confirmed pick (chosen on the validation split over the confirmation's seeds)" if confirmed \
        else "Best recipe"
    lines = [
        f"# {what} of run {run.name}: trial {trial.trial_id} ({trial.status.value}), {describe(trial.config)}",
        f"# validation after {m.get('epoch')} epochs: robust acc {pct(metric(trial, 'robust_acc'))}, "
        f"clean acc {pct(metric(trial, 'clean_acc'))}, {m.get('backprops')} backprops"
        + ("" if math.isnan(vs_pgd10) else f" ({vs_pgd10:.2f}x PGD-10)")
        + f", objective {metric(trial, 'objective'):.4f}",
        f"# Re-run: raysearch train best.yaml   (written by raysearch {run.version or 'unknown'})",
    ]
    body = yaml.safe_dump(best_experiment(run, trial), sort_keys=False, allow_unicode=True, default_flow_style=None)
    return "\n".join(lines) + "\n" + body


# ---------------------------------------------------------------------------- comparisons


def compare(best: TrialRecord, other: TrialRecord) -> dict[str, Any]:
    """Robust-accuracy difference (points) and compute ratio backprops_best / backprops_other."""
    diff = 100 * (metric(best, "robust_acc") - metric(other, "robust_acc"))
    other_bp = metric(other, "backprops")
    compute = metric(best, "backprops") / other_bp if other_bp > 0 else math.nan
    return {"against": other.warm_start or other.trial_id, "trial_id": other.trial_id,
            "status": other.status.value, "robust_points": diff, "compute_ratio": compute}


def comparisons(run: RunInfo, best: TrialRecord) -> list[dict[str, Any]]:
    """The best recipe against every paper default that finished its run (never a cut-short one)."""
    defaults = sorted((t for t in run.trials if t.warm_start and t is not best and t.metrics
                       and t.status == Status.COMPLETED and t.full_fidelity),
                      key=lambda t: (t.warm_start != REFERENCE_LABEL, t.warm_start or ""))
    return [compare(best, t) for t in defaults]


__all__ = ["best_experiment", "best_yaml", "compare", "comparisons", "fmt", "front_flags", "pareto_front", "pct",
           "ratio", "trial_rows"]
