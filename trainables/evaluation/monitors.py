"""What a run watches across epochs: catastrophic overfitting (the stopper) and Amata's PMP
criterion C (an optional diagnostic)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainables.attacks import pgd_attack


class COMonitor:
    """Catastrophic overfitting (Wong et al.'s rule as a stopper): flagged when PGD accuracy
    falls by more than ``drop`` below its best while FGSM accuracy does not."""

    def __init__(self, drop: float) -> None:
        self.drop = drop
        self.best_robust = 0.0
        self.best_fgsm = 0.0

    def update(self, robust_acc: float, fgsm_acc: float) -> bool:
        robust_fell = self.best_robust - robust_acc > self.drop
        fgsm_fell = not math.isnan(fgsm_acc) and self.best_fgsm - fgsm_acc > self.drop
        self.best_robust = max(self.best_robust, robust_acc)
        if not math.isnan(fgsm_acc):
            self.best_fgsm = max(self.best_fgsm, fgsm_acc)
        return robust_fell and not fgsm_fell

    def state_dict(self) -> dict[str, Any]:
        return {"best_robust": self.best_robust, "best_fgsm": self.best_fgsm}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_robust, self.best_fgsm = float(state["best_robust"]), float(state["best_fgsm"])


def _weight_grad_sq_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    total = sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None)
    model.zero_grad(set_to_none=True)
    return total


def pmp_criterion(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, k_t: int,
                  alpha_t: float, gamma: float = 0.04, grid_k: tuple[int, ...] = (1, 2, 4, 8, 16),
                  tau: float | None = None) -> float:
    """Amata eq. 14 on one batch:

    C ≈ max_{α,K} {‖∇θ ℓ(A_{K,α}(x))‖² − γK} − (‖∇θ ℓ(A_{K_t,α_t}(x))‖² − γK_t),

    the maximum taken over a small grid of K with α = τ/K (τ = α_t·K_t by default). C ≥ 0
    up to sampling noise; smaller means the current (K_t, α_t) is closer to PMP-optimal.
    Costs Σ grid K + K_t + |grid| + 1 backprops, not counted as training cost.
    """
    was_training = model.training
    model.eval()
    tau = tau if tau is not None else alpha_t * max(k_t, 1)

    def hamiltonian(k: int, alpha: float) -> float:
        delta = pgd_attack(model, x, y, epsilon, alpha, k) if k > 0 else torch.zeros_like(x)
        return _weight_grad_sq_norm(model, x + delta, y) - gamma * k

    current = hamiltonian(k_t, alpha_t)
    best = max([current] + [hamiltonian(k, tau / k) for k in grid_k])
    model.train(was_training)
    return best - current
