"""``constant``: K_t = k for every epoch (PGD-K, FGSM-RS, Free-m, ATTA-K, ATAS)."""

from __future__ import annotations

from trainables.plan import Plan
from trainables.schedules.base import Schedule, ScheduleSpec


class Constant(Schedule):
    def __init__(self, k: int) -> None:
        self.k = k

    def plan(self, epoch: int) -> Plan:
        return Plan(self.k)


CONSTANT_SPEC = ScheduleSpec(build=lambda s: Constant(s.k), describe=lambda s: f"K={s.k}")
