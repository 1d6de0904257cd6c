"""K-schedules and controllers (contract names): ``constant``, ``amata``, ``deat_every``,
``deat_acc``, ``mplus``. Adding one = one file + one line in ``SCHEDULES``."""

from __future__ import annotations

from collections.abc import Callable

from trainables.config import TrainConfig
from trainables.registry import Registry
from trainables.schedules.amata import Amata, amata_k, shape_value
from trainables.schedules.base import EpochStats, Schedule
from trainables.schedules.constant import Constant
from trainables.schedules.deat import DeatAcc, DeatEvery
from trainables.schedules.mplus import MPlus

SCHEDULES: Registry[Callable[[TrainConfig], Schedule]] = Registry("schedule", {
    "constant": lambda cfg: Constant(cfg.constant_k),
    "amata": lambda cfg: Amata(
        cfg.epochs, cfg.amata.k_min, cfg.amata.k_max,
        cfg.amata.tau if cfg.amata.tau is not None else 2.5 * cfg.epsilon,
        cfg.amata.shape, cfg.amata.eta, cfg.amata.switch),
    "deat_every": lambda cfg: DeatEvery(cfg.deat_every.every),
    "deat_acc": lambda cfg: DeatAcc(cfg.deat_acc.threshold),
    "mplus": lambda cfg: MPlus(cfg.mplus.gamma, cfg.mplus.k_max),
})


def build_schedule(cfg: TrainConfig) -> Schedule:
    return SCHEDULES.get(cfg.schedule)(cfg)


__all__ = [
    "SCHEDULES", "Amata", "Constant", "DeatAcc", "DeatEvery", "EpochStats", "MPlus", "Schedule",
    "amata_k", "build_schedule", "shape_value",
]
