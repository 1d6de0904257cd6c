"""Tests for trainables.methods: a contract run over every registered method and outer loss
(the perturbation stays in the ε-ball and the image box; forwards, backprops and optimizer steps
are what the method reports), ATAS's step size against eqs. 3–4 by hand, ATTA/ATAS memories,
Free's replays, and the default step sizes."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import f32
from torch import nn

from trainables.config import parse_config
from trainables.data import Augment, Batch
from trainables.methods import (
    ATAS,
    ATTA,
    LOSSES,
    METHODS,
    PGD,
    Free,
    PerturbationMemory,
    Plan,
    StepContext,
    atas_step_size,
    build_loss,
    build_method,
    default_alpha,
    update_second_moment,
)

EPS = 0.1
SHAPE = (1, 8, 8)


def _model(seed: int = 0, bn: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(1, 4, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 10)]
    return nn.Sequential(*layers)


def _batch(n: int = 16, seed: int = 0, offset: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *SHAPE, generator=g)
    x[:, :, 0, :] = 0.0
    x[:, :, 1, :] = 1.0
    y = torch.randint(0, 10, (n,), generator=g)
    return Batch(x, y, torch.arange(offset, offset + n), None)


def _ctx(model: nn.Module, loss: str = "ce", epsilon: float = EPS, lr: float = 0.05,
         attack_bn: str = "train") -> StepContext:
    beta = {"trades": 6.0, "mart": 5.0}.get(loss)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    return StepContext(model, optimizer, epsilon, build_loss(loss, beta), contextlib.nullcontext, attack_bn)


def _method(name: str, loss: str = "ce", n: int = 32, augment: Augment | None = None, **values: Any):
    cfg = parse_config({"method": name, "loss": loss, "epsilon": EPS, **values})
    return build_method(name, cfg.method_setup(n, SHAPE, torch.device("cpu"), augment))


class _Recorder:
    """Counts forwards (with their inputs), backward passes and optimizer steps."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inputs: list[torch.Tensor] = []
        self.grad_calls = self.backward_calls = self.steps = 0
        model.register_forward_pre_hook(lambda module, args: self.inputs.append(args[0].detach().clone()))
        grad, backward, step = torch.autograd.grad, torch.Tensor.backward, optimizer.step

        def counted_grad(*args: Any, **kwargs: Any) -> Any:
            self.grad_calls += 1
            return grad(*args, **kwargs)

        def counted_backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self.backward_calls += 1
            return backward(tensor, *args, **kwargs)

        def counted_step(*args: Any, **kwargs: Any) -> Any:
            self.steps += 1
            return step(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", counted_grad)
        monkeypatch.setattr(torch.Tensor, "backward", counted_backward)
        monkeypatch.setattr(optimizer, "step", counted_step)

    @property
    def backprops(self) -> int:
        return self.grad_calls + self.backward_calls


VALID = [(m, loss) for m in sorted(METHODS) for loss in sorted(LOSSES) if m != "free" or loss == "ce"]


# --- contract over every method and loss ----------------------------------------------------


@pytest.mark.parametrize(("name", "loss"), VALID)
@pytest.mark.parametrize("k", [0, 1, 2])
def test_every_method_respects_ball_box_and_reports_its_cost(
        name: str, loss: str, k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    ctx = _ctx(model, loss)
    method = _method(name, loss)
    batch = _batch()
    before = [p.detach().clone() for p in model.parameters()]
    rec = _Recorder(model, ctx.optimizer, monkeypatch)
    stats = method.train_batch(batch, Plan(k), ctx)

    eps, x = f32(EPS), batch.x
    assert rec.inputs, "the model was never called"
    for inp in rec.inputs:
        assert (inp >= 0).all() and (inp <= 1).all()
        assert ((inp - x).abs() <= eps + 1e-6).all()
    perturbed = [inp for inp in rec.inputs if not torch.equal(inp, x)]
    assert bool(perturbed) == (k > 0)
    # Cost: K + 1 backprops for every method; forwards as reported; Free steps the weights K + 1 times.
    assert stats.backprops == k + 1 == rec.backprops
    assert stats.forwards == len(rec.inputs)
    assert rec.steps == (k + 1 if name == "free" else 1)
    assert stats.count == len(batch.y) and 0 <= int(stats.correct) <= len(batch.y)
    assert torch.isfinite(stats.loss) and float(stats.grad_l1) >= 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.training  # batch-norm mode restored after the attack
    if name in ("atta", "atas"):
        stored = method.memory.delta[batch.index]
        assert (stored.abs() <= eps).all()
        if k > 0:  # the memory holds the perturbation the weights were trained on
            adversarial = [i for i in rec.inputs[-2:] if not torch.equal(i, x)]  # TRADES/MART: + clean
            assert torch.allclose(stored, adversarial[-1] - x, atol=1e-6)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_forward_counts_ce(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    ctx = _ctx(model)
    rec = _Recorder(model, ctx.optimizer, monkeypatch)
    stats = _method(name).train_batch(_batch(), Plan(3), ctx)
    assert stats.forwards == len(rec.inputs) == 3 + 1


def test_trades_counts_a_clean_target_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    ctx = _ctx(model, "trades")
    rec = _Recorder(model, ctx.optimizer, monkeypatch)
    batch = _batch()
    stats = _method("pgd", "trades").train_batch(batch, Plan(3), ctx)
    assert stats.forwards == len(rec.inputs) == 3 + 3  # clean target + K + (clean, adversarial)
    assert torch.equal(rec.inputs[0], batch.x) and torch.equal(rec.inputs[-2], batch.x)


def test_pgd_step_sizes_are_exactly_alpha(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    ctx = _ctx(model)
    rec = _Recorder(model, ctx.optimizer, monkeypatch)
    batch = _batch()
    alpha = 0.03
    stats = PGD(alpha, init="zero").train_batch(batch, Plan(1), ctx)
    assert stats.alpha == alpha
    delta = rec.inputs[-1] - batch.x
    # One signed step from zero: ±alpha, or cut back to the image box.
    inside = (batch.x > alpha) & (batch.x < 1 - alpha)
    assert torch.allclose(delta[inside].abs(), torch.full_like(delta[inside], alpha), atol=1e-6)
    assert (delta[batch.x == 0] >= 0).all() and (delta[batch.x == 1] <= 0).all()


def test_plan_alpha_overrides_config_alpha() -> None:
    batch = _batch()
    for method, plan, expected in [
        (PGD(0.02), Plan(2), 0.02), (PGD(0.02), Plan(2, 0.04), 0.04), (PGD(), Plan(2), 1.25 * EPS),
        (PGD(), Plan(4), 2.5 * EPS / 4), (Free(), Plan(2), EPS), (Free(0.03), Plan(2), 0.03),
    ]:
        stats = method.train_batch(batch, plan, _ctx(_model()))
        assert stats.alpha == pytest.approx(expected)
    assert PGD(0.02).train_batch(batch, Plan(0), _ctx(_model())).alpha == 0.0


# --- default step sizes ----------------------------------------------------------------


def test_default_alpha() -> None:
    eps = 8 / 255
    assert default_alpha("pgd", 10, eps) == pytest.approx(2 / 255)  # Madry: 2.5 eps / K
    assert default_alpha("pgd", 7, eps) == pytest.approx(2.5 * eps / 7)
    assert default_alpha("fgsm_rs", 1, eps) == pytest.approx(10 / 255)  # Wong et al.: 1.25 eps
    assert default_alpha("pgd", 1, eps) == pytest.approx(1.25 * eps)
    assert default_alpha("pgd", 0, eps) == pytest.approx(1.25 * eps)
    assert default_alpha("free", 1, eps) == default_alpha("free", 7, eps) == eps  # Shafahi et al.


# --- ATAS: eqs. 3–4 by hand ----------------------------------------------------------------


def test_update_second_moment_by_hand() -> None:
    v = torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64)
    grad = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, -1.0]], dtype=torch.float64).view(3, 1, 1, 2)
    # beta v + (1 - beta) ||g||^2 with ||g||^2 = 25, 0, 2
    assert torch.allclose(update_second_moment(v, grad, 0.5), torch.tensor([12.5, 0.5, 3.0], dtype=torch.float64))
    assert torch.allclose(update_second_moment(v, grad, 0.9), torch.tensor([2.5, 0.9, 3.8], dtype=torch.float64))
    assert torch.allclose(update_second_moment(v, grad, 0.0), torch.tensor([25.0, 0.0, 2.0], dtype=torch.float64))


def test_atas_step_size_by_hand_with_clipping() -> None:
    gamma, c = 16 / 255 * 0.01, 0.01  # gamma / c = 16/255
    sqrt_v = torch.tensor([0.0, 0.0025, 0.01, 0.03, 0.04, 1.0], dtype=torch.float64)
    alpha = atas_step_size(sqrt_v**2, gamma, c, 4 / 255, 14 / 255)
    expected = torch.tensor([
        14 / 255,    # 16/255 before clipping
        12.8 / 255,  # (16/255) / 1.25
        8 / 255,     # (16/255) / 2
        4 / 255,     # (16/255) / 4: exactly the lower bound
        4 / 255,     # 3.2/255 clipped up
        4 / 255,
    ], dtype=torch.float64)
    assert torch.allclose(alpha, expected, rtol=1e-12, atol=0)
    assert torch.allclose(atas_step_size(sqrt_v**2, gamma, c, 0.0, 1.0)[:3],
                          torch.tensor([16 / 255, 12.8 / 255, 8 / 255], dtype=torch.float64))


def _linear_model(seed: int = 0) -> nn.Module:
    return _model(seed, bn=False)  # no batch norm: each example's gradient ignores the others


def _atas(n: int, memory_delta: torch.Tensor, beta: float = 0.5) -> ATAS:
    memory = PerturbationMemory(n, SHAPE, EPS, torch.device("cpu"), None)
    memory.delta.copy_(memory_delta)
    return ATAS(memory, n, gamma=16 / 255 * 0.01, c=0.01, beta=beta, min_step=4 / 255, max_step=14 / 255,
                reset_every=0, reference_batch=128, warmup_epochs=0, epochs=10)


def test_atas_scales_gradients_to_batch_128_and_steps_per_example() -> None:
    n = 128
    torch.manual_seed(1)
    init = torch.empty(n, *SHAPE).uniform_(-EPS, EPS)
    full = _batch(n, seed=3)
    half = Batch(full.x[:64], full.y[:64], full.index[:64], None)
    model = _linear_model()
    results = {}
    for name, batch in (("half", half), ("full", full)):
        atas = _atas(n, init)
        stats = atas.train_batch(batch, Plan(1), _ctx(copy.deepcopy(model)))
        results[name] = (atas, stats)
    v64, v128 = results["half"][0].v[:64], results["full"][0].v[:64]
    assert torch.allclose(v64, v128, rtol=1e-5, atol=0) and (v128 > 0).all()
    assert (results["half"][0].v[64:] == 0).all()  # examples not in the batch keep v = 0

    # Independently: g_i = grad of example i's own CE at the stored init, divided by 128.
    x, y = full.x, full.y
    start = torch.clamp(torch.clamp(init, -EPS, EPS), -x, 1 - x).requires_grad_(True)
    (per_example,) = torch.autograd.grad(F.cross_entropy(model(x + start), y, reduction="sum"), start)
    v = 0.5 * (per_example / 128).flatten(1).pow(2).sum(1)
    assert torch.allclose(v128, v[:64], rtol=1e-5, atol=0)
    alpha = (16 / 255 * 0.01 / (0.01 + v.sqrt())).clamp(4 / 255, 14 / 255)
    atas, stats = results["full"]
    assert float(stats.alpha) == pytest.approx(alpha.mean().item(), rel=1e-5)
    expected = start.detach() + alpha.view(-1, 1, 1, 1) * per_example.sign()
    expected = torch.minimum(torch.maximum(expected.clamp(-EPS, EPS), -x), 1 - x)
    assert torch.allclose(atas.memory.delta, expected, atol=1e-6)


def test_atas_v_is_a_running_average_over_epochs() -> None:
    n = 16
    atas = _atas(n, torch.zeros(n, *SHAPE), beta=0.5)
    model = _linear_model()
    batch = _batch(n)
    ctx = _ctx(model, lr=1e-12)  # weights barely move: the gradient norm repeats
    atas.train_batch(batch, Plan(1), ctx)
    first = atas.v.clone()
    atas.memory.delta.zero_()  # same initialization again
    atas.train_batch(batch, Plan(1), ctx)
    # v2 = 0.5 v1 + 0.5 g^2 with g^2 = 2 v1 (v1 = 0.5 g^2): v2 = 1.5 v1
    assert torch.allclose(atas.v, 1.5 * first, rtol=1e-4)


def test_atas_k_zero_is_natural_training_and_leaves_state() -> None:
    n = 16
    atas = _atas(n, torch.full((n, *SHAPE), 0.05))
    stats = atas.train_batch(_batch(n), Plan(0), _ctx(_linear_model()))
    assert (atas.v == 0).all() and (atas.memory.delta == 0.05).all()
    assert float(stats.alpha) == 0.0 and stats.backprops == 1 and stats.forwards == 1


# --- ATTA memory -----------------------------------------------------------------------


def _record_reads(method: ATTA | ATAS, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    reads: list[torch.Tensor] = []
    read = method.memory.read

    def recording(batch: Batch) -> torch.Tensor:
        delta = read(batch)
        reads.append(delta.clone())
        return delta

    monkeypatch.setattr(method.memory, "read", recording)
    return reads


@pytest.mark.parametrize("name", ["atta", "atas"])
def test_memory_persists_across_epochs_and_resets(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "atta.reset_every" if name == "atta" else "atas.reset_every"
    torch.manual_seed(0)
    method = _method(name, n=32, **{key: 2})
    reads = _record_reads(method, monkeypatch)
    resets = []
    reset = method.memory.reset
    monkeypatch.setattr(method.memory, "reset", lambda: (resets.append(1), reset()))
    model = _model()
    ctx = _ctx(model)
    batch = _batch(16, offset=8)
    method.start_epoch(0)
    method.train_batch(batch, Plan(1), ctx)
    stored = method.memory.delta[batch.index].clone()
    untouched = method.memory.delta[:8].clone()
    assert not torch.equal(stored, reads[0])  # the attack moved it
    method.start_epoch(1)  # reset_every = 2, counted from 1: the reset comes before 0-indexed epoch 1
    assert resets == [1]
    fresh = method.memory.delta
    assert not torch.equal(fresh[batch.index], stored)
    if name == "atas":  # ATAS.py: U(-eps, eps)
        assert (fresh.abs() <= f32(EPS)).all() and fresh.min() < -0.09 and fresh.max() > 0.09
    else:  # train_atta_cifar.py: 0.001 * randn
        assert 0.0008 < float(fresh.std()) < 0.0012 and abs(float(fresh.mean())) < 2e-4
    untouched = fresh[:8].clone()
    method.train_batch(batch, Plan(1), ctx)
    stored = method.memory.delta[batch.index].clone()
    method.start_epoch(2)
    method.train_batch(batch, Plan(1), ctx)
    assert torch.equal(reads[2], stored)  # the next epoch starts from this one's result
    assert torch.equal(method.memory.delta[:8], untouched)
    assert resets == [1]
    method.start_epoch(3)
    method.start_epoch(4)
    assert resets == [1, 1]


@pytest.mark.parametrize(("name", "epochs", "resets"), [
    ("atta", 38, [9, 19, 29]),  # the authors' "epochs-reset": 10 of 38, epochs counted from 1
    ("atta", 10, [2, 5, 8]),  # scaled: round(10 * 10 / 38) = 3; ATTA resets before the last epoch too
    ("atta", 8, [1, 3, 5, 7]),  # scaled: round(8 * 10 / 38) = 2, last epoch (7) included as in ATTA
    ("atas", 30, [9, 19]),  # ATAS.py: 1-indexed 10 and 20 of 30, not at the last
    ("atas", 6, [1, 3]),  # scaled: every 2 of 6 from 1, none before the last epoch (5)
    ("atas", 11, [3, 7]),  # scaled: round(11 * 10 / 30) = 4: 1-indexed 4 and 8
])
def test_default_resets_follow_the_authors_scaled_to_the_run(
        name: str, epochs: int, resets: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    method = _method(name, epochs=epochs)
    seen: list[int] = []
    epoch = 0
    monkeypatch.setattr(method.memory, "reset", lambda: seen.append(epoch))
    for epoch in range(epochs):
        method.start_epoch(epoch)
    assert seen == resets


def test_reset_every_zero_never_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    method = _method("atta", **{"atta.reset_every": 0})
    monkeypatch.setattr(method.memory, "reset", lambda: pytest.fail("reset"))
    for epoch in range(40):
        method.start_epoch(epoch)


def test_memory_follows_crop_and_flip(monkeypatch: pytest.MonkeyPatch) -> None:
    augment = Augment(crop_padding=2, flip=True)
    torch.manual_seed(0)
    method = _method("atta", n=16, augment=augment)
    model = _model()
    ctx = _ctx(model)
    raw = _batch(16)
    aug = augment.sample(16, "cpu")
    batch = Batch(augment.apply(raw.x, aug), raw.y, raw.index, aug)
    rec = _Recorder(model, ctx.optimizer, monkeypatch)
    method.train_batch(batch, Plan(1), ctx)
    used = rec.inputs[-1] - batch.x
    shown = augment.apply(torch.ones_like(raw.x), aug) > 0  # where the crop shows the image
    again = method.memory.read(batch)
    assert torch.allclose(again[shown], used[shown], atol=1e-6)
    # Another augmentation of the same examples sees the same stored perturbation, moved along.
    aug2 = augment.sample(16, "cpu")
    batch2 = Batch(augment.apply(raw.x, aug2), raw.y, raw.index, aug2)
    moved = augment.apply(method.memory.delta[raw.index], aug2)
    assert torch.allclose(method.memory.read(batch2), torch.clamp(moved, -batch2.x, 1 - batch2.x))


# --- Free ------------------------------------------------------------------------------


def test_free_k0_equals_natural_training() -> None:
    batch = _batch()
    models = [_model(), _model(), _model()]
    Free().train_batch(batch, Plan(0), _ctx(models[0]))
    PGD().train_batch(batch, Plan(0), _ctx(models[1]))
    ctx = _ctx(models[2])  # by hand: one SGD step on the clean batch
    ctx.optimizer.zero_grad()
    F.cross_entropy(models[2](batch.x), batch.y).backward()
    ctx.optimizer.step()
    for a, b, c in zip(*(m.state_dict().values() for m in models), strict=True):
        assert torch.equal(a, b) and torch.equal(b, c)


@pytest.mark.parametrize("method", [Free(), PGD()])
def test_k0_with_start_at_k0_trains_once_on_the_uniform_start(method: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # DEAT's mdeat_cifar10.py / mpgd_cifar10.py draw delta ~ U(-eps, eps) before the loop, even at K = 0
    batch = _batch()
    model = _model()
    ctx = _ctx(model)
    rec = _Recorder(model, ctx.optimizer, monkeypatch)
    stats = method.train_batch(batch, Plan(0, start_at_k0=True), ctx)
    (seen,) = rec.inputs
    delta = seen - batch.x
    assert rec.backprops == stats.backprops == 1 and rec.steps == 1
    assert delta.abs().max() <= EPS + 1e-6 and (delta.abs() > EPS / 2).float().mean() > 0.3  # not the clean input
    assert (seen >= 0).all() and (seen <= 1).all()


def test_grad_weight_weights_l_x_per_channel() -> None:
    # mdeat_cifar10.py: grad_mag += torch.sum(grad.abs() * std)
    from trainables.methods.base import grad_l1

    grad = torch.ones(2, 3, 4, 4)
    grad[:, 1] = -2.0
    ctx = _ctx(_model())
    weighted = StepContext(ctx.model, ctx.optimizer, EPS, ctx.loss, ctx.autocast, "train",
                           grad_weight=torch.tensor([0.25, 0.5, 1.0]).view(3, 1, 1))
    assert float(grad_l1(grad, ctx)) == 2 * 16 * (1 + 2 + 1)
    assert float(grad_l1(grad, weighted)) == 2 * 16 * (0.25 + 1.0 + 1.0)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_free_replays_update_weights_k_plus_one_times(k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    ctx = _ctx(model)
    rec = _Recorder(model, ctx.optimizer, monkeypatch)
    batch = _batch()
    alpha = 0.03
    stats = Free(alpha).train_batch(batch, Plan(k), ctx)
    assert rec.steps == k + 1 == stats.backprops == rec.backward_calls and rec.grad_calls == 0
    deltas = [inp - batch.x for inp in rec.inputs]
    assert len(deltas) == k + 1
    for before, after in zip(deltas, deltas[1:], strict=False):
        assert ((after - before).abs() <= alpha + 1e-6).all()  # one signed step per replay
        assert not torch.equal(before, after)


def test_free_carry_delta_continues_from_previous_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    ctx = _ctx(model)
    free = _method("free", **{"free.carry_delta": True})
    assert isinstance(free, Free) and free.carry_delta
    first, second = _batch(seed=1), _batch(seed=2)
    free.train_batch(first, Plan(2), ctx)
    carried = free.delta.clone()
    assert (carried.abs() <= f32(EPS)).all()
    rec = _Recorder(model, ctx.optimizer, monkeypatch)
    free.train_batch(second, Plan(2), ctx)
    start = rec.inputs[0] - second.x
    assert torch.allclose(start, torch.clamp(carried, -second.x, 1 - second.x), atol=1e-6)
    restored = Free(carry_delta=True)
    restored.load_state_dict(free.state_dict())
    assert torch.equal(restored.delta, free.delta)
