"""Shared fixtures: one torch thread per test process, the digits dataset and one real tiny
search per session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

SEARCH_ARGS = ["epochs=2", "eval.examples=100", "search.space=baselines", "search.max_concurrent=2",
               "search.time_attr=backprops", "search.confirm.top=0",
               "search.reference=true"]  # PGD-10 among the warm starts: the report compares against it
SAMPLES = 3


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and a loaded 2-core box makes two threads crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shared_ray() -> Iterator[None]:
    """One Ray for every search and confirmation of a module: raysearch's own session (its
    runtime env, this machine's CPUs), which each of them would otherwise start and stop
    again, seconds apiece. It is shut down after the module, so tests elsewhere that check
    that nothing started Ray, or that start a Ray of their own, see none."""
    from raysearch.tuning.resources import ray_session

    with ray_session():
        yield


@pytest.fixture(scope="session")
def digits() -> Any:
    """The digits dataset (loaded once per session; tests only read it)."""
    from trainables.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny_search_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real 3-trial search on digits (run once per session).

    Returns {"run_dir": Path, "trials": {trial id: (status, metrics)}} from its SearchResult.
    """
    base = tmp_path_factory.getbasetemp() / "tiny-search"
    summary = base / "search-result.json"
    if not summary.exists():
        import ray

        from raysearch.commands.search import search

        base.mkdir(exist_ok=True)
        started = not ray.is_initialized()
        if started:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            result = search("demo", SEARCH_ARGS, samples=SAMPLES, storage=str(base), name="tiny", progress=False)
        finally:
            if started:
                ray.shutdown()
        summary.write_text(json.dumps({"run_dir": result.run_dir, "trials": {
            t.trial_id: [t.status.value, t.metrics] for t in result.trials}}))
    data = json.loads(summary.read_text())
    return {"run_dir": Path(data["run_dir"]), "trials": {k: tuple(v) for k, v in data["trials"].items()}}
