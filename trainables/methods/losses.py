"""Outer losses (contract names ``ce``, ``trades``, ``mart``) and what their attacks maximize.

- ``ce``: cross-entropy on x + δ (Madry et al.).
- ``trades`` (Zhang et al., 2019): CE(f(x), y) + β·KL(f(x) ‖ f(x + δ)); the attack maximizes
  the KL to the clean prediction.
- ``mart`` (Wang et al., 2020): BCE(f(x + δ), y) + β·KL(f(x) ‖ f(x + δ))·(1 − f_y(x)); the
  attack maximizes CE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainables.registry import Registry


@dataclass(frozen=True)
class OuterLoss:
    """Base: cross-entropy. Subclasses override the two losses."""

    beta: float = 0.0
    needs_clean_probs: bool = False

    def attack_loss(
        self, logits_adv: torch.Tensor, y: torch.Tensor, clean_probs: torch.Tensor | None
    ) -> torch.Tensor:
        """The batch-mean objective an attack step ascends."""
        return F.cross_entropy(logits_adv, y)

    def train_loss(
        self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(loss, adversarial logits, forward passes used)."""
        logits = model(x_adv)
        return F.cross_entropy(logits.float(), y), logits, 1


@dataclass(frozen=True)
class TradesLoss(OuterLoss):
    beta: float = 6.0
    needs_clean_probs: bool = True

    def attack_loss(
        self, logits_adv: torch.Tensor, y: torch.Tensor, clean_probs: torch.Tensor | None
    ) -> torch.Tensor:
        assert clean_probs is not None
        return F.kl_div(F.log_softmax(logits_adv, dim=1), clean_probs, reduction="batchmean")

    def train_loss(
        self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        logits_clean = model(x).float()
        logits_adv = model(x_adv).float()
        robust = F.kl_div(
            F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1), reduction="batchmean"
        )
        return F.cross_entropy(logits_clean, y) + self.beta * robust, logits_adv, 2


@dataclass(frozen=True)
class MartLoss(OuterLoss):
    beta: float = 5.0

    def train_loss(
        self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        logits_adv = model(x_adv).float()
        logits_clean = model(x).float()
        adv_probs = F.softmax(logits_adv, dim=1)
        top2 = adv_probs.argsort(dim=1)[:, -2:]
        runner_up = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
        bce = F.cross_entropy(logits_adv, y) + F.nll_loss(
            torch.log(1.0001 - adv_probs + 1e-12), runner_up
        )
        clean_probs = F.softmax(logits_clean, dim=1)
        true_probs = clean_probs.gather(1, y[:, None]).squeeze(1)
        kl = F.kl_div(torch.log(adv_probs + 1e-12), clean_probs, reduction="none").sum(1)
        robust = (kl * (1.0000001 - true_probs)).mean()
        return bce + self.beta * robust, logits_adv, 2


LOSSES: Registry[type[OuterLoss]] = Registry(
    "loss", {"ce": OuterLoss, "trades": TradesLoss, "mart": MartLoss}
)


def build_loss(name: str, beta: float | None = None) -> OuterLoss:
    cls = LOSSES.get(name)
    return cls() if beta is None or name == "ce" else cls(beta=beta)
