"""Per-example perturbation memory shared by ATTA and ATAS.

ATTA (Zheng et al., 2020) initializes each example's attack from the perturbation it had in
the previous epoch. The memory is stored in the un-augmented frame: the stored δ is moved
through the same crop/flip as the image before the attack (``Augment.apply``) and moved
back afterwards (``Augment.store``). ``store_size`` keeps δ downsampled (ATAS Algorithm 2,
32×32 for ImageNet-sized inputs).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from trainables.attacks import project
from trainables.data import Augment, Batch


class PerturbationMemory:
    def __init__(
        self,
        size: int,
        shape: tuple[int, int, int],
        epsilon: float,
        device: torch.device,
        augment: Augment | None,
        store_size: int = 0,
    ) -> None:
        self.epsilon, self.augment, self.shape = epsilon, augment, shape
        stored = shape if not store_size else (shape[0], store_size, store_size)
        self.delta = torch.empty((size, *stored), device=device)
        self.reset()

    def reset(self) -> None:
        """δ ← U(−ε, ε) for every example (projection onto the image happens at read time)."""
        self.delta.uniform_(-self.epsilon, self.epsilon)

    def _full(self, stored: torch.Tensor) -> torch.Tensor:
        if stored.shape[-2:] == self.shape[-2:]:
            return stored
        return F.interpolate(stored, size=self.shape[-2:], mode="nearest")

    def read(self, batch: Batch) -> torch.Tensor:
        """The batch's initial perturbation, in the augmented frame of ``batch.x``."""
        delta = self._full(self.delta[batch.index])
        if self.augment is not None and batch.aug is not None:
            delta = self.augment.apply(delta, batch.aug)
        return project(delta, batch.x, self.epsilon)

    def write(self, batch: Batch, delta: torch.Tensor) -> None:
        """Store the batch's final perturbation back in the un-augmented frame."""
        if self.augment is not None and batch.aug is not None:
            delta = self.augment.store(self._full(self.delta[batch.index]), delta, batch.aug)
        if delta.shape[-2:] != self.delta.shape[-2:]:
            delta = F.adaptive_avg_pool2d(delta, (self.delta.shape[-2], self.delta.shape[-1]))
        self.delta[batch.index] = delta.detach().to(self.delta.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.delta.copy_(state["delta"])
