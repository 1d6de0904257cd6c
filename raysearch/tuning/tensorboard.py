"""One TensorBoard log directory per run, one TensorBoard run per trial (SPEC §9).

Ray's built-in ``TBXLoggerCallback`` writes every reported key under its raw name into each
trial's own folder. :class:`TensorBoardCallback` instead writes ``<run_dir>/tensorboard/``:

- an HParams *experiment summary* at the root declaring the columns a user compares by: the
  recipe (method, loss, schedule and its parameters, α, the batch-norm mode, the search
  space), the trial's status, and the metrics a user ranks by (objective, robust and clean
  accuracy, backprops, training seconds). They are the dashboard's columns by default;
- one run per trial, named ``<NN>-<trial id>-<recipe label>`` (NN: the order the trials
  started in, so the names sort), with scalars grouped by meaning (``accuracy/robust``,
  ``schedule/k``, ``cost/backprops``, ...) at step = the trial's epoch (counted across its
  fidelity levels), and under ``rung/`` at step = the scheduler's time axis (the fidelity
  level's value, or cumulative backprops): exactly the steps and values Optuna holds as the
  trial's intermediate values;
- when a trial ends, its hyperparameters (only those its recipe has: a baseline trial has no
  Amata columns; whole numbers stay whole) and its end status: the ``status`` column says
  completed, pruned, diverged, catastrophic_overfitting, failed or interrupted, and the
  session status (the dashboard's filter) is success for completed, failure for diverged,
  overfitted and failed, unknown for pruned, running for interrupted.

The callback runs in the driver. After ``--resume`` a new driver re-opens the writers, and
trials restored from a checkpoint report again epochs written before the driver died; so on
first touch of a trial folder it reads back the steps already written, writes only later
ones, and writes the HParams session once. Every write is flushed at once.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from trainables.labels import describe
from trainables.trials.setup import split_trial_config

logger = logging.getLogger(__name__)

# reported metric -> TensorBoard tag (grouped by meaning)
SCALARS = {
    "clean_acc": "accuracy/clean",
    "robust_acc": "accuracy/robust",
    "fgsm_acc": "accuracy/fgsm",
    "train_acc": "accuracy/train",
    "best_robust_acc": "accuracy/best_robust",
    "train_loss": "loss/train",
    "k": "schedule/k",
    "alpha": "schedule/alpha",
    "grad_magnitude": "mplus/grad_magnitude",
    "backprops": "cost/backprops",
    "trial_backprops": "cost/trial_backprops",
    "forwards": "cost/forwards",
    "train_seconds": "cost/train_seconds",
    "eval_seconds": "cost/eval_seconds",
    "objective": "objective/objective",
    "level": "fidelity/level",
    "population_objective": "population/objective",
    "exploits": "population/exploits",
}
RUNG_SCALARS = {"objective": "rung/objective", "robust_acc": "rung/robust_acc"}
SESSION_START_TAG = "_hparams_/session_start_info"
# the HParams proto knows UNKNOWN, SUCCESS, FAILURE and RUNNING; the ``status`` column has the word
END_STATUS = {"completed": "STATUS_SUCCESS", "pruned": "STATUS_UNKNOWN", "diverged": "STATUS_FAILURE",
              "catastrophic_overfitting": "STATUS_FAILURE", "failed": "STATUS_FAILURE",
              "interrupted": "STATUS_RUNNING"}
# the metrics users rank by, in the dashboard's column order: (tag, display name)
METRICS = (("objective/objective", "objective"), ("accuracy/robust", "robust acc"), ("accuracy/clean", "clean acc"),
           ("cost/backprops", "backprops"), ("cost/train_seconds", "train seconds"))
# hyperparameters shown first: the recipe; then the search space's own knobs
LEADING = ("method", "loss", "schedule", "search_space", "status", "k", "alpha", "attack_bn")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def tensorboard_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "tensorboard"


def run_folder(root: Path, trial_id: str) -> Path | None:
    """The TensorBoard run of a trial (its folder name holds the trial id)."""
    found = sorted(p for p in root.glob(f"*-{trial_id}-*") if p.is_dir()) if root.is_dir() else []
    return found[0] if found else None


def slug(text: str) -> str:
    """A label as a folder-name part: no slashes, spaces or commas."""
    return re.sub(r"[\s,/\\:]+", "_", text).strip("_")[:80]


def hparam_value(value: Any) -> Any:
    """TensorBoard HParams take numbers, strings and bools; everything else as its repr."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return "None" if value is None else str(value)


def declared_hparams() -> list[Any]:
    """The experiment summary's hyperparameters: the recipe first, then every option section
    of the registered methods, schedules and losses (integer options as integer intervals)."""
    import typing

    from tensorboard.plugins.hparams import summary_v2 as hp

    from trainables.config import config_keys
    from trainables.methods import LOSSES, METHODS
    from trainables.schedules import SCHEDULES
    from trainables.status import Status

    choices = {"method": list(METHODS.names()), "loss": list(LOSSES.names()), "schedule": list(SCHEDULES.names()),
               "status": [s.value for s in Status], "attack_bn": ["auto", "train", "eval"]}
    keys = config_keys()
    out = []
    for name in LEADING:
        if name in choices:
            out.append(hp.HParam(name, hp.Discrete(choices[name])))
        elif name == "k":
            out.append(hp.HParam("k", hp.IntInterval(0, 64)))
        elif name == "alpha":
            out.append(hp.HParam("alpha", hp.RealInterval(0.0, 1.0)))
        else:
            out.append(hp.HParam(name))
    for key, hint in keys.items():
        section = key.partition(".")[0]
        if "." not in key or section in ("eval", "co"):
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if args[0] is int:
            out.append(hp.HParam(key, hp.IntInterval(0, 10_000)))
        elif args[0] is float:
            out.append(hp.HParam(key, hp.RealInterval(0.0, 1e6)))
        else:
            out.append(hp.HParam(key))
    return out


SHOWN_FIRST = LEADING[:5]  # the recipe and the status: the columns users rank by


def experiment_summary() -> Any:
    """The HParams experiment summary. TensorBoard lists the hyperparameters marked ``differs``
    first (and by name within each group), whatever the declared order, so the recipe's and
    the status's columns are marked to lead the table."""
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    summary = hp.hparams_config_pb(hparams=declared_hparams(),
                                   metrics=[hp.Metric(tag, display_name=name) for tag, name in METRICS])
    (value,) = summary.value
    data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in SHOWN_FIRST
    value.metadata.plugin_data.content = data.SerializeToString()
    return summary


def trial_hparams(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's hyperparameters: the recipe's keys it set (only those that apply to it)."""
    train, controls = split_trial_config(config)
    declared = {h.name for h in declared_hparams()}
    hparams = {k: hparam_value(v) for k, v in train.items() if k in declared and v is not None}
    for key in ("method", "loss", "schedule"):
        hparams.setdefault(key, {"method": "pgd", "loss": "ce", "schedule": "constant"}[key])
    hparams["search_space"] = controls.get("family", "")
    if controls.get("warm_start"):
        hparams["paper_default"] = controls["warm_start"]
    return hparams


def _session_summaries(hparams: dict[str, Any], trial_id: str, status: str) -> list[Any]:
    """HParams SessionStartInfo and SessionEndInfo summaries of one trial."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import summary_v2 as hp
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.metadata import (
        PLUGIN_DATA_VERSION,
        PLUGIN_NAME,
        SESSION_END_INFO_TAG,
    )
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo

    start = hp.hparams_pb(hparams, trial_id=trial_id)
    end = HParamsPluginData(session_end_info=SessionEndInfo(status=Status.Value(status), end_time_secs=time.time()),
                            version=PLUGIN_DATA_VERSION)
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME,
                                                                  content=end.SerializeToString()))
    return [start, Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=meta)])]


def _written(folder: Path) -> tuple[int, bool]:
    """(last scalar step, whether an HParams session exists) in a trial folder's event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    last_step, has_session = -1, False
    for path in sorted(glob.glob(str(folder / "events.out.tfevents.*"))):
        try:
            for event in EventFileLoader(path).Load():
                for value in event.summary.value:
                    if value.tag == SESSION_START_TAG:
                        has_session = True
                    elif value.tag in SCALARS.values():
                        last_step = max(last_step, event.step)
        except Exception:  # a torn last record of a killed driver: keep what was read
            continue
    return last_step, has_session


def trial_status(trial: Any, failed: bool = False, interrupted: bool = False) -> str:
    """A trial's raysearch status when it ends (the one rule, :func:`live_status`)."""
    from raysearch.tuning.progress import live_status

    errored = failed or getattr(trial, "status", None) == "ERROR"
    return live_status(trial, errored, interrupted).value


@dataclass
class _RootIndex:
    """A TensorBoard root's trial runs (trial id → folder), how many folders it holds (the next
    run's number) and whether the experiment summary is written."""

    runs: dict[str, Path] = field(default_factory=dict)
    folders: int = 0
    experiment: bool = False

    @classmethod
    def read(cls, root: Path) -> _RootIndex:
        if not root.is_dir():
            return cls()
        index = cls(experiment=any(root.glob("events.out.tfevents.*")))
        for path in sorted(p for p in root.iterdir() if p.is_dir()):
            index.folders += 1
            parts = path.name.split("-", 2)
            if len(parts) == 3:
                index.runs.setdefault(parts[1], path)  # as run_folder: the first in name order
        return index

    def add(self, trial_id: str, folder: Path) -> None:
        self.runs[trial_id] = folder
        self.folders += 1


class TensorBoardCallback(Callback):
    """Writes the experiment summary, grouped scalars and an HParams session per trial.

    ``run_dir`` None: the run directory of each trial's experiment (local storage), or the
    driver staging directory that Tune syncs to cloud storage. ``time_attr``: the scheduler's
    time axis (the ``rung/`` scalars' step).
    """

    def __init__(self, run_dir: str | os.PathLike | None = None, time_attr: str = "backprops") -> None:
        self._run_dir = str(run_dir) if run_dir else None
        self._time_attr = time_attr
        self._writers: dict[str, Any] = {}
        self._last_step: dict[str, int] = {}
        self._last_rung: dict[str, float] = {}
        self._has_session: dict[str, bool] = {}
        self._folders: dict[str, Path] = {}
        self._indexes: dict[str, _RootIndex] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks into tuner.pkl
        state = self.__dict__.copy()
        state.update(_writers={}, _last_step={}, _last_rung={}, _has_session={}, _folders={}, _indexes={})
        return state

    def _root(self, trial: Any) -> Path:
        if self._run_dir:
            root = Path(self._run_dir)
        else:
            storage = trial.storage
            local = storage.storage_filesystem.type_name == "local"
            root = Path(storage.experiment_fs_path if local else trial.local_experiment_path)
        return tensorboard_dir(root)

    def _folder(self, trial: Any) -> Path:
        if trial.trial_id not in self._folders:
            root = self._root(trial)
            index = self._index(root)
            existing = index.runs.get(trial.trial_id)
            if existing is None:
                root.mkdir(parents=True, exist_ok=True)
                if not index.experiment:
                    self._write_experiment(root)
                    index.experiment = True
                train, _ = split_trial_config(trial.config or {})
                existing = root / f"{index.folders:02d}-{trial.trial_id}-{slug(describe(train))}"
                index.add(trial.trial_id, existing)
            self._folders[trial.trial_id] = existing
        return self._folders[trial.trial_id]

    def _index(self, root: Path) -> _RootIndex:
        """The runs in ``root``, read from disk once per process (a resumed search finds its
        earlier trials' folders), then kept up to date here: a new trial costs no listing of a
        folder that grows with the number of trials."""
        key = str(root)
        if key not in self._indexes:
            self._indexes[key] = _RootIndex.read(root)
        return self._indexes[key]

    @staticmethod
    def _write_experiment(root: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(root))
        assert writer.file_writer is not None  # made by SummaryWriter.__init__
        writer.file_writer.add_summary(experiment_summary())
        writer.close()

    def _writer(self, trial: Any) -> Any:
        writer = self._writers.get(trial.trial_id)
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter

            folder = self._folder(trial)
            if trial.trial_id not in self._last_step:
                self._last_step[trial.trial_id], self._has_session[trial.trial_id] = _written(folder)
            writer = self._writers[trial.trial_id] = SummaryWriter(log_dir=str(folder), flush_secs=5)
        return writer

    # Tune turns an exception in a callback into a *trial* failure (and a retry), so logging
    # problems are reported as warnings and never raised.

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        try:
            self._result(trial, result)
        except Exception as exc:
            logger.warning("TensorBoard logging failed for trial %s: %s", trial.trial_id, exc)

    def _result(self, trial: Any, result: dict[str, Any]) -> None:
        step = result.get("trial_epoch", result.get("epoch", result.get("training_iteration")))
        if step is None:
            return
        writer = self._writer(trial)
        donor = result.get("exploited_from")
        if donor:  # a population member took a better member's state: its epochs restart there
            self._last_step[trial.trial_id] = int(step) - 1
            writer.add_scalar("population/exploit", 1, int(step))
            writer.add_text("population/exploit", f"copied trial {donor} at epoch {int(step) - 1}, continued with "
                                                  f"K={result.get('k')}, alpha={_fmt(result.get('alpha'))}", int(step))
        if int(step) <= self._last_step.get(trial.trial_id, -1):
            return  # written before a resume
        for key, tag in SCALARS.items():
            value = result.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                writer.add_scalar(tag, value, int(step))
        rung = result.get(self._time_attr)
        if isinstance(rung, (int, float)) and rung > self._last_rung.get(trial.trial_id, 0):
            self._last_rung[trial.trial_id] = float(rung)
            for key, tag in RUNG_SCALARS.items():
                value = result.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    writer.add_scalar(tag, value, int(round(rung)))
        writer.flush()
        self._last_step[trial.trial_id] = int(step)

    def _end(self, trial: Any, failed: bool) -> None:
        writer = self._writer(trial)
        if not self._has_session.get(trial.trial_id):
            from raysearch.tuning.tuner import INTERRUPT

            status = trial_status(trial, failed, INTERRUPT.is_set())
            hparams = {**trial_hparams(trial.config or {}), "status": status}
            for summary in _session_summaries(hparams, trial.trial_id, END_STATUS.get(status, "STATUS_UNKNOWN")):
                writer.file_writer.add_summary(summary)
            self._has_session[trial.trial_id] = True
        writer.close()
        self._writers.pop(trial.trial_id, None)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        try:
            self._end(trial, failed=False)
        except Exception as exc:
            logger.warning("TensorBoard HParams failed for trial %s: %s", trial.trial_id, exc)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        try:
            self._end(trial, failed=True)
        except Exception as exc:
            logger.warning("TensorBoard HParams failed for trial %s: %s", trial.trial_id, exc)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


__all__ = ["END_STATUS", "METRICS", "SCALARS", "TensorBoardCallback", "declared_hparams", "experiment_summary",
           "run_folder", "tensorboard_dir", "trial_hparams"]
