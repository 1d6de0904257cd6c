"""Outer losses (trainables.methods.outer_losses) against values and gradients worked out by hand.

Every expected number below is computed with ``math`` from the papers' formulas on 3 examples
× 3 classes of hand-chosen logits, never with the code under test. The model is the identity,
so ``x`` *is* the clean logits and ``x_adv`` the adversarial ones. β is 2.5 (not 1, not a
default), so a β on the wrong term or a dropped β shows; the logits are asymmetric, so a
swapped KL direction, a transposed argument or a wrong label shows.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainables.config import parse_config
from trainables.methods import build_loss
from trainables.methods.outer_losses import MartConfig, TradesConfig
from trainables.registry import ConfigError

BETA = 2.5
CLEAN = [[2.0, 0.5, -1.0], [0.1, 1.2, 0.3], [-0.5, 0.0, 2.5]]
ADV = [[0.5, 1.5, -0.2], [0.2, -0.3, 1.1], [1.0, 0.4, 0.9]]
# Example 0: y = 0 is the adversarial runner-up (top-1 is class 1);
# example 1: y = 2 is the adversarial top-1 (runner-up: class 0);
# example 2: y = 1 is last (top-1 class 0 is the runner-up MART penalizes).
LABELS = [0, 2, 1]
RUNNER_UP = [1, 0, 0]  # MART's y': the top-1 class if it is not y, else the second
B = len(LABELS)


def _softmax(z: list[float]) -> list[float]:
    top = max(z)
    e = [math.exp(v - top) for v in z]
    return [v / sum(e) for v in e]


def _ce(z: list[float], y: int) -> float:
    return -math.log(_softmax(z)[y])


def _kl(p: list[float], q: list[float]) -> float:
    """KL(p ‖ q) = Σ_k p_k (log p_k − log q_k), summed over classes."""
    return sum(pk * (math.log(pk) - math.log(qk)) for pk, qk in zip(p, q, strict=True))


P = [_softmax(z) for z in CLEAN]
Q = [_softmax(z) for z in ADV]


def _tensors(requires_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.tensor(CLEAN, requires_grad=requires_grad)
    x_adv = torch.tensor(ADV, requires_grad=requires_grad)
    return x, x_adv, torch.tensor(LABELS)


def _train_loss(name: str) -> tuple[float, torch.Tensor, int]:
    x, x_adv, y = _tensors()
    loss, logits, forwards = build_loss(name, BETA).train_loss(nn.Identity(), x, x_adv, y)
    return float(loss), logits, forwards


def _attack_loss(name: str) -> float:
    _, x_adv, y = _tensors()
    clean_probs = torch.tensor(P)
    return float(build_loss(name, BETA).attack_loss(x_adv, y, clean_probs))


def test_the_hand_made_batch_has_the_cases_it_claims() -> None:
    for q, y, runner_up in zip(Q, LABELS, RUNNER_UP, strict=True):
        ranked = sorted(range(3), key=lambda k: -q[k])
        assert runner_up == (ranked[0] if ranked[0] != y else ranked[1])
    assert [max(range(3), key=lambda k: q[k]) == y for q, y in zip(Q, LABELS, strict=True)] == [False, True, False]
    # The likely wrong readings of the formulas give values far apart on this batch: KL(q ‖ p)
    # for KL(p ‖ q); MART's weight dropped, or read at x + δ instead of x.
    kl = [_kl(p, q) for p, q in zip(P, Q, strict=True)]
    assert abs(sum(_kl(q, p) for p, q in zip(P, Q, strict=True)) - sum(kl)) > 0.1
    weighted = [k * (1 - p[y]) for k, p, y in zip(kl, P, LABELS, strict=True)]
    adv_weighted = [k * (1 - q[y]) for k, q, y in zip(kl, Q, LABELS, strict=True)]
    assert abs(sum(kl) - sum(weighted)) > 0.5 and abs(sum(adv_weighted) - sum(weighted)) > 0.05


# --- cross-entropy (Madry et al., 2018, eq. 2.1: E[max_δ L(θ, x + δ, y)]) --------------------


def test_ce_trains_on_the_adversarial_logits_only() -> None:
    expected = sum(_ce(z, y) for z, y in zip(ADV, LABELS, strict=True)) / B  # ≈ 1.4395
    loss, logits, forwards = _train_loss("ce")
    assert loss == pytest.approx(expected, rel=2e-6)
    assert torch.equal(logits, torch.tensor(ADV)) and forwards == 1


def test_ce_attack_ascends_the_batch_mean_cross_entropy() -> None:
    expected = sum(_ce(z, y) for z, y in zip(ADV, LABELS, strict=True)) / B
    assert _attack_loss("ce") == pytest.approx(expected, rel=2e-6)


# --- TRADES (Zhang et al., ICML 2019, eq. 5; yaodongyu/TRADES trades.py:75-84) -------------


def test_trades_train_loss_is_clean_ce_plus_beta_batchmean_kl_clean_to_adv() -> None:
    # trades.py: F.cross_entropy(model(x_natural), y)
    #   + beta * (1 / batch_size) * KLDivLoss(size_average=False)(log_softmax(model(x_adv)), softmax(model(x_natural)))
    # = CE(f(x), y) + β · (1/B) Σ_i KL(p(x_i) ‖ p(x_i + δ_i)).
    natural = sum(_ce(z, y) for z, y in zip(CLEAN, LABELS, strict=True)) / B
    robust = sum(_kl(p, q) for p, q in zip(P, Q, strict=True)) / B
    loss, logits, forwards = _train_loss("trades")
    assert loss == pytest.approx(natural + BETA * robust, rel=2e-6)  # ≈ 0.8185 + 2.5 · 0.7573
    assert torch.equal(logits, torch.tensor(ADV)) and forwards == 2


def test_trades_train_loss_gradients_by_hand() -> None:
    # d/dz'_j [β/B · KL(p ‖ softmax z')] = β/B · (q_j − p_j);
    # d/dz_j  [CE(z, y)/B + β/B · KL(softmax z ‖ q)] = (p_j − [j = y])/B + β/B · p_j (l_j − KL),
    # with l_j = log p_j − log q_j: the clean target is not detached (trades.py lets the
    # gradient flow through softmax(model(x_natural))).
    x, x_adv, y = _tensors(requires_grad=True)
    loss, _, _ = build_loss("trades", BETA).train_loss(nn.Identity(), x, x_adv, y)
    grad_clean, grad_adv = torch.autograd.grad(loss, (x, x_adv))
    for i, (p, q, label) in enumerate(zip(P, Q, LABELS, strict=True)):
        kl = _kl(p, q)
        for j in range(3):
            assert float(grad_adv[i, j]) == pytest.approx(BETA / B * (q[j] - p[j]), rel=1e-5, abs=1e-7)
            log_ratio = math.log(p[j]) - math.log(q[j])
            clean = (p[j] - (j == label)) / B + BETA / B * p[j] * (log_ratio - kl)
            assert float(grad_clean[i, j]) == pytest.approx(clean, rel=1e-5, abs=1e-7)


def test_trades_attack_loss_is_kl_from_clean_to_adv_averaged_over_the_batch() -> None:
    # trades.py:36-37 ascends KLDivLoss(size_average=False)(log_softmax(model(x_adv)), softmax(model(x)))
    # (a sum over the batch); ours divides by B ("batchmean"): the same sign step.
    expected = sum(_kl(p, q) for p, q in zip(P, Q, strict=True)) / B  # ≈ 0.7573
    assert _attack_loss("trades") == pytest.approx(expected, rel=2e-6)


def test_trades_attack_gradient_is_q_minus_p_over_b() -> None:
    _, x_adv, y = _tensors(requires_grad=True)
    clean_probs = torch.tensor(P)
    (grad,) = torch.autograd.grad(build_loss("trades", BETA).attack_loss(x_adv, y, clean_probs), x_adv)
    expected = [[(q[j] - p[j]) / B for j in range(3)] for p, q in zip(P, Q, strict=True)]
    assert torch.allclose(grad, torch.tensor(expected), rtol=1e-5, atol=1e-7)


# --- MART (Wang et al., ICLR 2020, eq. 9 / Algorithm 1; YisenWang/MART mart.py:42-56) -------


def _mart_by_hand(beta: float) -> float:
    """mart.py: loss_adv = CE(adv, y) + NLL(log(1.0001 − p_adv + 1e-12), y'), y' the runner-up;
    loss_robust = (1/B) Σ_i Σ_k KL(p_nat ‖ p_adv)_ik · (1.0000001 − p_nat[i, y_i]),
    KL taken as KLDivLoss(reduction='none')(log(p_adv + 1e-12), p_nat)."""
    bce = sum(-math.log(q[y]) - math.log(1.0001 - q[r] + 1e-12)
              for q, y, r in zip(Q, LABELS, RUNNER_UP, strict=True)) / B
    robust = sum(sum(pk * (math.log(pk) - math.log(qk + 1e-12)) for pk, qk in zip(p, q, strict=True))
                 * (1.0000001 - p[y]) for p, q, y in zip(P, Q, LABELS, strict=True)) / B
    return bce + beta * robust


def test_mart_train_loss_is_boosted_ce_plus_beta_weighted_kl() -> None:
    loss, logits, forwards = _train_loss("mart")
    assert loss == pytest.approx(_mart_by_hand(BETA), rel=2e-6)  # ≈ 2.3297 + 2.5 · 0.3210
    assert torch.equal(logits, torch.tensor(ADV)) and forwards == 2


def test_mart_boost_penalizes_the_runner_up_not_the_true_class() -> None:
    # One example whose adversarial top-1 is its label: y' must be the second class.
    x_adv = torch.tensor([[0.0, 3.0, 1.0]])
    x = torch.tensor([[0.0, 0.0, 0.0]])  # uniform p: weight 1.0000001 − 1/3
    y = torch.tensor([1])
    q = _softmax([0.0, 3.0, 1.0])
    kl = sum(1 / 3 * (math.log(1 / 3) - math.log(qk + 1e-12)) for qk in q)
    expected = -math.log(q[1]) - math.log(1.0001 - q[2] + 1e-12) + 0.5 * kl * (1.0000001 - 1 / 3)
    loss, _, _ = build_loss("mart", 0.5).train_loss(nn.Identity(), x, x_adv, y)
    assert float(loss) == pytest.approx(expected, rel=2e-6)


def test_mart_stays_finite_when_an_adversarial_probability_underflows() -> None:
    # Logits 200 apart: p_adv(k) = e^{-200} is 0 in float32, and mart.py's log(p + 1e-12) keeps the
    # KL finite: Σ_k p_k (log p_k − log(q_k + 1e-12)) with log(0 + 1e-12) = −27.63.
    clean, adv, y = [1.0, 0.0, 0.0], [0.0, 200.0, 0.0], 0
    p = _softmax(clean)
    kl = sum(pk * (math.log(pk) - math.log(qk + 1e-12)) for pk, qk in zip(p, [0.0, 1.0, 0.0], strict=True))
    runner_up_term = -math.log(1.0001 - 1.0 + 1e-12)  # y' = class 1 (top-1, not y) with q = 1
    expected = 200.0 + runner_up_term + BETA * kl * (1.0000001 - p[y])
    loss, _, _ = build_loss("mart", BETA).train_loss(nn.Identity(), torch.tensor([clean]), torch.tensor([adv]),
                                                      torch.tensor([y]))
    assert math.isfinite(float(loss)) and float(loss) == pytest.approx(expected, rel=1e-5)


def test_mart_attack_loss_is_cross_entropy_on_the_adversarial_logits() -> None:
    # mart.py:25: loss_ce = F.cross_entropy(model(x_adv), y); the clean target is not used.
    expected = sum(_ce(z, y) for z, y in zip(ADV, LABELS, strict=True)) / B
    assert _attack_loss("mart") == pytest.approx(expected, rel=2e-6)
    _, x_adv, y = _tensors()
    assert float(build_loss("mart", BETA).attack_loss(x_adv, y, None)) == pytest.approx(expected, rel=2e-6)


# --- β and the registry defaults --------------------------------------------------------


@pytest.mark.parametrize(("name", "beta"), [("trades", 6.0), ("mart", 5.0)])
def test_default_beta_is_the_authors(name: str, beta: float) -> None:
    # train_trades_cifar10.py:36 beta = 6.0; MART train_resnet.py:41 beta = 5.0 (ResNet-18).
    assert build_loss(name).beta == beta
    assert parse_config({"loss": name}).loss_beta == beta  # what a run's config resolves to
    x, x_adv, y = _tensors()
    with_default, _, _ = build_loss(name).train_loss(nn.Identity(), x, x_adv, y)
    with_zero, _, _ = build_loss(name, 0.0).train_loss(nn.Identity(), x, x_adv, y)
    with_one, _, _ = build_loss(name, 1.0).train_loss(nn.Identity(), x, x_adv, y)
    # The loss is affine in β: L(β) = L(0) + β·(L(1) − L(0)).
    assert float(with_default) == pytest.approx(float(with_zero) + beta * float(with_one - with_zero), rel=2e-6)


def test_beta_zero_is_allowed_and_negative_beta_refused() -> None:
    # β = 0 turns TRADES into natural training on clean inputs, MART into its boosted CE alone.
    assert TradesConfig(beta=0.0).beta == MartConfig(beta=0.0).beta == 0.0
    assert TradesConfig(beta=0.5).beta == 0.5
    with pytest.raises(ConfigError, match="beta"):
        TradesConfig(beta=-0.1)


def test_ce_needs_no_clean_target_and_trades_does() -> None:
    assert [build_loss(n).needs_clean_probs for n in ("ce", "trades", "mart")] == [False, True, False]
