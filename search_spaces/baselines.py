"""Baselines space: fixed-K methods on the constant schedule.

- ``pgd``: K attack steps (Madry et al.), K in 1..10, step size the method default 2.5 eps / K.
- ``fgsm_rs``: one step from a random start (Wong et al.), alpha in 1.0-1.5 eps as "Fast" explored.
- ``free``: m replays (Shafahi et al.), m in 2..8, i.e. K = m - 1 in 1..7; ce loss only.
- ``atta``: ATTA-K (Zheng et al.) with its perturbation memory, K in 1..3.

``k`` is one Optuna parameter whose integer range depends on the method branch; Optuna
allows this for numbers (only a categorical's choices must stay fixed per name).
"""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.common import suggest_attack_bn, supports_loss

METHODS = ("pgd", "fgsm_rs", "free", "atta")
K_RANGES = {"pgd": (1, 10), "free": (1, 7), "atta": (1, 3)}
FGSM_ALPHA_RANGE_EPS = (1.0, 1.5)


def baselines_space(trial: optuna.Trial, *, epsilon: float) -> dict[str, Any]:
    """Define-by-run baselines space for threat radius ``epsilon`` (pixel scale)."""
    method = trial.suggest_categorical("method", METHODS)
    constants: dict[str, Any] = {"schedule": "constant"}
    if method == "fgsm_rs":
        trial.suggest_float("alpha", FGSM_ALPHA_RANGE_EPS[0] * epsilon, FGSM_ALPHA_RANGE_EPS[1] * epsilon)
        constants["k"] = 1
    else:
        trial.suggest_int("k", *K_RANGES[method])
    suggest_attack_bn(trial)
    if not supports_loss(method, "trades"):
        constants["loss"] = "ce"
    return constants
