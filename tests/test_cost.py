"""Tests for trainables.training.cost: DEAT Table 2 comes out of the accounting exactly, both from the
schedules' plans and from real (tiny) engine runs, and forwards are counted per pass."""

from __future__ import annotations

import math
import time

import pytest
import torch

from trainables.config import parse_config
from trainables.training.cost import Cost, Stopwatch, table2_backprops
from trainables.training.engine import Run, start_run
from trainables.training.run_parts import make_schedule

# DEAT Table 2: backprops in ten epochs, as multiples of M (batches per epoch).
TABLE2 = {
    "FGSM-RS": ({"method": "fgsm_rs"}, 20),
    "PGD-AT-7": ({"method": "pgd", "k": 7}, 80),
    "FREE-4": ({"method": "free", "k": 3}, 40),
    "FREE-8": ({"method": "free", "k": 7}, 80),
    "DEAT-3": ({"method": "free", "schedule": "deat_every", "deat_every.every": 3}, 22),
}


def _ks(values: dict, epochs: int = 10) -> list[int]:
    schedule = make_schedule(parse_config({**values, "epochs": epochs}))
    return [schedule.plan(t).k for t in range(epochs)]


@pytest.mark.parametrize("name", sorted(TABLE2))
@pytest.mark.parametrize("batches", [1, 7, 391])
def test_table2_from_schedule_plans(name: str, batches: int) -> None:
    values, multiple = TABLE2[name]
    assert table2_backprops(_ks(values), batches) == multiple * batches


def test_deat_every_matches_closed_form() -> None:
    # DEAT §3.1: ceil(T (T + d) / 2d) M backprops for DEAT-d over T epochs.
    for epochs, every in [(10, 3), (10, 2), (12, 4), (9, 3), (50, 5)]:
        ks = _ks({"method": "free", "schedule": "deat_every", "deat_every.every": every}, epochs)
        if epochs % every == 0:
            assert table2_backprops(ks, 1) == math.ceil(epochs * (epochs + every) / (2 * every))
        assert table2_backprops(ks, 1) == sum(t // every + 1 for t in range(epochs))


def test_table2_backprops_formula() -> None:
    assert table2_backprops([], 5) == 0
    assert table2_backprops([0, 1, 2], 10) == 60
    assert table2_backprops([10] * 3, 4) == 132


# --- the same numbers from real engine runs ------------------------------------------------

# Batch size does not enter the counts; 8 keeps 10-epoch runs cheap on a loaded CPU.
_TINY = {"dataset": "digits", "model": "small_cnn", "batch_size": 8, "max_batches": 2,
         "eval.examples": 20, "eval.steps": 1, "eval.fgsm": False, "eval.every": 10,
         "epsilon": 0.1, "co.enabled": False}


def _run(values: dict, epochs: int) -> Run:
    run = start_run(parse_config({**_TINY, **values, "epochs": epochs}), device="cpu")
    while not run.finished:
        run.step()
    return run


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_table2_from_engine_runs(name: str) -> None:
    values, multiple = TABLE2[name]
    run = _run(values, 10)
    m = run.batches_per_epoch
    assert m == 2
    assert run.cost.backprops == multiple * m
    assert run.summary()["backprops"] == multiple * m
    # Cumulative per-epoch backprops follow sum_{s <= t} (K_s + 1) M.
    ks = [rec["k"] for rec in run.history]
    assert ks == _ks(values)
    assert [rec["backprops"] for rec in run.history] == [
        table2_backprops(ks[: t + 1], m) for t in range(10)]
    # Every method but TRADES/MART costs K + 1 forwards per batch too.
    assert run.cost.forwards == run.cost.backprops


@pytest.mark.parametrize(("values", "per_batch"), [
    ({"method": "pgd", "k": 3}, lambda k: (k + 1, k + 1)),
    ({"method": "pgd", "k": 3, "loss": "trades"}, lambda k: (k + 3, k + 1)),  # clean target + K + 2
    ({"method": "pgd", "k": 2, "loss": "mart"}, lambda k: (k + 2, k + 1)),
    ({"method": "pgd", "k": 0, "loss": "trades"}, lambda k: (2, 1)),  # K = 0: no attack target
    ({"method": "atta", "k": 2, "loss": "trades"}, lambda k: (k + 3, k + 1)),
    ({"method": "atas", "k": 1}, lambda k: (k + 1, k + 1)),
    ({"method": "free", "k": 3}, lambda k: (k + 1, k + 1)),
    ({"method": "fgsm_rs", "loss": "trades"}, lambda k: (k + 3, k + 1)),
])
def test_forwards_and_backprops_per_batch(values: dict, per_batch) -> None:
    run = _run(values, 2)
    k = run.history[0]["k"]
    forwards, backprops = per_batch(k)
    m = run.batches_per_epoch
    assert (run.cost.forwards, run.cost.backprops) == (2 * m * forwards, 2 * m * backprops)
    assert run.history[0]["forwards"] == m * forwards


@pytest.mark.parametrize(("values", "first_ks"), [
    ({"method": "free", "schedule": "mplus"}, [0, 1, 1]),  # M+DEAT: K = 0, then 1, then by l_X
    ({"method": "pgd", "schedule": "mplus", "mplus.gamma": 1.0}, [0, 1, 1]),
    ({"method": "pgd", "schedule": "amata", "amata.k_min": 1, "amata.k_max": 3}, [1, 1, 2, 2]),
])
def test_adaptive_schedules_cost_sum_of_k_plus_one(values: dict, first_ks: list[int]) -> None:
    run = _run(values, 4)
    ks = [rec["k"] for rec in run.history]
    assert ks[: len(first_ks)] == first_ks
    m = run.batches_per_epoch
    assert run.cost.backprops == sum((k + 1) * m for k in ks) == table2_backprops(ks, m)
    assert run.cost.forwards == run.cost.backprops


def test_seconds_are_counted_separately() -> None:
    run = _run({"method": "pgd", "k": 1}, 1)
    assert run.cost.train_seconds > 0 and run.cost.eval_seconds > 0
    assert run.history[-1]["train_seconds"] == run.cost.train_seconds


def test_cost_state_dict_round_trip() -> None:
    cost = Cost(backprops=120, forwards=150, train_seconds=1.5, eval_seconds=0.25)
    other = Cost()
    other.load_state_dict(cost.state_dict())
    assert other == cost and isinstance(other.backprops, int)


def test_stopwatch_measures_wall_time() -> None:
    with Stopwatch(torch.device("cpu")) as watch:
        time.sleep(0.02)
    assert 0.015 < watch.seconds < 1.0
