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
from trainables.methods.base import (
    BatchStats,
    Plan,
    StepContext,
    attack_steps,
    clean_probabilities,
    default_alpha,
    weight_update,
)
from trainables.methods.memory import PerturbationMemory


class ATTA:
    name = "atta"

    def __init__(self, memory: PerturbationMemory, alpha: float | None = None, reset_every: int = 0) -> None:
        self.memory, self.alpha, self.reset_every = memory, alpha, reset_every

    def start_epoch(self, epoch: int) -> None:
        if self.reset_every and epoch > 0 and epoch % self.reset_every == 0:
            self.memory.reset()

    def train_batch(self, batch: Batch, plan: Plan, ctx: StepContext) -> BatchStats:
        x, y, k = batch.x, batch.y, plan.k
        alpha = plan.alpha or self.alpha or default_alpha(self.name, k, ctx.epsilon)
        forwards, x_adv, grad_l1 = 0, x, torch.zeros((), device=x.device)
        if k > 0:
            clean_probs, forwards = clean_probabilities(ctx, x)
            delta, grad_l1 = attack_steps(ctx, x, y, self.memory.read(batch), k, alpha, clean_probs)
            self.memory.write(batch, delta)
            x_adv = x + delta
        loss, correct, used = weight_update(ctx, x, x_adv, y)
        return BatchStats(
            loss=loss, correct=correct, count=len(y), grad_l1=grad_l1,
            alpha=float(alpha) if k > 0 else 0.0,
            forwards=forwards + k + used, backprops=k + 1,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
