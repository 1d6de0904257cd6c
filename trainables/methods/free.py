"""Free adversarial training (Shafahi et al., 2019) as DEAT's batch replay (DEAT Algorithm 2).

Per batch, r = K + 1 replays; each is one forward/backward on x + δ that yields ∇θ and ∇δ
together: θ takes an optimizer step and δ ← Π(δ + α·sign(∇δ)). With K = 0 this is natural
training (on x + δ₀ when the plan says ``start_at_k0``: M+DEAT's first epoch in
``mdeat_cifar10.py``, one replay on the uniform start). δ is initialized per batch (``init: uniform``: U(−ε, ε), as ``mdeat_cifar10.py``
draws it fresh for every batch; or ``zero``) or, with ``free.carry_delta: true``, carried
over from the previous batch (the original Free). Batch norm stays in train mode for every
replay, as in both codes. The step size defaults to ε (Shafahi et al.; DEAT uses 10/255 =
1.25ε, which its default recipe sets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trainables.attacks import pgd_step, start_delta
from trainables.data import Batch
from trainables.methods.base import (
    BatchStats,
    Method,
    MethodSetup,
    MethodSpec,
    Plan,
    StepContext,
    grad_l1,
    train_mode,
)


@dataclass(frozen=True)
class FreeConfig:
    """Free / DEAT batch replay: ``carry_delta`` keeps δ across batches (original Free)."""

    carry_delta: bool = False


def free_alpha(k: int, epsilon: float) -> float:
    """Shafahi et al.'s step: ε for every replay."""
    return epsilon


class Free(Method):
    def __init__(self, alpha: float | None = None, init: str = "uniform", carry_delta: bool = False) -> None:
        self.alpha, self.init, self.carry_delta = alpha, init, carry_delta
        self.delta: torch.Tensor | None = None  # carried perturbation (carry_delta only)

    def _initial_delta(self, x: torch.Tensor, epsilon: float) -> torch.Tensor:
        if self.carry_delta and self.delta is not None and self.delta.shape[1:] == x.shape[1:]:
            carried = self.delta[: len(x)].to(x.device)  # a checkpoint may come back on the CPU
            if len(carried) == len(x):
                return torch.clamp(carried, -x, 1 - x)
        return start_delta(x, epsilon, self.init)

    def train_batch(self, batch: Batch, plan: Plan, ctx: StepContext) -> BatchStats:
        x, y = batch.x, batch.y
        replays = plan.k + 1
        alpha = plan.alpha or self.alpha or free_alpha(plan.k, ctx.epsilon)
        fresh = plan.k > 0 or plan.start_at_k0
        delta = self._initial_delta(x, ctx.epsilon) if fresh else torch.zeros_like(x)
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
        # The last replay's gradient is both the last attack step's and the training loss's
        # at the final δ: M+'s l_X reads the same tensor either way (DEAT's mdeat_cifar10.py).
        return BatchStats(
            loss=loss.detach().float(), correct=(logits.detach().argmax(1) == y).sum(),
            count=len(y), grad_l1=grad_l1(grad, ctx),
            alpha=float(alpha) if plan.k > 0 else 0.0,
            forwards=replays, backprops=replays,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"delta": self.delta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.delta = state.get("delta")


def _build(setup: MethodSetup) -> Free:
    return Free(setup.alpha, setup.init, setup.options.carry_delta)


FREE_SPEC = MethodSpec(
    build=_build, label="Free", default_k=3, default_alpha=free_alpha, options=FreeConfig,
    joint_gradient=True, losses=("ce",),
    describe=lambda options, epsilon: "carried δ" if options.carry_delta else "",
    source="Shafahi et al., NeurIPS 2019; DEAT Algorithm 2, TrustAI/DEAT standard training/mdeat_cifar10.py",
)
