"""A search on a multi-node Ray cluster (SPEC §8, "Scale out"): two nodes started on this
machine, raysearch joins with ``address``, trials run on both nodes and one run directory
on the shared storage holds every trial's results and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SAMPLES = 4
EPOCHS = 2


def test_search_runs_trials_on_every_node_into_one_run_directory(tmp_path: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from raysearch.commands.search import search

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False)  # search() joins it and leaves it up
    try:
        result = search("demo", [f"epochs={EPOCHS}", "eval.examples=100", "search.space=baselines",
                                 "search.scheduler=none", "search.cpus_per_trial=1", "search.time_attr=backprops",
                                 "search.confirm.top=0"],
                        samples=SAMPLES, address=cluster.address, storage=str(tmp_path), name="cluster",
                        progress=False)
        nodes = {node["NodeID"]: node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]}
    finally:
        ray.shutdown()
        cluster.shutdown()

    assert len(nodes) == 2
    assert result.concurrency == 2  # one 1-CPU trial per node at a time
    assert len(result.trials) == SAMPLES
    used = {trial.metrics["node_id"] for trial in result.trials}
    print("trials per node:", {f"{n[:8]} ({nodes[n]})": sorted(t.trial_id for t in result.trials
                                                               if t.metrics["node_id"] == n) for n in used})
    assert used == set(nodes), "every node ran trials"
    for trial in result.trials:
        assert trial.metrics["node_ip"] == nodes[trial.metrics["node_id"]]
        assert trial.status.value == "completed"

    run_dir = tmp_path / "cluster"
    assert Path(result.run_dir) == run_dir
    trial_dirs = sorted(p for p in run_dir.iterdir() if p.name.startswith("trial_"))
    assert len(trial_dirs) == SAMPLES
    for trial_dir in trial_dirs:
        lines = (trial_dir / "result.json").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == list(range(1, EPOCHS + 1))
        assert list(trial_dir.glob("checkpoint_*/state.pt")), trial_dir
    assert (run_dir / "experiment.yaml").exists() and (run_dir / "optuna.db").exists()


def test_a_trial_spans_two_nodes_and_continues_exactly_after_a_worker_is_killed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import ray
    from ray.cluster_utils import Cluster

    from raysearch.commands.search import search
    from trainables.distributed.workers import train_data_parallel
    from trainables.training.checkpoint import load_run_state

    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", f"{root}{os.pathsep}{root / 'tests'}")  # the nodes' workers import faulty
    marker = tmp_path / "crashed"
    monkeypatch.setenv("RAYSEARCH_TEST_CRASH_MARKER", str(marker))
    # Three 1-CPU nodes; a trial of 2 workers with 2 CPUs: each worker needs nearly a whole node.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False)
    try:
        result = search("demo", ["epochs=3", "eval.examples=60", "max_batches=4", "batch_size=32",
                                 "model=faulty:crash_once_cnn", "search.space=baselines", "search.scheduler=none",
                                 "search.time_attr=backprops", "search.confirm.top=0", "search.warm_start=false",
                                 "search.reuse=false", "search.workers_per_trial=2", "search.cpus_per_trial=2"],
                        samples=1, address=cluster.address, storage=str(tmp_path), name="span", progress=False)
        (trial,) = result.trials
        assert marker.exists()  # rank 1 was killed in epoch 2 (then the trial's retry continued)
        reference = train_data_parallel({**trial.config, "data_root": trial.config["data_root"]}, 2,
                                        storage=str(tmp_path / "reference"), name="uninterrupted")
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert trial.status.value == "completed" and trial.metrics["world_size"] == 2
    nodes = trial.metrics["worker_nodes"].split(",")
    assert len(nodes) == 2 and len(set(nodes)) == 2, "the two workers ran on different nodes"
    assert "Failure # 1" in (Path(trial.path) / "error.txt").read_text()
    assert trial.checkpoint is not None
    resumed = load_run_state(trial.checkpoint)["history"]
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    # the run restored from its epoch-1 checkpoint matches one never interrupted, epoch for epoch
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in reference.history]
    assert [r["robust_acc"] for r in resumed] == [r["robust_acc"] for r in reference.history]
