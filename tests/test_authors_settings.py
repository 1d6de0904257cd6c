"""The paper defaults as their authors ran them: every resolved setting of each warm-start
recipe, one row per setting, against the authors' released code (or, for Amata, which has no
release, the paper's Algorithm 1 and DEAT's re-implementation). The comment on each row names
the file it comes from. ε = 8/255 and the authors' epoch counts, so the scaled periods (ATAS's
reset and warm-up, ATTA's reset) take the authors' values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from search_spaces import warm_starts
from trainables.config import TrainConfig, parse_config
from trainables.methods import build_method, default_alpha
from trainables.parts import make_schedule

EPS = 8 / 255


def _resolved(label: str | None, epochs: int, **extra: Any) -> tuple[TrainConfig, Any, Any]:
    config = dict(extra)
    if label is not None:
        config = {**next(p.config for p in warm_starts("all", EPS) if p.label.startswith(label)), **config}
    cfg = parse_config({**config, "epsilon": EPS, "epochs": epochs})
    method = build_method(cfg.method, cfg.method_setup(16, (3, 32, 32), torch.device("cpu"), None))
    return cfg, method, make_schedule(cfg)


def _ks(schedule: Any, epochs: int) -> list[int]:
    return [schedule.plan(t).k for t in range(epochs)]


def _alpha(cfg: TrainConfig, schedule: Any, epoch: int) -> float:
    plan = schedule.plan(epoch)
    return plan.alpha if plan.alpha is not None else default_alpha(cfg.method, plan.k, cfg.epsilon)


def _resets(method: Any, epochs: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    now = [0]
    monkeypatch.setattr(method.memory, "reset", lambda: seen.append(now[0]))
    for epoch in range(epochs):
        now[0] = epoch
        method.start_epoch(epoch)
    return seen


Row = tuple[str, int, dict[str, Any], str, Callable[..., Any], Any]
ROWS: list[Row] = [
    # --- Amata-2-10: no release; Amata paper (AAAI 2021) Alg. 1 and TrustAI/DEAT
    # "standard training/amata_cifar10.py" (the re-implementation DEAT compares with), 50 epochs.
    ("Amata", 50, {}, "K_min, K_max", lambda c, m, s: (c.amata.k_min, c.amata.k_max), (2, 10)),  # paper l.272
    ("Amata", 50, {}, "K_t = K_min + floor((K_max - K_min) t / T)", lambda c, m, s: _ks(s, 50)[::10],
     [2, 3, 5, 6, 8]),  # amata_cifar10.py: min_iteration + int((max-min) * epoch / epochs)
    ("Amata", 50, {}, "largest K (never K_max)", lambda c, m, s: max(_ks(s, 50)), 9),  # same line, floor
    ("Amata", 50, {}, "tau", lambda c, m, s: c.amata.tau, pytest.approx(20 / 255)),  # paper l.268; --tau 20
    ("Amata", 50, {}, "alpha_t = tau / K_t", lambda c, m, s: _alpha(c, s, 49), pytest.approx(20 / 255 / 9)),
    ("Amata", 50, {}, "attack start", lambda c, m, s: c.attack_init, "zero"),  # Alg. 1 x^0; --delta-init zero
    ("Amata", 50, {}, "BN mode in attacks", lambda c, m, s: c.attack_bn_mode, "train"),  # amata_cifar10.py model.train()
    # --- M+DEAT: TrustAI/DEAT "standard training/mdeat_cifar10.py" (final code).
    ("M+DEAT", 50, {}, "base method", lambda c, m, s: (c.method, c.loss), ("free", "ce")),  # Free replays, CE
    ("M+DEAT", 50, {}, "gamma", lambda c, m, s: c.mplus.gamma, 1.01),  # mdeat_cifar10.py:37
    ("M+DEAT", 50, {}, "K cap (max-iteration 8 replays = K 7)", lambda c, m, s: s.max_k(50), 7),  # :40
    ("M+DEAT", 50, {}, "K in epoch 0 (one replay)", lambda c, m, s: s.plan(0).k, 0),  # :112
    ("M+DEAT", 50, {}, "alpha = max(eps/K, 10/255)", lambda c, m, s: m.alpha, pytest.approx(10 / 255)),  # :43,187-199
    ("M+DEAT", 50, {}, "delta fresh per batch, U(-eps, eps)",
     lambda c, m, s: (c.attack_init, c.free.carry_delta), ("uniform", False)),  # :127-136
    ("M+DEAT", 50, {}, "l_X source", lambda c, m, s: c.mplus.grad_source, "final"),  # :139-151 (= last replay)
    ("M+DEAT", 50, {}, "BN mode in attacks", lambda c, m, s: c.attack_bn_mode, "train"),  # :95 model.train()
    # --- ATAS: HuangZhiChao95/ATAS ATAS.py, adv_attack.py, ATAS_CIFAR.sh (30 epochs).
    ("ATAS", 30, {}, "K", lambda c, m, s: max(_ks(s, 30)), 1),  # ATAS.py:50: always one step
    ("ATAS", 30, {}, "c", lambda c, m, s: m.c, 0.01),  # ATAS_CIFAR.sh C=0.01
    ("ATAS", 30, {}, "beta", lambda c, m, s: m.beta, 0.5),  # ATAS.py --beta default
    ("ATAS", 30, {}, "gamma / c", lambda c, m, s: m.gamma / m.c, pytest.approx(16 / 255)),  # adv_attack.py:48
    ("ATAS", 30, {}, "step clip", lambda c, m, s: (m.min_step, m.max_step),
     (pytest.approx(4 / 255), pytest.approx(14 / 255))),  # adv_attack.py:49; MIN/MAX_STEP_SIZE 4, 14
    ("ATAS", 30, {}, "gradient scale (batch-mean CE at batch 128)", lambda c, m, s: m.reference_batch,
     128),  # adv_attack.py:44-47; ATAS_CIFAR.sh BATCH_SIZE=128
    ("ATAS", 30, {}, "warm-up epochs (alpha = eps, no v update)", lambda c, m, s: m.warmup_epochs, 5),  # ATAS.py:52
    ("ATAS", 30, {}, "memory start", lambda c, m, s: c.attack_init, "uniform"),  # ATAS.py:154 U(-eps, eps)
    ("ATAS", 30, {}, "BN mode in attacks", lambda c, m, s: c.attack_bn_mode, "eval"),  # adv_attack.py:26,40
    # --- PGD-10, the reference: Madry et al.; locuslab/fast_adversarial CIFAR10/train_pgd.py.
    ("PGD-10", 30, {}, "K", lambda c, m, s: max(_ks(s, 30)), 10),
    ("PGD-10", 30, {}, "alpha = 2/255 at 8/255", lambda c, m, s: _alpha(c, s, 0), pytest.approx(2 / 255)),  # :23-33
    ("PGD-10", 30, {}, "attack start", lambda c, m, s: c.attack_init, "uniform"),  # train_pgd.py random init
    ("PGD-10", 30, {}, "BN mode in attacks", lambda c, m, s: c.attack_bn_mode, "train"),  # model.train() only
    # --- the other methods' defaults, which the spaces search around.
    (None, 38, {"method": "atta"}, "ATTA-1 step (0.015 at eps 0.031 = 0.48 eps)", lambda c, m, s: _alpha(c, s, 0),
     pytest.approx(0.5 * EPS)),  # haizhongzheng/ATTA data-config/cifar-atta-1-*.json "step-size": 0.015
    (None, 38, {"method": "atta"}, "ATTA memory start (nat + 0.001 N(0, 1))", lambda c, m, s: c.attack_init,
     "normal"),  # train_atta_cifar.py:184
    (None, 38, {"method": "atta"}, "ATTA BN mode in attacks", lambda c, m, s: c.attack_bn_mode,
     "eval"),  # adv_attack.py:11
    (None, 15, {"method": "fgsm_rs"}, "FGSM-RS alpha", lambda c, m, s: _alpha(c, s, 0),
     pytest.approx(10 / 255)),  # fast_adversarial train_fgsm.py --alpha 10
    (None, 15, {"method": "fgsm_rs"}, "FGSM-RS start", lambda c, m, s: c.attack_init, "uniform"),  # --delta-init random
    (None, 30, {"loss": "trades"}, "TRADES beta", lambda c, m, s: c.trades.beta, 6.0),  # train_trades_cifar10.py:36
    (None, 30, {"loss": "trades"}, "TRADES start (x + 0.001 N(0, 1))", lambda c, m, s: c.attack_init,
     "normal"),  # trades.py:31
    (None, 30, {"loss": "trades"}, "TRADES BN mode in attacks", lambda c, m, s: c.attack_bn_mode,
     "eval"),  # trades.py:28
    (None, 30, {"loss": "trades", "schedule": "amata"}, "TRADES start under Amata", lambda c, m, s: c.attack_init,
     "normal"),  # the KL has no gradient at delta = 0: the loss's start wins
    (None, 30, {"loss": "mart"}, "MART beta (ResNet-18)", lambda c, m, s: c.mart.beta, 5.0),  # MART train_resnet.py:41
    (None, 30, {"loss": "mart"}, "MART start", lambda c, m, s: c.attack_init, "normal"),  # mart.py:20
    (None, 30, {"loss": "mart"}, "MART BN mode in attacks", lambda c, m, s: c.attack_bn_mode, "eval"),  # mart.py:17
]


@pytest.mark.parametrize(("label", "epochs", "extra", "setting", "get", "expected"), ROWS,
                         ids=[f"{r[0] or r[2].get('method') or r[2].get('loss')}: {r[3]}" for r in ROWS])
def test_the_resolved_setting_is_the_authors(label: str | None, epochs: int, extra: dict[str, Any], setting: str,
                                             get: Callable[..., Any], expected: Any) -> None:
    cfg, method, schedule = _resolved(label, epochs, **extra)
    assert get(cfg, method, schedule) == expected, setting


@pytest.mark.parametrize(("extra", "epochs", "resets"), [
    ({"method": "atas"}, 30, [9, 19]),  # ATAS.py:164-166: 1-indexed epoch % 10 == 0 and != 30
    ({"method": "atta"}, 38, [9, 19, 29]),  # train_atta_cifar.py:186,191-193: 1-indexed epoch % 10 == 0
])
def test_memory_resets_are_the_authors(extra: dict[str, Any], epochs: int, resets: list[int],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, method, _ = _resolved(None, epochs, **extra)
    assert _resets(method, epochs, monkeypatch) == resets
