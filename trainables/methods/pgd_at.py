"""PGD adversarial training (Madry et al., 2018) and its single-step preset FGSM-RS.

Per batch with schedule value K: δ₀ from the configured start (U(−ε, ε) by default), K steps
δ ← Π(δ + α·sign(∇δ ℓ)), one weight update on x + δ: K + 1 backprops. K = 0 is natural
training (on x + δ₀ when the plan says ``start_at_k0``, as DEAT's ``mpgd_cifar10.py``). FGSM-RS ("Fast is better than free", Wong et al., 2020) is this method with K = 1
and α = 1.25ε; K > 1 makes it PGD with random start. Both attack with batch norm in train
mode, as fast_adversarial's ``train_fgsm.py`` and ``train_pgd.py`` do.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainables.attacks import start_delta
from trainables.data import Batch
from trainables.methods.base import (
    BatchStats,
    Method,
    MethodSpec,
    Plan,
    StepContext,
    attack_steps,
    clean_probabilities,
    multi_step_alpha,
    weight_update,
)


class PGD(Method):
    """PGD-K training step with a fixed start (ATTA overrides the start and keeps the result).

    ``alpha`` None: the epoch's plan or ``default_alpha(K, ε)``."""

    def __init__(self, alpha: float | None = None, init: str = "uniform",
                 default_alpha: Callable[[int, float], float] = multi_step_alpha) -> None:
        self.alpha, self.init, self.default_alpha = alpha, init, default_alpha

    def train_batch(self, batch: Batch, plan: Plan, ctx: StepContext) -> BatchStats:
        x, y, k = batch.x, batch.y, plan.k
        alpha = plan.alpha or self.alpha or self.default_alpha(k, ctx.epsilon)
        forwards = 0
        if k > 0:
            clean_probs, forwards = clean_probabilities(ctx, x)
            delta, grad_l1 = attack_steps(ctx, x, y, self.initial_delta(batch, ctx), k, alpha, clean_probs)
            self.store(batch, delta)
            x_adv = x + delta
        else:  # natural training, or the start alone (M+'s first epoch in DEAT's code)
            x_adv = x + start_delta(x, ctx.epsilon, self.init) if plan.start_at_k0 else x
            grad_l1 = torch.zeros((), device=x.device)
        update = weight_update(ctx, x, x_adv, y)
        if update.input_grad_l1 is not None and k > 0:
            grad_l1 = update.input_grad_l1
        return BatchStats(
            loss=update.loss, correct=update.correct, count=len(y), grad_l1=grad_l1,
            alpha=float(alpha) if k > 0 else 0.0,
            forwards=forwards + k + update.forwards, backprops=k + 1,
        )

    def initial_delta(self, batch: Batch, ctx: StepContext) -> torch.Tensor:
        """Where the attack starts (ATTA overrides: the previous epoch's δ)."""
        return start_delta(batch.x, ctx.epsilon, self.init)

    def store(self, batch: Batch, delta: torch.Tensor) -> None:
        """Keep the batch's final perturbation (PGD forgets it; ATTA remembers it)."""
        return None


def fgsm_alpha(k: int, epsilon: float) -> float:
    """Wong et al.'s 1.25ε for one step; PGD's α·K = 2.5ε beyond."""
    return 1.25 * epsilon if k <= 1 else multi_step_alpha(k, epsilon)


PGD_SPEC = MethodSpec(
    build=lambda s: PGD(s.alpha, s.init, s.loss_alpha or multi_step_alpha),
    label="PGD", default_k=10, default_alpha=multi_step_alpha, loss_step=True,
    source="Madry et al., ICLR 2018; fast_adversarial CIFAR10/train_pgd.py (train-mode BN, U(−ε, ε) start)",
)
FGSM_RS_SPEC = MethodSpec(
    build=lambda s: PGD(s.alpha, s.init, fgsm_alpha),
    label="FGSM-RS", default_k=1, default_alpha=fgsm_alpha,
    source="Wong et al., ICLR 2020; fast_adversarial CIFAR10/train_fgsm.py (α = 10/255, U(−ε, ε), train-mode BN)",
)
