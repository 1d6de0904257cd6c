"""The model as the training step calls it: attack passes kept free of weight gradients.

An attack step asks autograd for the input gradient only (``torch.autograd.grad(loss,
delta)``). Eager autograd then skips every weight gradient, which makes an attack step
about 2/3 of a training step (SPEC §13). Two wrappers would lose that:

- ``torch.compile``: AOTAutograd compiles *one* backward per graph that returns the
  gradient of every input requiring grad, weights included, so through a compiled model an
  attack step costs a whole training step. Attack passes therefore go to a second compiled
  graph in which the weights are detached (constants to autograd).
- DistributedDataParallel: an attack pass needs no gradient synchronization, so it calls
  the bare module rather than going through DDP's forward.

An attack pass is a call with grad enabled on an input that requires grad. Free's replays
take the weight *and* the input gradient from one backward, so with method ``free`` every
pass goes through the full model (``split=False``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class AttackSplitForward(nn.Module):
    """Calls ``full`` (default ``model``; e.g. its DDP wrapper) for training passes and ``model``
    itself, with detached weights when compiled, for attack passes."""

    def __init__(self, model: nn.Module, full: nn.Module | None = None, compile: bool = False,
                 split: bool = True, **compile_options: Any) -> None:
        super().__init__()
        self.model = model
        full = model if full is None else full
        self.full = torch.compile(full, **compile_options) if compile else full
        if not split:
            self.attack: Any = self.full
        elif compile:
            self.attack = torch.compile(self._detached, **compile_options)
        else:
            self.attack = model

    def _detached(self, x: torch.Tensor) -> torch.Tensor:
        weights = {name: p.detach() for name, p in self.model.named_parameters()}
        return torch.func.functional_call(self.model, weights, (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            return self.attack(x)
        return self.full(x)


def forward_model(model: nn.Module, compile: bool, method: str, full: nn.Module | None = None) -> nn.Module:
    """What the methods call (``StepContext.model``): the model itself when neither compiled nor
    wrapped, else an :class:`AttackSplitForward`."""
    if not compile and full is None:
        return model
    return AttackSplitForward(model, full, compile=compile, split=method != "free")


__all__ = ["AttackSplitForward", "forward_model"]
