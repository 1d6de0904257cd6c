"""The naive DEAT criteria (Wang et al., DEAT §3.1): K starts at 0 (natural training) and

- ``deat_every`` (DEAT-d): grows by one every d epochs, K_t = ⌊t / d⌋; over T = 10 epochs with
  d = 3 this costs ⌈T(T+d)/2d⌉ = 22 M backprops (DEAT Table 2);
- ``deat_acc`` (DEAT-acc): grows by one after an epoch whose training accuracy exceeds
  ``threshold`` (DEAT-40% by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainables.plan import Plan
from trainables.registry import ConfigError
from trainables.schedules.base import EpochStats, Schedule, ScheduleSpec


@dataclass(frozen=True)
class DeatEveryConfig:
    """DEAT-d: K grows by one every ``every`` epochs."""

    every: int = 3

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ConfigError("deat_every.every", self.every, "must be >= 1")


@dataclass(frozen=True)
class DeatAccConfig:
    """DEAT-acc: K grows by one after an epoch whose training accuracy exceeds ``threshold``."""

    threshold: float = 0.40

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 1:
            raise ConfigError("deat_acc.threshold", self.threshold, "must be in [0, 1]")


class DeatEvery(Schedule):
    def __init__(self, every: int) -> None:
        self.every = every

    def plan(self, epoch: int) -> Plan:
        return Plan(epoch // self.every)


class DeatAcc(Schedule):
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.k = 0

    def plan(self, epoch: int) -> Plan:
        return Plan(self.k)

    def max_k(self, epochs: int) -> int:
        return epochs - 1  # from 0, at most one more per epoch

    def observe(self, epoch: int, stats: EpochStats) -> None:
        if stats.train_acc > self.threshold:
            self.k += 1

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.k = int(state["k"])


DEAT_EVERY_SPEC = ScheduleSpec(
    build=lambda s: DeatEvery(s.options.every), describe=lambda s: f"DEAT-{s.options.every}",
    options=DeatEveryConfig, source="Wang et al., DEAT §3.1 (DEAT-d)")
DEAT_ACC_SPEC = ScheduleSpec(
    build=lambda s: DeatAcc(s.options.threshold), describe=lambda s: f"DEAT-acc {s.options.threshold:.2f}",
    options=DeatAccConfig, source="Wang et al., DEAT §3.1 (DEAT-acc)")
