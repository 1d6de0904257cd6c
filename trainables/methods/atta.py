"""ATTA: adversarial training with transferable adversarial examples (Zheng et al., CVPR 2020).

Each example's attack starts from its own perturbation of the previous epoch (a per-example
memory moved through the same crop/flip as the image), takes K steps of size α and stores
the result back. As in the authors' ``train_atta_cifar.py``: the memory starts (and is reset
to) 0.001·N(0, 1), every 10 of 38 epochs counted from 1 (before 0-indexed epochs 9, 19 and 29)
by default (``atta.reset_every``, scaled to the run's length when unset; 0: never), the
attack runs with batch norm in eval mode, and ATTA-K steps as the released configs do
(0.015, 0.01, 0.007 at ε = 0.031 for K = 1, 3, 10; as fractions of ε at other radii). K + 1 backprops per batch; K = 0 is natural training
and leaves the memory untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trainables.data import Batch
from trainables.methods.base import MethodSetup, MethodSpec, StepContext
from trainables.methods.memory import PerturbationMemory, reset_due, resolve_period
from trainables.methods.pgd_at import PGD
from trainables.registry import ConfigError

PAPER_RESET, PAPER_EPOCHS = 10, 38  # data-config/cifar-atta-*.json: "epochs-reset": 10 of 38


@dataclass(frozen=True)
class AttaConfig:
    """ATTA's memory reset period in epochs (None: 10 of 38 scaled to the run; 0: never)."""

    reset_every: int | None = None

    def __post_init__(self) -> None:
        if self.reset_every is not None and self.reset_every < 0:
            raise ConfigError("atta.reset_every", self.reset_every, "must be >= 0 (0: never; unset: the authors' 10 of 38 epochs, scaled)")


# data-config/cifar-atta-{1,3,10}-mat.json: "num-steps" -> "step-size", all at "epsilon": 0.031
ATTA_STEPS, ATTA_EPSILON = {1: 0.015, 3: 0.01, 10: 0.007}, 0.031


def atta_alpha(k: int, epsilon: float) -> float:
    """The authors' step for ATTA-K as a fraction of ε: 0.484ε (K = 1), 0.323ε (3), 0.226ε (10),
    linear in K between them and at the same α·K = 2.26ε beyond 10."""
    k = max(k, 1)
    known = sorted(ATTA_STEPS)
    if k >= known[-1]:
        return ATTA_STEPS[known[-1]] * known[-1] / k / ATTA_EPSILON * epsilon
    lo = max(n for n in known if n <= k)
    hi = min(n for n in known if n >= k)
    step = ATTA_STEPS[lo] if lo == hi else ATTA_STEPS[lo] + (ATTA_STEPS[hi] - ATTA_STEPS[lo]) * (k - lo) / (hi - lo)
    return step / ATTA_EPSILON * epsilon


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
