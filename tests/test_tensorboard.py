"""TensorBoardCallback without Ray: grouped scalars at step = epoch, one HParams session per
trial, and no duplicate steps when a new driver (after --resume) sees the same epochs again."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from raysearch.tuning.tensorboard import TensorBoardCallback, run_folder


def record(epoch: int, status: str = "running") -> dict[str, Any]:
    return {"epoch": epoch, "k": 2, "alpha": 0.01, "backprops": 30 * epoch, "forwards": 40 * epoch,
            "train_seconds": 1.5 * epoch, "eval_seconds": 0.2, "train_acc": 0.5, "clean_acc": 0.6,
            "robust_acc": 0.3 + 0.01 * epoch, "fgsm_acc": 0.4, "grad_magnitude": 12.0, "objective": 0.8,
            "best_robust_acc": 0.3, "train_loss": float("nan"), "status": status}


def trial(last: dict[str, Any] | None) -> SimpleNamespace:
    return SimpleNamespace(trial_id="abc", status="RUNNING", last_result=last,
                           config={"method": "pgd", "k": 2, "amata.tau": None, "trial.family": "baselines"})


def load(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder))
    events.Reload()
    return events


def test_scalars_hparams_and_resume(tmp_path) -> None:
    callback = TensorBoardCallback(tmp_path)
    t = trial(None)
    for epoch in (1, 2):
        t.last_result = record(epoch)
        callback.on_trial_result(0, [t], t, t.last_result)

    # a new driver after a kill: the trial restarts from its epoch-1 checkpoint
    callback = TensorBoardCallback(tmp_path)
    for epoch in (2, 3):
        t.last_result = record(epoch)
        callback.on_trial_result(0, [t], t, t.last_result)
    callback.on_trial_complete(0, [t], t)  # stopped by ASHA ("running" at the end)
    callback.on_trial_complete(0, [t], t)  # a repeated completion writes no second session

    folder = run_folder(tmp_path / "tensorboard", "abc")
    assert folder is not None and folder.name == "00-abc-PGD_K=2"
    events = load(folder)
    assert [s.step for s in events.Scalars("accuracy/robust")] == [1, 2, 3]
    assert {"schedule/k", "schedule/alpha", "mplus/grad_magnitude", "cost/backprops", "cost/forwards",
            "cost/train_seconds", "objective/objective", "accuracy/clean", "accuracy/fgsm",
            "accuracy/train"} <= set(events.Tags()["scalars"])
    assert "loss/train" not in events.Tags()["scalars"]  # NaN is not written
    content = events.PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["method"].string_value == "pgd" and start.hparams["k"].number_value == 2
    assert start.hparams["status"].string_value == "pruned"
    assert start.hparams["search_space"].string_value == "baselines"
    assert "trial.family" not in start.hparams and "amata.tau" not in start.hparams  # None: does not apply
    assert "_hparams_/session_end_info" in content


def test_failed_trial_without_results_still_gets_a_session(tmp_path) -> None:
    callback = TensorBoardCallback(tmp_path)
    t = trial(None)
    t.status = "ERROR"
    callback.on_trial_error(0, [t], t)
    content = load(run_folder(tmp_path / "tensorboard", "abc")).PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["status"].string_value == "failed"
