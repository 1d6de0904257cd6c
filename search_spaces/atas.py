"""ATAS space: per-example adaptive step size (Huang et al., Algorithm 1).

alpha_i = gamma / (c + sqrt(v_i)); the paper's defaults are gamma / c = 16/255 (2 eps at
eps = 8/255), c = 0.01, beta = 0.5. ``atas.gamma`` scales with epsilon (its range is a
multiple of eps around the default 0.02 eps) and, like ``atas.c``, is searched
on a log scale: the two set the largest step together and TPE learns their correlation.
ATAS is a one-step method (K = 1) on the constant schedule. ``atas.reset_every`` None is
the authors' schedule scaled to the run (10 of 30 epochs, never before the last).
"""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.common import suggest_attack_bn

GAMMA_RANGE_EPS = (0.005, 0.08)  # gamma / epsilon, log scale; default 0.02 (16/255 * 0.01 at 8/255)
C_RANGE = (1e-3, 1e-1)
BETA_RANGE = (0.3, 0.9)
RESET_EVERY = (None, 0, 5, 10, 20)  # epochs between memory resets; None: the authors', scaled; 0: never


def atas_space(trial: optuna.Trial, *, epsilon: float) -> dict[str, Any]:
    """Define-by-run ATAS space for threat radius ``epsilon`` (pixel scale)."""
    trial.suggest_float("atas.gamma", GAMMA_RANGE_EPS[0] * epsilon, GAMMA_RANGE_EPS[1] * epsilon, log=True)
    trial.suggest_float("atas.c", *C_RANGE, log=True)
    trial.suggest_float("atas.beta", *BETA_RANGE)
    trial.suggest_categorical("atas.reset_every", RESET_EVERY)
    suggest_attack_bn(trial)
    return {"method": "atas", "schedule": "constant", "k": 1}
