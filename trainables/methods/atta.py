"""ATTA: adversarial training with transferable adversarial examples (Zheng et al., CVPR 2020).

Each example's attack starts from its own perturbation of the previous epoch (a per-example
memory moved through the same crop/flip as the image), takes K steps of size α and stores
the result back; the memory is reset to U(−ε, ε) every ``reset_every`` epochs (0: never).
K + 1 backprops per batch; K = 0 is natural training and leaves the memory untouched.
"""

from __future__ import annotations

from typing import Any

import torch

from trainables.data import Batch
from trainables.methods.base import StepContext
from trainables.methods.memory import PerturbationMemory
from trainables.methods.pgd import PGD


class ATTA(PGD):
    """PGD whose attack starts from, and writes back to, a per-example memory."""

    name = "atta"

    def __init__(self, memory: PerturbationMemory, alpha: float | None = None, reset_every: int = 0) -> None:
        super().__init__(alpha)
        self.memory, self.reset_every = memory, reset_every

    def start_epoch(self, epoch: int) -> None:
        if self.reset_every and epoch > 0 and epoch % self.reset_every == 0:
            self.memory.reset()

    def initial_delta(self, batch: Batch, ctx: StepContext) -> torch.Tensor:
        return self.memory.read(batch)

    def store(self, batch: Batch, delta: torch.Tensor) -> None:
        self.memory.write(batch, delta)

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
