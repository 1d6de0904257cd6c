"""Tests for trainables.attacks: the projection, the PGD step, random start, input-only
gradients, evaluation PGD with restarts and the CW margin loss, checked against the formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import f32
from torch import nn

import trainables.attacks.pgd as pgd_module
from trainables.attacks import (
    cw_margin_loss,
    input_gradient,
    pgd_attack,
    pgd_step,
    project,
    random_init,
)


def _images(n: int = 64, shape: tuple[int, ...] = (3, 8, 8), seed: int = 0) -> torch.Tensor:
    """Random images with some pixels exactly 0 and exactly 1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g)
    x[:, 0, 0, :] = 0.0
    x[:, 0, 1, :] = 1.0
    return x


# --- project ----------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [8 / 255, 0.1, 0.5, 1.0])
def test_project_keeps_ball_and_box_exactly(epsilon: float) -> None:
    x = _images()
    delta = (torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) - 0.5) * 4  # far outside
    p = project(delta, x, epsilon)
    assert (p.abs() <= f32(epsilon)).all()
    assert ((x + p) >= 0).all() and ((x + p) <= 1).all()
    # The formula: clip to [-eps, eps], then to [-x, 1 - x], elementwise.
    expected = torch.minimum(torch.maximum(delta, -f32(epsilon)), f32(epsilon))
    expected = torch.minimum(torch.maximum(expected, -x), 1 - x)
    assert torch.equal(p, expected)
    # Pixels at 0 can only go up, pixels at 1 only down.
    assert (p[:, 0, 0, :] >= 0).all() and (p[:, 0, 1, :] <= 0).all()


def test_project_is_identity_inside_the_set() -> None:
    x = torch.full((4, 1, 2, 2), 0.5)
    delta = torch.tensor([0.01, -0.02, 0.03, 0.0]).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    assert torch.equal(project(delta, x, 0.05), delta)


def test_project_per_example_epsilon() -> None:
    x = _images(n=4, shape=(3, 4, 4))
    eps = torch.tensor([0.0, 0.01, 0.1, 0.3])
    delta = torch.full_like(x, 0.2)
    p = project(delta, x, eps)
    for i in range(4):
        assert (p[i].abs() <= eps[i]).all()
        assert torch.equal(p[i], torch.minimum(torch.full_like(x[i], min(0.2, eps[i].item())), 1 - x[i]))
    assert torch.equal(p[0], torch.zeros_like(p[0]))
    assert ((x + p) >= 0).all() and ((x + p) <= 1).all()


def test_project_on_hand_made_values() -> None:
    x = torch.tensor([0.0, 1.0, 0.5, 0.98, 0.02]).view(5, 1, 1, 1)
    delta = torch.tensor([-0.2, 0.2, 0.2, 0.05, -0.05]).view(5, 1, 1, 1)
    p = project(delta, x, 0.1).flatten()
    assert torch.allclose(p, torch.tensor([0.0, 0.0, 0.1, 0.02, -0.02]), atol=1e-7)


# --- pgd_step -----------------------------------------------------------------------------


def test_pgd_step_per_example_alpha_matches_formula() -> None:
    x = _images(n=6)
    g = torch.Generator().manual_seed(2)
    epsilon = 0.1
    delta = project((torch.rand(x.shape, generator=g) - 0.5) * 0.2, x, epsilon)
    grad = torch.randn(x.shape, generator=g)
    grad[:, :, 2, 2] = 0.0  # sign(0) = 0: no move
    alpha = torch.tensor([0.0, 0.01, 0.02, 0.05, 0.1, 0.3])
    out = pgd_step(delta, grad, alpha, x, epsilon)
    for i in range(6):
        moved = delta[i] + alpha[i] * torch.sign(grad[i])
        moved = torch.clamp(moved, -epsilon, epsilon)
        moved = torch.maximum(torch.minimum(moved, 1 - x[i]), -x[i])
        assert torch.equal(out[i], moved)
    assert torch.equal(out[0], delta[0])  # alpha 0 leaves delta where it was
    assert torch.equal(out[:, :, 2, 2], delta[:, :, 2, 2])
    # A scalar alpha is the same as a constant per-example one.
    assert torch.equal(pgd_step(delta, grad, 0.02, x, epsilon),
                       pgd_step(delta, grad, torch.full((6,), 0.02), x, epsilon))


def test_pgd_step_hand_made() -> None:
    x = torch.tensor([0.5, 0.5, 0.95, 0.0]).view(4, 1, 1, 1)
    delta = torch.tensor([0.0, 0.09, 0.0, 0.0]).view(4, 1, 1, 1)
    grad = torch.tensor([-3.0, 1.0, 2.0, -1.0]).view(4, 1, 1, 1)
    out = pgd_step(delta, grad, torch.tensor([0.04, 0.04, 0.08, 0.04]), x, 0.1).flatten()
    assert torch.allclose(out, torch.tensor([-0.04, 0.1, 0.05, 0.0]), atol=1e-7)


# --- random_init -----------------------------------------------------------------------


def test_random_init_distribution_and_bounds() -> None:
    torch.manual_seed(0)
    epsilon = 0.1
    x = torch.full((2000, 1, 4, 4), 0.5)
    x[:, :, 0, :] = 0.0
    x[:, :, 1, :] = 1.0
    delta = random_init(x, epsilon)
    assert (delta.abs() <= f32(epsilon)).all() and ((x + delta) >= 0).all() and ((x + delta) <= 1).all()
    inner = delta[:, :, 2:, :].flatten()  # pixels far from the box edges: U(-eps, eps)
    assert inner.min() < -0.099 and inner.max() > 0.099
    assert inner.mean().abs() < 0.002
    assert inner.std().item() == pytest.approx(epsilon / 3**0.5, rel=0.02)
    # Bucket counts of a uniform law: each tenth of [-eps, eps] holds ~10%.
    counts = torch.histc(inner, bins=10, min=-epsilon, max=epsilon) / inner.numel()
    assert torch.allclose(counts, torch.full((10,), 0.1), atol=0.01)
    at_zero, at_one = delta[:, :, 0, :].flatten(), delta[:, :, 1, :].flatten()
    assert (at_zero >= 0).all() and (at_one <= 0).all()
    assert (at_zero == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)  # the clipped half
    assert (at_one == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)


def test_random_init_follows_the_global_seed() -> None:
    x = _images(n=3)
    torch.manual_seed(7)
    a = random_init(x, 0.1)
    torch.manual_seed(7)
    assert torch.equal(a, random_init(x, 0.1))


# --- input gradients ----------------------------------------------------------------------


class _Linear(nn.Module):
    """logits = W · flatten(x) + b: the CE loss is convex in the input."""

    def __init__(self, features: int, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc = nn.Linear(features, classes)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(classes, features, generator=g))
            self.fc.bias.copy_(torch.randn(classes, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_input_gradient_leaves_parameter_grads_none() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 5))
    x, y = _images(n=8), torch.arange(8) % 5
    grad, loss, logits = input_gradient(model, x, torch.zeros_like(x), y, F.cross_entropy)
    assert all(p.grad is None for p in model.parameters())
    assert grad.shape == x.shape and grad.abs().sum() > 0
    assert torch.allclose(loss, F.cross_entropy(logits, y))
    assert not loss.requires_grad and not logits.requires_grad
    pgd_attack(model, x, y, 0.1, 0.025, steps=3, restarts=2)
    assert all(p.grad is None for p in model.parameters())


def test_input_gradient_of_linear_model_matches_closed_form() -> None:
    model = _Linear(12)
    x = _images(n=5, shape=(3, 2, 2))
    y = torch.tensor([0, 1, 2, 0, 1])
    delta = torch.full_like(x, 0.01)
    grad, _, _ = input_gradient(model, x, delta, y, F.cross_entropy)
    with torch.no_grad():
        probs = torch.softmax(model(x + delta), 1)
        # d mean-CE / d x_i = W^T (p_i - onehot(y_i)) / B
        expected = (probs - F.one_hot(y, 3).float()) @ model.fc.weight / len(y)
    assert torch.allclose(grad.flatten(1), expected, atol=1e-6)


# --- pgd_attack --------------------------------------------------------------------------


def _per_example_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def test_pgd_attack_increases_loss_on_linear_model() -> None:
    model = _Linear(48)
    x = _images(n=32, shape=(3, 4, 4))
    y = torch.arange(32) % 3
    epsilon = 0.05
    before = _per_example_ce(model, x, y)
    # From delta = 0, every projected sign step ascends a loss convex in the input.
    delta = pgd_attack(model, x, y, epsilon, epsilon / 4, steps=5, random_start=False)
    after = _per_example_ce(model, x + delta, y)
    assert (after >= before - 1e-6).all() and after.mean() > before.mean() + 0.1
    assert (delta.abs() <= f32(epsilon)).all() and ((x + delta) >= 0).all() and ((x + delta) <= 1).all()
    # With random starts and restarts the mean loss rises too.
    torch.manual_seed(0)
    random = pgd_attack(model, x, y, epsilon, epsilon / 4, steps=10, restarts=2)
    assert _per_example_ce(model, x + random, y).mean() > before.mean() + 0.1
    assert (random.abs() <= f32(epsilon)).all()


def test_pgd_attack_zero_steps_without_random_start_is_zero() -> None:
    model = _Linear(48)
    x = _images(n=4, shape=(3, 4, 4))
    assert torch.equal(pgd_attack(model, x, torch.zeros(4, dtype=torch.long), 0.1, 0.1, steps=0,
                                  random_start=False), torch.zeros_like(x))


class _Threshold(nn.Module):
    """Predicts class 1 iff the image mean exceeds 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1).mean(1)
        return torch.stack([torch.zeros_like(z), 100 * (z - 0.5)], 1)


def test_restarts_keep_the_first_fooling_delta(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.full((3, 1, 2, 2), 0.5)
    y = torch.zeros(3, dtype=torch.long)
    scripted = iter([
        torch.tensor([0.01, -0.01, -0.01]),  # restart 1 fools example 0
        torch.tensor([0.02, 0.03, -0.02]),   # restart 2 fools examples 0 and 1
        torch.tensor([-0.01, 0.04, -0.03]),  # restart 3 fools example 1; nobody fools example 2
    ])
    monkeypatch.setattr(pgd_module, "random_init",
                        lambda x, eps: next(scripted).view(-1, 1, 1, 1).expand_as(x).clone())
    best = pgd_attack(_Threshold(), x, y, epsilon=0.05, alpha=0.01, steps=0, restarts=3)
    assert torch.allclose(best[:, 0, 0, 0], torch.tensor([0.01, 0.03, -0.03]))


class _Band(nn.Module):
    """Predicts class 1 iff the image mean lies within 0.02 of 0.55."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1).mean(1)
        return torch.stack([torch.zeros_like(z), 100 * (0.02 - (z - 0.55).abs())], 1)


def test_early_stop_keeps_the_fooling_point_the_default_walks_out_of() -> None:
    # DEAT's utils.attack_pgd updates only the examples still classified correctly.
    x, y = torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, dtype=torch.long)
    # step 1: mean 0.5 -> 0.54 (fooled); step 2 overshoots to 0.58 (right again) unless stopped
    default = pgd_attack(_Band(), x, y, 0.1, 0.04, steps=2, random_start=False)
    stopped = pgd_attack(_Band(), x, y, 0.1, 0.04, steps=2, random_start=False, early_stop=True)
    assert float((x + default).mean()) == pytest.approx(0.58) and float((x + stopped).mean()) == pytest.approx(0.54)
    with torch.no_grad():
        assert _Band()(x + default).argmax(1).item() == 0 and _Band()(x + stopped).argmax(1).item() == 1
    # already misclassified at the start: nothing moves
    x0 = torch.full((2, 1, 2, 2), 0.55)
    assert torch.equal(pgd_attack(_Band(), x0, torch.zeros(2, dtype=torch.long), 0.1, 0.04, steps=3,
                                  random_start=False, early_stop=True), torch.zeros_like(x0))


# --- CW margin -----------------------------------------------------------------------


def test_cw_margin_loss_on_hand_made_logits() -> None:
    logits = torch.tensor([[1.0, 3.0, 2.0], [5.0, 1.0, 4.0], [0.0, -2.0, 7.0]])
    y = torch.tensor([0, 0, 1])
    margins = torch.tensor([2.0, -1.0, 9.0])  # max_{j != y} z_j - z_y
    assert torch.equal(cw_margin_loss(logits, y, reduction="none"), margins)
    assert cw_margin_loss(logits, y).item() == pytest.approx(10 / 3)
    assert cw_margin_loss(logits, y, reduction="sum").item() == pytest.approx(10.0)


def test_cw_margin_is_positive_exactly_when_misclassified() -> None:
    g = torch.Generator().manual_seed(3)
    logits, y = torch.randn(100, 10, generator=g), torch.randint(0, 10, (100,), generator=g)
    margin = cw_margin_loss(logits, y, reduction="none")
    assert torch.equal(margin > 0, logits.argmax(1) != y)
