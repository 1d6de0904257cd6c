"""Attacks with a fixed start give one answer, whatever the torch seed, and it is the hand-made one.

The model is linear with two classes, logits = W·x + b, so the input gradient of the mean
cross-entropy is known in closed form: for example i, ∇x_i = (p_i1 − [y_i = 1])·(W_1 − W_0)/B,
whose sign is s_i = ±sign(W_1 − W_0) (+ for y = 0, − for y = 1) at every x, since 0 < p < 1.
Two pixels weigh 0 in both classes (an exactly zero gradient): a signed step from δ = 0 leaves
them at 0 while a random start would not, so a random start anywhere in these attacks makes the
tests fail. Pixels sit at and near 0 and 1, so the image box clips some steps. ATAS, whose start
is its memory, is checked from a stored δ₀ against its step-size rule worked out by hand.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables.attacks import pgd_attack, start_delta
from trainables.config import parse_config
from trainables.data import Batch
from trainables.evaluation.accuracy import evaluate_accuracy, fgsm_attack
from trainables.methods import PGD, Free, Plan, StepContext, build_loss, build_method
from trainables.methods.base import attack_gradient, clean_probabilities
from trainables.schedules import SCHEDULES
from trainables.training.run_parts import make_schedule

EPS = 0.1
SHAPE = (1, 2, 2)
W = [[0.5, 0.0, 2.0, 0.0], [1.5, 0.0, -0.5, 0.0]]  # W_1 − W_0 = [1, 0, −2.5, 0]
BIAS = [0.2, -0.1]
DIRECTION = [1.0, 0.0, -1.0, 0.0]  # sign(W_1 − W_0)
X = [[0.5, 0.5, 0.5, 0.5], [0.03, 0.0, 0.97, 0.4], [0.98, 0.7, 0.05, 1.0], [0.6, 0.6, 0.04, 0.9]]
Y = [0, 1, 0, 1]
SEEDS = (0, 12345)


def _linear() -> nn.Module:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(W))
        model[1].bias.copy_(torch.tensor(BIAS))
    return model


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(X).view(-1, *SHAPE), torch.tensor(Y)


def _signs() -> torch.Tensor:
    """s_i = sign(∇x_i CE): sign(W_1 − W_0) for label 0, its negative for label 1."""
    return torch.tensor([[d if y == 0 else -d for d in DIRECTION] for y in Y]).view(-1, *SHAPE)


def _after_steps(x: torch.Tensor, step: float, steps: int) -> torch.Tensor:
    """x + δ after ``steps`` signed steps of size ``step`` from δ = 0: with a constant sign the
    steps add up, then Π clips to the ε-ball and to the box [0, 1]."""
    return (x + min(steps * step, EPS) * _signs()).clamp(0, 1)


def _ctx(model: nn.Module, loss: str = "ce", attack_bn: str = "train") -> StepContext:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # weights stay: the sign never changes
    return StepContext(model, optimizer, EPS, build_loss(loss), contextlib.nullcontext, attack_bn)


def _inputs(model: nn.Module) -> list[torch.Tensor]:
    """Every input the model sees from now on."""
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    return seen


def test_the_hand_made_gradient_signs_are_the_autograd_ones() -> None:
    x, y = _batch()
    x = x.requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(_linear()(x), y), x)
    assert torch.equal(grad.sign(), _signs())


# --- FGSM in evaluation (the catastrophic-overfitting rule's attack) ------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_fgsm_is_one_signed_step_of_epsilon_from_zero(seed: int) -> None:
    # Goodfellow et al., 2015, eq. (3): x + ε·sign(∇x J), kept in the image box.
    x, y = _batch()
    torch.manual_seed(seed)
    delta = fgsm_attack(_linear(), x, y, EPS)
    assert torch.equal(x + delta, (x + EPS * _signs()).clamp(0, 1))
    # A random start (FGSM-RS) would not give that answer.
    torch.manual_seed(seed)
    randomized = pgd_attack(_linear(), x, y, EPS, EPS, steps=1, random_start=True)
    assert not torch.equal(randomized, delta)


def _predicted_by_hand(images: torch.Tensor) -> list[int]:
    """argmax of W·x + b, written out for two classes."""
    out = []
    for row in images.view(len(images), -1).tolist():
        z = [sum(w * v for w, v in zip(ws, row, strict=True)) + b for ws, b in zip(W, BIAS, strict=True)]
        out.append(int(z[1] > z[0]))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_fgsm_accuracy_counts_the_hand_made_fgsm_images(seed: int) -> None:
    x, y = _batch()
    clean = _predicted_by_hand(x)
    attacked = _predicted_by_hand((x + EPS * _signs()).clamp(0, 1))
    # z_1 − z_0 = x_0 − 2.5·x_2 − 0.3; FGSM moves it by ∓0.35 unless the box clips (examples 1, 2)
    # and fools example 3 (0.2 → −0.15).
    assert clean == [0, 0, 1, 1] and attacked == [0, 0, 1, 0]
    expected = sum(p == t for p, t in zip(attacked, Y, strict=True)) / len(Y)
    torch.manual_seed(seed)
    accuracy = evaluate_accuracy(_linear(), x, y, EPS, steps=1, alpha=EPS / 4, fgsm=True)
    assert accuracy.fgsm_acc == expected == 0.25
    assert accuracy.clean_acc == sum(p == t for p, t in zip(clean, Y, strict=True)) / len(Y) == 0.5


# --- training attacks from δ = 0 ---------------------------------------------------------


def test_zero_start_is_zero_whatever_the_seed() -> None:
    x, _ = _batch()
    for seed in SEEDS:
        torch.manual_seed(seed)
        assert torch.equal(start_delta(x, EPS, "zero"), torch.zeros_like(x))


@pytest.mark.parametrize(("k", "alpha"), [(1, 0.07), (2, 0.07), (3, 0.02)])
@pytest.mark.parametrize("seed", SEEDS)
def test_pgd_from_zero_trains_on_the_hand_made_adversarial_batch(k: int, alpha: float, seed: int) -> None:
    # Madry et al., 2018, eq. (2.2): x^{t+1} = Π(x^t + α·sign(∇x L)), here from x^0 = x.
    model = _linear()
    seen = _inputs(model)
    x, y = _batch()
    torch.manual_seed(seed)
    stats = PGD(alpha, init="zero").train_batch(Batch(x, y, torch.arange(len(y)), None), Plan(k), _ctx(model))
    assert torch.equal(seen[0], x)  # the first attack step starts at the clean batch
    assert torch.allclose(seen[-1], _after_steps(x, alpha, k), atol=1e-7, rtol=0)
    assert stats.alpha == alpha and len(seen) == k + 1


@pytest.mark.parametrize("seed", SEEDS)
def test_amata_attacks_start_from_the_clean_batch(seed: int) -> None:
    # Amata Algorithm 1: x⁰ = x, K_t steps of α_t = τ/K_t; epoch 0 of 2 → 10 is K = 2, α = 2.5ε/2.
    cfg = parse_config({"method": "pgd", "schedule": "amata", "epsilon": EPS, "epochs": 10})
    plan = make_schedule(cfg).plan(0)
    assert (cfg.attack_init, plan.k, plan.alpha) == ("zero", 2, pytest.approx(2.5 * EPS / 2))
    method = build_method("pgd", cfg.method_setup(len(Y), SHAPE, torch.device("cpu"), None))
    model = _linear()
    seen = _inputs(model)
    x, y = _batch()
    torch.manual_seed(seed)
    method.train_batch(Batch(x, y, torch.arange(len(y)), None), plan, _ctx(model))
    assert torch.equal(seen[0], x)
    assert torch.allclose(seen[-1], _after_steps(x, 2.5 * EPS / 2, 2), atol=1e-7, rtol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_free_replays_from_zero(seed: int) -> None:
    # Shafahi et al., Algorithm 1 with δ = 0 at the batch's start (init zero): replay j trains on
    # x + Π(j·α·s); with the learning rate at 0 the gradient's sign stays s.
    model = _linear()
    seen = _inputs(model)
    x, y = _batch()
    torch.manual_seed(seed)
    Free(0.04, init="zero").train_batch(Batch(x, y, torch.arange(len(y)), None), Plan(3), _ctx(model))
    assert len(seen) == 4 and torch.equal(seen[0], x)
    for j, inp in enumerate(seen):
        assert torch.allclose(inp, _after_steps(x, 0.04, j), atol=1e-7, rtol=0), j


# --- TRADES / MART / ATTA start: 0.001·N(0, 1), reproducible from the seed ----------------


def test_normal_start_is_the_seeded_gaussian_projected() -> None:
    # trades.py:31 / mart.py:20: x_adv = x + 0.001 * randn; ours is then kept in ball and box.
    x, _ = _batch()
    starts = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        start = start_delta(x, EPS, "normal")
        noise = 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(start, torch.maximum(torch.minimum(noise, 1 - x), -x))
        starts.append(start)
    assert not torch.equal(*starts)



@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_trades_never_attacks_from_zero(schedule: str) -> None:
    # TRADES' attack ascends KL(p(x) ‖ p(x + δ)), whose minimum is δ = 0: its gradient there is
    # 0 up to round-off, so the first sign step from a zero start follows round-off noise.
    # yaodongyu/TRADES starts at x + 0.001·randn for that reason (trades.py:31).
    extra = {"piecewise.k": [1]} if schedule == "piecewise" else {}
    cfg = parse_config({"method": "pgd", "loss": "trades", "schedule": schedule, "epsilon": EPS, **extra})
    model = _linear()
    ctx = _ctx(model, "trades", cfg.attack_bn_mode)
    x, y = _batch()
    clean_probs, _ = clean_probabilities(ctx, x)
    torch.manual_seed(0)
    grad = attack_gradient(ctx, x, y, start_delta(x, EPS, cfg.attack_init), clean_probs)
    assert float(grad.abs().max()) > 1e-7, (cfg.attack_init, float(grad.abs().max()))


# --- ATAS from a stored start: Huang et al., Algorithm 1 (eqs. 3–4) by hand ------------------

ATAS_X = [*X, [0.0, 0.5, 1.0, 0.5]]  # a fifth example far on its label's side: a tiny gradient
ATAS_Y = [*Y, 0]
START = 0.02  # every stored perturbation; Π keeps it in the box at pixels 0 and 1
W_DIFF = [w1 - w0 for w0, w1 in zip(*W, strict=True)]


def _atas(epochs: int, **options: Any) -> Any:
    cfg = parse_config({"method": "atas", "epsilon": EPS, "epochs": epochs, **options})
    method = build_method("atas", cfg.method_setup(len(ATAS_Y), SHAPE, torch.device("cpu"), None))
    method.memory.delta.fill_(START)
    return method


def _atas_batch() -> Batch:
    return Batch(torch.tensor(ATAS_X).view(-1, *SHAPE), torch.tensor(ATAS_Y), torch.arange(len(ATAS_Y)), None)


def _coefficients(rows: list[list[float]]) -> list[float]:
    """p_1(x_i) − [y_i = 1]: example i's input gradient of CE is this times W_1 − W_0."""
    out = []
    for row, y in zip(rows, ATAS_Y, strict=True):
        margin = sum(d * v for d, v in zip(W_DIFF, row, strict=True)) + BIAS[1] - BIAS[0]
        out.append(1 / (1 + math.exp(-margin)) - (y == 1))
    return out


def _starts() -> list[list[float]]:
    """The stored δ₀ = 0.02 as the attack reads it: Π into the box [−x, 1 − x]."""
    return [[min(max(START, -v), 1 - v) for v in row] for row in ATAS_X]


def _start_rows() -> list[list[float]]:
    return [[v + s for v, s in zip(row, start, strict=True)] for row, start in zip(ATAS_X, _starts(), strict=True)]


def _sign(value: float) -> float:
    return float((value > 0) - (value < 0))


def _step(alphas: list[float], steps: int = 1) -> torch.Tensor:
    """x + Π(δ₀ + steps·α_i·sign(g_i)) from the stored start (the sign does not change)."""
    out = []
    for row, start, alpha, coef in zip(ATAS_X, _starts(), alphas, _coefficients(_start_rows()), strict=True):
        signs = [_sign(coef) * _sign(d) for d in W_DIFF]
        out.append([v + min(max(min(max(s + steps * alpha * g, -EPS), EPS), -v), 1 - v)
                    for v, s, g in zip(row, start, signs, strict=True)])
    return torch.tensor(out).view(-1, *SHAPE)


def _by_hand(gamma: float, c: float, beta: float, low: float, high: float,
             reference: int) -> tuple[list[float], list[float]]:
    """(α_i, v_i) from v = 0: g_i is the batch-mean CE gradient times B / reference (ATAS.py's
    batch-128 scaling), v_i = β·0 + (1 − β)·‖g_i‖², α_i = γ/(c + √v_i) clipped to [low, high]."""
    norm = sum(d * d for d in W_DIFF)
    v = [(1 - beta) * coef**2 * norm / reference**2 for coef in _coefficients(_start_rows())]
    return [min(max(gamma / (c + math.sqrt(vi)), low), high) for vi in v], v


def _run_atas(method: Any, epoch: int, k: int = 1, final_grad: bool = False) -> tuple[Any, list[torch.Tensor]]:
    model = _linear()
    seen = _inputs(model)
    ctx = _ctx(model, attack_bn="eval")
    if final_grad:
        ctx = StepContext(ctx.model, ctx.optimizer, EPS, ctx.loss, ctx.autocast, "eval", final_grad=True)
    method.start_epoch(epoch)
    method.memory.delta.fill_(START)
    return method.train_batch(_atas_batch(), Plan(k), ctx), seen


@pytest.mark.parametrize(("epochs", "warmup"), [(30, 5), (9, 2), (2, 0)])  # 5 of 30 scaled: round(T/6)
def test_atas_warms_up_with_epsilon_steps_then_adapts(epochs: int, warmup: int) -> None:
    # ATAS.py: epochs 1..5 of 30 step α = ε and leave v alone; then eqs. 3–4 with the defaults
    # c = 0.01, β = 0.5, γ = 2ε·c (16/255·c at 8/255), clip [ε/2, 1.75ε], reference batch 128.
    method = _atas(epochs)
    assert make_schedule(parse_config({"method": "atas", "epochs": epochs})).plan(0).k == 1  # one step
    if warmup:
        stats, seen = _run_atas(method, warmup - 1)
        assert stats.alpha == EPS and bool((method.v == 0).all())
        assert torch.allclose(seen[-1], _step([EPS] * len(ATAS_Y)), atol=1e-7, rtol=0)
    stats, seen = _run_atas(method, warmup)
    alphas, v = _by_hand(2 * EPS * 0.01, 0.01, 0.5, EPS / 2, 1.75 * EPS, 128)
    assert alphas[-1] == 1.75 * EPS  # the confident example's step is clipped at the top
    assert torch.allclose(method.v, torch.tensor(v), rtol=1e-4, atol=0)
    assert float(stats.alpha) == pytest.approx(sum(alphas) / len(alphas), rel=1e-4)
    assert torch.allclose(seen[-1], _step(alphas), atol=1e-6, rtol=0)


def test_atas_reference_batch_scales_the_gradient_and_the_step_is_clipped_below() -> None:
    method = _atas(2, **{"atas.reference_batch": 16})
    stats, seen = _run_atas(method, 0)
    alphas, v = _by_hand(2 * EPS * 0.01, 0.01, 0.5, EPS / 2, 1.75 * EPS, 16)
    assert EPS / 2 in alphas  # large gradients at batch 16: the step is clipped at ε/2
    assert torch.allclose(method.v, torch.tensor(v), rtol=1e-4, atol=0)
    assert torch.allclose(seen[-1], _step(alphas), atol=1e-6, rtol=0)


def test_atas_repeats_its_first_step_size_and_updates_v_once() -> None:
    # K = 2 (e.g. under a controller): α_i comes from the gradient at the start, v moves once.
    method = _atas(2, **{"atas.c": 0.02, "atas.beta": 0.8, "atas.gamma": 0.004})
    stats, seen = _run_atas(method, 0, k=2)
    alphas, v = _by_hand(0.004, 0.02, 0.8, EPS / 2, 1.75 * EPS, 128)
    assert torch.allclose(method.v, torch.tensor(v), rtol=1e-4, atol=0)
    assert torch.allclose(seen[-1], _step(alphas, steps=2), atol=1e-6, rtol=0)
    assert len(seen) == 3 and stats.backprops == 3


def test_atas_with_a_one_point_clip_range_steps_exactly_that() -> None:
    method = _atas(2, **{"atas.min_step": 0.03, "atas.max_step": 0.03})
    stats, seen = _run_atas(method, 0)
    assert float(stats.alpha) == pytest.approx(0.03)
    assert torch.allclose(seen[-1], _step([0.03] * len(ATAS_Y)), atol=1e-6, rtol=0)


def test_atas_reads_l_x_from_the_training_loss_when_asked() -> None:
    # StepContext.final_grad (M+'s l_X, DEAT's final code): ‖∇x CE(x + δ)‖₁ at the trained δ,
    # Σ_i |p_1(x_i + δ_i) − [y_i = 1]|·‖W_1 − W_0‖₁ / B; none at K = 0.
    method = _atas(2)
    stats, seen = _run_atas(method, 0, final_grad=True)
    rows = seen[-1].view(len(ATAS_Y), -1).tolist()
    expected = sum(abs(c) for c in _coefficients(rows)) * sum(abs(d) for d in W_DIFF) / len(ATAS_Y)
    assert float(stats.grad_l1) == pytest.approx(expected, rel=1e-5)
    stats, _ = _run_atas(_atas(2), 0, k=0, final_grad=True)
    assert float(stats.grad_l1) == 0.0
