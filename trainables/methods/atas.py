"""ATAS: fast adversarial training with adaptive step size (Huang et al., Algorithm 1).

ATTA's previous-epoch initialization plus a per-example step size. With g_i the input
gradient at the example's initialization (eq. 3–4):

    v_i ← β·v_i + (1 − β)·‖g_i‖₂²,    α_i = γ / (c + √v_i),  clipped to [min_step, max_step],
    δ_i ← Π(δ_i + α_i·sign(g_i)).

The authors' release takes g from the *batch-mean* cross-entropy at batch size 128, which
ties c to that batch size. Here g_i is the per-example gradient divided by
``reference_batch`` (128), so the same c means the same thing at any batch size and equals
the paper's at batch 128. K > 1 (e.g. under a controller) repeats the step with the same α_i;
v is updated once per epoch visit, from the gradient at the initialization.
"""

from __future__ import annotations

from typing import Any

import torch

from trainables.attacks import pgd_step
from trainables.data import Batch
from trainables.methods.base import (
    BatchStats,
    Plan,
    StepContext,
    attack_gradient,
    bn_mode,
    clean_probabilities,
    weight_update,
)
from trainables.methods.memory import PerturbationMemory


def atas_step_size(
    v: torch.Tensor, gamma: float, c: float, min_step: float, max_step: float
) -> torch.Tensor:
    """α_i = γ / (c + √v_i), clipped to [min_step, max_step] (ATAS eq. 4 and the release)."""
    return (gamma / (c + v.sqrt())).clamp(min_step, max_step)


def update_second_moment(v: torch.Tensor, grad: torch.Tensor, beta: float) -> torch.Tensor:
    """v_i ← β·v_i + (1 − β)·‖g_i‖₂² (ATAS eq. 3), per example."""
    return beta * v + (1 - beta) * grad.flatten(1).pow(2).sum(1)


class ATAS:
    name = "atas"

    def __init__(
        self,
        memory: PerturbationMemory,
        size: int,
        c: float,
        beta: float,
        gamma: float,
        min_step: float,
        max_step: float,
        reset_every: int = 0,
        reference_batch: int = 128,
    ) -> None:
        self.memory = memory
        self.gamma, self.c, self.beta = gamma, c, beta
        self.min_step, self.max_step = min_step, max_step
        self.reset_every, self.reference_batch = reset_every, reference_batch
        self.v = torch.zeros(size, device=memory.delta.device)

    def start_epoch(self, epoch: int) -> None:
        if self.reset_every and epoch > 0 and epoch % self.reset_every == 0:
            self.memory.reset()

    def train_batch(self, batch: Batch, plan: Plan, ctx: StepContext) -> BatchStats:
        x, y, k = batch.x, batch.y, plan.k
        x_adv = x  # K = 0: natural training, memory untouched
        grad_l1 = torch.zeros((), device=x.device)
        alpha = torch.zeros(len(y), device=x.device)
        forwards = 0
        if k > 0:
            clean_probs, forwards = clean_probabilities(ctx, x)
            delta = self.memory.read(batch)
            with bn_mode(ctx.model, ctx.attack_bn):
                for step in range(k):
                    grad = attack_gradient(ctx, x, y, delta, clean_probs)
                    if step == 0:
                        # Batch-mean gradient × B / 128: the per-example gradient at batch 128.
                        scaled = grad * (len(y) / self.reference_batch)
                        v = update_second_moment(self.v[batch.index], scaled, self.beta)
                        self.v[batch.index] = v
                        alpha = atas_step_size(v, self.gamma, self.c, self.min_step, self.max_step)
                    delta = pgd_step(delta, grad, alpha, x, ctx.epsilon)
                    grad_l1 = grad.abs().sum()
            self.memory.write(batch, delta)
            x_adv = x + delta
        loss, correct, used = weight_update(ctx, x, x_adv, y)
        return BatchStats(
            loss=loss, correct=correct, count=len(y), grad_l1=grad_l1, alpha=alpha.mean(),
            forwards=forwards + k + used, backprops=k + 1,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict(), "v": self.v}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
        self.v.copy_(state["v"])
