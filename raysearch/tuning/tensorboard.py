"""One TensorBoard log directory per run, one TensorBoard run per trial (SPEC §9).

Ray's built-in ``TBXLoggerCallback`` writes every reported key under its raw name (``ray/
tune/robust_acc``) into each trial's own folder, so a run's trials are scattered over many
folders beside checkpoints. :class:`TensorBoardCallback` instead writes
``<run_dir>/tensorboard/<trial_id>/`` with scalars grouped by meaning (``accuracy/robust``,
``schedule/k``, ``cost/backprops``, ...) at step = epoch, and, when a trial ends (completed,
stopped by ASHA, or failed), its hyperparameters and end status as HParams session summaries
in the same folder. No experiment summary is written: TensorBoard then builds the HParams
table from every trial's own hyperparameters (the ``all`` space gives trials different
keys) and uses the scalar tags as metric columns, showing each trial's latest values.
:func:`raysearch.search.search` disables Ray's automatic TBX logger
(``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``) and keeps its CSV and JSON loggers.

The callback runs in the driver. After ``--resume`` a new driver re-opens the writers, and
trials restored from a checkpoint report again epochs that were written before the driver
died; so on first touch of a trial folder the callback reads back the steps already
written, writes only later steps, and writes the HParams session once. Every write is
flushed at once (one result per epoch is cheap to flush), so a killed driver loses nothing
that it later would not write again.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

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
    "forwards": "cost/forwards",
    "train_seconds": "cost/train_seconds",
    "eval_seconds": "cost/eval_seconds",
    "objective": "objective/objective",
}
SESSION_START_TAG = "_hparams_/session_start_info"
# raysearch status -> HParams session status (the proto knows only UNKNOWN, SUCCESS, FAILURE,
# RUNNING); the raysearch status itself is logged as the ``trial_status`` column.
END_STATUS = {"completed": "STATUS_SUCCESS", "pruned": "STATUS_SUCCESS", "diverged": "STATUS_FAILURE",
              "catastrophic_overfitting": "STATUS_FAILURE", "failed": "STATUS_FAILURE"}


def tensorboard_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "tensorboard"


def hparam_value(value: Any) -> Any:
    """TensorBoard HParams take numbers, strings and bools; everything else as its repr."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return "None" if value is None else str(value)


def _session_summaries(hparams: dict[str, Any], status: str) -> list[Any]:
    """HParams SessionStartInfo and SessionEndInfo summaries (no experiment summary)."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.metadata import (
        PLUGIN_DATA_VERSION,
        PLUGIN_NAME,
        SESSION_END_INFO_TAG,
    )
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo
    from torch.utils.tensorboard.summary import hparams as torch_hparams

    _, start, _ = torch_hparams({k: hparam_value(v) for k, v in hparams.items()}, {})
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


class TensorBoardCallback(Callback):
    """Writes grouped scalars per epoch and an HParams session per trial (see module doc).

    ``run_dir`` None: the run directory of each trial's experiment (local storage), or the
    driver staging directory that Tune syncs to cloud storage.
    """

    def __init__(self, run_dir: str | os.PathLike | None = None) -> None:
        self._run_dir = str(run_dir) if run_dir else None
        self._writers: dict[str, Any] = {}
        self._last_step: dict[str, int] = {}
        self._has_session: dict[str, bool] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks into tuner.pkl
        state = self.__dict__.copy()
        state.update(_writers={}, _last_step={}, _has_session={})
        return state

    def _folder(self, trial: Any) -> Path:
        if self._run_dir:
            root = Path(self._run_dir)
        else:
            storage = trial.storage
            local = storage.storage_filesystem.type_name == "local"
            root = Path(storage.experiment_fs_path if local else trial.local_experiment_path)
        return tensorboard_dir(root) / trial.trial_id

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
        step = result.get("epoch", result.get("training_iteration"))
        if step is None:
            return
        writer = self._writer(trial)
        if int(step) <= self._last_step.get(trial.trial_id, -1):
            return  # written before a resume
        for key, tag in SCALARS.items():
            value = result.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                writer.add_scalar(tag, value, int(step))
        writer.flush()
        self._last_step[trial.trial_id] = int(step)

    def _end(self, trial: Any, failed: bool) -> None:
        writer = self._writer(trial)
        if not self._has_session.get(trial.trial_id):
            from trainables.trainable import split_trial_config

            train, controls = split_trial_config(trial.config or {})
            hparams = {k: v for k, v in train.items() if k != "data_root"}
            hparams["search_space"] = controls.get("family", "")
            status = trial_status(trial, failed)
            hparams["trial_status"] = status
            for summary in _session_summaries(hparams, END_STATUS.get(status, "STATUS_UNKNOWN")):
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
