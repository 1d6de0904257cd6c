"""``amata``: the annealing schedule of Amata (Ye et al., AAAI 2021), Algorithm 1.

    K_t = K_min + ⌊(K_max − K_min)·s(t/T)⌋,   α_t = τ / K_t,   t = 0 … T−1,

floored as in Algorithm 1 and its reference re-implementation, so K_max is approached rather
than always reached. Shapes s(u):

- ``linear``: s(u) = u (the paper's),
- ``exp``:    s(u) = (1 − e^(−η·u·T)) / (1 − e^(−η·T))  (Appendix B.2, eq. 16),
- ``cosine``: s(u) = (1 − cos πu) / 2,
- ``step``:   0 for u < ``switch``, then 1.

Algorithm 1 starts every attack from the clean batch (x⁰ = x, δ = 0), as does DEAT's
re-implementation (``delta-init zero``): the entry says so, and ``init: auto`` follows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainables.plan import Plan
from trainables.registry import ConfigError, did_you_mean
from trainables.schedules.base import Schedule, ScheduleSetup, ScheduleSpec

_ROUNDOFF = 1e-9  # so that e.g. s = 0.3 * 10 = 2.9999999999999996 floors to 3
SHAPES = ("linear", "exp", "cosine", "step")


def _check(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


@dataclass(frozen=True)
class AmataConfig:
    """Amata Algorithm 1: K anneals from ``k_min`` to ``k_max``; alpha_t = tau / K_t."""

    k_min: int = 2
    k_max: int = 10
    shape: str = "linear"
    eta: float = 1.0
    tau: float | None = None  # None: 2.5 * epsilon (20/255 at epsilon = 8/255)
    switch: float = 0.5

    def __post_init__(self) -> None:
        _check(self.k_min >= 1, "amata.k_min", self.k_min, "must be >= 1 (alpha_t = tau / K_t)")
        _check(self.k_max >= self.k_min, "amata.k_max", self.k_max, f"must be >= amata.k_min ({self.k_min})")
        if self.shape not in SHAPES:
            raise ConfigError("amata.shape", self.shape, f"choose one of {', '.join(SHAPES)}",
                              did_you_mean(self.shape, SHAPES))
        _check(self.eta > 0, "amata.eta", self.eta, "must be > 0")
        _check(self.tau is None or self.tau > 0, "amata.tau", self.tau, "must be > 0")
        _check(0 <= self.switch <= 1, "amata.switch", self.switch, "must be in [0, 1]")


def shape_value(shape: str, u: float, total_epochs: int, eta: float = AmataConfig.eta,
                switch: float = AmataConfig.switch) -> float:
    """s(u) ∈ [0, 1] for u = t / T."""
    if shape == "linear":
        return u
    if shape == "exp":
        return (1 - math.exp(-eta * u * total_epochs)) / (1 - math.exp(-eta * total_epochs))
    if shape == "cosine":
        return (1 - math.cos(math.pi * u)) / 2
    if shape == "step":
        return 0.0 if u < switch else 1.0
    raise ValueError(f"unknown Amata shape {shape!r}")


def amata_k(epoch: int, total_epochs: int, k_min: int, k_max: int, shape: str = AmataConfig.shape,
            eta: float = AmataConfig.eta, switch: float = AmataConfig.switch) -> int:
    """K_t of Amata Algorithm 1 (floored)."""
    if shape == "linear":  # exact integer arithmetic for the paper's shape
        return k_min + (k_max - k_min) * epoch // total_epochs
    s = shape_value(shape, epoch / total_epochs, total_epochs, eta, switch)
    return k_min + math.floor((k_max - k_min) * s + _ROUNDOFF)


class Amata(Schedule):
    def __init__(self, total_epochs: int, k_min: int, k_max: int, tau: float, shape: str = AmataConfig.shape,
                 eta: float = AmataConfig.eta, switch: float = AmataConfig.switch) -> None:
        self.total_epochs, self.k_min, self.k_max, self.tau = total_epochs, k_min, k_max, tau
        self.shape, self.eta, self.switch = shape, eta, switch

    def plan(self, epoch: int) -> Plan:
        k = amata_k(epoch, self.total_epochs, self.k_min, self.k_max, self.shape, self.eta, self.switch)
        return Plan(k, self.tau / k)


def _build(s: ScheduleSetup) -> Amata:
    o: AmataConfig = s.options
    tau = o.tau if o.tau is not None else 2.5 * s.epsilon
    return Amata(s.epochs, o.k_min, o.k_max, tau, o.shape, o.eta, o.switch)


AMATA_SPEC = ScheduleSpec(
    build=_build, describe=lambda s: f"amata {s.options.k_min}→{s.options.k_max} {s.options.shape}",
    options=AmataConfig, init="zero", source="Ye et al., AAAI 2021, Algorithm 1; Appendix B.2 eq. 16")
