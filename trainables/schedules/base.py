"""K-schedules and controllers.

A *schedule* decides the epoch's :class:`~trainables.methods.Plan` (K and, for Amata, α)
before each epoch; a *controller* also reads what the last epoch measured
(:meth:`Schedule.observe`). Epochs are indexed t = 0 … T−1. Schedules are independent of the
method they drive, so "Amata+Free", "M+PGD" and "M+ATAS" are just combinations. State that
lives across epochs (M+'s threshold, DEAT's K) round-trips through ``state_dict``.

``SCHEDULES`` entries are :class:`ScheduleSpec` objects: the builder, the options section
(named like the schedule), a report label and, where the paper fixes it, the attack start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainables.plan import Plan


@dataclass(frozen=True)
class EpochStats:
    """What a controller may read after an epoch."""

    train_acc: float
    grad_magnitude: float  # l_X: Σ over batches of ‖∇x ℓ(x + δ)‖₁ (see Schedule.grad_source)


class Schedule:
    """Base class: a stateless schedule whose plan depends only on t.

    ``grad_source``: how a controller wants l_X measured, ``"final"`` (the training loss at
    the final δ) or ``"last_step"`` (the last attack step); None when it reads no gradient.
    ``grad_weight``: ``"std"`` to weight |∇x ℓ| per channel by the dataset's std; None: 1.
    """

    grad_source: str | None = None
    grad_weight: str | None = None

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


@dataclass(frozen=True)
class ScheduleSetup:
    """What building (or describing) a schedule needs, resolved from the run's config.

    ``k``: the constant K (config ``k``, else the method's default); ``alpha``: the configured
    step size or None; ``joint_gradient``: the method takes weight and input gradients from
    one backward (Free); ``loss``: the outer loss; ``options``: the schedule's own section.
    """

    epochs: int
    epsilon: float
    k: int
    alpha: float | None
    joint_gradient: bool
    loss: str
    options: Any


@dataclass(frozen=True)
class ScheduleSpec:
    """A registry entry: builder, options section, report label (``describe``) and the
    attack start its paper prescribes (``init``; None: the method's). ``reads_grad_norms``: it
    steers by gradient norms (M+'s l_X), so ``precision: auto`` keeps fp32 as the authors did."""

    build: Callable[[ScheduleSetup], Schedule]
    describe: Callable[[ScheduleSetup], str]
    options: type | None = None
    init: str | None = None
    reads_grad_norms: bool = False
    source: str = ""
