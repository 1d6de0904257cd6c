"""The study on a team's database (issue 28): URLs with their password masked everywhere but in
the process that was given it, bad storages refused in one line before Ray starts, a real
PostgreSQL server that two searches share and that restarts under a running search, and
searches that start from an earlier study."""

from __future__ import annotations

import json
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from raysearch.cli import main
from raysearch.rundir.study_store import (
    ENV_URL,
    check_study_storage,
    load_study,
    open_storage,
    recall,
    redact,
    remember,
    study_name,
    study_url,
)
from raysearch.rundir.warm_sources import fits_space, read_source
from tests import postgres
from trainables.registry import ConfigError

URL = "postgresql+psycopg2://team:pw-123@db.example:5432/sweeps"


# ---------------------------------------------------------------------------------- URLs


def test_the_password_is_masked_and_recalled_only_where_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    assert redact(URL) == "postgresql+psycopg2://team:***@db.example:5432/sweeps"
    assert redact("sqlite:///runs/x/optuna.db") == "sqlite:///runs/x/optuna.db"
    assert redact("postgresql://team@db.example/sweeps") == "postgresql://team@db.example/sweeps"  # no password
    masked = redact(URL)
    monkeypatch.delenv(ENV_URL, raising=False)
    assert recall(masked) == "postgresql+psycopg2://team@db.example:5432/sweeps"  # the driver's defaults
    monkeypatch.setenv(ENV_URL, URL)
    assert recall(masked) == URL
    monkeypatch.delenv(ENV_URL)
    assert remember(URL) == masked and recall(masked) == URL


def test_study_names_and_default_locations(tmp_path: Path) -> None:
    assert study_name("demo", "night-1") == "demo-night-1"
    assert study_url(None, str(tmp_path)) == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert study_url(f"journal:{tmp_path}/j.log", "x") == f"journal:{tmp_path}/j.log"
    assert study_url(URL, "x") == URL


@pytest.mark.parametrize(("url", "words"), [
    ("nonsense", "must be an Optuna storage URL"),
    ("journal:/no/such/folder/j.log", "does not exist"),
    ("nosuchdb://h/x", "is not a storage URL SQLAlchemy can open"),
])
def test_a_bad_storage_is_one_line(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        check_study_storage(url)


def test_the_cli_refuses_a_bad_storage_with_exit_2_before_ray(capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    assert main(["search", "demo", "--study-storage", "nonsense"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "search.study_storage" in err[0]
    assert not ray.is_initialized()


def test_a_journal_file_holds_a_study(tmp_path: Path) -> None:
    url = study_url(f"journal:{tmp_path}/team.log", "x")
    check_study_storage(url)
    study = optuna.create_study(study_name="demo-a", storage=open_storage(url))
    study.enqueue_trial({"x": 0.25})
    study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=2)
    again = load_study(url, "demo-a")
    assert len(again.trials) == 2 and again.trials[0].value == pytest.approx(0.0625)


def test_the_run_directory_study_commits_to_a_write_ahead_log_and_survives_pickling(tmp_path: Path) -> None:
    import sqlite3

    url = study_url(None, str(tmp_path))
    storage = open_storage(url)
    study = optuna.create_study(study_name="demo-a", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL: no fsync per commit
    assert sqlite3.connect(tmp_path / "optuna.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = pickle.loads(pickle.dumps(storage))  # Tune pickles the searcher, and its study's storage
    study2 = optuna.load_study(study_name="demo-a", storage=again)
    study2.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with again.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    assert len(load_study(url, "demo-a").trials) == 4  # what another process reads


# ---------------------------------------------------------------------------------- warm starts


def _space(trial: optuna.Trial) -> dict[str, Any]:
    return {"x": trial.suggest_float("x", 0.0, 1.0), "k": trial.suggest_int("k", 1, 5)}


def test_a_recipe_fits_a_space_only_in_its_ranges() -> None:
    assert fits_space(_space, {"x": 0.5, "k": 3})
    assert not fits_space(_space, {"x": 0.5, "k": 9})  # out of range
    assert not fits_space(_space, {"x": 0.5})  # one missing
    assert not fits_space(_space, {"x": 0.5, "k": 3, "other": 1})  # one this space does not search


def _earlier_study(tmp_path: Path, problem: str) -> Path:
    """A finished run directory with 5 recipes: objective (x-0.3)^2 + k/100; one out of range."""
    run = tmp_path / "earlier"
    run.mkdir()
    (run / "experiment.yaml").write_text("name: demo\n")
    (run / "search_summary.json").write_text(json.dumps({"study_name": "demo-earlier"}))
    study = optuna.create_study(study_name="demo-earlier", storage=f"sqlite:///{run / 'optuna.db'}")
    study.set_user_attr("problem", problem)
    for x, k in [(0.3, 1), (0.9, 5), (0.35, 2), (0.0, 3)]:
        study.enqueue_trial({"x": x, "k": k})
        study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2 + t.suggest_int("k", 1, 5) / 100, n_trials=1)
    study.enqueue_trial({"x": 0.3, "k": 12})
    wide = study.ask({"x": optuna.distributions.FloatDistribution(0, 1),
                      "k": optuna.distributions.IntDistribution(1, 20)})
    study.tell(wide, 0.0)  # the best of all, but out of this search's range (k <= 5)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # not finished: never taken
    return run


def test_an_identical_problem_is_told_and_a_related_one_enqueues_its_best(tmp_path: Path) -> None:
    run = _earlier_study(tmp_path, problem="abc")
    same = read_source(str(run), "abc", None, 2, ["minimize"], _space)
    assert same.identical and same.study == "demo-earlier"
    assert len(same.told) == 4 and same.skipped == 1 and not same.enqueued
    params, value, attrs = same.told[0]
    assert params == {"x": 0.3, "k": 1} and value == pytest.approx(0.01) and attrs["warm_start_from"] == str(run)

    other = read_source(str(run), "another model", None, 2, ["minimize"], _space)
    assert not other.identical and not other.told and other.skipped == 1
    assert [p for p, _ in other.enqueued] == [{"x": 0.3, "k": 1}, {"x": 0.35, "k": 2}]  # the best two that fit
    assert [a["source_trial"] for _, a in other.enqueued] == [0, 2]
    assert other.to_dict() == {"from": str(run), "study": "demo-earlier", "storage": f"sqlite:///{run / 'optuna.db'}",
                               "problem": "related", "told": 0, "enqueued": 2, "skipped": 1}

    flipped = read_source(str(run), "abc", None, 2, ["maximize"], _space)
    assert not flipped.identical  # the same data but the other direction: not the same problem


def test_a_study_name_needs_a_storage_to_be_found_in(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run directory"):
        read_source("demo-nowhere", "abc", None, 2, ["minimize"], _space)
    url = f"sqlite:///{tmp_path / 'team.db'}"
    optuna.create_study(study_name="demo-there", storage=url)
    with pytest.raises(ConfigError, match="studies there: demo-there"):
        read_source("demo-nowhere", "abc", url, 2, ["minimize"], _space)


# ---------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def server() -> Any:
    if not postgres.available():
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    pg = postgres.Server().start()
    try:
        yield pg
    finally:
        pg.remove()


def test_a_wrong_password_or_an_unreachable_host_is_one_line_and_exit_2(
        server: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    url = server.createdb("refusals")
    wrong = server.url("refusals", password="not-it")
    dead = url.replace(f":{server.port}/", f":{postgres._free_port()}/")
    for bad, words in [(wrong, "password authentication failed"), (dead, "Connection refused")]:
        started = time.monotonic()
        assert main(["search", "demo", "--study-storage", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0] and "***" in err[0], err
        assert "not-it" not in err[0] and postgres.PASSWORD not in err[0]
        assert time.monotonic() - started < 15
    assert not ray.is_initialized()
    check_study_storage(url)  # the right one passes


def test_the_pickled_storage_holds_no_password_and_outlives_a_restart(
        server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.createdb("restart")
    storage = open_storage(url)
    study = optuna.create_study(study_name="demo-r", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    blob = pickle.dumps(storage)
    assert postgres.PASSWORD.encode() not in blob
    server.restart()  # every pooled connection is now broken
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    monkeypatch.setenv(ENV_URL, url)  # a worker process of the search: the password from its environment
    again = pickle.loads(blob)
    assert len(optuna.load_study(study_name="demo-r", storage=again).trials) == 3


def test_a_storage_call_waits_for_a_database_that_comes_back(server: Any) -> None:
    url = server.createdb("down")
    storage = open_storage(url)
    study = optuna.create_study(study_name="demo-d", storage=storage)
    server.stop()
    back = threading.Timer(3.0, server.start)
    back.start()
    started = time.monotonic()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # retried until the server is back
    back.join()
    assert time.monotonic() - started >= 2.5
    assert [t.state.name for t in load_study(url, "demo-d").trials] == ["COMPLETE"]


SEARCH = ["epochs=1", "eval.examples=60", "search.space=baselines", "search.max_concurrent=2",
          "search.time_attr=backprops", "search.confirm.top=0", "search.reuse=false", "search.warm_start=false",
          "search.budget=null"]


def _told_once(study: Any, trials: list[Any]) -> None:
    """Every Ray trial of the search is one finished Optuna trial, with its result."""
    by_ray = [t.user_attrs.get("ray_trial_id") for t in study.trials if t.user_attrs.get("ray_trial_id")]
    assert sorted(by_ray) == sorted(t.trial_id for t in trials)
    for trial in study.trials:
        if trial.user_attrs.get("ray_trial_id"):
            assert trial.state.name in ("COMPLETE", "PRUNED") and trial.value is not None


@pytest.mark.slow
@pytest.mark.usefixtures("shared_ray")
def test_two_searches_share_one_database_through_a_restart_and_the_second_starts_from_the_first(
        server: Any, tmp_path: Path) -> None:
    from raysearch.commands.search import search
    from raysearch.rundir.results import load_study as run_study
    from raysearch.rundir.summary import read_summary

    url = server.createdb("team")
    restarted = threading.Event()

    def restart_once_trials_run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                names = optuna.get_all_study_names(storage=url)
                if names and len(optuna.load_study(study_name=names[0], storage=url).trials) >= 2:
                    server.restart()
                    restarted.set()
                    return
            except Exception:
                pass
            time.sleep(0.5)

    watcher = threading.Thread(target=restart_once_trials_run, daemon=True)
    watcher.start()
    first = search("demo", SEARCH, samples=3, storage=str(tmp_path), name="a", progress=False, study_storage=url)
    watcher.join()
    assert restarted.is_set(), "the database was not restarted while the search ran"
    study = optuna.load_study(study_name="demo-a", storage=url)
    _told_once(study, first.trials)
    assert len(first.trials) == 3

    summary = read_summary(first.run_dir)
    assert summary["study_name"] == "demo-a" and summary["study_storage"] == redact(url)
    for path in Path(first.run_dir).rglob("*"):  # no run file holds the password
        if path.is_file() and path.suffix in (".json", ".yaml", ".csv", ".md", ".pkl", ".txt"):
            assert postgres.PASSWORD.encode() not in path.read_bytes(), path
    assert len(run_study(first.run_dir).trials) == len(study.trials)  # raysearch report finds it there

    second = search("demo", [*SEARCH, "search.warm_start_from=demo-a"], samples=2, storage=str(tmp_path),
                    name="b", progress=False, study_storage=url)
    assert sorted(optuna.get_all_study_names(storage=url)) == ["demo-a", "demo-b"]
    later = optuna.load_study(study_name="demo-b", storage=url)
    finished_first = [t for t in study.trials if t.state.name == "COMPLETE"]
    told = [t for t in later.trials if t.user_attrs.get("warm_start_from") == "demo-a"]
    assert len(told) == len(finished_first) and all(t.user_attrs.get("ray_trial_id") is None for t in told)
    assert sorted(t.value for t in told) == pytest.approx(sorted(t.value for t in finished_first))
    _told_once(later, second.trials)
    assert len(second.trials) == 2  # trained besides what it was told
    warm = read_summary(second.run_dir)["warm_started"]
    assert warm == [{"from": "demo-a", "study": "demo-a", "storage": redact(url), "problem": "identical",
                     "told": len(finished_first), "enqueued": 0, "skipped": 0}]
    _the_dashboard_shows_both(url, later)


def _the_dashboard_shows_both(url: str, later: Any) -> None:
    """optuna-dashboard on the team's database, read through its HTTP API as its pages read it."""
    import json
    import subprocess
    import sys
    import urllib.request

    pytest.importorskip("optuna_dashboard")
    port = postgres._free_port()
    command = str(Path(sys.executable).with_name("optuna-dashboard"))
    proc = subprocess.Popen([command, url, "--host", "127.0.0.1", "--port", str(port),
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(route: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=10) as response:
            return json.loads(response.read())

    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None and time.monotonic() < deadline:
            try:
                studies = get("/api/studies")["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert studies is not None, "optuna-dashboard did not answer"
        by_name = {s["study_name"]: s for s in studies}
        assert sorted(by_name) == ["demo-a", "demo-b"]
        assert all(s["directions"] == ["minimize"] for s in studies)
        attrs = {a["key"]: a["value"] for a in by_name["demo-b"]["user_attrs"]}
        assert {"space", "objective", "epochs"} <= set(attrs)
        detail = get(f"/api/studies/{by_name['demo-b']['study_id']}")
        assert len(detail["trials"]) == len(later.trials)
        assert detail["best_trials"][0]["number"] == later.best_trial.number
        labels = [{a["key"]: a["value"] for a in t["user_attrs"]}.get("label") for t in detail["trials"]]
        assert all(labels), labels  # every trial, told or trained, shows its recipe
    finally:
        proc.terminate()
        proc.wait(timeout=10)



def test_a_run_directorys_own_study_moves_with_it(tmp_path: Path) -> None:
    from raysearch.rundir.study_store import own_study, recall

    old = f"sqlite:///{tmp_path / 'was' / 'optuna.db'}"
    here = tmp_path / "now"
    assert own_study(old, str(here)) == old  # no optuna.db where the run is now: kept as recorded
    here.mkdir()
    (here / "optuna.db").write_bytes(b"")
    assert own_study(old, str(here)) == f"sqlite:///{here / 'optuna.db'}"
    assert recall(old) == f"sqlite:///{here / 'optuna.db'}"  # what the unpickled searcher re-opens
    shared = f"sqlite:///{tmp_path / 'team.db'}"  # a study given by --study-storage stays where it is
    assert own_study(shared, str(here)) == shared


def _tpe_study(storage: Any, trials: int) -> optuna.Study:
    """A seeded study run as the search runs its own: multivariate, grouped, constant-liar TPE on
    a conditional space, two trials open at a time."""
    sampler = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=0,
                                         n_startup_trials=4)
    study = optuna.create_study(storage=storage, sampler=sampler, study_name="tpe")
    running: list[optuna.Trial] = []
    for _ in range(trials):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1) + trial.suggest_float("lr", 0.01, 0.1, log=True)
        if trial.suggest_categorical("method", ["pgd", "free"]) == "pgd":
            x += trial.suggest_int("k", 1, 10) / 10 + trial.suggest_int("k_min", 1, 3) / 10
        else:
            x += trial.suggest_int("m", 2, 8) / 10
        trial.set_user_attr("x", x)
        running.append(trial)
        if len(running) == 2:
            first = running.pop(0)
            study.tell(first, first.user_attrs["x"])
    return study


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # TPE's group=True, as the search uses it
def test_the_run_directorys_own_study_reads_once_until_it_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna.storages import RDBStorage

    from raysearch.rundir.study_store import FileStorage, OwnStudyStorage, open_storage

    reads = {"n": 0}
    query = RDBStorage._get_trials

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        reads["n"] += 1
        return query(self, *args, **kwargs)

    monkeypatch.setattr(RDBStorage, "_get_trials", counted)
    plain = open_storage(f"sqlite:///{tmp_path}/plain.db")
    own = open_storage(f"sqlite:///{tmp_path}/own.db", own=True)
    assert type(plain) is FileStorage and type(own) is OwnStudyStorage
    asked = _tpe_study(plain, 30)
    plain_reads, reads["n"] = reads["n"], 0
    remembered = _tpe_study(own, 30)
    # the same suggestions, with most of TPE's reads of the open trials answered from the last one
    assert [t.params for t in remembered.trials] == [t.params for t in asked.trials]
    assert [t.value for t in remembered.trials] == [t.value for t in asked.trials]
    assert reads["n"] < 0.75 * plain_reads, (reads["n"], plain_reads)  # seen: 89 of 135 (the demo space: 27 %)

    # a write forgets: an open trial's new attribute is read back at once
    trial = remembered.ask()
    assert "seen" not in remembered.trials[-1].user_attrs
    trial.set_user_attr("seen", 1)
    assert remembered.trials[-1].user_attrs["seen"] == 1
    # what is remembered is not pickled (Tune pickles the searcher and its study)
    again = pickle.loads(pickle.dumps(own))
    assert type(again) is OwnStudyStorage and again._read == {}


def _attrs_written_at_once(storage: Any) -> None:
    """set_user_attrs on ``storage``: what Trial.set_user_attr would leave, in one commit."""
    from sqlalchemy import event

    from raysearch.rundir.study_store import set_user_attrs

    study = optuna.create_study(study_name="attrs", storage=storage)
    trial = study.ask()
    trial.set_user_attr("label", "old")
    commits = []
    event.listen(storage.engine, "commit", lambda conn: commits.append(1))
    set_user_attrs(trial, {"label": "PGD-10", "config.epochs": 3, "config.alpha": 0.25, "nested": [1, {"a": None}]})
    assert len(commits) == 1
    expected = {"label": "PGD-10", "config.epochs": 3, "config.alpha": 0.25, "nested": [1, {"a": None}]}
    assert trial.user_attrs == expected  # the running trial's own view, as Trial.set_user_attr keeps it
    assert study.trials[-1].user_attrs == expected  # and the storage's, the old value replaced
    study.tell(trial, 0.5)
    with pytest.raises(RuntimeError, match="finished"):  # a finished trial stays as it was, as in Optuna
        set_user_attrs(trial, {"late": 1})
    assert "late" not in study.trials[-1].user_attrs


def test_many_user_attributes_are_written_in_one_transaction(tmp_path: Path) -> None:
    from raysearch.rundir.study_store import set_user_attrs

    _attrs_written_at_once(open_storage(f"sqlite:///{tmp_path}/own.db", own=True))
    _attrs_written_at_once(open_storage(f"sqlite:///{tmp_path}/plain.db"))
    memory = optuna.create_study()  # any other storage: one by one, the same result
    trial = memory.ask()
    set_user_attrs(trial, {"label": "x", "config.epochs": 1})
    assert memory.trials[-1].user_attrs == {"label": "x", "config.epochs": 1}


def test_many_user_attributes_in_one_transaction_on_postgresql(server: Any) -> None:
    _attrs_written_at_once(open_storage(server.createdb("attrs")))
