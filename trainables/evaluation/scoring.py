"""The objectives (SPEC §7), minimized.

Trade-off (the default)::

    objective = (1 − robust_acc) + cost_weight · cost / reference_cost

Amata frames efficient adversarial training as min Φ(θ_T) + ∫ γ·K_s ds (eq. 6). Here the
reference cost is the PGD-10 recipe for the configured epochs: 11 backprops per batch, so
``cost_weight`` is how much robust accuracy one full PGD-10 budget is worth.

Target (``objective: target``): the cheapest recipe whose robust accuracy reaches
``target_robust_acc``. Optuna sees the cost (in reference runs) as the value and the
shortfall ``target − robust_acc`` as a constraint (≤ 0 is feasible). The scheduler needs
one number that orders trials the same way, so the reported ``objective`` is the cost for a
feasible trial and ``TARGET_INFEASIBLE + shortfall`` for one below the target: every
feasible trial ranks before every infeasible one, and infeasible ones by how far they miss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

REFERENCE_K = 10
DIVERGED_OBJECTIVE = 10.0  # a finite penalty Optuna and ASHA can rank
TARGET_INFEASIBLE = 5.0  # above any cost in reference runs a K <= 50 recipe reaches, below DIVERGED


def reference_backprops(epochs: int, batches_per_epoch: int) -> int:
    """Backprops of PGD-10 for ``epochs`` epochs: (10 + 1)·M per epoch."""
    return (REFERENCE_K + 1) * batches_per_epoch * epochs


def tradeoff_objective(robust_acc: float, cost: float, reference_cost: float, cost_weight: float) -> float:
    """(1 − robust_acc) + cost_weight · cost / reference_cost."""
    return (1.0 - robust_acc) + cost_weight * cost / reference_cost


def target_shortfall(robust_acc: float, target: float) -> float:
    """target − robust_acc: Optuna's constraint value (≤ 0: the target is met)."""
    return target - robust_acc


def target_objective(robust_acc: float, cost: float, reference_cost: float, target: float) -> float:
    """The cost in reference runs when ``robust_acc`` meets ``target``, else
    ``TARGET_INFEASIBLE`` + the shortfall (see the module docstring)."""
    shortfall = target_shortfall(robust_acc, target)
    return cost / reference_cost if shortfall <= 0 else TARGET_INFEASIBLE + shortfall


def non_dominated(points: Sequence[Sequence[float]]) -> list[int]:
    """The one Pareto rule, all coordinates minimized: indices of the points no other point
    dominates (at most as large in every coordinate, smaller in one). Equal points do not
    dominate each other, so both stay; a point with a NaN is never on the front and dominates none."""
    usable = [i for i, p in enumerate(points) if all(math.isfinite(x) for x in p)]

    def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

    return [i for i in usable if not any(dominates(points[j], points[i]) for j in usable if j != i)]
