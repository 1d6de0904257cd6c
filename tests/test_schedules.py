"""Tests for trainables.schedules: Amata's K_t and alpha_t (Algorithm 1, eq. 16 and the other
shapes), the M+ controller (DEAT Algorithm 1) on scripted l_X values, DEAT-d and DEAT-acc, and
checkpointing of controller state. Expected values are derived independently of the code."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch
from helpers import roundtrip

from trainables.config import parse_config
from trainables.registry import ConfigError
from trainables.schedules import (
    SCHEDULES,
    Amata,
    Constant,
    DeatAcc,
    DeatEvery,
    EpochStats,
    MPlus,
    amata_k,
)
from trainables.training.run_parts import make_schedule


def _ks(schedule, epochs: int) -> list[int]:
    return [schedule.plan(t).k for t in range(epochs)]


# --- Amata ---------------------------------------------------------------------------


@pytest.mark.parametrize(("k_min", "k_max", "epochs", "expected"), [
    (1, 4, 4, [1, 1, 2, 3]),        # 1 + floor(3t/4): 0, .75, 1.5, 2.25
    (2, 10, 3, [2, 4, 7]),          # 2 + floor(8t/3): 0, 2.67, 5.33
    (2, 10, 10, [2, 2, 3, 4, 5, 6, 6, 7, 8, 9]),  # 2 + floor(8t/10): 0, .8, 1.6, 2.4, ..., 7.2
    (3, 3, 5, [3, 3, 3, 3, 3]),
    (1, 10, 30, [1 + (9 * t) // 30 for t in range(30)]),
])
def test_amata_linear_floor_by_hand(k_min: int, k_max: int, epochs: int, expected: list[int]) -> None:
    assert _ks(Amata(epochs, k_min, k_max, tau=0.1), epochs) == expected


def test_amata_linear_matches_exact_rational_floor() -> None:
    rng = random.Random(0)
    for _ in range(200):
        k_min = rng.randint(1, 5)
        k_max = k_min + rng.randint(0, 15)
        epochs = rng.randint(1, 60)
        for t in range(epochs):
            expected = k_min + math.floor(Fraction(k_max - k_min) * Fraction(t, epochs))
            assert amata_k(t, epochs, k_min, k_max) == expected
            assert k_min <= expected <= k_max


def _eq16(t: int, epochs: int, k_min: int, k_max: int, eta: float) -> int:
    """Amata Appendix B.2, eq. 16, written with t directly."""
    return k_min + math.floor((k_max - k_min) * (1 - math.exp(-eta * t)) / (1 - math.exp(-eta * epochs)))


@pytest.mark.parametrize(("eta", "epochs"), [(0.3, 10), (0.1, 20), (1.0, 8), (2.0, 5)])
def test_amata_exp_is_eq16(eta: float, epochs: int) -> None:
    schedule = Amata(epochs, 2, 10, tau=0.1, shape="exp", eta=eta)
    assert _ks(schedule, epochs) == [_eq16(t, epochs, 2, 10, eta) for t in range(epochs)]


def test_amata_exp_literal() -> None:
    # 8 (1 - e^{-0.3 t}) / (1 - e^{-3}) = 0, 2.18, 3.80, 5.00-, 5.88, 6.54, 7.03, 7.39, 7.66, 7.85
    assert _ks(Amata(10, 2, 10, tau=0.1, shape="exp", eta=0.3), 10) == [2, 4, 5, 6, 7, 8, 9, 9, 9, 9]


def test_amata_cosine() -> None:
    # 8 (1 - cos(pi t / 10)) / 2 = 0, .20, .76, 1.65, 2.76, 4 (exactly), 5.24, 6.35, 7.24, 7.80
    ks = _ks(Amata(10, 2, 10, tau=0.1, shape="cosine"), 10)
    assert ks == [2, 2, 2, 3, 4, 6, 7, 8, 9, 9]  # t = 5 is 4.0 in exact arithmetic: floor is 4, not 3


@pytest.mark.parametrize(("switch", "expected"), [
    (0.5, [2] * 5 + [10] * 5),
    (0.3, [2] * 3 + [10] * 7),  # u = 3/10 is not < 0.3: switched
    (0.0, [10] * 10),
    (1.0, [2] * 10),
])
def test_amata_step(switch: float, expected: list[int]) -> None:
    assert _ks(Amata(10, 2, 10, tau=0.1, shape="step", switch=switch), 10) == expected


def test_amata_alpha_is_tau_over_k_with_default_tau() -> None:
    cfg = parse_config({"schedule": "amata", "epochs": 10, "epsilon": "8/255"})
    schedule = make_schedule(cfg)
    assert isinstance(schedule, Amata) and schedule.tau == pytest.approx(20 / 255)
    for t, k in enumerate([2, 2, 3, 4, 5, 6, 6, 7, 8, 9]):
        plan = schedule.plan(t)
        assert plan.k == k and plan.alpha == pytest.approx(20 / 255 / k)
    assert schedule.plan(0).alpha == pytest.approx(10 / 255)
    # Default tau follows epsilon: 2.5 eps.
    small = make_schedule(parse_config({"schedule": "amata", "epsilon": 0.1, "amata.k_min": 4, "amata.k_max": 4}))
    assert small.plan(3).alpha == pytest.approx(0.25 / 4)


def test_amata_explicit_tau_and_config_shape() -> None:
    cfg = parse_config({"schedule": "amata", "epochs": 10, "amata.tau": 0.1, "amata.shape": "exp",
                        "amata.eta": 0.3})
    schedule = make_schedule(cfg)
    assert [p.k for p in map(schedule.plan, range(10))] == [2, 4, 5, 6, 7, 8, 9, 9, 9, 9]
    assert [p.alpha for p in map(schedule.plan, range(10))] == pytest.approx(
        [0.1 / k for k in [2, 4, 5, 6, 7, 8, 9, 9, 9, 9]])


# --- M+ (DEAT Algorithm 1) -----------------------------------------------------------


def _drive(schedule, l_x: list[float], accs: list[float] | None = None) -> list[int]:
    """Plan, then observe, epoch by epoch; the K each epoch trained with."""
    ks = []
    for t, value in enumerate(l_x):
        ks.append(schedule.plan(t).k)
        acc = accs[t] if accs is not None else 0.0
        schedule.observe(t, EpochStats(train_acc=acc, grad_magnitude=value))
    return ks


def _drive_from(schedule, start: int, l_x: list[float], accs: list[float]) -> list[int]:
    ks = []
    for t in range(start, len(l_x)):
        ks.append(schedule.plan(t).k)
        schedule.observe(t, EpochStats(accs[t], l_x[t]))
    return ks


def test_mplus_scripted_sequence() -> None:
    # t=1 (epoch 0): K 0 -> 1.  t=2: threshold = 1.01 * 10 = 10.1.
    # 10.05 <= 10.1 no; 10.2 > 10.1 -> thr 10.302, K 2; 10.1 no; 11 > 10.302 -> thr 11.11, K 3;
    # 11.2 > 11.11 -> thr 11.312, K 4; 11.0 no; 30 -> thr 30.3, K 5; 29 no.
    l_x = [5, 10, 10.05, 10.2, 10.1, 11, 11.2, 11.0, 30, 29]
    schedule = MPlus(gamma=1.01)
    assert _drive(schedule, l_x) == [0, 1, 1, 1, 2, 2, 3, 4, 4, 5]
    assert schedule.k == 5 and schedule.threshold == pytest.approx(30.3)


def test_mplus_first_two_epochs_never_compare() -> None:
    schedule = MPlus(gamma=1.01)
    # Epoch 0's l_X is ignored; epoch 1's only sets the threshold, however large.
    assert _drive(schedule, [1e9, 1e9, 1.0]) == [0, 1, 1]
    assert schedule.k == 1 and schedule.threshold == pytest.approx(1.01e9)


def test_mplus_growth_is_strict() -> None:
    schedule = MPlus(gamma=1.0)
    _drive(schedule, [0.0, 4.0])
    assert schedule.threshold == 4.0
    schedule.observe(2, EpochStats(0.0, 4.0))  # equal: not larger
    assert schedule.k == 1
    schedule.observe(3, EpochStats(0.0, math.nextafter(4.0, 5.0)))
    assert schedule.k == 2


def test_mplus_k_max_cap() -> None:
    schedule = MPlus(gamma=1.0, k_max=3)
    assert _drive(schedule, [1, 2, 3, 4, 5, 6, 7, 8]) == [0, 1, 1, 2, 3, 3, 3, 3]
    assert schedule.k == 3
    uncapped = MPlus(gamma=1.0)
    assert _drive(uncapped, [1, 2, 3, 4, 5, 6, 7, 8]) == [0, 1, 1, 2, 3, 4, 5, 6]


def test_mplus_from_config() -> None:
    schedule = make_schedule(parse_config({"schedule": "mplus", "mplus.gamma": 1.05, "mplus.k_max": 2}))
    assert isinstance(schedule, MPlus) and (schedule.gamma, schedule.k_max) == (1.05, 2)
    assert schedule.plan(0).k == 0 and schedule.plan(0).alpha is None


def test_mplus_follows_deats_code_at_k0_and_in_l_x_by_default() -> None:
    # mdeat_cifar10.py:127-136 / mpgd_cifar10.py:124-133 draw U(-eps, eps) even at K = 0;
    # mdeat_cifar10.py:151 / mpgd_cifar10.py:155 weight |grad| by the dataset's std.
    schedule = make_schedule(parse_config({"schedule": "mplus", "method": "free"}))
    assert schedule.plan(0).start_at_k0 and schedule.grad_weight == "std"
    schedule.observe(0, EpochStats(0.0, 1.0))
    assert schedule.plan(1).k == 1 and not schedule.plan(1).start_at_k0
    paper = make_schedule(parse_config({"schedule": "mplus", "mplus.start_at_k0": False, "mplus.grad_weight": "none"}))
    assert not paper.plan(0).start_at_k0 and paper.grad_weight is None
    with pytest.raises(ConfigError, match="mplus.grad_weight"):
        parse_config({"schedule": "mplus", "mplus.grad_weight": "mean"})


def test_only_mplus_weights_l_x_by_the_std() -> None:
    from trainables.training.run_parts import build_parts

    std = {name: build_parts(parse_config({"schedule": name, "max_batches": 1}), torch.device("cpu")).ctx.grad_weight
           for name in ("mplus", "constant")}
    assert std["constant"] is None and std["mplus"] is not None and std["mplus"].shape == (1, 1, 1)


@pytest.mark.parametrize("cut", [0, 1, 2, 5])
def test_mplus_state_dict_round_trip_mid_sequence(cut: int) -> None:
    l_x = [5, 10, 10.05, 10.2, 10.1, 11, 11.2, 11.0, 30, 29]
    whole = MPlus(gamma=1.01)
    expected = _drive(whole, l_x)
    first = MPlus(gamma=1.01)
    head = _drive(first, l_x[:cut])
    resumed = MPlus(gamma=1.01)
    resumed.load_state_dict(roundtrip(first.state_dict()))  # threshold may still be inf
    tail = _drive_from(resumed, cut, l_x, [0.0] * len(l_x))
    assert head + tail == expected
    assert (resumed.k, resumed.threshold) == (whole.k, whole.threshold)


# --- DEAT-d and DEAT-acc -------------------------------------------------------------


@pytest.mark.parametrize("every", [1, 2, 3, 5])
def test_deat_every(every: int) -> None:
    assert _ks(DeatEvery(every), 12) == [t // every for t in range(12)]


def test_deat_every_3_literal() -> None:
    schedule = make_schedule(parse_config({"schedule": "deat_every"}))
    assert _ks(schedule, 10) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]


def test_deat_acc_grows_only_after_epochs_above_threshold() -> None:
    schedule = DeatAcc(0.40)
    accs = [0.10, 0.41, 0.40, 0.50, 0.39, 0.90]  # 0.40 itself does not exceed the threshold
    assert _drive(schedule, [0.0] * 6, accs) == [0, 0, 1, 1, 2, 2]
    assert schedule.k == 3
    restored = DeatAcc(0.40)
    restored.load_state_dict(roundtrip(schedule.state_dict()))
    assert restored.plan(6).k == 3


def test_deat_acc_from_config() -> None:
    schedule = make_schedule(parse_config({"schedule": "deat_acc", "deat_acc.threshold": 0.8}))
    assert _drive(schedule, [0.0] * 4, [0.79, 0.81, 0.8, 0.95]) == [0, 0, 1, 1]


# --- constant and the registry ---------------------------------------------------------


def test_constant_uses_method_default_or_k() -> None:
    assert _ks(make_schedule(parse_config({"method": "pgd"})), 3) == [10, 10, 10]
    assert _ks(make_schedule(parse_config({"method": "free"})), 3) == [3, 3, 3]
    assert _ks(make_schedule(parse_config({"method": "fgsm_rs"})), 3) == [1, 1, 1]
    assert _ks(make_schedule(parse_config({"method": "pgd", "k": 0})), 3) == [0, 0, 0]
    assert Constant(7).plan(99).alpha is None


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_plans_and_checkpoints(name: str) -> None:
    extra = {"piecewise.k": [0, 1, 1, 2, 3, 3, 4, 4]} if name == "piecewise" else {}
    cfg = parse_config({"schedule": name, "epochs": 8, **extra})
    a, b = make_schedule(cfg), make_schedule(cfg)
    l_x = [3.0, 2.0, 2.5, 4.0, 1.0, 6.0, 7.0, 8.0]
    accs = [0.5, 0.2, 0.6, 0.7, 0.1, 0.9, 0.9, 0.9]
    head = _drive(a, l_x[:4], accs[:4])
    b.load_state_dict(roundtrip(a.state_dict()))
    tail_a = _drive_from(a, 4, l_x, accs)
    tail_b = _drive_from(b, 4, l_x, accs)
    assert tail_a == tail_b
    assert all(isinstance(k, int) and k >= 0 for k in head + tail_a)


def test_unknown_schedule_in_registry() -> None:
    with pytest.raises(ConfigError, match="did you mean 'amata'"):
        SCHEDULES.get("amatta")


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"schedule": "constant", "k": 7}, 7),
    ({"schedule": "amata"}, 9),  # 2 -> 10 floored over T = 10 approaches K_max: 2 + ⌊8·9/10⌋
    ({"schedule": "amata", "amata.shape": "step"}, 10),
    ({"schedule": "mplus", "mplus.k_max": 0}, 9),  # K = 0 in epoch 1, at most +1 per epoch after
    ({"schedule": "mplus"}, 7),  # DEAT's cap with cross-entropy (mpgd/mdeat_cifar10.py)
    ({"schedule": "mplus", "loss": "trades"}, 9),  # cap 10 (mtrades_cifar10.py) is above T - 1
    ({"schedule": "piecewise", "piecewise.k": [1, 4, 2]}, 4),
    ({"schedule": "mplus", "mplus.k_max": 2}, 2),
    ({"schedule": "deat_every", "deat_every.every": 3}, 3),
    ({"schedule": "deat_acc"}, 9),
])
def test_max_k_bounds_every_schedule(overrides: dict, expected: int) -> None:
    cfg = parse_config({"epochs": 10, **overrides})
    assert make_schedule(cfg).max_k(cfg.epochs) == expected
