"""A Tune trial on several Ray Train workers: the trial's function only drives, running each
fidelity level as one inner Ray Train run (:mod:`trainables.distributed.workers`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from trainables.config import TrainConfig
from trainables.distributed.workers import WorkerPlan, fit_workers, trial_workers, worker_cpus
from trainables.trials.fidelity import LevelAt, LevelEnd, LevelProgress, run_levels
from trainables.trials.setup import TrialSetup


def tune_data_parallel(cfg: TrainConfig, setup: TrialSetup, controls: dict[str, Any]) -> None:
    """The Tune trial function's body for a trial on several workers: each fidelity level one
    inner Ray Train run (module doc). A confirmation run (``controls["attacks"]``) is one run
    measured on the test split at its end, or, with ``controls["checkpoint"]``, that finished
    run measured as it is."""
    from ray import tune

    workers = trial_workers(setup)
    gpus = float(setup.gpus_per_trial or 0)
    use_gpu = gpus > 0 and torch.cuda.is_available()
    trial = tune.get_context().get_trial_id()
    storage = setup.train_storage or str(Path(tempfile.gettempdir(), "raysearch-train"))
    test = (str(controls["attacks"]), controls.get("examples")) if controls.get("attacks") else None
    levels = ((1.0, 1.0),) if test is not None else tuple(setup.levels)
    first = len(levels) - 1 if controls.get("warm_start") else 0  # a paper default runs the experiment only

    def run_level(level_cfg: TrainConfig, at: LevelAt, progress: LevelProgress) -> LevelEnd:
        # Each level's inner run continues itself from its own Ray Train checkpoint.
        plan = WorkerPlan(level_cfg.to_flat(), None if test else at, progress,
                          restore=controls.get("checkpoint"), plugins=setup.plugins, use_gpu=use_gpu, test=test)
        result = fit_workers(plan, workers, name=f"{trial}-level{at.level}", storage=storage,
                             cpus_per_worker=worker_cpus(setup.cpus_per_trial, workers),
                             gpus_per_worker=gpus / workers, in_tune=True)
        return LevelEnd(result.status, int(result.cost.get("backprops", 0)),
                        float(result.cost.get("train_seconds", 0.0)), float(result.cost.get("eval_seconds", 0.0)))

    run_levels(cfg, levels, first, LevelProgress(), setup.reduction_factor, run_level)


__all__ = ["tune_data_parallel"]
