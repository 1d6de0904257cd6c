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
from trainables.training.run_parts import make_schedule

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
    return plan.alpha if plan.alpha is not None else default_alpha(cfg.method, plan.k, cfg.epsilon, cfg.loss)


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
    # --- Amata-2-10: no release; Amata paper (AAAI 2021, papers/000_*.txt) and TrustAI/DEAT
    # "standard training/amata_cifar10.py" (the re-implementation DEAT compares with), 50 epochs (:28).
    ("Amata", 50, {}, "K_min, K_max", lambda c, m, s: (c.amata.k_min, c.amata.k_max),
     (2, 10)),  # paper l.272 "K_min = 2 and K_max = 10"; amata_cifar10.py:40-41
    ("Amata", 50, {}, "K_t = K_min + floor((K_max - K_min) t / T)", lambda c, m, s: _ks(s, 50)[::10],
     [2, 3, 5, 6, 8]),  # amata_cifar10.py:118 min_iteration + int((max - min) * (epoch / epochs))
    ("Amata", 50, {}, "largest K (never K_max)", lambda c, m, s: max(_ks(s, 50)), 9),  # :118, int() floors
    ("Amata", 50, {}, "tau", lambda c, m, s: c.amata.tau,
     pytest.approx(20 / 255)),  # paper l.268 "tau is set as 20/255"; amata_cifar10.py:39 --tau 20
    ("Amata", 50, {}, "alpha_t = tau / K_t", lambda c, m, s: _alpha(c, s, 49),
     pytest.approx(20 / 255 / 9)),  # amata_cifar10.py:119 alpha = tau/cur_iteration
    ("Amata", 50, {}, "attack start", lambda c, m, s: c.attack_init, "zero"),  # amata_cifar10.py:42 --delta-init zero
    ("Amata", 50, {}, "BN mode in attacks", lambda c, m, s: c.attack_bn_mode,
     "train"),  # amata_cifar10.py:93 model.train(), never eval() while training
    # --- M+DEAT: TrustAI/DEAT "standard training/mdeat_cifar10.py" (final code), 50 epochs (:28).
    ("M+DEAT", 50, {}, "base method", lambda c, m, s: (c.method, c.loss),
     ("free", "ce")),  # mdeat_cifar10.py:139-147 replays updating weights and delta, :141 cross_entropy
    ("M+DEAT", 50, {}, "gamma", lambda c, m, s: c.mplus.gamma, 1.01),  # mdeat_cifar10.py:37
    ("M+DEAT", 50, {}, "K cap (max-iteration 8 replays = K 7)", lambda c, m, s: s.max_k(50), 7),  # :40, :194
    ("M+DEAT", 50, {}, "K in epoch 0 (one replay)", lambda c, m, s: s.plan(0).k, 0),  # :112 nb_replay = 1
    ("M+DEAT", 50, {}, "epoch 0 trains on X + U(-eps, eps)", lambda c, m, s: s.plan(0).start_at_k0,
     True),  # :127-136 delta drawn before the replay loop, :140 model(X + delta) also at one replay
    ("M+DEAT", 50, {}, "alpha = max(eps/K, 10/255)", lambda c, m, s: m.alpha,
     pytest.approx(10 / 255)),  # :43 --alpha 10, :187-199 cur_alpha = max(epsilon / nb_replay, alpha)
    ("M+DEAT", 50, {}, "delta fresh per batch, U(-eps, eps)",
     lambda c, m, s: (c.attack_init, c.free.carry_delta), ("uniform", False)),  # :39 --init-tau 8, :127-136
    ("M+DEAT", 50, {}, "l_X source", lambda c, m, s: c.mplus.grad_source, "final"),  # :139-151 (= last replay)
    ("M+DEAT", 50, {}, "l_X weighted by the dataset std", lambda c, m, s: c.mplus.grad_weight,
     "std"),  # :151 grad_mag += torch.sum(grad.abs()*std)
    ("M+DEAT", 50, {}, "BN mode in attacks", lambda c, m, s: c.attack_bn_mode, "train"),  # :95 model.train()
    ("M+DEAT", 50, {}, "precision", lambda c, m, s: (c.uses_bf16("cuda"), c.uses_bf16("cpu")),
     (False, False)),  # no autocast or amp anywhere in mdeat_cifar10.py: fp32
    # --- ATAS: HuangZhiChao95/ATAS ATAS.py, adv_attack.py, ATAS_CIFAR.sh (30 epochs: ATAS_CIFAR.sh:9).
    ("ATAS", 30, {}, "K", lambda c, m, s: max(_ks(s, 30)), 1),  # ATAS.py:50 --num-steps default 1
    ("ATAS", 30, {}, "c", lambda c, m, s: m.c, 0.01),  # ATAS_CIFAR.sh:13 C=0.01
    ("ATAS", 30, {}, "beta", lambda c, m, s: m.beta, 0.5),  # ATAS.py:61 --beta default 0.5
    ("ATAS", 30, {}, "gamma / c", lambda c, m, s: m.gamma / m.c,
     pytest.approx(16 / 255)),  # adv_attack.py:48 1 / (1 + sqrt(v) / c) * 2 * 8 / 255
    ("ATAS", 30, {}, "step clip", lambda c, m, s: (m.min_step, m.max_step),
     (pytest.approx(4 / 255), pytest.approx(14 / 255))),  # adv_attack.py:49; ATAS_CIFAR.sh:14-15 MAX 14, MIN 4
    ("ATAS", 30, {}, "gradient scale (batch-mean CE at batch 128)", lambda c, m, s: m.reference_batch,
     128),  # adv_attack.py:44-47 F.cross_entropy (mean) then per-example norms; ATAS_CIFAR.sh:3 BATCH_SIZE=128
    ("ATAS", 30, {}, "warm-up epochs (alpha = eps, no v update)", lambda c, m, s: m.warmup_epochs,
     5),  # ATAS.py:64 --warmup-epochs 5; :103 adaptive only when epoch > warmup_epochs (epochs from 1)
    ("ATAS", 30, {}, "memory start", lambda c, m, s: c.attack_init, "uniform"),  # ATAS.py:154 U(-eps, eps)
    ("ATAS", 30, {}, "BN mode in attacks", lambda c, m, s: c.attack_bn_mode, "eval"),  # adv_attack.py:26,40
    ("ATAS", 30, {}, "precision", lambda c, m, s: (c.uses_bf16("cuda"), c.uses_bf16("cpu")),
     (False, False)),  # no autocast or amp anywhere in ATAS.py / adv_attack.py: fp32
    # --- PGD-10, the reference: K = 10 from ATAS's baseline (papers/002_*.txt l.229 "PGD10 refers to
    # the standard AT using PGD10"); step and start from locuslab/fast_adversarial CIFAR10/train_pgd.py,
    # whose own default is 7 iterations (:30).
    ("PGD-10", 30, {}, "K", lambda c, m, s: max(_ks(s, 30)), 10),  # ATAS paper l.229 (Table I's PGD10)
    ("PGD-10", 30, {}, "alpha = 2/255 at 8/255", lambda c, m, s: _alpha(c, s, 0),
     pytest.approx(2 / 255)),  # train_pgd.py:32 --alpha 2, :69 alpha / 255
    ("PGD-10", 30, {}, "attack start", lambda c, m, s: c.attack_init,
     "uniform"),  # train_pgd.py:33 --delta-init random, :99-102 uniform_(-eps, eps)
    ("PGD-10", 30, {}, "BN mode in attacks", lambda c, m, s: c.attack_bn_mode,
     "train"),  # train_pgd.py:72 model.train(); eval() only for testing (:136)
    # --- the other methods' defaults, which the spaces search around.
    (None, 38, {"method": "atta"}, "ATTA-1 step (0.015 at eps 0.031 = 0.484 eps)", lambda c, m, s: _alpha(c, s, 0),
     pytest.approx(0.015 / 0.031 * EPS)),  # haizhongzheng/ATTA data-config/cifar-atta-1-mat.json:4 "step-size": 0.015
    (None, 38, {"method": "atta", "k": 3}, "ATTA-3 step (0.01 at eps 0.031)", lambda c, m, s: _alpha(c, s, 0),
     pytest.approx(0.01 / 0.031 * EPS)),  # data-config/cifar-atta-3-mat.json:4 "step-size": 0.01
    (None, 38, {"method": "atta", "k": 10}, "ATTA-10 step (0.007 at eps 0.031)", lambda c, m, s: _alpha(c, s, 0),
     pytest.approx(0.007 / 0.031 * EPS)),  # data-config/cifar-atta-10-mat.json:4 "step-size": 0.007
    (None, 38, {"method": "atta"}, "ATTA memory start (nat + 0.001 N(0, 1))", lambda c, m, s: c.attack_init,
     "normal"),  # train_atta_cifar.py:184
    (None, 38, {"method": "atta"}, "ATTA BN mode in attacks", lambda c, m, s: c.attack_bn_mode,
     "eval"),  # haizhongzheng/ATTA adv_attack.py:11 model.eval()
    (None, 15, {"method": "fgsm_rs"}, "FGSM-RS alpha", lambda c, m, s: _alpha(c, s, 0),
     pytest.approx(10 / 255)),  # fast_adversarial CIFAR10/train_fgsm.py:31 --alpha 10
    (None, 15, {"method": "fgsm_rs"}, "FGSM-RS start", lambda c, m, s: c.attack_init,
     "uniform"),  # train_fgsm.py:32 --delta-init random, :109 uniform_(-eps, eps)
    (None, 30, {"loss": "trades"}, "TRADES beta", lambda c, m, s: c.trades.beta,
     6.0),  # yaodongyu/TRADES train_trades_cifar10.py:36 --beta 6.0
    (None, 30, {"loss": "trades"}, "TRADES step (0.007 at eps 0.031, 10 steps)", lambda c, m, s: _alpha(c, s, 0),
     pytest.approx(0.007 / 0.031 * EPS)),  # train_trades_cifar10.py:30-35 --epsilon 0.031 --num-steps 10 --step-size 0.007
    (None, 30, {"loss": "trades"}, "TRADES start (x + 0.001 N(0, 1))", lambda c, m, s: c.attack_init,
     "normal"),  # trades.py:31
    (None, 30, {"loss": "trades"}, "TRADES BN mode in attacks", lambda c, m, s: c.attack_bn_mode,
     "eval"),  # trades.py:28 model.eval()
    (None, 30, {"loss": "trades", "schedule": "amata"}, "TRADES start under Amata", lambda c, m, s: c.attack_init,
     "normal"),  # trades.py:31 (the KL has no gradient at delta = 0: the loss's start wins over Amata's zero)
    (None, 30, {"loss": "mart"}, "MART beta (ResNet-18)", lambda c, m, s: c.mart.beta,
     5.0),  # YisenWang/MART train_resnet.py:41 --beta 5.0
    (None, 30, {"loss": "mart"}, "MART step (0.007 at eps 0.031, 10 steps)", lambda c, m, s: _alpha(c, s, 0),
     pytest.approx(0.007 / 0.031 * EPS)),  # train_resnet.py:35-39 --epsilon 0.031 --num-steps 10 --step-size 0.007
    (None, 30, {"loss": "mart"}, "MART start", lambda c, m, s: c.attack_init, "normal"),  # mart.py:20
    (None, 30, {"loss": "mart"}, "MART BN mode in attacks", lambda c, m, s: c.attack_bn_mode,
     "eval"),  # mart.py:17 model.eval()
]


@pytest.mark.parametrize(("label", "epochs", "extra", "setting", "get", "expected"), ROWS,
                         ids=[f"{r[0] or r[2].get('method') or r[2].get('loss')}: {r[3]}" for r in ROWS])
def test_the_resolved_setting_is_the_authors(label: str | None, epochs: int, extra: dict[str, Any], setting: str,
                                             get: Callable[..., Any], expected: Any) -> None:
    cfg, method, schedule = _resolved(label, epochs, **extra)
    assert get(cfg, method, schedule) == expected, setting


@pytest.mark.parametrize(("extra", "epochs", "resets"), [
    ({"method": "atas"}, 30, [9, 19]),  # ATAS.py:29,31 30 epochs, reset 10; :164-166 1-indexed epoch % 10 == 0, != 30
    ({"method": "atta"}, 38, [9, 19, 29]),  # train_atta_cifar.py:31 --epochs 38, cifar-atta-1-mat.json:5
    # "epochs-reset": 10, :186,191-193 1-indexed epoch % 10 == 0 (no last-epoch exception)
])
def test_memory_resets_are_the_authors(extra: dict[str, Any], epochs: int, resets: list[int],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, method, _ = _resolved(None, epochs, **extra)
    assert _resets(method, epochs, monkeypatch) == resets
