"""A fidelity level is a complete, shorter run: its learning-rate and K schedules are laid out
over the level's own epochs, so a proxy ends where a full run ends (LR at its final value, K
at its last scheduled value), only sooner and on less data."""

from __future__ import annotations

import math

import pytest

from trainables.config import TrainConfig, parse_config
from trainables.status import Status
from trainables.training.engine import learning_rate, start_run
from trainables.training.run_parts import make_schedule
from trainables.trials.fidelity import (
    LevelAt,
    LevelEnd,
    LevelProgress,
    level_config,
    level_epochs,
    run_levels,
)


@pytest.mark.parametrize(("fraction", "epochs", "expected"), [(0.5, 6, 3), (0.5, 5, 3), (0.1, 6, 1), (1.0, 6, 6)])
def test_level_epochs_round_and_keep_at_least_one(fraction: float, epochs: int, expected: int) -> None:
    assert level_epochs(fraction, epochs) == expected


def test_a_level_lays_its_schedules_out_over_its_own_epochs() -> None:
    full = parse_config({"epochs": 6, "schedule": "amata", "amata.k_min": 2, "amata.k_max": 10,
                         "data_fraction": 0.8})
    proxy = level_config(full, (0.5, 0.5))
    assert proxy.epochs == 3 and proxy.data_fraction == pytest.approx(0.4) and proxy.eval.every == 3
    # the LR reaches its final value at the proxy's end, as at the full run's
    assert learning_rate(proxy, proxy.epochs) == pytest.approx(learning_rate(full, full.epochs)) == pytest.approx(0)
    assert learning_rate(proxy, 1.5) == pytest.approx(full.lr / 2)  # half-way through the proxy
    # Amata's K anneals over the proxy's three epochs: 2, 4, 7 (the full run: 2, 3, 4, 6, 7, 8)
    assert [make_schedule(proxy).plan(t).k for t in range(3)] == [2, 4, 7]
    assert [make_schedule(full).plan(t).k for t in range(6)] == [2, 3, 4, 6, 7, 8]
    assert level_config(full, (1.0, 1.0)) is full


def test_a_proxy_trains_to_its_final_learning_rate() -> None:
    cfg = level_config(parse_config({"epochs": 4, "k": 1, "max_batches": 3, "eval.examples": 20}), (0.5, 0.5))
    run = start_run(cfg, "cpu")
    seen: list[float] = []
    original = run.method.train_batch

    def record(batch, plan, ctx):  # type: ignore[no-untyped-def]
        seen.append(run.optimizer.param_groups[0]["lr"])
        return original(batch, plan, ctx)

    run.method.train_batch = record  # type: ignore[method-assign]
    while run.epoch < cfg.epochs:
        run.step()
    batches = run.batches_per_epoch
    assert len(seen) == cfg.epochs * batches == 2 * 3
    assert seen == pytest.approx([learning_rate(cfg, i / batches) for i in range(len(seen))])
    assert seen[-1] == pytest.approx(cfg.lr * 0.5 * (1 + math.cos(math.pi * 5 / 6)))  # the last batch: 5/6 done


def test_a_trial_counts_the_evaluation_of_every_level_it_ran() -> None:
    from trainables.trials.fidelity import LevelAt, LevelProgress, level_report

    cfg = parse_config({"epochs": 2, "k": 1, "max_batches": 2, "eval.examples": 20})
    at = LevelAt(0, ((0.5, 0.5), (1.0, 1.0)), 0, cfg.epochs, 3.0)
    run = start_run(level_config(cfg, at.levels[0]), "cpu")
    record, extra, after = level_report(run, run.step(), at, LevelProgress(spent_eval_seconds=1.5))
    assert run.finished and run.cost.eval_seconds > 0 and record["status"] == "running"  # promoted
    assert extra["trial_eval_seconds"] == pytest.approx(1.5 + run.cost.eval_seconds)
    assert after.level == 1 and after.state_level == 0
    assert after.spent_eval_seconds == pytest.approx(1.5 + run.cost.eval_seconds)
    assert after.spent_backprops == run.cost.backprops and after.spent_seconds == pytest.approx(run.cost.train_seconds)
    assert LevelProgress(**{"level": 1, "spent_backprops": 4, "spent_seconds": 1.0}).spent_eval_seconds == 0.0  # 0.2's
    nxt = after.next_level(10, 2.0, 0.5)
    assert (nxt.level, nxt.spent_backprops, nxt.state_level) == (2, after.spent_backprops + 10, -1)
    assert nxt.spent_eval_seconds == pytest.approx(after.spent_eval_seconds + 0.5)


LEVELS = ((1 / 9, 1 / 3), (1 / 3, 2 / 3), (1.0, 1.0))


def _recorder(statuses: dict[int, Status]) -> tuple[list[tuple[int, int, int, int]], object]:
    """A ``run_level`` that records (level, epochs, progress level, backprops spent before) and
    ends level L with ``statuses.get(L, completed)``, having cost 100·(L+1) backprops."""
    calls: list[tuple[int, int, int, int]] = []

    def run_level(cfg: TrainConfig, at: LevelAt, progress: LevelProgress) -> LevelEnd:
        calls.append((at.level, cfg.epochs, progress.level, progress.spent_backprops))
        return LevelEnd(statuses.get(at.level, Status.COMPLETED), 100 * (at.level + 1), 1.0, 0.5)

    return calls, run_level


def test_run_levels_runs_every_level_in_order_and_carries_what_they_cost() -> None:
    calls, run_level = _recorder({})
    run_levels(parse_config({"epochs": 9}), LEVELS, 0, LevelProgress(), 3.0, run_level)
    assert calls == [(0, 1, 0, 0), (1, 3, 1, 100), (2, 9, 2, 300)]


def test_run_levels_stops_at_a_level_that_did_not_complete() -> None:
    calls, run_level = _recorder({1: Status.DIVERGED})
    run_levels(parse_config({"epochs": 9}), LEVELS, 0, LevelProgress(), 3.0, run_level)
    assert [c[0] for c in calls] == [0, 1]


def test_run_levels_starts_a_paper_default_at_the_last_level_and_a_restored_trial_where_it_was() -> None:
    calls, run_level = _recorder({})
    run_levels(parse_config({"epochs": 9}), LEVELS, 2, LevelProgress(), 3.0, run_level)
    assert calls == [(2, 9, 2, 0)]
    calls, run_level = _recorder({})
    restored = LevelProgress(level=1, spent_backprops=100, state_level=1)
    run_levels(parse_config({"epochs": 9}), LEVELS, 0, restored, 3.0, run_level)
    assert calls == [(1, 3, 1, 100), (2, 9, 2, 300)]
