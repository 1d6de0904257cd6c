"""``raysearch bench``: the speed figures of SPEC §13, measured on the machine it runs on, or
the search's economics (``--search``).

The measurements live in :mod:`raysearch.benchmarks`, one module per figure: attack
efficiency and non-model overhead (:mod:`~raysearch.benchmarks.attack`), search overhead
(:mod:`~raysearch.benchmarks.search_overhead`), trial overhead
(:mod:`~raysearch.benchmarks.trial_overhead`), GPU throughput (:mod:`~raysearch.benchmarks.gpu`)
and the searches' economics (:mod:`~raysearch.benchmarks.economics`). This command picks one,
runs it and prints its figures: tables, or one JSON object as the last line.

Speed is shown by this benchmark, never asserted by timed tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from raysearch.benchmarks.attack import attack_limit, attack_target, non_model_share
from raysearch.benchmarks.cases import Case, Settings, epoch_seconds, settings
from raysearch.benchmarks.gpu import device_state, measure_precisions, measure_sharing
from raysearch.benchmarks.search_overhead import SEARCH_OVERHEAD_TARGET
from raysearch.benchmarks.suite import PARTS, measure
from raysearch.benchmarks.tables import print_report


def bench(json_output: bool = False, quick: bool = False, *, threads: int | None = None,
          parts: Iterable[str] = PARTS, device: str | None = None, search: bool = False,
          seeds: Iterable[int] = (0, 1, 2)) -> dict[str, Any]:
    """Measure the speed figures of SPEC §13 here; print a table (or, with ``json_output``, one
    JSON object as the last line of standard output) and return them as a dict.

    Args:
        quick: a run of seconds (small_cnn only, fewer batches and repetitions) for smoke tests.
        threads: torch CPU threads for the whole benchmark (default: 1 on CPU, torch's setting on GPU).
        parts: which of "attack", "overhead", "search", "trials", "gpu" to measure.
        device: "cpu" or "cuda" (default: cuda when available).
        search: instead, compare the searches' cost and confirmed answers
            (:mod:`raysearch.benchmarks.economics`) over the search ``seeds``.

    Example::

        >>> import raysearch
        >>> figures = raysearch.bench(quick=True, parts=("attack",))  # doctest: +SKIP
        >>> figures["attack_efficiency"][0]["ratio"]  # doctest: +SKIP
    """
    if search:
        from raysearch.benchmarks.economics import compare_searches, print_comparison

        comparison = compare_searches(tuple(seeds), quick=quick)
        if json_output:
            print(json.dumps(comparison, default=str), flush=True)
        else:
            print_comparison(comparison)
        return comparison
    result = measure(quick, threads=threads, parts=parts, device=device)
    if json_output:
        print(json.dumps(result), flush=True)
    else:
        print_report(result)
    return result


def __getattr__(name: str) -> Any:
    # kept for one release: search_overhead_fraction lives in raysearch.rundir.outcomes, which
    # imports torch, so it is fetched on first use (the CLI imports this module to check --parts)
    if name == "search_overhead_fraction":
        from raysearch.rundir.outcomes import search_overhead_fraction

        return search_overhead_fraction
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PARTS", "SEARCH_OVERHEAD_TARGET", "Case", "Settings", "attack_limit", "attack_target", "bench",
           "device_state", "epoch_seconds", "measure_precisions", "measure_sharing", "non_model_share",
           "print_report", "settings"]
