"""Free adversarial training (Shafahi et al., 2019) as DEAT's batch replay (DEAT Algorithm 2).

Per batch, r = K + 1 replays; each is one forward/backward on x + δ that yields ∇θ and ∇δ
together: θ takes an optimizer step and δ ← Π(δ + α·sign(∇δ)). With K = 0 this is natural
training. δ is initialized per batch (``init: uniform``, DEAT's default, or ``zero``) or,
with ``carry_delta: true``, carried over from the previous batch (the original Free).
"""

from __future__ import annotations

from typing import Any

import torch

from trainables.attacks import pgd_step, random_init
from trainables.data import Batch
from trainables.methods.base import BatchStats, Plan, StepContext, default_alpha, train_mode


class Free:
    name = "free"

    def __init__(self, alpha: float | None = None, init: str = "uniform", carry_delta: bool = False) -> None:
        self.alpha, self.init, self.carry_delta = alpha, init, carry_delta
        self.delta: torch.Tensor | None = None  # carried perturbation (carry_delta only)

    def _initial_delta(self, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        if self.carry_delta and self.delta is not None and self.delta.shape[1:] == x.shape[1:]:
            carried = self.delta[: len(x)].to(x.device)  # a checkpoint may come back on the CPU
            if len(carried) == len(x):
                return torch.clamp(carried, -x, 1 - x)
        return random_init(x, epsilon) if self.init == "uniform" else torch.zeros_like(x)

    def train_batch(self, batch: Batch, plan: Plan, ctx: StepContext) -> BatchStats:
        x, y = batch.x, batch.y
        replays = plan.k + 1
        alpha = plan.alpha or self.alpha or default_alpha(self.name, plan.k, ctx.epsilon)
        delta = self._initial_delta(x, ctx.epsilon) if plan.k > 0 else torch.zeros_like(x)
        train_mode(ctx.model)
        for _ in range(replays):
            delta = delta.detach().requires_grad_(True)
            with ctx.autocast():
                loss, logits, _ = ctx.loss.train_loss(ctx.model, x, x + delta, y)
            ctx.optimizer.zero_grad(set_to_none=True)
            loss.backward()  # one backprop: weight and input gradients together
            ctx.optimizer.step()
            grad = delta.grad
            assert grad is not None
            delta = pgd_step(delta.detach(), grad, alpha, x, ctx.epsilon)
        assert grad is not None
        if self.carry_delta:
            self.delta = delta.detach()
        return BatchStats(
            loss=loss.detach().float(), correct=(logits.detach().argmax(1) == y).sum(),
            count=len(y), grad_l1=grad.abs().sum(),
            alpha=float(alpha) if plan.k > 0 else 0.0,
            forwards=replays, backprops=replays,
        )

    def start_epoch(self, epoch: int) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.delta = state.get("delta")
