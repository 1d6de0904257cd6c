"""The trade-off objective (SPEC §7), minimized:

    objective = (1 − robust_acc) + cost_weight · cost / reference_cost

Amata frames efficient adversarial training as min Φ(θ_T) + ∫ γ·K_s ds (eq. 6). Here the
reference cost is the PGD-10 recipe for the configured epochs: 11 backprops per batch, so
``cost_weight`` is how much robust accuracy one full PGD-10 budget is worth.
"""

from __future__ import annotations

REFERENCE_K = 10
DIVERGED_OBJECTIVE = 10.0  # a finite penalty Optuna and ASHA can rank


def reference_backprops(epochs: int, batches_per_epoch: int) -> int:
    """Backprops of PGD-10 for ``epochs`` epochs: (10 + 1)·M per epoch."""
    return (REFERENCE_K + 1) * batches_per_epoch * epochs


def tradeoff_objective(robust_acc: float, cost: float, reference_cost: float, cost_weight: float) -> float:
    """(1 − robust_acc) + cost_weight · cost / reference_cost."""
    return (1.0 - robust_acc) + cost_weight * cost / reference_cost
