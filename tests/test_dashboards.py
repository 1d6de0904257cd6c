"""The comparison tools a user opens, read the way they read them: a real TensorBoard server on
localhost serving a real search's log directory through its HParams plugin's HTTP endpoints,
and the Optuna study as optuna-dashboard loads it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(port: int, route: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/data/plugin/hparams/{route}",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def tensorboard(tiny_search_run: dict[str, Any]) -> Any:
    port = _free_port()
    logdir = Path(tiny_search_run["run_dir"], "tensorboard")
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port),
                             "--host", "127.0.0.1", "--reload_interval", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        experiment: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                groups = _post(port, "session_groups", {"experimentName": "", "startIndex": 0, "sliceSize": 100,
                                                       "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS",
                                                                           "STATUS_FAILURE", "STATUS_RUNNING"]})
                if len(groups.get("sessionGroups", [])) >= len(tiny_search_run["trials"]):
                    # every session is loaded; two more reloads so the root's experiment summary is too
                    # (until then TensorBoard infers an experiment from the sessions, columns sorted by name)
                    time.sleep(2.5)
                    experiment = _post(port, "experiment", {"experimentName": ""})
                    break
            except OSError:
                pass
            time.sleep(1)
        yield port, experiment
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_hparams_experiment_declares_the_columns_users_rank_by(tensorboard: Any) -> None:
    _, experiment = tensorboard
    names = [h["name"] for h in experiment["hparamInfos"]]
    # the default columns, first (TensorBoard sorts by "differs", then by name)
    assert names[:5] == ["loss", "method", "schedule", "search_space", "status"]
    assert [h["name"] for h in experiment["hparamInfos"] if h.get("differs")] == names[:5]
    metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
    assert metrics == ["objective/objective", "accuracy/robust", "accuracy/clean", "cost/backprops",
                       "cost/train_seconds"]
    k = next(h for h in experiment["hparamInfos"] if h["name"] == "k")
    assert k["type"] == "DATA_TYPE_FLOAT64" and "domainInterval" in k  # an integer interval


def test_one_session_group_per_trial_with_statuses_that_tell_pruned_from_completed(
        tensorboard: Any, tiny_search_run: dict[str, Any]) -> None:
    port, _ = tensorboard
    groups = _post(port, "session_groups", {"experimentName": "", "startIndex": 0, "sliceSize": 100,
                                           "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                                               "STATUS_RUNNING"]})["sessionGroups"]
    assert len(groups) == len(tiny_search_run["trials"])
    by_trial = {}
    for group in groups:
        (session,) = group["sessions"]
        trial_id = session["name"].split("-")[1]  # "NN-<trial id>-<recipe label>"
        by_trial[trial_id] = (group["hparams"]["status"], session["status"], group["hparams"])
    for trial_id, (status, _) in tiny_search_run["trials"].items():
        word, session_status, hparams = by_trial[trial_id]
        assert word == status
        assert session_status == {"completed": "STATUS_SUCCESS", "pruned": "STATUS_UNKNOWN"}.get(status, session_status)
        assert "amata.k_max" not in hparams  # a baselines trial has no Amata columns
        if "k" in hparams:
            assert float(hparams["k"]).is_integer()


def test_the_optuna_study_names_its_objective_and_carries_the_config(tiny_search_run: dict[str, Any]) -> None:
    run_dir = tiny_search_run["run_dir"]
    study = optuna.load_study(study_name="demo-tiny", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert study.metric_names == ["objective = 1 - robust acc + 0.1 * cost in reference runs"]
    attrs = study.user_attrs
    assert attrs["experiment"] == "demo" and attrs["dataset"] == "digits" and attrs["model"] == "small_cnn"
    assert attrs["epsilon"] == pytest.approx(0.1) and attrs["reference_backprops"] == 11 * 10 * 2
    for trial in study.trials:
        assert trial.user_attrs["config.method"] in ("pgd", "fgsm_rs", "free", "atta")
        assert not any(k.startswith("config.optuna") for k in trial.user_attrs)
        assert trial.user_attrs["ray_trial_id"] in tiny_search_run["trials"]
