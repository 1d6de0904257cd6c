"""What a schedule hands a method for one epoch: the :class:`Plan` (K and α).

It sits below both: schedules make plans and methods carry them out, and neither imports the
other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """What the schedule decided for an epoch: K attack backprops per batch and α (None: the
    method's default step size). ``start_at_k0``: with K = 0, train on x + δ₀ (the attack's
    start, U(−ε, ε) by default) rather than on x, as DEAT's M+ code does in its first epoch."""

    k: int
    alpha: float | None = None
    start_at_k0: bool = False


__all__ = ["Plan"]
