"""The interface every inner-maximization method implements: own one minibatch update.

A method receives a batch and the epoch's :class:`Plan` (K adversarial backprops per batch
and, when the schedule sets it, the step size α) and performs the *whole* update: the
attack and the weight step(s). Free updates the weights inside its replay loop, so
"return x_adv" would not be general enough. Every method costs K + 1 backprops per batch
(SPEC §2) and reports its counts, so cost accounting never guesses.

Statistics stay on the device (no ``.item()`` in the batch loop); the engine reads them
once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from trainables.data import Augment, Batch
from trainables.methods.outer_losses import OuterLoss
from trainables.plan import Plan


@dataclass(frozen=True)
class StepContext:
    """Everything a method needs to update one minibatch.

    ``final_grad``: measure ‖∇x ℓ‖₁ from the *training* loss at the final δ (the weight
    update's own backward, as the final DEAT code does for M+) instead of at the last attack
    step; set when the schedule reads the gradient magnitude that way. ``grad_weight``: a
    per-channel weight (C, 1, 1) of |∇x ℓ| in that sum; DEAT's code weights by the dataset's
    std (``torch.sum(grad.abs() * std)``: the gradient at the normalized input); None: 1.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epsilon: float
    loss: OuterLoss
    autocast: Callable[[], AbstractContextManager[Any]]
    attack_bn: str  # "train" or "eval": batch-norm mode during attack steps
    final_grad: bool = False
    grad_weight: torch.Tensor | None = None


def grad_l1(grad: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """‖∇x ℓ‖₁ as M+ reads it: Σ |g|, weighted per channel by ``ctx.grad_weight`` when set."""
    return grad.abs().sum() if ctx.grad_weight is None else (grad.abs() * ctx.grad_weight).sum()


@dataclass
class BatchStats:
    """What one minibatch update reports. Tensors are 0-d and stay on the device."""

    loss: torch.Tensor  # mean training loss
    correct: torch.Tensor  # number of training examples classified correctly
    count: int
    grad_l1: torch.Tensor  # ‖∇x ℓ(x + δ)‖₁ (M+'s l_X term, see StepContext.final_grad); 0 if K = 0
    alpha: float | torch.Tensor  # step size used (device mean for per-example step sizes)
    forwards: int
    backprops: int


class Method:
    """One inner-maximization method: :meth:`train_batch` owns the whole update of a minibatch.

    That is the one thing every method must do. Methods with state across batches (Free's
    carried δ, ATTA/ATAS memories) also override the epoch hook and the state round trip,
    which default to nothing here.
    """

    def train_batch(self, batch: Batch, plan: Plan, ctx: StepContext) -> BatchStats:
        raise NotImplementedError

    def start_epoch(self, epoch: int) -> None:
        """Called before epoch ``epoch`` (from 0): memory resets, warm-up phases."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


@dataclass(frozen=True)
class MethodSetup:
    """What building a method needs, resolved from the run's config by the engine.

    ``alpha``: the configured step size (None: the method's default for the epoch's K);
    ``init``: where attacks start (``uniform``, ``zero``, ``normal``: 0.001·N(0, 1));
    ``options``: the method's own options section (None when it has none);
    ``loss_alpha``: the outer loss's default step for a method that takes it (TRADES/MART).
    """

    epsilon: float
    alpha: float | None
    init: str
    options: Any
    train_size: int
    input_shape: tuple[int, int, int]
    device: torch.device
    augment: Augment | None
    epochs: int
    loss_alpha: Callable[[int, float], float] | None = None


@dataclass(frozen=True)
class MethodSpec:
    """A registry entry: everything that belongs to one method (SPEC §3).

    ``default_alpha(k, epsilon)`` is its step size when neither schedule nor config sets one;
    ``attack_bn`` and ``init`` the batch-norm mode and start its authors' code uses;
    ``options`` its config section (the section is named like the method);
    ``joint_gradient``: weights and δ come from one backward (Free's replays), so attack passes
    cannot run on an input-gradient-only graph; ``losses``: the outer losses it supports
    (None: all); ``describe(options, epsilon)``: extra words for its report label;
    ``reads_grad_norms``: its steps follow gradient norms (ATAS's v), so ``precision: auto``
    keeps fp32 as the authors did; ``loss_step``: its default step yields to the outer loss's
    (PGD under TRADES/MART steps as their authors did).
    """

    build: Callable[[MethodSetup], Method]
    label: str
    default_k: int
    default_alpha: Callable[[int, float], float]
    attack_bn: str = "train"
    init: str = "uniform"
    options: type | None = None
    joint_gradient: bool = False
    losses: tuple[str, ...] | None = None
    describe: Callable[[Any, float], str] | None = None
    reads_grad_norms: bool = False
    loss_step: bool = False
    source: str = ""


def multi_step_alpha(k: int, epsilon: float) -> float:
    """Madry's α·K = 2.5ε (2/255 for PGD-10 at 8/255), at most Wong et al.'s 1.25ε for K ≤ 2."""
    return min(2.5 * epsilon / max(k, 1), 1.25 * epsilon)


def train_mode(model: nn.Module) -> None:
    """``model.train(True)``, skipping the walk over every module when the model already trains.

    The root's flag speaks for its submodules: every mode switch around training (the engine's
    epoch start, :class:`bn_mode`, evaluation's restore) is a whole-model ``train``/``eval``."""
    if not model.training:
        model.train(True)


class bn_mode:
    """Context manager: put the model in train or eval mode for an attack, restore train after."""

    def __init__(self, model: nn.Module, mode: str) -> None:
        self.model, self.mode = model, mode

    def __enter__(self) -> None:
        # model.train() walks every module (~0.1 ms on a small net): skip it when already right.
        self.switch = self.model.training != (self.mode == "train")
        if self.switch:
            self.model.train(self.mode == "train")

    def __exit__(self, *exc: object) -> None:
        if self.switch:
            self.model.train(True)


def attack_steps(
    ctx: StepContext,
    x: torch.Tensor,
    y: torch.Tensor,
    delta: torch.Tensor,
    k: int,
    alpha: float | torch.Tensor,
    clean_probs: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """K attack steps δ ← Π(δ + α·sign(∇δ ℓ)) with input gradients only.

    Returns (δ, ‖∇x ℓ‖₁ at the last step). The gradient is that of the batch-mean attack loss,
    as in the DEAT reference code.
    """
    from trainables.attacks import pgd_step

    l1 = torch.zeros((), device=x.device)
    with bn_mode(ctx.model, ctx.attack_bn):
        for _ in range(k):
            grad = attack_gradient(ctx, x, y, delta, clean_probs)
            delta = pgd_step(delta, grad, alpha, x, ctx.epsilon)
            l1 = grad_l1(grad, ctx)
    return delta.detach(), l1


def attack_gradient(
    ctx: StepContext,
    x: torch.Tensor,
    y: torch.Tensor,
    delta: torch.Tensor,
    clean_probs: torch.Tensor | None,
) -> torch.Tensor:
    """One forward + input-only backward of the outer loss's attack objective."""
    delta = delta.detach().requires_grad_(True)
    with ctx.autocast():
        logits = ctx.model(x + delta)
        loss = ctx.loss.attack_loss(logits.float(), y, clean_probs)
    (grad,) = torch.autograd.grad(loss, delta)
    return grad


class Update(NamedTuple):
    """One weight step's outcome: mean loss, correct count, forwards used, and ‖∇x ℓ‖₁ of the
    training loss at x_adv (when the step was asked to measure it, else None)."""

    loss: torch.Tensor
    correct: torch.Tensor
    forwards: int
    input_grad_l1: torch.Tensor | None


def weight_update(ctx: StepContext, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> Update:
    """One training step on x_adv (1 backprop). With ``ctx.final_grad`` the same backward also
    yields the input gradient of the training loss at x_adv (the final DEAT code's l_X)."""
    train_mode(ctx.model)
    if ctx.final_grad:
        x_adv = x_adv.detach().requires_grad_(True)
    with ctx.autocast():
        loss, logits, forwards = ctx.loss.train_loss(ctx.model, x, x_adv, y)
    ctx.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    ctx.optimizer.step()
    correct = (logits.detach().argmax(1) == y).sum()
    l1 = grad_l1(x_adv.grad, ctx) if ctx.final_grad and x_adv.grad is not None else None
    return Update(loss.detach().float(), correct, forwards, l1)


def clean_probabilities(ctx: StepContext, x: torch.Tensor) -> tuple[torch.Tensor | None, int]:
    """Clean softmax targets for losses whose attack needs them (TRADES); (None, 0) otherwise."""
    if not ctx.loss.needs_clean_probs:
        return None, 0
    with torch.no_grad(), bn_mode(ctx.model, ctx.attack_bn), ctx.autocast():
        probs = torch.softmax(ctx.model(x).float(), dim=1)
    return probs, 1
