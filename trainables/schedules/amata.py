"""``amata``: the annealing schedule of Amata (Ye et al., AAAI 2021), Algorithm 1.

    K_t = K_min + ⌊(K_max − K_min)·s(t/T)⌋,   α_t = τ / K_t,   t = 0 … T−1,

floored as in Algorithm 1 and its reference re-implementation, so K_max is approached rather
than always reached. Shapes s(u):

- ``linear``: s(u) = u (the paper's),
- ``exp``:    s(u) = (1 − e^(−η·u·T)) / (1 − e^(−η·T))  (Appendix B.2, eq. 16),
- ``cosine``: s(u) = (1 − cos πu) / 2,
- ``step``:   0 for u < ``switch``, then 1.
"""

from __future__ import annotations

import math

from trainables.methods import Plan
from trainables.schedules.base import Schedule

_ROUNDOFF = 1e-9  # so that e.g. s = 0.3 * 10 = 2.9999999999999996 floors to 3


def shape_value(shape: str, u: float, total_epochs: int, eta: float = 1.0, switch: float = 0.5) -> float:
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


def amata_k(epoch: int, total_epochs: int, k_min: int, k_max: int, shape: str = "linear",
            eta: float = 1.0, switch: float = 0.5) -> int:
    """K_t of Amata Algorithm 1 (floored)."""
    if shape == "linear":  # exact integer arithmetic for the paper's shape
        return k_min + (k_max - k_min) * epoch // total_epochs
    s = shape_value(shape, epoch / total_epochs, total_epochs, eta, switch)
    return k_min + math.floor((k_max - k_min) * s + _ROUNDOFF)


class Amata(Schedule):
    def __init__(self, total_epochs: int, k_min: int, k_max: int, tau: float, shape: str = "linear",
                 eta: float = 1.0, switch: float = 0.5) -> None:
        self.total_epochs, self.k_min, self.k_max, self.tau = total_epochs, k_min, k_max, tau
        self.shape, self.eta, self.switch = shape, eta, switch

    def plan(self, epoch: int) -> Plan:
        k = amata_k(epoch, self.total_epochs, self.k_min, self.k_max, self.shape, self.eta, self.switch)
        return Plan(k, self.tau / k)
