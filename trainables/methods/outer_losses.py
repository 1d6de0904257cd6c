"""Outer losses (contract names ``ce``, ``trades``, ``mart``) and what their attacks maximize.

- ``ce``: cross-entropy on x + δ (Madry et al.).
- ``trades`` (Zhang et al., 2019, eq. 5; ``yaodongyu/TRADES`` ``trades.py``):
  CE(f(x), y) + β·KL(f(x) ‖ f(x + δ)), the KL summed over classes and averaged over the batch
  (``KLDivLoss(size_average=False) / batch_size``); the attack maximizes the same KL to the
  clean prediction. β = 6.
- ``mart`` (Wang et al., 2020, eq. 9; ``YisenWang/MART`` ``mart.py``):
  BCE(f(x + δ), y) + β·mean_i[KL(f(x_i) ‖ f(x_i + δ_i))·(1 − f_y(x_i))], where
  BCE = CE(f(x + δ), y) − log(1.0001 − f_{y'}(x + δ) + 1e-12) with y' the runner-up class;
  the attack maximizes CE. β = 5 (the authors' ResNet-18 value; 6 for WideResNet).

Both released codes attack with batch norm in eval mode and start from x + 0.001·N(0, 1), and
step 0.007 at ε = 0.031 for 10 steps (α·K = 2.26ε, not Madry's 2.5ε): their registry entries
say so, and ``attack_bn: auto`` / ``init: auto`` and PGD's default step follow them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainables.registry import ConfigError, Registry


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


@dataclass(frozen=True)
class BetaConfig:
    """Weight β of the robust term (TRADES / MART); the default is set per loss."""

    beta: float

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ConfigError("beta", self.beta, "must be >= 0")


@dataclass(frozen=True)
class TradesConfig(BetaConfig):
    beta: float = 6.0


@dataclass(frozen=True)
class MartConfig(BetaConfig):
    beta: float = 5.0


TRADES_STEP_FRACTION = 0.007 / 0.031  # train_trades_cifar10.py / MART train_resnet.py: --step-size 0.007 at --epsilon 0.031


def trades_alpha(k: int, epsilon: float) -> float:
    """The TRADES/MART authors' step, 0.007 at ε = 0.031 for K = 10 (0.2258ε), kept at the same
    α·K = 2.258ε for other K and at most Wong et al.'s 1.25ε."""
    return min(10 * TRADES_STEP_FRACTION * epsilon / max(k, 1), 1.25 * epsilon)


@dataclass(frozen=True)
class LossSpec:
    """A registry entry: the loss class, its options section (named like the loss), its label
    and the attack settings its authors' code uses (``attack_bn``, ``init``, ``default_alpha``
    for methods that take the loss's step, see ``MethodSpec.loss_step``; None: no view)."""

    cls: type[OuterLoss]
    label: str
    options: type | None = None
    attack_bn: str | None = None
    init: str | None = None
    default_alpha: Callable[[int, float], float] | None = None
    source: str = ""


LOSSES: Registry[LossSpec] = Registry("loss", {
    "ce": LossSpec(OuterLoss, "CE"),
    "trades": LossSpec(TradesLoss, "TRADES", TradesConfig, attack_bn="eval", init="normal", default_alpha=trades_alpha,
                       source="Zhang et al., ICML 2019; yaodongyu/TRADES trades.py"),
    "mart": LossSpec(MartLoss, "MART", MartConfig, attack_bn="eval", init="normal", default_alpha=trades_alpha,
                     source="Wang et al., ICLR 2020; YisenWang/MART mart.py"),
})


def build_loss(name: str, beta: float | None = None) -> OuterLoss:
    cls = LOSSES.get(name).cls
    return cls() if beta is None or name == "ce" else cls(beta=beta)
