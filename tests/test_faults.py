"""Faults injected for real into a running search: Ctrl-C to the driver, a trial that fails every
time, a storage that fills up. Each ends in words that say what happened, loses nothing, and
``--resume`` finishes the run with every trial once."""

from __future__ import annotations

import csv
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers import own_ray_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["epochs=2", "eval.examples=100", "search.space=baselines", "search.max_concurrent=2",
         "search.time_attr=backprops", "search.confirm.top=0", "search.scheduler=none", "search.reuse=false"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "PYTHONUNBUFFERED": "1"}


def _search(storage: Path, name: str, samples: int, extra: list[str] = (), resume: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    args = ["--resume", str(resume)] if resume else \
        ["demo", *[a for k in [*SMALL, *extra] for a in ("--set", k)], "--samples", str(samples),
         "--storage", str(storage), "--name", name]
    return subprocess.run([sys.executable, "-m", "raysearch", "search", *args], cwd=storage.parent, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _statuses(run_dir: Path) -> dict[str, str]:
    from raysearch.rundir.results import load_run

    return {t.trial_id: t.status.value for t in load_run(run_dir).trials}


def test_ctrl_c_says_interrupted_prints_the_resume_line_and_resume_completes_every_trial(tmp_path: Path) -> None:
    storage = tmp_path / "runs"
    args = ["demo", *[a for k in SMALL for a in ("--set", k)], "--samples", "5", "--storage", str(storage),
            "--name", "cc"]
    # the driver starts its own Ray (not the session's head): Ctrl-C must leave none of it behind
    proc = subprocess.Popen([sys.executable, "-m", "raysearch", "search", *args], cwd=tmp_path, env=own_ray_env(_env()),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 240
    assert proc.stdout is not None
    while time.monotonic() < deadline:  # interrupt once a trial has ended and others run
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            lines.append(line)
            if line.startswith("[search] trial ") and " completed" in line:
                break
        assert proc.poll() is None, "".join(lines)
    time.sleep(2)
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    text = "".join(lines) + out
    run_dir = storage / "cc"
    assert proc.returncode == 130, (text, err)
    assert "— INTERRUPTED" in text
    assert text.strip().splitlines()[-1] == f"interrupted: continue with   raysearch search --resume {run_dir}"
    assert " pruned" not in text  # cut-short trials are never called pruned
    before = _statuses(run_dir)
    assert "interrupted" in before.values() and "pruned" not in before.values()

    resumed = _search(storage, "cc", 5, resume=run_dir)
    assert resumed.returncode == 0, resumed.stderr
    after = _statuses(run_dir)
    assert len(after) == 5 and set(after.values()) == {"completed"}
    study = optuna.load_study(study_name="demo-cc", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    told = [t.user_attrs.get("ray_trial_id") for t in study.trials if t.state.is_finished()
            and t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(told) == sorted(after)  # each trial told once


def test_a_trial_that_fails_twice_stays_failed_through_resumes(tmp_path: Path) -> None:
    storage = tmp_path / "runs"
    first = _search(storage, "flaky", 3, ["trainable=faulty:fails_on_pgd10", "search.reference=true"])
    assert first.returncode == 0, first.stderr
    run_dir = storage / "flaky"
    from raysearch.rundir.results import load_run

    run = load_run(run_dir)
    (failed,) = [t for t in run.trials if t.warm_start == "PGD-10"]
    assert failed.status.value == "failed" and "injected failure" in (Path(failed.path) / "error.txt").read_text()
    for _ in range(2):  # Tune's snapshot may still say RUNNING: the trial must not run a third time
        again = _search(storage, "flaky", 3, resume=run_dir)
        assert again.returncode == 0, again.stderr
        text = (Path(failed.path) / "error.txt").read_text()
        assert text.count("Failure #") == 2, text
        assert _statuses(run_dir)[failed.trial_id] == "failed"
    study = optuna.load_study(study_name="demo-flaky", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    state = next(t.state for t in study.trials if t.user_attrs.get("ray_trial_id") == failed.trial_id)
    assert state == optuna.trial.TrialState.FAIL
    from raysearch.commands.report import report
    from raysearch.tuning.tensorboard import run_folder

    with report(run_dir, progress=False).files["trials.csv"].open() as f:
        rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    assert rows[failed.trial_id]["status"] == "failed"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    events = EventAccumulator(str(run_folder(run_dir / "tensorboard", failed.trial_id)))
    events.Reload()
    start = HParamsPluginData.FromString(events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["status"].string_value == "failed"


def _mount(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_ends_in_one_line_and_resume_finishes_after_space_is_freed(tmp_path: Path) -> None:
    storage = tmp_path / "small"
    if os.geteuid() != 0 or shutil.which("mount") is None or not _mount(storage, "3m"):
        pytest.skip("needs root and tmpfs to make a filesystem that fills up")
    try:
        full = _search(storage, "full", 4)
        assert full.returncode == 1, full.stderr
        last = full.stderr.strip().splitlines()[-1]
        assert last.startswith("raysearch search: storage error: ") and "No space left on device" in last, last
        assert f"--resume {storage / 'full'}" in last
        report = subprocess.run([sys.executable, "-m", "raysearch", "report", str(storage / "full")], env=_env(),
                                capture_output=True, text=True, timeout=120)
        assert report.returncode in (0, 1) and "Traceback" not in report.stderr
        if report.returncode == 1:
            assert report.stderr.strip().splitlines()[-1].startswith("raysearch report: storage error: ")
        subprocess.run(["mount", "-o", "remount,size=200m", str(storage)], check=True)
        resumed = _search(storage, "full", 4, resume=storage / "full")
        assert resumed.returncode == 0, resumed.stderr
        statuses = _statuses(storage / "full")
        assert len(statuses) == 4 and set(statuses.values()) == {"completed"}
        summary = json.loads((storage / "full" / "search_summary.json").read_text())
        assert summary["state"] == "finished" and summary["trials"] == 4
    finally:
        subprocess.run(["umount", "-l", str(storage)], capture_output=True)
