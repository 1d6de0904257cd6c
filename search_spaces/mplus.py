"""M+ space: the gradient-magnitude controller of DEAT (Wang et al., Algorithm 1) over a base method.

M+ raises K by one whenever the epoch's input-gradient magnitude l_X exceeds gamma times its
last threshold. ``method`` is the base: ``free`` is M+DEAT (batch replay), ``pgd`` is M+PGD,
and with ``loss`` trades / mart it is M+TRADES / M+MART. Free trains on the attack's own loss,
so ``loss`` is searched only on the ``pgd`` branch and fixed to ``ce`` on ``free``.

One step size ``alpha`` on a log scale serves both bases: DEAT's replays use about 1.25 eps
(10/255, Appendix C.2-C.3, ablated over 8-14/255) while multi-step PGD wants a smaller one
(under DEAT's step rule it is the floor of α = max(ε/K, alpha)).
"""

from __future__ import annotations

from typing import Any

import optuna

from search_spaces.common import loss_names, suggest_attack_bn, supports_loss

METHODS = ("free", "pgd")
GAMMA_RANGE = (1.0, 1.2)
ALPHA_RANGE_EPS = (0.25, 2.0)  # alpha in multiples of epsilon, log scale


def mplus_space(trial: optuna.Trial, *, epsilon: float) -> dict[str, Any]:
    """Define-by-run M+ space for threat radius ``epsilon`` (pixel scale)."""
    method = trial.suggest_categorical("method", METHODS)
    trial.suggest_float("mplus.gamma", *GAMMA_RANGE)
    trial.suggest_float("alpha", ALPHA_RANGE_EPS[0] * epsilon, ALPHA_RANGE_EPS[1] * epsilon, log=True)
    suggest_attack_bn(trial)
    constants: dict[str, Any] = {"schedule": "mplus"}
    if supports_loss(method, "trades"):
        trial.suggest_categorical("loss", loss_names())
    else:
        constants["loss"] = "ce"
    return constants
