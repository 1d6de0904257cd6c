"""``piecewise``: replay a given schedule, one K (and optionally one α) per epoch.

``piecewise.k: [0, 1, 1, 2, 3, 3]`` trains epoch t with K = k[t]; ``piecewise.alpha`` gives
epoch t's step size (unset: the method's default for that K). A list shorter than the run
holds its last value. Learned schedules (population-based search) and any recorded run's
K(t) are written in this form, so ``raysearch train best.yaml`` replays them from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainables.plan import Plan
from trainables.registry import ConfigError
from trainables.schedules.base import Schedule, ScheduleSetup, ScheduleSpec


@dataclass(frozen=True)
class PiecewiseConfig:
    """One K per epoch (``k``) and optionally one step size per epoch (``alpha``)."""

    k: tuple[int, ...] = ()
    alpha: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if any(k < 0 for k in self.k):
            raise ConfigError("piecewise.k", list(self.k), "every K must be >= 0")
        if self.alpha is not None and any(a <= 0 for a in self.alpha):
            raise ConfigError("piecewise.alpha", list(self.alpha), "every step size must be > 0")


class Piecewise(Schedule):
    def __init__(self, ks: tuple[int, ...], alphas: tuple[float, ...] | None = None) -> None:
        if not ks:
            raise ConfigError("piecewise.k", [], "needs one K per epoch, e.g. [1, 1, 2, 2, 3, 3]")
        self.ks, self.alphas = ks, alphas

    def plan(self, epoch: int) -> Plan:
        k = self.ks[min(epoch, len(self.ks) - 1)]
        alpha = self.alphas[min(epoch, len(self.alphas) - 1)] if self.alphas else None
        return Plan(k, alpha)


def _describe(s: ScheduleSetup) -> str:
    ks = s.options.k
    return "piecewise K=" + (",".join(map(str, ks)) if len(ks) <= 12 else f"{ks[0]}…{ks[-1]}")


PIECEWISE_SPEC = ScheduleSpec(build=lambda s: Piecewise(s.options.k, s.options.alpha), describe=_describe,
                              options=PiecewiseConfig)
