"""Trial overhead (``raysearch bench --parts trials``): what a search costs around its trials.

The demo search, shrunk to many *tiny* trials (one epoch of two batches, evaluated on 32
examples, no scheduler, no budget), run through the whole search path (Optuna, the callbacks,
the run directory, Tune's bookkeeping):

- ``per_trial_overhead_seconds``: (wall seconds × slots − the trials' own training and
  evaluation seconds) / trials: what each trial costs beyond its work, Ray's start included;
- ``driver_seconds_per_trial``: the driver process's CPU seconds per finished trial over the
  ``window`` trials that end at trial 50 and at the last trial (all of its threads, read with
  ``time.process_time`` when Tune reports a trial finished): whether the searcher, the
  scheduler, the callbacks and the run-directory writers stay O(1) per trial as trials pile up.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from typing import Any

from ray.tune import Callback

TINY_TRIALS = ["epochs=1", "max_batches=2", "eval.examples=32", "search.budget=null", "search.scheduler=none",
               "search.time_attr=backprops", "search.reuse=false"]
TRIALS, QUICK_TRIALS = 500, 60
EARLY, WINDOW = 50, 25  # the driver's cost per trial is read over trials 26..50 and the last 25
OVERHEAD_TARGET_SECONDS = 0.15  # per tiny trial, on 2 CPU cores
DRIVER_GROWTH_TARGET = 1.5  # driver seconds per trial at the last trial / at trial 50


class DriverClock(Callback):
    """Records (trials finished, the driver's CPU seconds, wall seconds) as each trial ends."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float, float]] = []

    def _mark(self) -> None:
        self.marks.append((len(self.marks) + 1, time.process_time(), time.monotonic()))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._mark()

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._mark()


def per_trial_overhead(wall_seconds: float, slots: int, trial_seconds_sum: float, trials: int) -> float:
    """Slot seconds not spent in the trials' own work, per trial."""
    return max(0.0, wall_seconds * max(1, slots) - trial_seconds_sum) / max(1, trials)


def driver_seconds_per_trial(marks: Sequence[tuple[int, float, float]], at: int, window: int = WINDOW) -> float | None:
    """The driver's CPU seconds per trial over the ``window`` trials that end at trial ``at``
    (None when fewer than ``at`` trials finished)."""
    if at > len(marks) or at <= window:
        return None
    return (marks[at - 1][1] - marks[at - 1 - window][1]) / window


def measure_trial_overhead(trials: int = TRIALS, storage: str | None = None) -> dict[str, Any]:
    """Run ``trials`` tiny trials of the demo and return the figures of the module docstring."""
    import ray

    from raysearch.pipeline.run import search

    clock = DriverClock()
    started = not ray.is_initialized()
    try:
        with tempfile.TemporaryDirectory(dir=storage) as tmp:
            result = search("demo", TINY_TRIALS, samples=trials, storage=tmp, name="bench-trials", progress=False,
                            confirm=False, callbacks=[clock])
    finally:
        if started:
            ray.shutdown()
    done = len(result.trials)
    early, late = driver_seconds_per_trial(clock.marks, EARLY), driver_seconds_per_trial(clock.marks, done)
    overhead = per_trial_overhead(result.wall_seconds, result.concurrency, result.trial_seconds_sum, done)
    growth = late / early if early and late is not None else None
    return {"trials": done, "concurrency": result.concurrency, "wall_seconds": result.wall_seconds,
            "startup_seconds": result.startup_seconds, "trial_seconds_sum": result.trial_seconds_sum,
            "per_trial_overhead_seconds": overhead, "overhead_target": OVERHEAD_TARGET_SECONDS,
            "driver_seconds_per_trial": {str(EARLY): early, str(done): late},
            "driver_growth": growth, "driver_growth_target": DRIVER_GROWTH_TARGET,
            "ok": overhead <= OVERHEAD_TARGET_SECONDS and (growth is None or growth <= DRIVER_GROWTH_TARGET)}


def trial_overhead_lines(figures: dict[str, Any], mark: Any = lambda ok: "yes" if ok else "no") -> list[str]:
    """The figures as ``raysearch bench`` prints them."""
    per = figures["driver_seconds_per_trial"]
    (early_at, early), (late_at, late) = list(per.items())[0], list(per.items())[-1]
    growth = figures["driver_growth"]
    over = figures["per_trial_overhead_seconds"]
    lines = [f"Trial overhead ({figures['trials']} tiny trials, {figures['concurrency']} slots, "
             f"{figures['wall_seconds']:.0f} s): {over:.3f} s per trial beyond its own work "
             f"(target <= {figures['overhead_target']:.2f} s: {mark(over <= figures['overhead_target'])})"]
    if early is not None and late is not None and growth is not None:
        lines.append(f"  driver CPU per trial: {early:.3f} s at trial {early_at}, {late:.3f} s at trial {late_at} "
                     f"(x{growth:.2f}; target <= x{figures['driver_growth_target']:.1f}: "
                     f"{mark(growth <= figures['driver_growth_target'])})")
    return lines


__all__ = ["DRIVER_GROWTH_TARGET", "DriverClock", "OVERHEAD_TARGET_SECONDS", "TINY_TRIALS", "driver_seconds_per_trial",
           "measure_trial_overhead", "per_trial_overhead", "trial_overhead_lines"]
