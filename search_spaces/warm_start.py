"""Warm start: the papers' default recipes, evaluated first and shown in every report.

Ray's OptunaSearch hands each ``points_to_evaluate`` entry to ``study.enqueue_trial``; the
define-by-run space then gets the enqueued value for every parameter it suggests and the
sampler's pick for any it does not. A point therefore holds exactly the parameter names its
space suggests on that branch (:attr:`WarmStart.params`); the constants the space returns
(``schedule``, ...) are added by the space itself. :attr:`WarmStart.config` is the config the
trial ends up with, which is what :func:`is_warm_start` matches against.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna.trial import FixedTrial

from search_spaces.joint import BRANCH_KEY, SPACES, namespaced, strip_search_keys
from trainables.config import EPS_8, flatten, parse_number
from trainables.labels import REFERENCE_LABEL


@dataclass(frozen=True)
class WarmStart:
    """One paper default: ``params`` go to Optuna, ``config`` is what the trial runs."""

    label: str
    space: str  # the family it belongs to
    params: dict[str, Any]
    config: dict[str, Any]


def _defaults(epsilon: float) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, family, the family space's parameters) of each default, in evaluation order.

    Each is the recipe as its authors' released code runs it (the README's table says which
    file each setting comes from); what the config's ``auto`` values resolve to is not
    repeated here (Amata's clean start, ATAS's reset and warm-up, M+'s cap and l_X).
    """
    return [
        # Amata Algorithm 1 as in its CIFAR experiments: K 2 -> 10 linearly, tau = 20/255,
        # attacks from the clean input (init auto -> zero). The paper is silent on batch norm;
        # DEAT's re-implementation (amata_cifar10.py) attacks in train mode.
        ("Amata-2-10 (linear)", "amata", {
            "method": "pgd", "amata.k_min": 2, "amata.k_max": 10,
            "amata.shape": "linear", "amata.tau": 2.5 * epsilon, "attack_bn": "train",
        }),
        # DEAT: M+ over batch replay, relax 1.01, step 10/255 (mdeat_cifar10.py), train-mode BN,
        # K capped at 8 replays (mplus.k_max auto: 7).
        ("M+DEAT (gamma=1.01)", "mplus", {
            "method": "free", "mplus.gamma": 1.01, "alpha": 1.25 * epsilon, "attack_bn": "train",
        }),
        # ATAS CIFAR defaults: gamma / c = 16/255 (2 eps), c = 0.01, beta = 0.5, eval-mode BN,
        # memory reset every 10 of 30 epochs and 5 warm-up epochs (auto: scaled to the run).
        ("ATAS (c=0.01, beta=0.5)", "atas", {
            "atas.gamma": 0.02 * epsilon, "atas.c": 0.01, "atas.beta": 0.5, "atas.reset_every": None,
            "attack_bn": "eval",
        }),
        # Madry et al. / fast_adversarial train_pgd.py: alpha * K = 2.5 eps, train-mode BN.
        (REFERENCE_LABEL, "baselines", {"method": "pgd", "k": 10, "attack_bn": "train"}),
    ]


def _resolve(space: str, params: dict[str, Any], epsilon: float) -> dict[str, Any]:
    """Run ``space`` on ``params`` and return the trial's config; fail if a name is unused."""
    trial = FixedTrial(params)
    constants = SPACES.get(space)(trial, epsilon=epsilon)
    if set(trial.params) != set(params):
        raise ValueError(f"warm-start point {params} does not match the {space!r} space: it suggests {sorted(trial.params)}")
    return strip_search_keys({**params, **constants})


@functools.lru_cache(maxsize=64)
def _warm_starts(space: str, epsilon: float) -> tuple[WarmStart, ...]:
    SPACES.get(space)  # a clear error for an unknown name
    points = []
    for label, family, params in _defaults(epsilon):
        if space == "all":
            params = {BRANCH_KEY: family, **{namespaced(family, k): v for k, v in params.items()}}
        elif space != family:
            continue
        points.append(WarmStart(label, family, params, _resolve(space, params, epsilon)))
    return tuple(points)


def warm_starts(space: str = "all", epsilon: float = EPS_8) -> list[WarmStart]:
    """The defaults that belong to ``space`` (all four for ``all``), in evaluation order."""
    return list(_warm_starts(space, epsilon))


def warm_start_points(space: str = "all", epsilon: float = EPS_8) -> list[dict[str, Any]]:
    """Plain parameter dicts for OptunaSearch's ``points_to_evaluate``."""
    return [dict(point.params) for point in warm_starts(space, epsilon)]


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, (bool, str)) or actual is None or expected is None:
        return bool(actual == expected)
    try:
        return math.isclose(parse_number(str(actual)), expected, rel_tol=1e-6)
    except ValueError:
        return False


def is_warm_start(config: Mapping[str, Any], epsilon: float | None = None) -> str | None:
    """The label of the default that ``config`` (flat or nested, search keys allowed) runs, or
    None. Only the default's own keys are compared; epsilon comes from the config when not given."""
    flat = strip_search_keys(flatten(config))
    if epsilon is None:
        epsilon = parse_number(str(flat.get("epsilon", EPS_8)))
    for point in warm_starts("all", epsilon):
        if all(_same(flat.get(key), value) for key, value in point.config.items()):
            return point.label
    return None
