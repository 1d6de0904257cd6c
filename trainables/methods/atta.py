"""ATTA: adversarial training with transferable adversarial examples (Zheng et al., CVPR 2020).

Each example's attack starts from its own perturbation of the previous epoch (a per-example
memory moved through the same crop/flip as the image), takes K steps of size α and stores
the result back. As in the authors' ``train_atta_cifar.py``: the memory starts (and is reset
to) 0.001·N(0, 1), every 10 of 38 epochs counted from 1 (before 0-indexed epochs 9, 19 and 29)
by default (``atta.reset_every``, scaled to the run's length when unset; 0: never), the
attack runs with batch norm in eval mode, and ATTA-1 steps α = 0.015 at ε = 0.031 (0.48ε;
ε/2 here). K + 1 backprops per batch; K = 0 is natural training
and leaves the memory untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trainables.data import Batch
from trainables.methods.base import MethodSetup, MethodSpec, StepContext
from trainables.methods.memory import PerturbationMemory, reset_due, resolve_period
from trainables.methods.pgd import PGD
from trainables.registry import ConfigError

PAPER_RESET, PAPER_EPOCHS = 10, 38  # data-config/cifar-atta-*.json: "epochs-reset": 10 of 38


@dataclass(frozen=True)
class AttaConfig:
    """ATTA's memory reset period in epochs (None: 10 of 38 scaled to the run; 0: never)."""

    reset_every: int | None = None

    def __post_init__(self) -> None:
        if self.reset_every is not None and self.reset_every < 0:
            raise ConfigError("atta.reset_every", self.reset_every, "must be >= 0 (0: never; unset: the authors' 10 of 38 epochs, scaled)")


def atta_alpha(k: int, epsilon: float) -> float:
    """ATTA-1's ε/2 (0.015 at ε = 0.031); for more steps at most α·K = 2.5ε (ATTA-10: 0.007 ≈ ε/4)."""
    return min(0.5 * epsilon, 2.5 * epsilon / max(k, 1))


class ATTA(PGD):
    """PGD whose attack starts from, and writes back to, a per-example memory."""

    def __init__(self, memory: PerturbationMemory, alpha: float | None = None, reset_every: int = 0,
                 epochs: int = 0) -> None:
        super().__init__(alpha, default_alpha=atta_alpha)
        self.memory, self.reset_every, self.epochs = memory, reset_every, epochs

    def start_epoch(self, epoch: int) -> None:
        if reset_due(epoch, self.reset_every, self.epochs):
            self.memory.reset()

    def initial_delta(self, batch: Batch, ctx: StepContext) -> torch.Tensor:
        return self.memory.read(batch)

    def store(self, batch: Batch, delta: torch.Tensor) -> None:
        self.memory.write(batch, delta)

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])


def _build(s: MethodSetup) -> ATTA:
    memory = PerturbationMemory(s.train_size, s.input_shape, s.epsilon, s.device, s.augment, init="normal")
    every = resolve_period(s.options.reset_every, s.epochs, PAPER_RESET, PAPER_EPOCHS)
    return ATTA(memory, s.alpha, every, s.epochs)


def _describe(options: AttaConfig, epsilon: float) -> str:
    return f"reset every {options.reset_every}" if options.reset_every else ""


ATTA_SPEC = MethodSpec(
    build=_build, label="ATTA", default_k=1, default_alpha=atta_alpha, attack_bn="eval", init="normal",
    options=AttaConfig, describe=_describe,
    source="Zheng et al., CVPR 2020; haizhongzheng/ATTA train_atta_cifar.py, adv_attack.py (model.eval())",
)
