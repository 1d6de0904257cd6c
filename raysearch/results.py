"""Read a run directory back without starting Ray: its trials, their histories and statuses.

A run directory (SPEC §9) holds, per trial, Ray Tune's ``params.json`` (the trial config) and
``result.json`` (one JSON line per reported epoch) and its ``checkpoint_*/`` folders
(``state.pt``: the full run state; ``best.pt``: the best-robust-accuracy weights so far);
beside them Ray's ``experiment_state-*.json`` (each trial's Tune status), ``experiment.yaml``
and the Optuna study ``optuna.db``. :func:`load_run` reads all of it with plain file reads
(and Optuna for the study), so reports work on a laptop after copying a run off a cluster,
with no Ray cluster started.

A trial's raysearch status follows :func:`raysearch.search.search`: the trainable's own final
status (``completed``, ``diverged``, ``catastrophic_overfitting``), ``failed`` when Tune
recorded an error, ``pruned`` when it was stopped early (ASHA), and ``running`` for a trial
an interrupted run had not finished. The Optuna state of each trial is read from the study
and checked against the status (:data:`OPTUNA_STATE`).
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

from trainables.registry import ConfigError

EXPERIMENT_FILE = "experiment.yaml"
STUDY_FILE = "optuna.db"
ERROR_FILE = "error.txt"
STATE_FILE, BEST_FILE = "state.pt", "best.pt"
FINAL_STATUSES = ("completed", "diverged", "catastrophic_overfitting")
# raysearch status -> the Optuna state PruneAwareOptunaSearch tells for it
OPTUNA_STATE = {"completed": "COMPLETE", "diverged": "COMPLETE", "catastrophic_overfitting": "COMPLETE",
                "pruned": "PRUNED", "failed": "FAIL", "running": "RUNNING"}
# Tune's bookkeeping in every result line, not a metric of the run
_TUNE_KEYS = frozenset({"config", "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "date",
                        "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
                        "iterations_since_restore", "experiment_tag", "training_iteration"})


@dataclass
class RunInfo:
    """A run directory read back: the experiment's training keys (flat) and ``search`` section,
    the trials (dicts shaped like ``SearchResult.trials`` plus ``search`` (the trial's
    ``search.*`` keys), ``history``, ``checkpoint`` and ``error``), the Optuna study's name,
    M (batches per epoch) and the PGD-10 budget, and statuses that disagree with the study."""

    run_dir: Path
    name: str
    experiment: dict[str, Any]
    trials: list[dict[str, Any]]
    study_name: str | None = None
    batches_per_epoch: int | None = None
    reference_backprops: int | None = None
    mismatches: list[str] = field(default_factory=list)
    search: dict[str, Any] = field(default_factory=dict)
    version: str = ""

    @property
    def epochs(self) -> int | None:
        value = self.experiment.get("epochs")
        return int(value) if value is not None else None

    @property
    def epsilon(self) -> float:
        from trainables.config import EPS_8, parse_number

        return parse_number(str(self.experiment.get("epsilon", EPS_8)))


def finite(value: Any) -> float:
    """``value`` as a float, NaN when it is missing, not a number or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def metric(trial: dict[str, Any], key: str) -> float:
    """A trial's last value of ``key`` as a float (NaN when missing or not finite)."""
    return finite(trial["metrics"].get(key))


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


def read_history(trial_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The trial's per-epoch records from ``result.json`` (Tune keys dropped). A restored trial
    may report an epoch twice; the later record wins."""
    path = Path(trial_dir, "result.json")
    by_epoch: dict[Any, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a torn last line of a killed run
                continue
            if isinstance(record, dict):
                key = record.get("epoch", record.get("training_iteration", len(by_epoch)))
                by_epoch[key] = {k: v for k, v in record.items() if k not in _TUNE_KEYS}
    return list(by_epoch.values())


def latest_checkpoint(trial_dir: str | os.PathLike[str]) -> Path | None:
    """The newest ``checkpoint_*`` folder of a trial that holds a state or best file."""
    folders = sorted(glob.glob(str(Path(trial_dir, "checkpoint_*"))))
    for folder in reversed(folders):
        if Path(folder, STATE_FILE).exists() or Path(folder, BEST_FILE).exists():
            return Path(folder)
    return None


def _tune_states(run_dir: Path) -> dict[str, dict[str, Any]]:
    """trial id -> {status, logdir, config} from Tune's newest experiment state (if readable)."""
    files = sorted(glob.glob(str(run_dir / "experiment_state-*.json")), key=os.path.getmtime)
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


def study_name(run_dir: str | os.PathLike[str]) -> str | None:
    """The Optuna study in ``<run_dir>/optuna.db``: the one named after the run, else the only one."""
    path = Path(run_dir, STUDY_FILE)
    if not path.exists():
        return None
    import optuna

    names = optuna.get_all_study_names(storage=f"sqlite:///{path}")
    name = Path(run_dir).name
    return name if name in names else (names[0] if len(names) == 1 else None)


def load_study(run_dir: str | os.PathLike[str], name: str) -> Any:
    """The run's Optuna study ``name`` from ``<run_dir>/optuna.db``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{Path(run_dir, STUDY_FILE)}")


def optuna_trials(study: Any) -> dict[str, tuple[str, bool]]:
    """Tune trial id -> (state name, enqueued) for every trial of an Optuna study."""
    return {str(t.user_attrs["ray_trial_id"]): (t.state.name, "fixed_params" in t.system_attrs)
            for t in study.get_trials(deepcopy=False) if "ray_trial_id" in t.user_attrs}


def label_warm_starts(trials: list[dict[str, Any]], enqueued: set[str] | None) -> None:
    """Set each trial's ``warm_start``: the label of the paper default it ran, or None.

    A trial is a warm start when Optuna ran it from an enqueued point (``enqueued``: their
    Tune ids); TPE may later suggest the same config again, which is not one. Without a study
    (``enqueued`` None) the first trial matching each default's config is taken.
    """
    import search_spaces

    seen: set[str] = set()
    for trial in trials:
        label = search_spaces.is_warm_start(trial["config"])
        if label in seen or (enqueued is not None and trial["trial_id"] not in enqueued):
            label = None
        if label:
            seen.add(label)
        trial["warm_start"] = label


def trial_status(history: list[dict[str, Any]], tune_status: str | None, errored: bool) -> str:
    """raysearch status of a trial from its last record, Tune's status and whether it errored."""
    if tune_status == "ERROR":
        return "failed"
    last = history[-1].get("status") if history else None
    if last in FINAL_STATUSES:
        return str(last)  # also after a crash that its retry recovered from
    if tune_status in ("RUNNING", "PENDING", "PAUSED"):
        return "running"
    if errored and tune_status is None:  # no Tune state to read: the error file has the word
        return "failed"
    return "pruned" if history else "failed"


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _trial(trial_dir: Path, tune: dict[str, Any], optuna_state: str | None) -> dict[str, Any]:
    params_file = trial_dir / "params.json"
    config = json.loads(params_file.read_text()) if params_file.exists() else dict(tune.get("config") or {})
    history = read_history(trial_dir)
    metrics = dict(history[-1]) if history else {}
    trial_id = str(metrics.get("trial_id") or tune.get("trial_id") or trial_dir.name.removeprefix("trial_"))
    errored = (trial_dir / ERROR_FILE).exists()
    train = {k: v for k, v in config.items() if not k.startswith("search.")}
    return {
        "trial_id": trial_id,
        "status": trial_status(history, tune.get("status"), errored),
        "optuna_state": optuna_state,
        "params": {k: v for k, v in config.items() if k.startswith("search.") and not k.endswith("_per_trial")},
        "config": train,
        "search": {k.removeprefix("search."): v for k, v in config.items() if k.startswith("search.")},
        "metrics": metrics,
        "warm_start": None,  # set by label_warm_starts, which needs every trial
        "path": str(trial_dir),
        "history": history,
        "checkpoint": latest_checkpoint(trial_dir),
        "error": _last_line(trial_dir / ERROR_FILE) if errored else "",
    }


def _batches_per_epoch(trials: list[dict[str, Any]]) -> int | None:
    """M from the first epochs: every method spends K + 1 backprops per batch (SPEC §2), so
    backprops after epoch 1 / (K_1 + 1) is M. The most common answer wins."""
    votes: Counter[int] = Counter()
    for trial in trials:
        first = trial["history"][0] if trial["history"] else {}
        backprops, k = first.get("backprops"), first.get("k")
        if first.get("epoch") == 1 and isinstance(backprops, int) and isinstance(k, int):
            if backprops % (k + 1) == 0:
                votes[backprops // (k + 1)] += 1
    return votes.most_common(1)[0][0] if votes else None


def _read_experiment(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat training keys, the rest: name, search section, raysearch_version) of experiment.yaml."""
    path = run_dir / EXPERIMENT_FILE
    if not path.exists():
        return {}, {}
    from trainables.config import flatten

    data = yaml.safe_load(path.read_text()) or {}
    meta_keys = ("name", "search", "raysearch_version", "trainable")
    meta = {k: data[k] for k in meta_keys if k in data}
    return flatten({k: v for k, v in data.items() if k not in meta_keys}), meta


def load_run(run_dir: str | os.PathLike[str]) -> RunInfo:
    """Read every trial of a run directory (finished or interrupted) without Ray.

    Raises :class:`ConfigError` when ``run_dir`` holds no trials.
    """
    if "://" in str(run_dir):
        raise ConfigError("run_dir", str(run_dir), "must be a local directory (copy a cloud run down first)")
    root = Path(run_dir).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError("run_dir", str(run_dir), "is not a directory")
    experiment, meta = _read_experiment(root)
    tune = _tune_states(root)
    name = study_name(root)
    optuna_info = optuna_trials(load_study(root, name)) if name else {}
    states = {tid: state for tid, (state, _) in optuna_info.items()}
    folders = {Path(p).parent for pattern in ("*/params.json", "*/result.json")
               for p in glob.glob(str(root / pattern))}
    for info in tune.values():
        logdir = info.get("logdir")
        if logdir and (root / logdir).is_dir():
            folders.add(root / logdir)
    by_dir = {(root / info["logdir"]).resolve(): {**info, "trial_id": tid}
              for tid, info in tune.items() if info.get("logdir")}
    trials = []
    for folder in sorted(folders):
        info = by_dir.get(folder.resolve(), {})
        trial_id = str(info.get("trial_id") or folder.name.removeprefix("trial_"))
        trials.append(_trial(folder, info, states.get(trial_id)))
    if not trials:
        raise ConfigError("run_dir", str(run_dir), "holds no trials (expected Ray Tune trial folders with "
                                                   "params.json / result.json)")
    # creation order: Optuna's trial numbers follow Tune's suggestions
    order = {tid: i for i, tid in enumerate(optuna_info)}
    trials.sort(key=lambda t: (order.get(t["trial_id"], len(order)), t["path"]))
    label_warm_starts(trials, {tid for tid, (_, fixed) in optuna_info.items() if fixed} if optuna_info else None)
    mismatches = [f"trial {t['trial_id']}: status {t['status']} but Optuna state {t['optuna_state']}"
                  for t in trials if t["optuna_state"] is not None
                  and OPTUNA_STATE.get(t["status"]) != t["optuna_state"]]
    m = _batches_per_epoch(trials)
    epochs = experiment.get("epochs")
    if epochs is None and trials:
        epochs = trials[0]["config"].get("epochs")
    if epochs is not None:
        experiment.setdefault("epochs", epochs)
    from trainables.objective import reference_backprops

    reference = reference_backprops(int(epochs), m) if m and epochs else None
    return RunInfo(root, root.name, experiment, trials, name, m, reference, mismatches,
                   search=dict(meta.get("search") or {}), version=str(meta.get("raysearch_version", "")))


def objective_of(trial: dict[str, Any]) -> float:
    """The trial's last objective, or +inf when it has none."""
    value = finite(trial["metrics"].get("objective"))
    return math.inf if math.isnan(value) else value


def ranked(trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials best first: completed ones by objective, then those stopped early (catastrophic
    overfitting keeps its best checkpoint; pruned ones ran a partial budget). Diverged and
    failed trials are left out."""
    def key(trial: dict[str, Any]) -> tuple[int, float]:
        return (0 if trial["status"] == "completed" else 1, objective_of(trial))

    usable = [t for t in trials if t["status"] in ("completed", "catastrophic_overfitting", "pruned")
              and objective_of(t) < math.inf]
    return sorted(usable, key=key)


def best_trial(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best recipe: the lowest objective among completed trials (else see :func:`ranked`)."""
    order = ranked(trials)
    return order[0] if order else None


def describe(config: dict[str, Any]) -> str:
    """A short human name for a trial's recipe, e.g. ``pgd, amata 2→10 linear``."""
    from trainables.config import parse_config

    try:
        cfg = parse_config(config)
    except ConfigError:
        return str(config.get("method", "?"))
    parts = [cfg.method if cfg.loss == "ce" else f"{cfg.method}+{cfg.loss}"]
    if cfg.schedule == "constant":
        parts.append(f"K={cfg.constant_k}")
    elif cfg.schedule == "amata":
        parts.append(f"amata {cfg.amata.k_min}→{cfg.amata.k_max} {cfg.amata.shape}")
    elif cfg.schedule == "mplus":
        parts.append(f"M+ γ={cfg.mplus.gamma:.3g}")
    elif cfg.schedule == "deat_every":
        parts.append(f"DEAT-{cfg.deat_every.every}")
    else:
        parts.append(f"DEAT-acc {cfg.deat_acc.threshold:.2f}")
    if cfg.method == "atas":
        gamma = cfg.atas.step_gamma(cfg.epsilon)
        parts.append(f"c={cfg.atas.c:.3g} β={cfg.atas.beta:.2f} γ/c={gamma / cfg.atas.c / cfg.epsilon:.2f}ε")
    reset = cfg.atas.reset_every if cfg.method == "atas" else cfg.atta.reset_every if cfg.method == "atta" else 0
    if reset:
        parts.append(f"reset every {reset}")
    alpha = cfg.alpha
    if alpha is not None:
        parts.append(f"α={alpha / cfg.epsilon:.2f}ε")
    return ", ".join(parts)
