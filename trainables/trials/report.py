"""What a trial reports to Ray Tune each epoch: the record, where it ran, and a checkpoint.

Ray is imported inside the functions: ``trainables`` is usable without Ray.
"""

from __future__ import annotations

import math
from typing import Any

from trainables.evaluation.scoring import DIVERGED_OBJECTIVE
from trainables.training.checkpoint import save_progress, save_run


def tune_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """Tune's metrics for one epoch record; the objective is always finite, so that ASHA and
    Optuna can rank every trial (a non-finite one gets the divergence penalty)."""
    objective = record.get("objective", DIVERGED_OBJECTIVE)
    return {**record, "objective": objective if math.isfinite(objective) else DIVERGED_OBJECTIVE}


def node_metrics() -> dict[str, str]:
    """Where this trial runs: Ray's node id and the node's IP address."""
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address()}


def report_epoch(run: Any, record: dict[str, Any], directory: str, extra: dict[str, Any],
                 progress: dict[str, Any] | None = None) -> None:
    """Save the run's state (and the trial's ``progress``) into ``directory`` and report the
    epoch to Tune with it as checkpoint."""
    from ray import tune

    save_run(run, directory)
    if progress is not None:
        save_progress(directory, progress)
    tune.report({**tune_metrics(record), **extra}, checkpoint=tune.Checkpoint.from_directory(directory))


__all__ = ["node_metrics", "report_epoch", "tune_metrics"]
