"""Building, running and restoring one Ray Tune run (a *stage* of a search: the search itself,
the reference run a ``reference`` target needs, the confirmation runs).

Ray 2.60 notes: the Tuner is configured with ``ray.tune.RunConfig`` / ``CheckpointConfig`` /
``FailureConfig`` (the ``ray.train`` ones are Train V2's and only warn here); ``Tuner.fit``
never raises for failed trials, so a trial that crashes twice (``FailureConfig(max_failures=1)``)
is recorded as failed and the search goes on. Tune traps the first Ctrl-C, stops the trials,
writes its experiment state and returns normally; :class:`InterruptWatch` notices that
Ctrl-C, so the search can say it was interrupted instead of summarizing it as finished (and
the searcher leaves the cut-short trials unfinished for ``--resume``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from trainables.training.checkpoint import STATE_FILE

MAX_FAILURES = 1  # a crashing trial is retried once, then recorded as failed
# Set by the first Ctrl-C of a run (module-level: the watch Tune restores from tuner.pkl on
# --resume is a copy, this flag is not); cleared by the search before each launch.
INTERRUPT = threading.Event()


class InterruptWatch(Callback):
    """Notices the Ctrl-C (SIGINT) that makes Tune end a run early.

    Tune installs its own SIGINT handler when a run starts; on the first loop step this
    callback puts a handler in front of it that records the interrupt (and tells the
    searcher, which then leaves cut-short trials unfinished) before handing the signal on.
    A second Ctrl-C reaches Tune's original handler and stops at once, as Tune documents.
    """

    def __init__(self, searcher: Any = None) -> None:
        self.searcher = searcher
        self._installed = False

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks into tuner.pkl
        return {**self.__dict__, "_installed": False}

    @property
    def interrupted(self) -> bool:
        return INTERRUPT.is_set()

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self._installed or threading.current_thread() is not threading.main_thread():
            return
        self._installed = True
        previous = signal.getsignal(signal.SIGINT)

        def noticed(signum: int, frame: Any) -> None:
            INTERRUPT.set()
            if self.searcher is not None:
                self.searcher.interrupted = True
            signal.signal(signal.SIGINT, previous)  # Tune's own handler takes it from here
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGINT, noticed)


@dataclass
class Stage:
    """One Tune run: where it lives and everything ``tune.Tuner`` needs."""

    name: str
    storage_path: str
    trainable: Any
    param_space: dict[str, Any] = field(default_factory=dict)
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent: int | None = None
    callbacks: list[Any] = field(default_factory=list)
    reuse_actors: bool = True
    stop: Any = None
    keep_checkpoints: int = 2

    @property
    def path(self) -> str:
        return "/".join([self.storage_path.rstrip("/"), self.name]) if "://" in self.storage_path \
            else str(Path(self.storage_path, self.name))


def _trial_dirname(trial: Any) -> str:
    """Short trial folders (Ray's default repeats every parameter in the name)."""
    return f"trial_{trial.trial_id}"


def build_tuner(stage: Stage) -> Any:
    """A new Tune run of ``stage``; a :class:`StorageWatch` ends it when storage fails."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from raysearch.tuning.storage_watch import StorageErrors, StorageWatch
    from raysearch.tuning.train_groups import RemoveTrainGroups

    if stage.stop is None:
        stage.stop = StorageWatch()
        stage.callbacks = [*stage.callbacks, StorageErrors(stage.stop), RemoveTrainGroups()]

    return tune.Tuner(
        stage.trainable,
        param_space=stage.param_space,
        tune_config=tune.TuneConfig(
            search_alg=stage.search_alg,
            scheduler=stage.scheduler,
            num_samples=stage.num_samples,
            # As many trials at once as there are slots. This also lets Tune start every
            # slot's actor at once: without a limit it keeps one trial pending for a custom
            # searcher, so the second slot's actor is only requested once the first runs
            # (~3 s idle on the demo), and a queued suggestion waits with stale information.
            max_concurrent_trials=stage.max_concurrent,
            trial_dirname_creator=_trial_dirname,
            # A fresh actor per trial costs a process start and the torch import (seconds),
            # a large share of a small trial: keep the actors and hand them the next trial.
            reuse_actors=stage.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=stage.name,
            storage_path=stage.storage_path,
            stop=stage.stop,
            # Keep two checkpoints: Tune forces an experiment snapshot every `num_to_keep`
            # trial checkpoints, so the one a snapshot points at still exists after a kill.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=stage.keep_checkpoints),
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            callbacks=[CSVLoggerCallback(), JsonLoggerCallback(), *stage.callbacks],
            verbose=0,
        ),
    )


def restore_tuner(path: str, trainable: Any, after_storage_error: bool = False) -> Any:
    """Continue a stage: finished trials are kept, unfinished ones continue from their last
    checkpoint; errored ones already had their retry and stay failed (a trial whose Tune
    snapshot is stale ends at once as failed: :func:`trainables.tune.functions.guard_failed`).
    After a storage error, errored trials are continued too: the storage failed, not them."""
    from ray import tune

    from raysearch.tuning.budget_limiter import limit_legacy_budget

    check_run_state(path)
    tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=after_storage_error,
                               restart_errored=False)
    # A 0.2 run's searcher counted the budget itself; wrapped, it keeps counting after the resume.
    # Tune has no public setter for a restored Tuner's searcher: its TuneConfig is the one place.
    config = getattr(getattr(tuner, "_local_tuner", None), "_tune_config", None)
    if config is not None and config.search_alg is not None:
        config.search_alg = limit_legacy_budget(config.search_alg)
    return tuner


def fit(tuner: Any, path: str, trials: int = 1) -> Any:
    """``tuner.fit()``, with a storage failure (in a trial or in the driver) turned into one
    :class:`~raysearch.rundir.storage.StorageError` naming the path; finished work stays."""
    from raysearch.rundir.storage import StorageError, hold_reserve, release_reserve, reserve_bytes
    from raysearch.tuning.storage_watch import PROBLEMS, RESERVES, storage_problem

    PROBLEMS.clear()
    reserve = hold_reserve(path, reserve_bytes(trials))
    RESERVES[:] = [reserve] if reserve else []
    try:
        grid = tuner.fit()
    except Exception as err:
        problem = storage_problem(err)
        if problem is None:
            raise
        raise StorageError(f"writing the run directory {path} failed: {problem}; free space, then continue with "
                           f"raysearch search --resume {path}") from None
    finally:
        RESERVES.clear()
        release_reserve(reserve)
    if PROBLEMS:
        raise StorageError(f"a trial could not write to the run directory {path}: {PROBLEMS[0]}; free space, "
                           f"then continue with raysearch search --resume {path}")
    return grid


def check_run_state(path: str) -> None:
    """Make sure Tune resumes from a readable experiment state: a newest state file that is not
    valid JSON (written by a raysearch before the storage reserve, or cut short by a crash of
    the machine) is set aside as ``*.damaged`` so Tune takes the one before it; when none is
    readable, say so in one line instead of letting Tune silently start the search over."""
    import json

    from raysearch.rundir.storage import StorageError

    if "://" in path:
        return
    states = sorted(Path(path).glob("experiment_state-*.json"))
    while states:
        newest = states.pop()
        try:
            json.loads(newest.read_text())
            return
        except (ValueError, UnicodeDecodeError):
            newest.rename(newest.with_suffix(".json.damaged"))
    raise StorageError(f"the Ray Tune state in {path} is damaged (cut short while it was written) and no earlier "
                       f"copy is readable, so the search cannot be resumed; start a new search beside it (its finished "
                       f"paper defaults are reused)")


def can_restore(path: str) -> bool:
    if "://" in path:
        from ray import tune

        return bool(tune.Tuner.can_restore(path))
    return Path(path, "tuner.pkl").exists()


@contextlib.contextmanager
def own_sigint() -> Iterator[None]:
    """Give the process its own SIGINT (and SIGUSR1) handlers back after Tune: a run that ends
    normally leaves Tune's handler installed, and the next Ctrl-C (during confirmation or a
    report) would go to a finished run."""
    signals = [signal.SIGINT, *([signal.SIGUSR1] if hasattr(signal, "SIGUSR1") else [])]
    previous = {sig: signal.getsignal(sig) for sig in signals}
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in previous.items():
                signal.signal(sig, handler)


# Tune's lines that raysearch says in its own words (the end of an interrupted run, with
# ``raysearch search --resume RUN_DIR`` instead of ``Tuner.restore(...)``) or that are no news
# (a population member restarted by PBT before its progress.csv reached the storage: the
# driver's copy goes on).
TUNE_NOISE = {
    "ray.tune.tune": ("Stop signal received", "Trials did not complete", "Experiment has been interrupted"),
    "ray.tune.logger.logger": ("Remote file not found",),
}


def _quiet(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(TUNE_NOISE.get(record.name, ()))


@contextlib.contextmanager
def quiet_tune() -> Iterator[None]:
    """Tune's environment for a raysearch run, restored afterwards.

    Tune's CSV and JSON loggers are passed explicitly and TensorBoard is written by
    raysearch's own callback, so Ray's automatic loggers (which add a TBX logger) are off;
    the snapshots forced by ``CheckpointConfig(num_to_keep)`` are intended (no warning);
    the legacy reporter with ``verbose=0`` prints nothing (raysearch prints its own lines, and
    a line per trial failure instead of Tune's traceback, which stays in the trial's error.txt)."""
    values = {"TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1", "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",
              "RAY_IGNORE_UNHANDLED_ERRORS": "1", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
              "RAY_AIR_NEW_OUTPUT": "0"}
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    loggers = [logging.getLogger(name) for name in TUNE_NOISE]
    for log in loggers:
        log.addFilter(_quiet)
    try:
        with own_sigint():
            yield
    finally:
        for log in loggers:
            log.removeFilter(_quiet)
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def trial_checkpoint(trial_dir: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint folder of a trial that holds a run state."""
    folders = sorted(Path(trial_dir).glob("checkpoint_*"))
    for folder in reversed(folders):
        if (folder / STATE_FILE).exists():
            return folder
    return None


__all__ = ["INTERRUPT", "MAX_FAILURES", "InterruptWatch", "TUNE_NOISE", "Stage", "build_tuner", "can_restore", "check_run_state", "quiet_tune", "restore_tuner",
           "trial_checkpoint"]
