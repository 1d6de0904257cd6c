"""Define-by-run Optuna search spaces over efficient adversarial-training recipes (SPEC section 8).

A space is a function ``space(trial) -> dict`` in the style Ray Tune's OptunaSearch takes: it
calls ``trial.suggest_*`` with flat dotted config keys (``amata.k_min``, ``method``) and returns
the config keys it fixes (``{"schedule": "amata"}``). The suggested values plus the returned
ones are always a valid partial config; invalid combinations cannot be drawn. Step sizes are
multiples of the threat radius, so :func:`get_space` builds a space for one epsilon.

Keys under ``optuna.`` (the ``all`` space's branch :data:`BRANCH_KEY` and its namespaced
copies) are Optuna-only: drop them with :func:`strip_search_keys` before ``parse_config``.
Choices that name registry entries (outer losses, which method takes which loss) are read
from the trainables registries. No computation happens here or at import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import optuna

from search_spaces.joint import (
    BRANCH_KEY,
    OPTUNA_PREFIX,
    SPACES,
    family_of,
    namespaced,
    strip_search_keys,
)
from search_spaces.warm_start import (
    WarmStart,
    is_warm_start,
    warm_start_points,
    warm_starts,
)
from trainables.config import EPS_8
from trainables.registry import ConfigError


def get_space(name: str, epsilon: float = EPS_8) -> Callable[[optuna.Trial], dict[str, Any]]:
    """The define-by-run function of space ``name`` for threat radius ``epsilon``.

    A ``functools.partial`` of a module-level function, so it pickles with the searcher
    when Tune checkpoints the experiment.
    """
    space = SPACES.get(name)
    if not 0 < epsilon <= 1:
        raise ConfigError("epsilon", epsilon, "must be in (0, 1] (pixel scale, e.g. 8/255)")
    return functools.partial(space, epsilon=epsilon)


__all__ = [
    "BRANCH_KEY",
    "OPTUNA_PREFIX",
    "SPACES",
    "WarmStart",
    "family_of",
    "get_space",
    "is_warm_start",
    "namespaced",
    "strip_search_keys",
    "warm_start_points",
    "warm_starts",
]
