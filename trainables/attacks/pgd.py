"""ℓ∞ projected gradient descent (Madry et al., 2018) as pure functions.

A perturbation is a tensor ``delta`` with ``x + delta ∈ [0, 1]`` and ``‖delta‖∞ ≤ ε``;
:func:`project` restores both after every step. Attack steps ask autograd for the input
gradient only (``torch.autograd.grad(loss, delta)``), so no weight gradients are computed
or accumulated: a step is one forward plus one input-gradient backward. Batch-norm mode is
the caller's decision (``model.train()``/``model.eval()``), never switched here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _per_example(value: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    """Broadcast a scalar or a (B,) tensor of per-example values against a (B, ...) batch."""
    if isinstance(value, torch.Tensor) and value.dim() == 1:
        return value.view(-1, *([1] * (like.dim() - 1)))
    return value


def project(delta: torch.Tensor, x: torch.Tensor, epsilon: float | torch.Tensor) -> torch.Tensor:
    """Π: clip delta into the ε-ball and keep x + delta inside [0, 1] (exact, no round-off)."""
    eps = _per_example(epsilon, delta)
    delta = torch.clamp(delta, -eps, eps) if isinstance(eps, torch.Tensor) else delta.clamp(-eps, eps)
    return torch.clamp(delta, -x, 1 - x)


def random_init(x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """δ₀ ~ U(−ε, ε), projected so that x + δ₀ ∈ [0, 1]."""
    return project(torch.empty_like(x).uniform_(-epsilon, epsilon), x, epsilon)


INITS = ("uniform", "zero", "normal")
NORMAL_START_STD = 0.001  # TRADES / MART / ATTA: x + 0.001·N(0, 1)


def start_delta(x: torch.Tensor, epsilon: float, init: str) -> torch.Tensor:
    """Where an attack starts: ``uniform`` δ₀ ~ U(−ε, ε) (Madry; Wong et al.), ``zero``
    (Amata Algorithm 1 starts from the clean batch) or ``normal`` δ₀ = 0.001·N(0, 1)
    (TRADES, MART and ATTA's released code), each projected so that x + δ₀ ∈ [0, 1]."""
    if init == "uniform":
        return random_init(x, epsilon)
    if init == "zero":
        return torch.zeros_like(x)
    if init == "normal":
        return project(NORMAL_START_STD * torch.randn_like(x), x, epsilon)
    raise ValueError(f"unknown attack start {init!r}; choose one of {', '.join(INITS)}")


def pgd_step(
    delta: torch.Tensor,
    grad: torch.Tensor,
    alpha: float | torch.Tensor,
    x: torch.Tensor,
    epsilon: float | torch.Tensor,
) -> torch.Tensor:
    """δ ← Π(δ + α·sign(∇δ ℓ)); ``alpha`` may be a scalar or a per-example (B,) tensor."""
    return project(delta + _per_example(alpha, delta) * grad.sign(), x, epsilon)


def input_gradient(
    model: nn.Module, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor, loss_fn: LossFn
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward and one input-only backward: returns (∇δ loss, loss, logits)."""
    delta = delta.detach().requires_grad_(True)
    logits = model(x + delta)
    loss = loss_fn(logits, y)
    (grad,) = torch.autograd.grad(loss, delta)
    return grad, loss.detach(), logits.detach()


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    alpha: float,
    steps: int,
    restarts: int = 1,
    random_start: bool = True,
    loss_fn: LossFn = F.cross_entropy,
    early_stop: bool = False,
) -> torch.Tensor:
    """Evaluation PGD-``steps`` with ``restarts``: returns, per example, the perturbation of the
    first restart that fools the model (or the last one), as torchattacks/Madry do.
    ``early_stop``: an example stops moving once the model misclassifies it (DEAT's
    ``attack_pgd``), so a restart never walks back out of a fooling point; the accuracy it
    leaves is at most the default's from the same start."""
    best = torch.zeros_like(x)
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(restarts):
        delta = random_init(x, epsilon) if random_start else torch.zeros_like(x)
        for _ in range(steps):
            grad, _, logits = input_gradient(model, x, delta, y, loss_fn)
            stepped = pgd_step(delta, grad, alpha, x, epsilon)
            if early_stop:  # the forward just made tells which examples are still right
                stepped = torch.where((logits.argmax(1) == y).view(-1, 1, 1, 1), stepped, delta)
            delta = stepped
        with torch.no_grad():
            wrong = model(x + delta).argmax(1) != y
        # Keep the first restart that fools an example; until one does, the latest.
        best = torch.where(fooled.view(-1, 1, 1, 1), best, delta)
        fooled |= wrong
    return best.detach()
