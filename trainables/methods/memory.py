"""Per-example perturbation memory shared by ATTA and ATAS.

ATTA (Zheng et al., 2020) initializes each example's attack from the perturbation it had in
the previous epoch. The memory is stored in the un-augmented frame: the stored δ is moved
through the same crop/flip as the image before the attack (``Augment.apply``) and moved
back afterwards (``Augment.store``), as both authors' codes do with their padded 40×40
stores. ``store_size`` keeps δ downsampled (ATAS Algorithm 2, 32×32 for ImageNet-sized
inputs). A fresh or reset memory holds U(−ε, ε) (ATAS) or 0.001·N(0, 1) (ATTA).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from trainables.attacks import project
from trainables.attacks.pgd import NORMAL_START_STD
from trainables.data import Augment, Batch


def resolve_period(every: int | None, epochs: int, paper_every: int, paper_epochs: int, least: int = 1) -> int:
    """A memory-reset (or warm-up) period in epochs: ``every`` when set (0: never), else the
    authors' period scaled to this run's length, ``round(epochs · paper_every / paper_epochs)``
    (at least ``least``)."""
    if every is not None:
        return every
    return max(least, round(epochs * paper_every / paper_epochs))


def reset_due(epoch: int, every: int, epochs: int, skip_last: bool = False) -> bool:
    """Reset before epoch ``epoch`` (from 0)? The authors count epochs from 1 and reset before
    epoch ``e`` when ``e % every == 0``: before 0-indexed epochs every−1, 2·every−1, … (ATAS.py
    and train_atta_cifar.py, ``for epoch in range(1, epochs + 1)``). ``skip_last``: never before
    the last of ``epochs`` (ATAS's ``epoch != args.epochs``; ATTA has no such exception).
    Never when ``every`` is 0, nor before epoch 0 (the memory is fresh then)."""
    if not every or epoch <= 0:
        return False
    if skip_last and epochs > 0 and epoch >= epochs - 1:
        return False
    return (epoch + 1) % every == 0


class PerturbationMemory:
    def __init__(
        self,
        size: int,
        shape: tuple[int, int, int],
        epsilon: float,
        device: torch.device,
        augment: Augment | None,
        store_size: int = 0,
        init: str = "uniform",
    ) -> None:
        self.epsilon, self.augment, self.shape, self.init = epsilon, augment, shape, init
        stored = shape if not store_size else (shape[0], store_size, store_size)
        self.delta = torch.empty((size, *stored), device=device)
        self.reset()

    def reset(self) -> None:
        """δ ← U(−ε, ε) or 0.001·N(0, 1) for every example (the image box is applied at read)."""
        if self.init == "normal":
            self.delta.normal_(0.0, NORMAL_START_STD)
        else:
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
