"""PGD adversarial training (Madry et al., 2018) and its single-step preset FGSM-RS.

Per batch with schedule value K: δ₀ ~ U(−ε, ε) (or 0 with ``init: zero``), K steps
δ ← Π(δ + α·sign(∇δ ℓ)), one weight update on x + δ: K + 1 backprops. K = 0 is natural
training. FGSM-RS ("Fast is better than free", Wong et al., 2020) is this method with K = 1
and α = 1.25ε; K > 1 makes it PGD with random start.
"""

from __future__ import annotations

import torch

from trainables.attacks import random_init
from trainables.data import Batch
from trainables.methods.base import (
    BatchStats,
    Plan,
    StatelessMethod,
    StepContext,
    attack_steps,
    clean_probabilities,
    default_alpha,
    weight_update,
)


class PGD(StatelessMethod):
    """PGD-K training step; ``name`` picks the default step size."""

    name = "pgd"

    def __init__(self, alpha: float | None = None, init: str = "uniform") -> None:
        self.alpha, self.init = alpha, init

    def train_batch(self, batch: Batch, plan: Plan, ctx: StepContext) -> BatchStats:
        x, y, k = batch.x, batch.y, plan.k
        alpha = plan.alpha or self.alpha or default_alpha(self.name, k, ctx.epsilon)
        forwards = 0
        if k > 0:
            clean_probs, forwards = clean_probabilities(ctx, x)
            delta, grad_l1 = attack_steps(ctx, x, y, self.initial_delta(batch, ctx), k, alpha, clean_probs)
            self.store(batch, delta)
            x_adv = x + delta
        else:
            x_adv, grad_l1 = x, torch.zeros((), device=x.device)
        loss, correct, used = weight_update(ctx, x, x_adv, y)
        return BatchStats(
            loss=loss, correct=correct, count=len(y), grad_l1=grad_l1,
            alpha=float(alpha) if k > 0 else 0.0,
            forwards=forwards + k + used, backprops=k + 1,
        )

    def initial_delta(self, batch: Batch, ctx: StepContext) -> torch.Tensor:
        """Where the attack starts: U(−ε, ε) or zero (ATTA overrides: the previous epoch's δ)."""
        x = batch.x
        return random_init(x, ctx.epsilon) if self.init == "uniform" else torch.zeros_like(x)

    def store(self, batch: Batch, delta: torch.Tensor) -> None:
        """Keep the batch's final perturbation (PGD forgets it; ATTA remembers it)."""
        return None


class FGSMRS(PGD):
    """FGSM with random start (Wong et al., 2020): PGD's step with α = 1.25ε by default."""

    name = "fgsm_rs"
