"""K-schedules and controllers.

A *schedule* decides the epoch's :class:`~trainables.methods.Plan` (K and, for Amata, α)
before each epoch; a *controller* also reads what the last epoch measured
(:meth:`observe`). Epochs are indexed t = 0 … T−1. Schedules are independent of the method
they drive, so "Amata+Free", "M+PGD" and "M+ATAS" are just combinations. State that lives
across epochs (M+'s threshold, DEAT's K) round-trips through ``state_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainables.methods import Plan


@dataclass(frozen=True)
class EpochStats:
    """What a controller may read after an epoch."""

    train_acc: float
    grad_magnitude: float  # l_X: Σ over batches of ‖∇x ℓ(x + δ)‖₁ at the last attack step


class Schedule:
    """Base class: a stateless schedule whose plan depends only on t."""

    def plan(self, epoch: int) -> Plan:
        raise NotImplementedError

    def max_k(self, epochs: int) -> int:
        """The largest K this schedule can plan in ``epochs`` epochs (the budget ASHA needs)."""
        return max(self.plan(t).k for t in range(epochs))

    def observe(self, epoch: int, stats: EpochStats) -> None:
        """Controllers override; plain schedules ignore measurements."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None
