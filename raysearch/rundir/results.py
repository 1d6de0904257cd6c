"""Read a run directory back without starting Ray: its trials as :class:`TrialRecord` objects.

A run directory (SPEC §9) holds the search's Ray Tune experiment (``trial_*/`` folders and
``experiment_state-*.json``), ``experiment.yaml``, the Optuna study ``optuna.db``,
``search_summary.json`` and, when there were ones, ``reference/`` (the reference run a
target of ``reference`` needs), ``reused/`` (paper defaults taken from an earlier run) and
``confirm/`` (the confirmation runs, summarized in ``confirmation.csv``). :func:`load_run`
reads all of it with plain file reads (and Optuna for the study), so reports work on a
laptop after copying a run off a cluster.
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from raysearch.rundir.records import TrialRecord, finite, record_from_folder
from raysearch.rundir.study_store import STUDY_FILE, own_study
from raysearch.rundir.summary import SUMMARY_FILE, read_summary
from trainables.registry import ConfigError
from trainables.status import Status

EXPERIMENT_FILE = "experiment.yaml"
STAGES = ("reference", "reused")  # folders of trials that belong to the search besides its own
# raysearch status -> the Optuna state the searcher tells for it
OPTUNA_STATE = {Status.COMPLETED: "COMPLETE", Status.DIVERGED: "COMPLETE", Status.CO: "COMPLETE",
                Status.PRUNED: "PRUNED", Status.FAILED: "FAIL", Status.RUNNING: "RUNNING",
                Status.INTERRUPTED: "RUNNING"}


@dataclass
class RunInfo:
    """A run directory read back: the experiment's training keys (flat) and ``search`` section,
    its trials, the Optuna study's name, M (batches per epoch), the PGD-10 budget, the
    search's summary and statuses that disagree with the study."""

    run_dir: Path
    name: str
    experiment: dict[str, Any]
    trials: list[TrialRecord]
    study_name: str | None = None
    batches_per_epoch: int | None = None
    reference_backprops: int | None = None
    mismatches: list[str] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int | None:
        value = self.experiment.get("epochs")
        return int(value) if value is not None else None

    @property
    def epsilon(self) -> float:
        from trainables.config import EPS_8, parse_number

        return parse_number(str(self.experiment.get("epsilon", EPS_8)))

    @property
    def interrupted(self) -> bool:
        """The search did not end: Ctrl-C, or a driver killed while running (a run directory
        without a summary predates it and counts as ended)."""
        return self.summary.get("state") in ("interrupted", "running")


def metric(trial: TrialRecord, key: str) -> float:
    """A trial's last value of ``key`` as a float (NaN when missing or not finite)."""
    return trial.metric(key)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Rows as CSV with the union of their keys as columns (first-seen order), NaN as empty."""
    import csv

    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                         for r in rows)


def tune_states(experiment_dir: Path) -> dict[str, dict[str, Any]]:
    """trial id -> {status, logdir, config} from Tune's newest experiment state (if readable)."""
    files = sorted(glob.glob(str(experiment_dir / "experiment_state-*.json")), key=os.path.getmtime)
    if not files:
        return {}
    try:
        data = json.loads(Path(files[-1]).read_text())
        states = {}
        for entry in data.get("trial_data", []):
            trial = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
            states[str(trial["trial_id"])] = {"status": trial.get("status"),
                                              "logdir": trial.get("relative_logdir"),
                                              "config": trial.get("config") or {}}
        return states
    except (OSError, ValueError, KeyError, TypeError, IndexError):  # Ray's format moved on: go without
        return {}


def study_location(run_dir: str | os.PathLike[str]) -> tuple[str, str] | None:
    """(storage URL, study name) of a run's Optuna study: as its summary records them (a team
    database, password masked), else ``<run_dir>/optuna.db``'s study named after the run (or
    its only one; run directories of 0.2). A run's own study is read where the run is now."""
    summary = read_summary(run_dir)
    if summary.get("study_storage") and summary.get("study_name"):
        return own_study(str(summary["study_storage"]), str(run_dir)), str(summary["study_name"])
    path = Path(run_dir, STUDY_FILE)
    if not path.exists():
        return None
    import optuna

    url = f"sqlite:///{path}"
    names = optuna.get_all_study_names(storage=url)
    name = Path(run_dir).name
    for wanted in (summary.get("study_name"), name):
        if wanted in names:
            return url, str(wanted)
    return (url, names[0]) if len(names) == 1 else None


def study_name(run_dir: str | os.PathLike[str]) -> str | None:
    """The name of a run's Optuna study (see :func:`study_location`)."""
    location = study_location(run_dir)
    return location[1] if location else None


def load_study(run_dir: str | os.PathLike[str], name: str | None = None) -> Any:
    """The run's Optuna study (``name`` None: the one :func:`study_location` finds)."""
    from raysearch.rundir.study_store import load_study as load

    location = study_location(run_dir)
    if location is None:
        raise ConfigError("run_dir", str(run_dir), "holds no Optuna study")
    return load(location[0], name or location[1])


def optuna_trials(study: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """Tune trial id -> (state name, Optuna parameters) for every trial of an Optuna study."""
    return {str(t.user_attrs["ray_trial_id"]): (t.state.name, dict(t.params))
            for t in study.get_trials(deepcopy=False) if "ray_trial_id" in t.user_attrs}


def _batches_per_epoch(trials: list[TrialRecord]) -> int | None:
    """M from full-fidelity first epochs: every method spends K + 1 backprops per batch (SPEC
    §2), so backprops after epoch 1 / (K_1 + 1) is M. The most common answer wins."""
    votes: Counter[int] = Counter()
    for trial in trials:
        first = trial.history[0] if trial.history else {}
        backprops, k = first.get("backprops"), first.get("k")
        if first.get("epoch") == 1 and first.get("full_fidelity", True) and isinstance(backprops, int) \
                and isinstance(k, int) and backprops % (k + 1) == 0:
            votes[backprops // (k + 1)] += 1
    return votes.most_common(1)[0][0] if votes else None


def read_experiment(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat training keys, the rest: name, search section, raysearch_version) of experiment.yaml."""
    path = run_dir / EXPERIMENT_FILE
    if not path.exists():
        return {}, {}
    from trainables.config import flatten

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError("run_dir", str(run_dir), f"its {EXPERIMENT_FILE} is not readable YAML ({type(err).__name__})") \
            from None
    if not isinstance(data, dict):
        raise ConfigError("run_dir", str(run_dir), f"its {EXPERIMENT_FILE} is not a mapping")
    meta_keys = ("name", "search", "raysearch_version", "trainable")
    meta = {k: data[k] for k in meta_keys if k in data}
    return flatten({k: v for k, v in data.items() if k not in meta_keys}), meta


def _folders(root: Path) -> dict[Path, tuple[str, dict[str, Any]]]:
    """Every trial folder of the run -> (its stage, Tune's state entry)."""
    found: dict[Path, tuple[str, dict[str, Any]]] = {}
    states = tune_states(root)
    for pattern in ("*/params.json", "*/result.json"):
        for p in glob.glob(str(root / pattern)):
            found[Path(p).parent.resolve()] = ("search", {})
    for tid, info in states.items():
        logdir = info.get("logdir")
        if logdir and (root / logdir).is_dir():
            found[(root / logdir).resolve()] = ("search", {**info, "trial_id": tid})
    for stage in STAGES:
        experiment = root / stage
        stage_states = {(experiment / i["logdir"]).resolve(): {**i, "trial_id": t}
                        for t, i in tune_states(experiment).items() if i.get("logdir")}
        for pattern in ("*/params.json", "*/result.json"):
            for p in glob.glob(str(experiment / pattern)):
                folder = Path(p).parent.resolve()
                found[folder] = (stage, stage_states.get(folder, {}))
    for stage_dir in [*root.glob("confirm*"), *(root / s for s in STAGES)]:  # stage folders, not trials
        found.pop(stage_dir.resolve(), None)
    return found


def load_run(run_dir: str | os.PathLike[str], allow_empty: bool = False, interrupted: bool | None = None) -> RunInfo:
    """Read every trial of a run directory (finished or interrupted) without Ray.

    ``interrupted``: whether the search was cut short (None: as its summary's state says; the
    search that just ended knows before it writes the summary).

    Raises :class:`ConfigError` when ``run_dir`` is not a readable run directory or holds no
    trials (unless ``allow_empty``: a search whose every trial failed to start).
    """
    if "://" in str(run_dir):
        raise ConfigError("run_dir", str(run_dir), "must be a local directory (copy a cloud run down first)")
    root = Path(run_dir).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError("run_dir", str(run_dir), "is not a directory")
    experiment, meta = read_experiment(root)
    summary = read_summary(root)
    if interrupted is None:
        interrupted = summary.get("state") in ("interrupted", "running")
    location = study_location(root)
    name = location[1] if location else None
    try:
        optuna_info = optuna_trials(load_study(root, name)) if name else {}
    except Exception as err:  # a damaged or unreachable study: one line
        from raysearch.rundir.study_store import redact

        where = redact(location[0]) if location else STUDY_FILE
        raise ConfigError("run_dir", str(run_dir), f"its study in {where} cannot be read "
                                                   f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    trials = []
    for folder, (stage, tune) in sorted(_folders(root).items()):
        trial_id = str(tune.get("trial_id") or folder.name.removeprefix("trial_"))
        state, params = optuna_info.get(trial_id, (None, {}))
        trials.append(record_from_folder(folder, tune, interrupted=interrupted and stage == "search",
                                         optuna_state=state, params=params, stage=stage))
    if not trials and not allow_empty:
        raise ConfigError("run_dir", str(run_dir), "holds no trials (expected Ray Tune trial folders with "
                                                   "params.json / result.json)")
    order = {tid: i for i, tid in enumerate(optuna_info)}  # Optuna's numbers follow Tune's suggestions
    trials.sort(key=lambda t: (order.get(t.trial_id, len(order)), t.path))
    mismatches = [f"trial {t.trial_id}: status {t.status.value} but Optuna state {t.optuna_state}"
                  for t in trials if t.optuna_state is not None and t.stage == "search"
                  and OPTUNA_STATE.get(t.status) != t.optuna_state]
    m = _batches_per_epoch(trials) or summary.get("batches_per_epoch")
    epochs = experiment.get("epochs") or (trials[0].config.get("epochs") if trials else None)
    if epochs is not None:
        experiment.setdefault("epochs", epochs)
    from trainables.evaluation.scoring import reference_backprops

    reference = reference_backprops(int(epochs), int(m)) if m and epochs else None
    return RunInfo(root, root.name, experiment, trials, name, m, reference, mismatches,
                   search=dict(meta.get("search") or {}), version=str(meta.get("raysearch_version", "")),
                   summary=summary)


def ranked(trials: list[TrialRecord]) -> list[TrialRecord]:
    """Trials best first: those that ran the full budget by objective, then the rest of the
    usable ones (catastrophic overfitting keeps its best checkpoint; pruned ones ran a partial
    budget; interrupted ones may be resumed). Diverged and failed trials are left out."""
    usable = [t for t in trials if t.status in (Status.COMPLETED, Status.CO, Status.PRUNED, Status.INTERRUPTED)
              and t.objective < math.inf]

    def key(trial: TrialRecord) -> tuple[int, float]:
        return (0 if trial.status == Status.COMPLETED and trial.full_fidelity else 1, trial.objective)

    return sorted(usable, key=key)


def best_trial(trials: list[TrialRecord]) -> TrialRecord | None:
    """The best recipe: the lowest objective among completed trials (else see :func:`ranked`)."""
    order = ranked(trials)
    return order[0] if order else None


def finished_runs(trials: list[TrialRecord]) -> list[TrialRecord]:
    """Trials whose result is a complete run of the experiment (comparisons use only these)."""
    return [t for t in trials if t.status == Status.COMPLETED and t.full_fidelity]


__all__ = ["EXPERIMENT_FILE", "OPTUNA_STATE", "STUDY_FILE", "SUMMARY_FILE", "RunInfo", "best_trial", "finished_runs",
           "finite", "load_run", "load_study", "metric", "optuna_trials", "ranked", "read_experiment", "study_location", "study_name",
           "tune_states", "write_csv"]
