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
