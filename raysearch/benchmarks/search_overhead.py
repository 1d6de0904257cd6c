"""Search overhead: the share of the concurrent slots' wall time that the demo search spends
inside its trials.

The demo search as ``raysearch search demo`` runs it (``--quick``: a two-trial, one-epoch
version), the summed trial seconds (training + evaluation) over wall seconds × concurrent
slots (target ≥ 0.95). The wall time is the whole search, checking the input and starting Ray
included; the start-up (until Tune starts) and the share inside trial functions (which adds
building the run, checkpoints and reports) are reported beside it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from typing import Any

SEARCH_OVERHEAD_TARGET = 0.95


def measure_search_overhead(samples: int | None = None, overrides: Iterable[str] = (),
                            storage: str | None = None) -> dict[str, Any]:
    """The demo search (``samples``/``overrides`` shrink it): the share of the concurrent slots'
    wall time spent inside trials, where the wall time is the whole search, Ray's start included."""
    import ray

    from raysearch.pipeline.run import search
    from raysearch.rundir.outcomes import search_overhead_fraction

    started = not ray.is_initialized()  # then the search starts Ray, and the wall time counts it
    try:
        with tempfile.TemporaryDirectory(dir=storage) as tmp:
            result = search("demo", list(overrides), samples=samples, storage=tmp, name="bench", progress=False,
                            confirm=False)
    finally:
        if started:
            ray.shutdown()
    fraction = result.search_overhead
    # Where the rest goes: before Tune starts (checks, Ray, the Tuner), outside the trial
    # functions afterwards (actor start-up, scheduling, idle slots at the end) or inside them
    # but outside training and evaluation (building the run, checkpoints, reports).
    # Tune's time_total_s is a trial function's wall time.
    function_seconds = sum(float(t.metrics.get("time_total_s", 0) or 0) for t in result.trials)
    epochs = {int(t.config.get("epochs", 0) or 0) for t in result.trials}
    return {"fraction": fraction, "target": SEARCH_OVERHEAD_TARGET, "ok": fraction >= SEARCH_OVERHEAD_TARGET,
            "wall_seconds": result.wall_seconds, "trial_seconds_sum": result.trial_seconds_sum,
            "trial_function_seconds_sum": function_seconds,
            "in_trial_functions": search_overhead_fraction(function_seconds, result.wall_seconds, result.concurrency),
            "startup_seconds": result.startup_seconds, "concurrency": result.concurrency,
            "trials": len(result.trials), "epochs": max(epochs, default=0)}


__all__ = ["SEARCH_OVERHEAD_TARGET", "measure_search_overhead"]
