"""Runs a search takes instead of training them: the paper defaults finished by an earlier run
of the same experiment on the same storage, and the reference stage of this one.

"The same run" has one rule, :func:`raysearch.rundir.known.identity` (the resolved config,
defaults filled, paths left out), which the confirmation's reuse of known results shares.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysearch.rundir.known import identity
from raysearch.rundir.records import TrialRecord
from raysearch.rundir.results import EXPERIMENT_FILE, finished_runs, load_run
from raysearch.rundir.storage import is_uri


@dataclass
class Prior:
    """A trial the search takes instead of running it: a paper default finished in an earlier
    run of the same experiment (``reused``) or the reference stage of this one."""

    record: TrialRecord
    label: str
    params: dict[str, Any]

    @property
    def origin(self) -> str:
        """Where the run was trained (a reused one is read from its copy in this run)."""
        return self.record.reused_from or self.record.path


def find_reusable(storage_path: str, run_name: str, configs: Mapping[str, dict[str, Any]]) -> dict[str, TrialRecord]:
    """Finished paper defaults of the same experiment in run directories beside this one:
    label -> the newest completed full-fidelity trial whose resolved config is identical."""
    if is_uri(storage_path) or not Path(storage_path).is_dir():
        return {}
    wanted = {label: identity(cfg) for label, cfg in configs.items()}
    found: dict[str, tuple[float, TrialRecord]] = {}
    for run_dir in Path(storage_path).iterdir():
        if run_dir.name == run_name or not (run_dir / EXPERIMENT_FILE).exists():
            continue
        try:
            run = load_run(run_dir)
        except Exception:  # an unreadable neighbour is simply not reused
            continue
        for trial in finished_runs(run.trials):
            label = trial.warm_start
            if not label or label not in wanted or trial.checkpoint is None or trial.reused_from:
                continue
            if identity(trial.config) == wanted[label]:
                stamp = Path(trial.path).stat().st_mtime
                if label not in found or stamp > found[label][0]:
                    found[label] = (stamp, trial)
    return {label: trial for label, (_, trial) in found.items()}


def reused_priors(points: Iterable[Any], train: Mapping[str, Any], storage_path: str, run_name: str) -> list[Prior]:
    """The paper defaults (``search_spaces.WarmStart`` points) found finished beside this run."""
    points = list(points)
    wanted = {p.label: {**train, **p.config} for p in points}
    return [Prior(record, label, next(p for p in points if p.label == label).params)
            for label, record in find_reusable(storage_path, run_name, wanted).items()]


def copy_reused(run_dir: str, reused: Iterable[Prior]) -> None:
    """Copy each reused trial folder into ``<run_dir>/reused/`` (the run directory stays whole)."""
    if is_uri(run_dir):
        return
    for prior in reused:
        target = Path(run_dir, "reused", Path(prior.record.path).name)
        if not target.exists():
            shutil.copytree(prior.record.path, target)
            params = target / "params.json"
            data = json.loads(params.read_text()) if params.exists() else {}
            data.update({"trial.reused_from": prior.record.path, "trial.warm_start": prior.label})
            params.write_text(json.dumps(data))
        prior.record.reused_from, prior.record.path = prior.record.path, str(target)


def prior_trials(objective: str, priors: Iterable[Prior]) -> list[tuple[dict[str, Any], Any, dict[str, Any]]]:
    """What the Optuna study is told before it starts: reused defaults and the reference."""
    from raysearch.tuning.objective import search_metric

    metric, _ = search_metric(objective)
    told = []
    for prior in priors:
        m = prior.record.metrics
        values = [m.get(k) for k in (metric if isinstance(metric, list) else [metric])]
        if any(not isinstance(v, (int, float)) for v in values):
            continue
        attrs = {"warm_start": prior.label, "ray_trial_id": prior.record.trial_id, "reused_from": prior.origin,
                 **{k: float(m[k]) for k in ("robust_acc", "clean_acc", "backprops") if isinstance(m.get(k), (int, float))}}
        told.append((prior.params, values if isinstance(metric, list) else values[0], attrs))
    return told
