"""Ending a search cleanly when its storage fails (a full disk, a lost mount).

A trial that cannot write its checkpoint fails with the operating system's error; when that
error is a storage one, :class:`StorageWatch` (a Tune stopper) ends the whole run at once
(trials stop as at a Ctrl-C: ``--resume`` continues them) and remembers what failed, so the
search can say it in one line. Errors raised in the driver itself (the Optuna database, Tune's
experiment state) are recognized by :func:`storage_problem` too.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from trainables.trials.faults import STORAGE_ERRNOS, storage_words


def storage_problem(error: BaseException | str | None) -> str | None:
    """The storage failure ``error`` reports (its words), or None when it is something else."""
    if error is None:
        return None
    seen: set[int] = set()
    current: Any = error
    while isinstance(current, BaseException) and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in STORAGE_ERRNOS:
            return current.strerror or str(current)
        current = current.__cause__ or current.__context__
    return storage_words(str(error))


# What the storage watch noticed in this driver (module-level: the watch Tune restores from
# tuner.pkl on --resume is a copy); cleared before each run.
PROBLEMS: list[str] = []
# The reserve file of the running stage (see raysearch.rundir.storage.hold_reserve), given back
# at the first storage failure so the driver can still write its state completely.
RESERVES: list[str] = []


class StorageWatch(Stopper):
    """Ends the run when a trial failed for lack of storage (see module doc).

    It ends it the way Tune ends a run at Ctrl-C, by sending the driver the SIGUSR1 Tune
    listens to: trials that were running stay unfinished in Tune's saved state, so ``--resume``
    continues them (a stopper's ``stop_all`` would mark them terminated, and a resume would
    take them as finished). Where no signal can be sent, ``stop_all`` ends the run instead."""

    def __init__(self) -> None:
        self._signalled = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "_signalled": False})

    @property
    def problem(self) -> str | None:
        return PROBLEMS[0] if PROBLEMS else None

    def notice(self, error: BaseException | str | None) -> None:
        found = storage_problem(error)
        if not found:
            return
        from raysearch.rundir.storage import release_reserve

        PROBLEMS.append(found)
        while RESERVES:
            release_reserve(RESERVES.pop())
        if not self._signalled and hasattr(signal, "SIGUSR1") \
                and threading.current_thread() is threading.main_thread():
            self._signalled = True
            os.kill(os.getpid(), signal.SIGUSR1)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.problem is not None and not self._signalled


class StorageErrors(Callback):
    """Hands each trial failure's text (Tune's ``error.txt``) to a :class:`StorageWatch`."""

    def __init__(self, watch: StorageWatch) -> None:
        self.watch = watch

    def _read(self, trial: Any) -> None:
        path = getattr(trial, "error_file", None)
        if path:
            try:
                with open(path, errors="replace") as f:
                    self.watch.notice(f.read())
            except OSError as err:  # the error file itself could not be written
                self.watch.notice(err)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._read(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._read(trial)


__all__ = ["PROBLEMS", "RESERVES", "STORAGE_ERRNOS", "StorageErrors", "StorageWatch", "storage_problem"]
