"""raysearch bench's trial-overhead part: its formulas, its lines, and a run of a few tiny
trials through the whole search path (no timing is asserted)."""

from __future__ import annotations

import pickle

import pytest

from raysearch.benchmarks.trial_overhead import (
    DriverClock,
    driver_seconds_per_trial,
    measure_trial_overhead,
    per_trial_overhead,
    trial_overhead_lines,
)


def test_per_trial_overhead_is_idle_slot_time_per_trial() -> None:
    assert per_trial_overhead(100.0, 2, 150.0, 500) == pytest.approx(0.1)
    assert per_trial_overhead(10.0, 1, 12.0, 4) == 0.0  # never negative
    assert per_trial_overhead(10.0, 0, 5.0, 0) == pytest.approx(5.0)  # no slot or trial: one of each


def test_driver_seconds_per_trial_reads_the_window_ending_at_a_trial() -> None:
    marks = [(n, 0.1 * n if n <= 50 else 5.0 + 0.3 * (n - 50), float(n)) for n in range(1, 101)]
    assert driver_seconds_per_trial(marks, 50, 25) == pytest.approx(0.1)
    assert driver_seconds_per_trial(marks, 100, 25) == pytest.approx(0.3)
    assert driver_seconds_per_trial(marks, 101, 25) is None  # not that many trials
    assert driver_seconds_per_trial(marks, 25, 25) is None  # no mark before the window


def test_the_clock_counts_completed_and_failed_trials() -> None:
    clock = DriverClock()
    clock.on_trial_complete(0, [], None)
    clock.on_trial_error(1, [], None)
    assert [n for n, _, _ in clock.marks] == [1, 2]
    assert clock.marks[1][1] >= clock.marks[0][1]
    assert pickle.loads(pickle.dumps(clock)).marks == clock.marks  # Tune pickles callbacks


def test_lines_say_each_figure_against_its_target() -> None:
    figures = {"trials": 500, "concurrency": 2, "wall_seconds": 120.0, "per_trial_overhead_seconds": 0.2,
               "overhead_target": 0.15, "driver_seconds_per_trial": {"50": 0.1, "500": 0.12}, "driver_growth": 1.2,
               "driver_growth_target": 1.5}
    first, second = trial_overhead_lines(figures)
    assert "0.200 s per trial" in first and first.endswith("no)")
    assert "0.100 s at trial 50, 0.120 s at trial 500 (x1.20" in second and second.endswith("yes)")
    assert len(trial_overhead_lines({**figures, "driver_growth": None})) == 1


@pytest.mark.slow
def test_a_few_tiny_trials_through_the_search() -> None:
    figures = measure_trial_overhead(6)
    assert figures["trials"] == 6 and figures["concurrency"] >= 1
    assert figures["trial_seconds_sum"] > 0 and figures["wall_seconds"] > figures["startup_seconds"] > 0
    assert figures["per_trial_overhead_seconds"] > 0
    assert figures["driver_seconds_per_trial"] == {"50": None, "6": None}  # fewer trials than either window
