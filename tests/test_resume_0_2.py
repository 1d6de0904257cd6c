"""A run directory written by raysearch 0.2 resumes with this version (issue 25).

``tests/data/run_0_2.tar.gz`` is a real 0.2 search (commit 84195cd: 3 trials of the baselines
space on digits, one at a time, Ctrl-C after the first trial ended): Ray Tune's experiment
state with its pickled searcher, scheduler wrappers and callbacks (by their 0.2 module
paths), the Optuna study, the run files. The new code must continue it: the finished trial
kept as it was, the others run, each trial once and told to the study once.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.slow

ARCHIVE = Path(__file__).parent / "data" / "run_0_2.tar.gz"


def _statuses(run_dir: Path) -> dict[str, tuple[str, float | None]]:
    from raysearch.rundir.results import load_run

    return {t.trial_id: (t.status.value, t.metrics.get("robust_acc")) for t in load_run(run_dir).trials}


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory, shared_ray: None) -> dict:
    """The 0.2 run unpacked, read, resumed by this version (once for the module)."""
    from raysearch.pipeline.run import search

    base = tmp_path_factory.mktemp("run_0_2")
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(base, filter="data")
    run_dir = base / "old"
    version = json.loads((run_dir / "search_summary.json").read_text())["raysearch_version"]
    before = _statuses(run_dir)
    result = search(resume=str(run_dir), progress=False)
    study = optuna.load_study(study_name=result.summary["study_name"], storage=f"sqlite:///{run_dir / 'optuna.db'}")
    told = [t.user_attrs.get("ray_trial_id") for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = {t.user_attrs.get("ray_trial_id"): t.params for t in study.trials if t.state == optuna.trial.TrialState.FAIL}
    params = {t.user_attrs.get("ray_trial_id"): t.params for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    return {"version": version, "before": before, "after": _statuses(run_dir), "result": result, "told": told,
            "failed": failed, "params": params}


def test_a_run_directory_written_by_0_2_resumes(resumed: dict) -> None:
    before, after = resumed["before"], resumed["after"]
    finished = {k: v for k, v in before.items() if v[0] == "completed"}
    assert resumed["version"].startswith("0.2") and 0 < len(finished) < 3
    assert not resumed["result"].interrupted and len(after) == 3
    assert {status for status, _ in after.values()} == {"completed"}
    for trial_id, kept in finished.items():
        assert after[trial_id] == kept  # the finished trials are not trained again
    told = resumed["told"]
    assert len(told) == len(set(told)) and set(finished) <= set(told)  # each trial told at most once


def test_the_trial_cut_short_is_told_to_the_study_after_resume(resumed: dict) -> None:
    assert sorted(resumed["told"]) == sorted(resumed["after"])
    # 0.2 had told the cut-short trial FAIL: that record stays, and its outcome after the resume
    # joined the study as a trial of the same parameters
    (cut_short,) = resumed["failed"]
    assert cut_short in resumed["told"] and resumed["params"][cut_short] == resumed["failed"][cut_short]
