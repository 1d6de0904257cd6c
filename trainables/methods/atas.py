"""ATAS: fast adversarial training with adaptive step size (Huang et al., Algorithm 1).

ATTA's previous-epoch initialization plus a per-example step size. With g_i the input
gradient at the example's initialization (eq. 3–4):

    v_i ← β·v_i + (1 − β)·‖g_i‖₂²,    α_i = γ / (c + √v_i),  clipped to [min_step, max_step],
    δ_i ← Π(δ_i + α_i·sign(g_i)).

As in the authors' ``ATAS.py`` / ``adv_attack.py``: the attack runs with batch norm in eval
mode; the memory starts U(−ε, ε) and is reset every 10 of 30 epochs counted from 1 (before
0-indexed epochs 9 and 19), but not before the last (``atas.reset_every``); the first 5 of 30 epochs are a warm-up that steps α = ε and leaves v
alone (``atas.warmup_epochs``). Unset, both periods scale with the run's length (a 6-epoch run
warms up 1 epoch and resets before 0-indexed epoch 1 and 3). The release takes g from the *batch-mean* cross-entropy
at batch 128, which ties c to that batch size; here g_i is the per-example gradient divided
by ``reference_batch`` (128), so the same c means the same at any batch size and equals the
paper's at batch 128. Its γ/c = 16/255 and clip [4/255, 14/255] are fixed numbers there;
here they default to 2ε and [ε/2, 1.75ε], equal at 8/255 and keeping their meaning at other
radii. K > 1 (e.g. under a controller) repeats the step with the same α_i; v is updated once
per epoch visit, from the gradient at the initialization.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trainables.attacks import pgd_step
from trainables.data import Batch
from trainables.methods.base import (
    BatchStats,
    Method,
    MethodSetup,
    MethodSpec,
    Plan,
    StepContext,
    attack_gradient,
    bn_mode,
    clean_probabilities,
    grad_l1,
    weight_update,
)
from trainables.methods.memory import PerturbationMemory, reset_due, resolve_period
from trainables.registry import ConfigError

PAPER_EPOCHS, PAPER_RESET, PAPER_WARMUP = 30, 10, 5  # ATAS_CIFAR.sh / ATAS.py defaults


def _check(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


@dataclass(frozen=True)
class AtasConfig:
    """ATAS Algorithm 1: alpha_i = gamma / (c + sqrt(v_i)), clipped to [min_step, max_step].

    ``gamma`` is the paper's γ. Unset step-size keys scale with epsilon so that they equal the
    paper's values at ε = 8/255 and mean the same at any ε: γ = 2ε·c (γ/c = 16/255),
    min_step = ε/2 (4/255), max_step = 1.75ε (14/255). ``reference_batch`` is the batch size
    at which c means what it means in the paper (128). ``reset_every`` and ``warmup_epochs``
    unset: the authors' 10 and 5 of 30 epochs, scaled to the run (0: never / no warm-up).
    """

    gamma: float | None = None
    c: float = 0.01
    beta: float = 0.5
    min_step: float | None = None
    max_step: float | None = None
    reset_every: int | None = None
    warmup_epochs: int | None = None
    store_size: int = 0  # 0: store delta at full resolution; 32: the paper's ImageNet variant
    reference_batch: int = 128

    def __post_init__(self) -> None:
        _check(self.gamma is None or self.gamma > 0, "atas.gamma", self.gamma, "must be > 0")
        _check(self.c > 0, "atas.c", self.c, "must be > 0")
        _check(0 <= self.beta < 1, "atas.beta", self.beta, "must be in [0, 1)")
        _check(self.min_step is None or self.min_step > 0, "atas.min_step", self.min_step, "must be > 0")
        _check(self.min_step is None or self.max_step is None or self.min_step <= self.max_step,
               "atas.max_step", self.max_step, f"must be >= atas.min_step ({self.min_step})")
        _check(self.reset_every is None or self.reset_every >= 0, "atas.reset_every", self.reset_every,
               "must be >= 0 (0: never; unset: the authors' 10 of 30 epochs, scaled)")
        _check(self.warmup_epochs is None or self.warmup_epochs >= 0, "atas.warmup_epochs", self.warmup_epochs,
               "must be >= 0 (0: none; unset: the authors' 5 of 30 epochs, scaled)")
        _check(self.store_size >= 0, "atas.store_size", self.store_size, "must be >= 0 (0: full size)")
        _check(self.reference_batch >= 1, "atas.reference_batch", self.reference_batch, "must be >= 1")

    def step_gamma(self, epsilon: float) -> float:
        """γ, the initial step size: 2ε·c unless set (the paper's 16/255·c at 8/255)."""
        return self.gamma if self.gamma is not None else 2 * epsilon * self.c

    def resolved(self, epsilon: float) -> tuple[float, float, float]:
        """(γ, min_step, max_step) with unset values derived from ε (the paper's at 8/255)."""
        gamma = self.step_gamma(epsilon)
        min_step = self.min_step if self.min_step is not None else epsilon / 2
        max_step = self.max_step if self.max_step is not None else 1.75 * epsilon
        if min_step > max_step:
            raise ConfigError("atas.max_step", max_step, f"must be >= atas.min_step ({min_step})")
        return gamma, min_step, max_step


def atas_step_size(
    v: torch.Tensor, gamma: float, c: float, min_step: float, max_step: float
) -> torch.Tensor:
    """α_i = γ / (c + √v_i), clipped to [min_step, max_step] (ATAS eq. 4 and the release)."""
    return (gamma / (c + v.sqrt())).clamp(min_step, max_step)


def update_second_moment(v: torch.Tensor, grad: torch.Tensor, beta: float) -> torch.Tensor:
    """v_i ← β·v_i + (1 − β)·‖g_i‖₂² (ATAS eq. 3), per example."""
    return beta * v + (1 - beta) * grad.flatten(1).pow(2).sum(1)


class ATAS(Method):
    def __init__(
        self,
        memory: PerturbationMemory,
        size: int,
        c: float,
        beta: float,
        gamma: float,
        min_step: float,
        max_step: float,
        *,
        reset_every: int,
        reference_batch: int,
        warmup_epochs: int,
        epochs: int,
    ) -> None:
        self.memory = memory
        self.gamma, self.c, self.beta = gamma, c, beta
        self.min_step, self.max_step = min_step, max_step
        self.reset_every, self.reference_batch = reset_every, reference_batch
        self.warmup_epochs, self.epochs = warmup_epochs, epochs
        self.v = torch.zeros(size, device=memory.delta.device)
        self.warming_up = warmup_epochs > 0

    def start_epoch(self, epoch: int) -> None:
        self.warming_up = epoch < self.warmup_epochs
        if reset_due(epoch, self.reset_every, self.epochs, skip_last=True):
            self.memory.reset()

    def train_batch(self, batch: Batch, plan: Plan, ctx: StepContext) -> BatchStats:
        x, y, k = batch.x, batch.y, plan.k
        x_adv = x  # K = 0: natural training, memory untouched
        l1 = torch.zeros((), device=x.device)
        alpha: torch.Tensor | float = torch.zeros(len(y), device=x.device)
        forwards = 0
        if k > 0:
            clean_probs, forwards = clean_probabilities(ctx, x)
            delta = self.memory.read(batch)
            with bn_mode(ctx.model, ctx.attack_bn):
                for step in range(k):
                    grad = attack_gradient(ctx, x, y, delta, clean_probs)
                    if step == 0:
                        alpha = self._step_size(batch, grad, ctx.epsilon)
                    delta = pgd_step(delta, grad, alpha, x, ctx.epsilon)
                    l1 = grad_l1(grad, ctx)
            self.memory.write(batch, delta)
            x_adv = x + delta
        update = weight_update(ctx, x, x_adv, y)
        if update.input_grad_l1 is not None and k > 0:
            l1 = update.input_grad_l1
        mean_alpha = alpha.mean() if isinstance(alpha, torch.Tensor) else alpha
        return BatchStats(
            loss=update.loss, correct=update.correct, count=len(y), grad_l1=l1, alpha=mean_alpha,
            forwards=forwards + k + update.forwards, backprops=k + 1,
        )

    def _step_size(self, batch: Batch, grad: torch.Tensor, epsilon: float) -> torch.Tensor | float:
        """Warm-up: α = ε and v untouched (the release's constant-step epochs); then eqs. 3–4."""
        if self.warming_up:
            return epsilon
        # Batch-mean gradient × B / 128: the per-example gradient at batch 128.
        scaled = grad * (len(batch.y) / self.reference_batch)
        v = update_second_moment(self.v[batch.index], scaled, self.beta)
        self.v[batch.index] = v
        return atas_step_size(v, self.gamma, self.c, self.min_step, self.max_step)

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict(), "v": self.v}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
        self.v.copy_(state["v"])


def _build(s: MethodSetup) -> ATAS:
    o: AtasConfig = s.options
    memory = PerturbationMemory(s.train_size, s.input_shape, s.epsilon, s.device, s.augment, o.store_size)
    return ATAS(memory, s.train_size, o.c, o.beta, *o.resolved(s.epsilon),
                reset_every=resolve_period(o.reset_every, s.epochs, PAPER_RESET, PAPER_EPOCHS),
                reference_batch=o.reference_batch,
                warmup_epochs=resolve_period(o.warmup_epochs, s.epochs, PAPER_WARMUP, PAPER_EPOCHS, least=0),
                epochs=s.epochs)


def _describe(o: AtasConfig, epsilon: float) -> str:
    gamma = o.step_gamma(epsilon)
    parts = [f"c={o.c:.3g} β={o.beta:.2f} γ/c={gamma / o.c / epsilon:.2f}ε"]
    if o.reset_every is not None:
        parts.append(f"reset every {o.reset_every}" if o.reset_every else "no reset")
    return ", ".join(parts)


def _alpha(k: int, epsilon: float) -> float:
    return epsilon  # the warm-up step; afterwards each example has its own


ATAS_SPEC = MethodSpec(
    build=_build, label="ATAS", default_k=1, default_alpha=_alpha, attack_bn="eval", init="uniform",
    options=AtasConfig, describe=_describe, reads_grad_norms=True,
    source="Huang et al., ATAS, Algorithm 1; HuangZhiChao95/ATAS ATAS.py, adv_attack.py (model.eval())",
)
