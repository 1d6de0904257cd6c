"""A search driver killed mid-run (SIGKILL) resumes from its run directory alone: every
trial ends exactly once, finished trials keep their results, TensorBoard has no duplicates."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = 5
EPOCHS = 3
DRIVER = """
import ray
from raysearch.commands.search import search
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
search("demo", ["epochs={epochs}", "eval.examples=200", "search.space=baselines", "search.max_concurrent=2",
                "search.time_attr=backprops", "search.confirm.top=0"],
       samples={samples}, storage={storage!r}, name="resume")
"""
LINE = re.compile(r"^\[search\] trial (\w+) (\w+): objective=(\S+)")


def _run_until_first_trial_ends(storage: Path, timeout: float = 240) -> dict[str, tuple[str, str]]:
    """Start the driver, SIGKILL its process group once a trial has ended; return the ended trials."""
    code = DRIVER.format(epochs=EPOCHS, samples=SAMPLES, storage=str(storage))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    ended: dict[str, tuple[str, str]] = {}
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        while time.monotonic() < deadline and not ended:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                assert proc.poll() is None, "the driver exited before any trial ended"
                continue
            match = LINE.match(proc.stdout.readline())
            if match:
                ended[match.group(1)] = (match.group(2), match.group(3))
        assert ended, "no trial ended in time"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait()
    return ended


def test_killed_search_resumes_without_losing_or_repeating_trials(tmp_path: Path) -> None:
    import ray

    from raysearch.commands.search import search

    ended_before = _run_until_first_trial_ends(tmp_path)
    run_dir = tmp_path / "resume"
    assert (run_dir / "experiment.yaml").exists() and (run_dir / "tuner.pkl").exists()

    ray.init(include_dashboard=False, log_to_driver=False)  # the session's head (conftest ray_head), else local
    try:
        result = search(resume=str(run_dir), progress=False)
    finally:
        ray.shutdown()

    ids = [t.trial_id for t in result.trials]
    assert len(ids) == SAMPLES and len(set(ids)) == SAMPLES
    by_id = {t.trial_id: t for t in result.trials}
    for trial in result.trials:
        assert trial.status.value in ("completed", "pruned", "diverged", "catastrophic_overfitting"), trial
        if trial.status.value == "completed":
            assert trial.metrics["epoch"] == EPOCHS
    for trial_id, (status, objective) in ended_before.items():
        if trial_id in by_id:  # ended before the last experiment snapshot: kept, not rerun
            assert by_id[trial_id].status.value == status
            assert f"{by_id[trial_id].metrics['objective']:.4g}" == objective

    study = optuna.load_study(study_name="demo-resume", storage=f"sqlite:///{run_dir}/optuna.db")
    told = [t for t in study.trials if t.user_attrs.get("ray_trial_id") in by_id]
    assert sorted(t.user_attrs["ray_trial_id"] for t in told) == sorted(ids)  # each once
    assert all(t.state.is_finished() for t in study.trials)
    # asked after the last snapshot, never run by Tune: told FAIL on resume, not left RUNNING
    assert all(t.state == optuna.trial.TrialState.FAIL for t in study.trials if t not in told)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from raysearch.tuning.tensorboard import run_folder

    for trial in result.trials:
        events = EventAccumulator(str(run_folder(run_dir / "tensorboard", trial.trial_id)))
        events.Reload()
        steps = [s.step for s in events.Scalars("objective/objective")]
        assert steps == list(range(1, trial.metrics["epoch"] + 1)), (trial.trial_id, steps)
        assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")
