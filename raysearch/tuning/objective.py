"""The search-level view of the objective (SPEC §7): which metric(s) Optuna and ASHA read.

The trainable computes ``objective`` itself each epoch (:mod:`trainables.evaluation.scoring`), so the
search only names it. ASHA always reads the one number ``objective`` (minimized): the
trade-off, or for ``objective: target`` the cost when the target is met and a penalty
ranking every miss after every hit. Optuna reads:

- ``tradeoff``: ``objective`` (minimize), named "objective (1 − robust acc + w·cost)";
- ``target``: ``cost_runs`` (minimize; backprops in reference runs) with the constraint
  ``target − robust_acc`` ≤ 0 (constrained TPE);
- ``pareto``: ``robust_acc`` (maximize) and ``backprops`` (minimize), NSGA-II.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainables.evaluation.scoring import (
    DIVERGED_OBJECTIVE,
    non_dominated,
    reference_backprops,
    tradeoff_objective,
)

METRIC = "objective"
MODE = "min"
PARETO_METRICS = ["robust_acc", "backprops"]
PARETO_MODES = ["max", "min"]

__all__ = [
    "DIVERGED_OBJECTIVE",
    "METRIC",
    "MODE",
    "PARETO_METRICS",
    "PARETO_MODES",
    "pareto_front",
    "reference_backprops",
    "metric_names",
    "search_metric",
    "tradeoff_objective",
]


def search_metric(objective: str) -> tuple[str | list[str], str | list[str]]:
    """(metric, mode) for the searcher (see the module docstring)."""
    if objective == "pareto":
        return list(PARETO_METRICS), list(PARETO_MODES)
    if objective == "target":
        return "cost_runs", "min"
    return METRIC, MODE


def metric_names(objective: str, cost_weight: float = 0.1) -> list[str]:
    """The study's names for its objective value(s) (``study.set_metric_names``)."""
    if objective == "pareto":
        return ["robust accuracy (validation)", "backprops"]
    if objective == "target":
        return ["cost (reference runs), constrained: robust acc >= target"]
    return [f"objective = 1 - robust acc + {cost_weight:g} * cost in reference runs"]


def pareto_front(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] = tuple(PARETO_METRICS),
                 modes: Sequence[str] = tuple(PARETO_MODES)) -> list[int]:
    """Indices of the rows no other row dominates (better or equal in all, better in one;
    :func:`trainables.evaluation.scoring.non_dominated`)."""
    signs = [1.0 if m == "min" else -1.0 for m in modes]
    return non_dominated([[s * float(row[m]) for m, s in zip(metrics, signs, strict=True)] for row in rows])
