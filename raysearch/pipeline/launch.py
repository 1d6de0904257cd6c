"""Launching a planned search: the run directory's first files, then the Tune stages
(reference when the target is its robust accuracy, then the search) in one Ray session; a
Ctrl-C ends it as *interrupted*.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from raysearch._version import __version__
from raysearch.pipeline.plan import SearchPlan
from raysearch.pipeline.reuse import Prior, copy_reused
from raysearch.pipeline.stages import reference_record, search_tuner
from raysearch.rundir.experiment import Experiment
from raysearch.rundir.results import EXPERIMENT_FILE
from raysearch.rundir.storage import is_uri, join, write_text
from raysearch.rundir.summary import write_summary
from raysearch.tuning.tuner import INTERRUPT, fit, quiet_tune
from trainables.labels import REFERENCE_LABEL
from trainables.registry import ConfigError
from trainables.status import Status


@dataclass
class Launched:
    """How the Tune stages ended."""

    interrupted: bool
    startup_seconds: float
    target: float | None


def launch(plan: SearchPlan, progress: bool = True) -> Launched:
    """Run the search's Tune stages in one Ray session (see the module docstring)."""
    cfg = plan.experiment.train_config
    INTERRUPT.clear()
    target = cfg.numeric_target
    prior: list[Prior] = []
    if not plan.resume:
        write_text(join(plan.run_dir, EXPERIMENT_FILE), experiment_yaml(plan.experiment))
        copy_reused(plan.run_dir, plan.reused)
    write_start(plan)
    with quiet_tune():
        init_ray(plan)
        if cfg.objective == "target" and cfg.target_robust_acc == "reference":
            target = reference_target(plan, prior, progress)
            if target is None:
                return Launched(True, time.monotonic() - plan.start, None)
        tuner = search_tuner(plan, target, prior, progress)
        startup = time.monotonic() - plan.start
        fit(tuner, plan.run_dir, plan.experiment.search.samples)
    return Launched(INTERRUPT.is_set(), startup, target)


def reference_target(plan: SearchPlan, prior: list[Prior], progress: bool) -> float | None:
    """The finished reference's robust accuracy (reused, or trained now and appended to
    ``prior``); None when the reference stage was interrupted."""
    import search_spaces

    cfg = plan.experiment.train_config
    reference = next((p.record for p in plan.reused if p.label == REFERENCE_LABEL), None)
    if reference is None:
        reference = reference_record(plan, progress)
        if reference is None or INTERRUPT.is_set():
            return None
        if reference.status != Status.COMPLETED:
            raise ConfigError("target_robust_acc", "reference", f"the reference run ended {reference.status.value}"
                              "; give the target as a number")
        point = next(p for p in search_spaces.warm_starts(plan.experiment.search.space, cfg.epsilon)
                     if p.label == REFERENCE_LABEL)
        prior.append(Prior(reference, REFERENCE_LABEL, point.params))
    target = reference.metric("robust_acc")
    if progress:
        print(f"[search] target robust accuracy: {target:.4f} (the finished {REFERENCE_LABEL} reference)", flush=True)
    return target


def init_ray(plan: SearchPlan) -> None:
    """Start (or join) Ray; once joined, the trial's resources are checked against the cluster."""
    import ray

    from raysearch.tuning.resources import (
        check_trial_device,
        concurrent_slots,
        init_ray,
        trial_resources,
    )

    init_ray(plan.address, plan.available)
    if plan.joined:
        plan.available = {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        s = plan.experiment.search
        plan.request = trial_resources(s.cpus_per_trial, s.gpus_per_trial, plan.available)
        check_trial_device(plan.experiment.train_config.device, plan.request)
        plan.concurrency = concurrent_slots(plan.request, plan.available, s.max_concurrent)


def experiment_yaml(exp: Experiment) -> str:
    """``experiment.yaml``: the resolved experiment and the raysearch version."""
    import yaml

    return yaml.safe_dump({**exp.to_dict(), "raysearch_version": __version__}, sort_keys=False)


def write_start(plan: SearchPlan) -> None:
    """The summary's first state: what the run is and that it is running."""
    from raysearch.rundir.study_store import redact

    if is_uri(plan.run_dir):
        return
    s = plan.experiment.search
    write_summary(plan.run_dir, {
        "raysearch_version": __version__, "experiment": plan.experiment.name, "state": "running",
        "reference_backprops": plan.cost.reference_backprops, "batches_per_epoch": plan.batches_per_epoch,
        "budget_runs": s.budget if plan.budget else None,
        "budget_seconds": s.budget_seconds if plan.budget else None,
        "algorithm": s.algorithm,
        "fidelity_levels": [list(level) for level in plan.levels], "time_attr": s.time_attr,
        "reused": [{"label": p.label, "from": p.origin} for p in plan.reused],
        "study_storage": redact(plan.study_url) if plan.study_url else None, "study_name": plan.study or None,
        **({"warm_started": [source.to_dict() for source in plan.sources]} if not plan.resume else {}),
    })
