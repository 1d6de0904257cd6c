"""What every family space shares: choices read from the trainables registries."""

from __future__ import annotations

from typing import Any

import optuna

from trainables.methods import LOSSES, METHODS

ATTACK_BN = ("train", "eval")  # batch-norm mode during training attacks (the authors differ)


def loss_names() -> tuple[str, ...]:
    """Every registered outer loss (the ``loss`` choices of a space)."""
    return tuple(LOSSES.names())


def supports_loss(method: str, loss: str) -> bool:
    """Whether ``method`` can train with outer loss ``loss`` (Free: cross-entropy only)."""
    supported = METHODS.get(method).losses
    return supported is None or loss in supported


def suggest_attack_bn(trial: optuna.Trial) -> Any:
    """The batch-norm mode during training attacks: the authors of fast_adversarial and DEAT
    attack in train mode, those of ATTA, ATAS, TRADES and MART in eval mode."""
    return trial.suggest_categorical("attack_bn", ATTACK_BN)
