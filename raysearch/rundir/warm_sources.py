"""Searches that start from earlier ones (``search.warm_start_from``).

Each entry is a run directory (its study is wherever its summary says) or the name of a study
in this search's ``study_storage``. Optuna's own mechanisms carry what the earlier study
learned into the new one:

* **identical problem** -- the same resolved shared training config (data, model, epochs, ε,
  objective, seed: the study's ``problem`` attribute) and the same objective directions: every
  finished trial is *told* to the new study with its value (``enqueue_trial`` + ``ask`` +
  ``tell``, as reused paper defaults are), so TPE models it and no budget is spent on it;
* **related problem** (another model, epochs, ε, data size): its best ``warm_start_best``
  finished trials that fit this search's space are *enqueued* (``study.enqueue_trial``), so they are the first suggestions
  after the paper defaults and go through ASHA's fidelity levels like any other trial.

A recipe that does not fit this search's space (a parameter out of its range, a method it does
not search) is left out: it is checked on a throw-away in-memory study first.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.registry import ConfigError

KEPT_ATTRS = ("robust_acc", "clean_acc", "backprops", "label", "status")


@dataclass
class Source:
    """One earlier study and what this search takes from it."""

    origin: str  # as written in warm_start_from
    study: str
    storage: str  # masked
    identical: bool
    told: list[tuple[dict[str, Any], Any, dict[str, Any]]] = field(default_factory=list)
    enqueued: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    skipped: int = 0  # recipes that do not fit this search's space

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.origin, "study": self.study, "storage": self.storage,
                "problem": "identical" if self.identical else "related", "told": len(self.told),
                "enqueued": len(self.enqueued), "skipped": self.skipped}


def fits_space(space: Callable[[Any], Any], params: dict[str, Any]) -> bool:
    """Whether ``space`` takes ``params`` as they are (each in range, none missing or extra)."""
    import optuna

    probe = optuna.create_study()
    probe.enqueue_trial(params)
    trial = probe.ask()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "Fixed parameter ... is out of range"
            space(trial)
    except Exception:
        return False
    return dict(trial.params) == dict(params)


def _locate(entry: str, study_url: str | None) -> tuple[str, str]:
    from raysearch.rundir.results import EXPERIMENT_FILE, study_location
    from raysearch.rundir.study_store import redact, study_names

    path = Path(entry).expanduser()
    if (path / EXPERIMENT_FILE).exists():
        location = study_location(path.resolve())
        if location is None:
            raise ConfigError("search.warm_start_from", entry, "is a run directory without an Optuna study")
        return location
    if study_url is None:
        raise ConfigError("search.warm_start_from", entry, "is not a run directory (and this search has no study "
                                                           "storage to look for a study of that name)")
    try:
        names = study_names(study_url)
    except Exception as err:
        raise ConfigError("search.warm_start_from", entry, f"cannot list the studies in {redact(study_url)} "
                                                           f"({str(err).splitlines()[0][:120]})") from None
    if entry not in names:
        shown = ", ".join(names[:8]) or "none"
        raise ConfigError("search.warm_start_from", entry, f"is neither a run directory nor a study in "
                                                           f"{redact(study_url)} (studies there: {shown})")
    return study_url, entry


def _value(trial: Any, multi: bool) -> Any:
    return list(trial.values) if multi else trial.value


def _feasible(trial: Any) -> bool:
    constraints = trial.system_attrs.get("constraints")
    return not constraints or all(c <= 0 for c in constraints)


def _best(study: Any, complete: list[Any], n: int) -> list[Any]:
    """The best ``n`` finished trials: feasible first, by value (multi-objective: the Pareto
    front first, by trial number)."""
    if len(study.directions) > 1:
        front = {t.number for t in study.best_trials}
        return sorted(complete, key=lambda t: (t.number not in front, t.number))[:n]
    sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
    finite = [t for t in complete if t.value is not None and math.isfinite(t.value)]
    return sorted(finite, key=lambda t: (not _feasible(t), sign * t.value))[:n]


def read_source(entry: str, problem: str, study_url: str | None, best: int, directions: Sequence[str],
                space: Callable[[Any], Any]) -> Source:
    """What this search takes from the earlier study ``entry`` (see the module docstring)."""
    from optuna.trial import TrialState

    from raysearch.rundir.study_store import load_study, redact

    url, name = _locate(entry, study_url)
    study = load_study(url, name)
    multi = len(study.directions) > 1
    same_goal = [d.name.lower() for d in study.directions] == [d.lower() for d in directions]
    identical = same_goal and study.user_attrs.get("problem") == problem
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.params and all(v is not None for v in (t.values or [None]))]
    source = Source(entry, name, redact(url), identical)
    for trial in complete if identical else _best(study, complete, len(complete)):
        if not identical and len(source.enqueued) >= best:
            break
        if not fits_space(space, dict(trial.params)):
            source.skipped += 1
            continue
        if identical:
            attrs = {"warm_start_from": entry, "source_trial": trial.number,
                     **{k: trial.user_attrs[k] for k in KEPT_ATTRS if k in trial.user_attrs}}
            source.told.append((dict(trial.params), _value(trial, multi), attrs))
        else:
            source.enqueued.append((dict(trial.params), {"warm_start_from": entry, "source_trial": trial.number}))
    return source


def read_sources(entries: Sequence[str], problem: str, study_url: str | None, best: int, directions: Sequence[str],
                 space: Callable[[Any], Any]) -> list[Source]:
    return [read_source(entry, problem, study_url, best, directions, space) for entry in entries]


__all__ = ["Source", "fits_space", "read_source", "read_sources"]
