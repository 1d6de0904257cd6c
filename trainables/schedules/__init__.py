"""K-schedules and controllers (contract names): ``constant``, ``amata``, ``deat_every``,
``deat_acc``, ``mplus``, ``piecewise``.

``SCHEDULES`` is the one source of truth: each entry (:class:`ScheduleSpec`) carries the
builder, its options section, its report label and the attack start its paper prescribes.
Adding a schedule = one file with its class and spec + one line here.
"""

from __future__ import annotations

from trainables.registry import Registry
from trainables.schedules.amata import AMATA_SPEC, Amata, AmataConfig, amata_k, shape_value
from trainables.schedules.base import EpochStats, Schedule, ScheduleSetup, ScheduleSpec
from trainables.schedules.constant import CONSTANT_SPEC, Constant
from trainables.schedules.deat import (
    DEAT_ACC_SPEC,
    DEAT_EVERY_SPEC,
    DeatAcc,
    DeatAccConfig,
    DeatEvery,
    DeatEveryConfig,
)
from trainables.schedules.mplus import MPLUS_SPEC, MPlus, MPlusConfig
from trainables.schedules.piecewise import PIECEWISE_SPEC, Piecewise, PiecewiseConfig

SCHEDULES: Registry[ScheduleSpec] = Registry("schedule", {
    "constant": CONSTANT_SPEC,
    "amata": AMATA_SPEC,
    "deat_every": DEAT_EVERY_SPEC,
    "deat_acc": DEAT_ACC_SPEC,
    "mplus": MPLUS_SPEC,
    "piecewise": PIECEWISE_SPEC,
})


def build_schedule(name: str, setup: ScheduleSetup) -> Schedule:
    return SCHEDULES.get(name).build(setup)


__all__ = [
    "SCHEDULES", "Amata", "AmataConfig", "Constant", "DeatAcc", "DeatAccConfig", "DeatEvery", "DeatEveryConfig",
    "EpochStats", "MPlus", "MPlusConfig", "Piecewise", "PiecewiseConfig", "Schedule", "ScheduleSetup",
    "ScheduleSpec", "amata_k", "build_schedule", "shape_value",
]
