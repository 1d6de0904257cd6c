"""Amata space: annealed K from ``amata.k_min`` to ``amata.k_max`` (Ye et al., AAAI 2021, Algorithm 1).

Amata raises the number of attack steps K_t over training while holding alpha_t * K_t = tau,
and combines with any multi-step inner maximizer ("Amata+Free", "Amata+ATTA"). The paper's
settings (2-10 on CIFAR, 2-5 and 2-4+Free on MNIST) sit inside the ranges below.

k_max >= k_min by construction with *fixed* ranges: ``amata.k_min`` in [1, 4] and
``amata.k_max`` in [4, 16] meet at 4. A dependent range (k_max in [k_min, 16]) is legal in
Optuna but changes the parameter's distribution from trial to trial; multivariate TPE then
models k_max with whichever range it saw first and falls back to independent sampling, so
the joint (k_min, k_max) model is lost. Schedules with k_max < 4 are nearly constant K,
which the ``baselines`` space already covers.
"""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.common import suggest_attack_bn, supports_loss

K_MIN_RANGE = (1, 4)
K_MAX_RANGE = (4, 16)
METHODS = ("pgd", "free", "atta")
ETA_RANGE = (0.1, 5.0)  # Appendix B.2: "eta ranging from 0.1 to 5"
SWITCH_RANGE = (0.2, 0.8)
TAU_RANGE_EPS = (1.5, 4.0)  # tau in multiples of epsilon; the paper's 20/255 is 2.5 eps


def amata_space(trial: optuna.Trial, *, epsilon: float) -> dict[str, Any]:
    """Define-by-run Amata space for threat radius ``epsilon`` (pixel scale)."""
    from trainables.schedules.amata import SHAPES

    method = trial.suggest_categorical("method", METHODS)
    trial.suggest_int("amata.k_min", *K_MIN_RANGE)
    trial.suggest_int("amata.k_max", *K_MAX_RANGE)
    shape = trial.suggest_categorical("amata.shape", SHAPES)
    if shape == "exp":
        trial.suggest_float("amata.eta", *ETA_RANGE, log=True)
    elif shape == "step":
        trial.suggest_float("amata.switch", *SWITCH_RANGE)
    trial.suggest_float("amata.tau", TAU_RANGE_EPS[0] * epsilon, TAU_RANGE_EPS[1] * epsilon)
    suggest_attack_bn(trial)
    constants: dict[str, Any] = {"schedule": "amata"}
    if not supports_loss(method, "trades"):  # Free's replays train on the attack's own loss: ce only
        constants["loss"] = "ce"
    return constants
