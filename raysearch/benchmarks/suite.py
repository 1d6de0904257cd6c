"""The whole ``raysearch bench``: its parts (attack, overhead, search, trials, gpu), each
measured by its own module, and the figures of the chosen parts in one dict beside the machine
they ran on.

Speed is shown by this benchmark, never asserted by timed tests.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from raysearch.benchmarks.cases import Settings, log, settings

PARTS = ("attack", "overhead", "search", "trials", "gpu")

# a part's measurement: (settings, quick, the chosen parts) -> the figures it adds to the result
Measure = Callable[[Settings, bool, set[str]], dict[str, Any]]


def _epochs(s: Settings, quick: bool, parts: set[str]) -> dict[str, Any]:
    """Attack efficiency and non-model overhead: one set of runs per case times both."""
    from raysearch.benchmarks.attack import ATTACK_KS, OVERHEAD_KS, measure_case

    attack_rows: list[dict[str, Any]] = []
    overhead_rows: list[dict[str, Any]] = []
    for case in s.cases:
        log(f"timing {case.model}/{case.dataset}: batch {case.batch_size}, {case.batches} batches")
        attack, overhead = measure_case(case, ATTACK_KS if "attack" in parts else (),
                                        OVERHEAD_KS if "overhead" in parts else (), s.device, s.repeats)
        attack_rows += attack
        overhead_rows += overhead
    return {"attack_efficiency": attack_rows, "non_model_overhead": overhead_rows}


def _search(s: Settings, quick: bool, parts: set[str]) -> dict[str, Any]:
    from raysearch.benchmarks.search_overhead import measure_search_overhead

    log("search overhead: the demo search" + (" (quick: 2 trials of 1 epoch)" if quick else ""))
    slots = measure_search_overhead(s.search_samples, s.search_overrides)
    return {"search_overhead": slots["fraction"], "search": slots}


def _trials(s: Settings, quick: bool, parts: set[str]) -> dict[str, Any]:
    from raysearch.benchmarks.trial_overhead import QUICK_TRIALS, TRIALS, measure_trial_overhead

    count = QUICK_TRIALS if quick else TRIALS
    log(f"trial overhead: {count} tiny trials of the demo (2 batches each)")
    trials = measure_trial_overhead(count)
    return {"trial_overhead": trials, "per_trial_overhead_seconds": trials["per_trial_overhead_seconds"],
            "driver_seconds_per_trial": trials["driver_seconds_per_trial"]}


def _gpu(s: Settings, quick: bool, parts: set[str]) -> dict[str, Any]:
    if s.device != "cuda":
        return {}
    from raysearch.benchmarks.gpu import measure_gpu

    log("GPU throughput per precision and with 1, 2, 4 processes sharing it")
    return {"gpu": measure_gpu(s)}


# part -> what measures it; attack and overhead share their runs, so one call measures both
MEASURES: dict[str, Measure] = {"attack": _epochs, "overhead": _epochs, "search": _search, "trials": _trials,
                                "gpu": _gpu}


def check_parts(parts: Iterable[str]) -> set[str]:
    """``parts`` as a set, or a ConfigError naming the unknown ones."""
    chosen = set(parts)
    unknown = chosen - set(PARTS)
    if unknown:
        from trainables.registry import ConfigError

        raise ConfigError("parts", sorted(unknown), f"choose from {', '.join(PARTS)}")
    return chosen


def _machine(s: Settings, quick: bool) -> dict[str, Any]:
    """The result's head: where it ran and what was timed, with the parts' keys in their places."""
    import torch

    return {"device": s.device if s.device == "cpu" else torch.cuda.get_device_name(),
            "cpu": platform.processor() or platform.machine(), "threads": s.threads, "torch": torch.__version__,
            "quick": quick, "repeats": s.repeats, "cases": [asdict(c) for c in s.cases],
            "attack_efficiency": [], "non_model_overhead": [], "search_overhead": None}


def measure(quick: bool = False, *, threads: int | None = None, parts: Iterable[str] = PARTS,
            device: str | None = None) -> dict[str, Any]:
    """The figures of the chosen ``parts`` on ``device`` (default: cuda when available), with
    torch's CPU threads set to ``threads`` for the run (restored after) and the load average
    before and after."""
    import torch

    chosen = check_parts(parts)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    s = settings(device, quick, threads)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    result = _machine(s, quick)
    try:
        for run_part in dict.fromkeys(MEASURES[p] for p in PARTS if p in chosen):
            result.update(run_part(s, quick, chosen))
    finally:
        torch.set_num_threads(previous_threads)
    if load_before is not None:
        result["load_average"] = {"before": load_before[0], "after": os.getloadavg()[0], "cpus": os.cpu_count()}
    return result


__all__ = ["MEASURES", "PARTS", "check_parts", "measure"]
