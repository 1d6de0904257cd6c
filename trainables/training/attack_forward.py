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

An attack pass is a call with grad enabled on an input that requires grad. When one backward
must give the weight *and* the input gradient (Free's replays; a controller reading the
training loss's input gradient), every pass goes through the full model (``split=False``).
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


def compile_seconds() -> float:
    """Seconds this process has spent compiling graphs so far (TorchDynamo's own total, 0 when
    nothing was compiled). The engine takes it out of ``train_seconds``: the first trial an
    actor runs would otherwise pay every compile (14.9 s against 0.03 s per later epoch on
    the CPU), skewing ``cost: seconds`` comparisons."""
    import sys

    if "torch._dynamo" not in sys.modules:
        return 0.0
    from torch._dynamo.utils import compilation_time_metrics

    # Dynamo's frame compiles, plus backward graphs AOTAutograd compiles lazily on first use.
    keys = [k for k in compilation_time_metrics if k == "_compile.compile_inner" or "bw_compiler" in k]
    return float(sum(sum(compilation_time_metrics[k]) for k in keys))


def forward_model(model: nn.Module, compile: bool, split: bool = True, full: nn.Module | None = None) -> nn.Module:
    """What the methods call (``StepContext.model``): the model itself when neither compiled nor
    wrapped, else an :class:`AttackSplitForward` (``split``: attack passes on their own graph)."""
    if not compile and full is None:
        return model
    return AttackSplitForward(model, full, compile=compile, split=split)


__all__ = ["AttackSplitForward", "compile_seconds", "forward_model"]
