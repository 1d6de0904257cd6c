"""The search-level view of the objective (SPEC §7): which metric(s) Optuna and ASHA read.

The trainable computes ``objective`` itself each epoch (:mod:`trainables.objective`, from
which :func:`reference_backprops` and :func:`tradeoff_objective` are re-exported here), so
the search only names it: metric ``objective``, mode ``min``. ``objective: pareto`` makes the
study multi-objective, maximizing ``robust_acc`` and minimizing ``backprops``; ASHA still
needs one number to compare trials at a rung and keeps reading the trade-off ``objective``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainables.objective import DIVERGED_OBJECTIVE, reference_backprops, tradeoff_objective

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
    "search_metric",
    "tradeoff_objective",
]


def search_metric(objective: str) -> tuple[str | list[str], str | list[str]]:
    """(metric, mode) for the searcher: the trade-off scalar, or the Pareto pair."""
    if objective == "pareto":
        return list(PARETO_METRICS), list(PARETO_MODES)
    return METRIC, MODE


def pareto_front(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str] = tuple(PARETO_METRICS),
                 modes: Sequence[str] = tuple(PARETO_MODES)) -> list[int]:
    """Indices of the rows no other row dominates (better or equal in all, better in one)."""
    signs = [1.0 if m == "min" else -1.0 for m in modes]
    points = [[s * float(row[m]) for m, s in zip(metrics, signs, strict=True)] for row in rows]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]
