"""Accuracy (SPEC §6): clean, PGD-k and FGSM accuracy of a model on a set of examples, the
in-loop evaluation's and the test split's.

The model is put in eval mode explicitly for every attack here (batch-norm running stats).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainables.attacks import pgd_attack
from trainables.evaluation.attack_names import STEP_FRACTION, Attack, parse_attacks


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


def attack_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, attack: Attack,
                    batch_size: int = 500) -> float:
    """Accuracy under a PGD or CW ``attack`` (α = ε/4, random start)."""
    from trainables.attacks import cw_margin_loss

    loss_fn = F.cross_entropy if attack.kind == "pgd" else cw_margin_loss
    return evaluate_accuracy(model, x, y, epsilon, attack.steps, STEP_FRACTION * epsilon, attack.restarts,
                             fgsm=False, batch_size=batch_size, loss_fn=loss_fn).robust_acc


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
