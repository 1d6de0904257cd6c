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


RAY_FIXTURES = {"shared_ray", "tiny_search_run"}


@pytest.fixture(autouse=True, scope="session")
def ray_head(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """One Ray head for the whole session, which every search, confirmation and ``raysearch``
    subprocess joins through ``$RAY_ADDRESS`` (SPEC §8's "join a running cluster": under a
    second) instead of starting and stopping a Ray of its own (about 5 s each, dozens of times).
    Started only when the session runs a test that needs Ray (a slow one, or one using a Ray
    fixture). Its workers import ``tests/`` modules (``faulty``) from the head's PYTHONPATH.
    Tests of what a driver's *own* Ray does (Ctrl-C, kill -9, a fake GPU, a user's PYTHONPATH
    reaching the workers) start a local one with ``address="local"`` or an env without it."""
    import os

    items = request.session.items
    if not any(item.get_closest_marker("slow") or RAY_FIXTURES & set(getattr(item, "fixturenames", ()))
               for item in items):
        yield None
        return
    from ray.cluster_utils import Cluster

    root = Path(__file__).resolve().parents[1]
    # One authentication mode for every process of the session. Unset, a test's local ray.init()
    # switches this process to Ray's token mode for good, and the head (started without tokens)
    # could no longer reach it ("Missing authorization header": every later trial cancelled).
    session = pytest.MonkeyPatch()
    session.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.MonkeyPatch.context() as env:
        # the head's raylet passes its environment to every worker it starts
        env.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(root), str(root / "tests"),
                                                              os.environ.get("PYTHONPATH")) if p))
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": len(os.sched_getaffinity(0)), "num_gpus": 0, "include_dashboard": False})
    try:
        session.setenv("RAY_ADDRESS", cluster.address)
        yield cluster.address
    finally:
        cluster.shutdown()
        session.undo()


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
        from raysearch.commands.search import search

        base.mkdir(exist_ok=True)
        result = search("demo", SEARCH_ARGS, samples=SAMPLES, storage=str(base), name="tiny", progress=False)
        summary.write_text(json.dumps({"run_dir": result.run_dir, "trials": {
            t.trial_id: [t.status.value, t.metrics] for t in result.trials}}))
    data = json.loads(summary.read_text())
    return {"run_dir": Path(data["run_dir"]), "trials": {k: tuple(v) for k, v in data["trials"].items()}}
