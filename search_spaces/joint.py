"""The ``all`` space (a categorical over the method families, each branch its family's space)
and :data:`SPACES`, the registry of every space by contract name.

The branch is an Optuna parameter named :data:`BRANCH_KEY` (``"optuna.family"``). It is not
a config key: Ray's OptunaSearch copies every suggested parameter into the trial config, and
raysearch's searcher drops every key under :data:`OPTUNA_PREFIX` (:func:`strip_search_keys`)
before a trial sees its config, so trial configs hold config keys only.

Optuna forbids one parameter name with different categorical choices in one study, and the
families disagree on ``method`` ({pgd, free, atta} for Amata, {free, pgd} for M+, ...). So
inside ``all`` a family's top-level keys (no dot: ``method``, ``k``, ``alpha``, ``loss``) are
suggested as ``optuna.<family>.<key>`` and copied back to their config key in the returned
dict; its own section keys (``amata.k_min``, ``mplus.gamma``, ``atas.c``) keep their names.
Each family then also keeps its own TPE model of its step size and K.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import optuna

from search_spaces.amata import amata_space
from search_spaces.atas import atas_space
from search_spaces.baselines import baselines_space
from search_spaces.mplus import mplus_space
from trainables.registry import Registry

OPTUNA_PREFIX = "optuna."  # Optuna-only parameter names, never config keys
BRANCH_KEY = f"{OPTUNA_PREFIX}family"

Space = Callable[..., dict[str, Any]]

FAMILIES: dict[str, Space] = {
    "amata": amata_space,
    "mplus": mplus_space,
    "atas": atas_space,
    "baselines": baselines_space,
}


def namespaced(family: str, key: str) -> str:
    """The Optuna parameter name of config key ``key`` in family ``family`` inside ``all``."""
    return key if "." in key else f"{OPTUNA_PREFIX}{family}.{key}"


def strip_search_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the Optuna-only keys (the branch, the namespaced copies) from a trial config."""
    return {key: value for key, value in config.items() if not key.startswith(OPTUNA_PREFIX)}


def family_of(params: Mapping[str, Any], space: str) -> str:
    """The family a trial of space ``space`` ran: its branch in ``all``, else the space itself."""
    return str(params.get(BRANCH_KEY, space))


class _Namespaced:
    """A trial view that suggests a family's top-level keys under :func:`namespaced` names and
    remembers their values under the config key. Duck-typed like Ray's suggest captor."""

    def __init__(self, trial: optuna.Trial, family: str) -> None:
        self._trial, self._family = trial, family
        self.values: dict[str, Any] = {}

    def _keep(self, key: str, value: Any) -> None:
        if namespaced(self._family, key) != key:
            self.values[key] = value

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        value = self._trial.suggest_float(namespaced(self._family, name), low, high, step=step, log=log)
        self._keep(name, value)
        return value

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        value = self._trial.suggest_int(namespaced(self._family, name), low, high, step=step, log=log)
        self._keep(name, value)
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._trial.suggest_categorical(namespaced(self._family, name), choices)
        self._keep(name, value)
        return value


def joint_space(trial: optuna.Trial, *, epsilon: float) -> dict[str, Any]:
    """Define-by-run ``all`` space: pick a family, then run its space in that branch."""
    family = trial.suggest_categorical(BRANCH_KEY, tuple(FAMILIES))
    view = _Namespaced(trial, family)
    constants = FAMILIES[family](cast(optuna.Trial, view), epsilon=epsilon)
    return {**view.values, **constants}


SPACES: Registry[Space] = Registry("space", {**FAMILIES, "all": joint_space})
