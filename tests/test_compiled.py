"""AttackSplitForward: attack passes through a compiled model compute no weight gradients,
and every pass gives the same numbers as the eager model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from trainables.models import build_model
from trainables.training.attack_forward import AttackSplitForward, forward_model


class WeightGradients(TorchDispatchMode):
    """Counts convolution backwards that compute a weight gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten.convolution_backward.default and args[-1][1]:
            self.count += 1
        return func(*args, **(kwargs or {}))


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("small_cnn", 10, (1, 8, 8), (0.5,), (0.25,))


def _attack_grad(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
    delta = torch.zeros_like(x, requires_grad=True)
    loss = F.cross_entropy(model(x + delta), y)
    with WeightGradients() as counter:  # counts the backward only
        (grad,) = torch.autograd.grad(loss, delta)
    return grad, counter.count


@pytest.mark.parametrize("split", [True, False])
def test_compiled_attack_passes_skip_weight_gradients(split: bool) -> None:
    model = _model()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(10, (8,))
    eager_grad, eager_weight_grads = _attack_grad(model, x, y)
    wrapped = AttackSplitForward(model, compile=True, split=split, backend="aot_eager")
    _attack_grad(wrapped, x, y)  # compile outside the counting mode first
    grad, weight_grads = _attack_grad(wrapped, x, y)
    assert eager_weight_grads == 0
    assert torch.allclose(grad, eager_grad, atol=1e-6)
    # one compiled backward for everything computes the weight gradients too (the waste avoided)
    assert (weight_grads == 0) if split else (weight_grads > 0)


def test_training_passes_get_weight_gradients() -> None:
    model = _model()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(10, (8,))
    def grads() -> list[torch.Tensor]:
        found = [p.grad for p in model.parameters()]
        assert all(g is not None for g in found)
        return [g.clone() for g in found if g is not None]

    F.cross_entropy(model(x), y).backward()
    eager = grads()
    model.zero_grad()
    F.cross_entropy(AttackSplitForward(model, compile=True, backend="aot_eager")(x), y).backward()
    for g, compiled in zip(eager, grads(), strict=True):
        assert torch.allclose(g, compiled, atol=1e-5)


def test_train_mode_reaches_the_model_and_plain_runs_are_unwrapped() -> None:
    model = _model()
    assert forward_model(model, compile=False) is model
    wrapped = forward_model(model, compile=True, split=False)
    assert isinstance(wrapped, AttackSplitForward) and wrapped.attack is wrapped.full
    wrapped.train(False)
    assert not model.training
