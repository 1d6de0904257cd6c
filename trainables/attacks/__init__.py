"""ℓ∞ attacks as pure functions: projection, PGD steps, full PGD/FGSM/CW evaluation attacks."""

from __future__ import annotations

from trainables.attacks.losses import cw_margin_loss
from trainables.attacks.pgd import (
    INITS,
    input_gradient,
    pgd_attack,
    pgd_step,
    project,
    random_init,
    start_delta,
)

__all__ = ["INITS", "cw_margin_loss", "input_gradient", "pgd_attack", "pgd_step", "project", "random_init", "start_delta"]
