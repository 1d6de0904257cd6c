"""In-loop evaluation (SPEC §6): clean, PGD-k and FGSM accuracy on a fixed validation subset,
the catastrophic-overfitting rule, and Amata's PMP criterion C as an optional diagnostic.

The model is put in eval mode explicitly for every attack here (batch-norm running stats).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainables.attacks import pgd_attack
from trainables.registry import ConfigError


@dataclass(frozen=True)
class Accuracy:
    clean_acc: float
    robust_acc: float
    fgsm_acc: float


def fgsm_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
    """FGSM (Goodfellow et al.): one step of size ε from δ = 0, i.e. PGD-1 without random start."""
    return pgd_attack(model, x, y, epsilon, epsilon, steps=1, random_start=False)


def evaluate_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    steps: int,
    alpha: float,
    restarts: int = 1,
    fgsm: bool = True,
    batch_size: int = 500,
    autocast: Callable[[], AbstractContextManager[Any]] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    early_stop: bool = False,
) -> Accuracy:
    """Clean, PGD-``steps`` (``restarts``, on ``loss_fn``: cross-entropy by default; ``early_stop``:
    see :func:`~trainables.attacks.pgd.pgd_attack`) and FGSM accuracy of ``model`` on (x, y);
    ``fgsm`` False skips FGSM (its accuracy is NaN)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros(3, device=x.device)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        with autocast() if autocast else torch.autocast("cpu", enabled=False):
            attacked = pgd_attack(model, xb, yb, epsilon, alpha, steps, restarts, loss_fn=loss_fn, early_stop=early_stop)
            inputs = [xb, xb + attacked]
            if fgsm:
                inputs.append(xb + fgsm_attack(model, xb, yb, epsilon))
            with torch.no_grad():
                for i, inp in enumerate(inputs):
                    correct[i] += (model(inp).argmax(1) == yb).sum()
    model.train(was_training)
    clean, robust, fgsm_correct = (correct / len(x)).tolist()
    return Accuracy(clean, robust, fgsm_correct if fgsm else math.nan)


_ATTACK = re.compile(r"^(pgd|cw)(\d+)(?:x(\d+))?$")
STEP_FRACTION = 0.25  # α = ε/4 for every PGD and CW evaluation attack, as in the in-loop PGD-10


@dataclass(frozen=True)
class Attack:
    """One evaluation attack: ``kind`` pgd (cross-entropy), cw (CW margin) or autoattack."""

    name: str
    kind: str
    steps: int = 0
    restarts: int = 1

    def describe(self, epsilon: float) -> str:
        if self.kind == "autoattack":
            return "AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square; Croce & Hein's own package)"
        loss = "cross-entropy" if self.kind == "pgd" else "CW margin loss"
        return (f"{self.kind.upper()}-{self.steps}, {self.restarts} restart{'s' if self.restarts > 1 else ''}, "
                f"α = ε/4 = {STEP_FRACTION * epsilon:.4g}, random start, {loss}")


def attack_pattern() -> re.Pattern[str]:
    """``pgdSTEPS[xRESTARTS]`` / ``cwSTEPS[xRESTARTS]`` (groups: kind, steps, restarts)."""
    return _ATTACK


def parse_attacks(names: str | Iterable[str], allow_autoattack: bool = True) -> list[Attack]:
    """``"pgd50x10,cw20,autoattack"`` (or a list) -> attacks; ConfigError names a bad one."""
    if isinstance(names, str):
        names = names.split(",")
    attacks = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name == "autoattack" and allow_autoattack:
            attacks.append(Attack(name, "autoattack"))
            continue
        match = _ATTACK.match(name)
        if not match or int(match.group(2)) < 1 or (match.group(3) is not None and int(match.group(3)) < 1):
            allowed = "pgdSTEPS[xRESTARTS] (e.g. pgd50x10), cwSTEPS[xRESTARTS] (e.g. cw20)"
            allowed += " and autoattack" if allow_autoattack else ""
            raise ConfigError("attacks", raw, f"choose from {allowed}, comma-separated")
        attacks.append(Attack(name, match.group(1), int(match.group(2)), int(match.group(3) or 1)))
    if not attacks:
        raise ConfigError("attacks", ",".join(names), "name at least one attack")
    return attacks


def attack_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, attack: Attack,
                    batch_size: int = 500) -> float:
    """Accuracy under a PGD or CW ``attack`` (α = ε/4, random start)."""
    from trainables.attacks import cw_margin_loss

    loss_fn = F.cross_entropy if attack.kind == "pgd" else cw_margin_loss
    return evaluate_accuracy(model, x, y, epsilon, attack.steps, STEP_FRACTION * epsilon, attack.restarts,
                             fgsm=False, batch_size=batch_size, loss_fn=loss_fn).robust_acc


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


def test_split_accuracy(model: nn.Module, config: Any, device: torch.device, attacks: str,
                        examples: int | None) -> dict[str, float]:
    """Clean accuracy and accuracy under each of ``attacks`` on the *test* split of the
    dataset ``config`` (a TrainConfig) names; ``robust_acc`` is the lowest (the strongest
    attack's). ``examples``: the first N test examples (None: all)."""
    from trainables.data import load_config_dataset, materialize

    data = load_config_dataset(config)
    test = materialize(data.test, examples)
    x, y = test.images().to(device), test.y.to(device)
    model.eval()
    eps = config.epsilon
    out = {"clean_acc": evaluate_accuracy(model, x, y, eps, 1, eps, fgsm=False).clean_acc, "test_examples": len(y)}
    parsed = parse_attacks(attacks, allow_autoattack=False)
    for attack in parsed:
        out[f"test_{attack.name}"] = attack_accuracy(model, x, y, eps, attack)
    out["robust_acc"] = min(out[f"test_{a.name}"] for a in parsed)
    return out
