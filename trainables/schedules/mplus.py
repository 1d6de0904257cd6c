"""``mplus``: M+, gradient-magnitude guided adversarial training (DEAT Algorithm 1), exactly.

K = 0 in epoch 1; after epoch 1, K = 1; after epoch 2 the threshold is initialized to γ·l_X;
after each later epoch, if l_X > threshold then threshold ← γ·l_X and K ← K + 1. l_X is the
epoch's sum over batches of ‖∇x ℓ(x + δ)‖₁ at the last attack step; γ > 1 relaxes the
threshold. An optional cap ``k_max`` (0: none) bounds K.
"""

from __future__ import annotations

import math
from typing import Any

from trainables.methods import Plan
from trainables.schedules.base import EpochStats, Schedule


class MPlus(Schedule):
    def __init__(self, gamma: float, k_max: int = 0) -> None:
        self.gamma, self.k_max = gamma, k_max
        self.k = 0
        self.threshold = math.inf

    def plan(self, epoch: int) -> Plan:
        return Plan(self.k)

    def max_k(self, epochs: int) -> int:
        most = epochs - 1  # K = 0 in epoch 1, then at most one more per epoch
        return min(most, self.k_max) if self.k_max else most

    def observe(self, epoch: int, stats: EpochStats) -> None:
        l_x = stats.grad_magnitude
        if epoch == 0:  # Algorithm 1, t = 1
            self.k += 1
        elif epoch == 1:  # t = 2: initialise the threshold
            self.threshold = self.gamma * l_x
        elif l_x > self.threshold:
            self.threshold = self.gamma * l_x
            self.k += 1
        if self.k_max:
            self.k = min(self.k, self.k_max)

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k, "threshold": self.threshold}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.k, self.threshold = int(state["k"]), float(state["threshold"])
