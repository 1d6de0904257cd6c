"""The gradient-masking checks of an evaluation, pure functions in the style of auto-attack's
``checks.py``: a stronger attack never leaves more accuracy, robust ≤ FGSM ≤ clean, and
accuracy falls as ε grows. Each returns the problems it found, as sentences.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from raysearch.rundir.records import finite
from trainables.evaluation.attack_names import attack_pattern


def check_more_steps(weaker: float, stronger: float, weaker_name: str = "PGD-10",
                     stronger_name: str = "PGD-50x10", tolerance: float = 0.0) -> list[str]:
    """A stronger attack (more steps, restarts) must not leave more accuracy than a weaker one."""
    if stronger > weaker + tolerance:
        return [f"{stronger_name} accuracy {stronger:.4f} is above {weaker_name} accuracy {weaker:.4f}: "
                "more attack steps made the attack weaker, a sign of gradient masking or a bad step size"]
    return []


def check_order(clean: float, fgsm: float, robust: float, tolerance: float = 0.0) -> list[str]:
    """robust ≤ FGSM ≤ clean: an iterative attack is at least as strong as one step, which is at
    least as strong as none."""
    found = []
    if robust > fgsm + tolerance:
        found.append(f"PGD accuracy {robust:.4f} is above FGSM accuracy {fgsm:.4f}: the iterative attack is "
                     "weaker than a single step, a sign of gradient masking")
    if fgsm > clean + tolerance:
        found.append(f"FGSM accuracy {fgsm:.4f} is above clean accuracy {clean:.4f}: the attack helps the model, "
                     "a sign of gradient masking (or label leaking)")
    return found


def check_epsilon(accuracy_by_epsilon: Mapping[float, float], tolerance: float = 0.0) -> list[str]:
    """Accuracy must not rise as ε grows (ε = 0: clean accuracy)."""
    found = []
    pairs = sorted(accuracy_by_epsilon.items())
    for (eps_a, acc_a), (eps_b, acc_b) in zip(pairs, pairs[1:], strict=False):
        if acc_b > acc_a + tolerance:
            found.append(f"accuracy rises from {acc_a:.4f} at ε = {eps_a:.4g} to {acc_b:.4f} at ε = {eps_b:.4g}: "
                         "a larger threat radius should never help the model (gradient masking?)")
    return found


def sanity_checks(row: Mapping[str, Any], epsilon: float) -> list[str]:
    """All checks that ``row`` (one model's accuracies by attack name) allows."""

    def get(key: str) -> float:
        return finite(row.get(key))

    found: list[str] = []
    clean, fgsm, pgd10 = get("clean"), get("fgsm"), get("pgd10")
    if not any(math.isnan(v) for v in (clean, fgsm, pgd10)):
        found += check_order(clean, fgsm, pgd10)
    for name in row:
        match = attack_pattern().match(str(name))
        if match and match.group(1) == "pgd" and name != "pgd10" and not math.isnan(get(name)):
            if int(match.group(2)) >= 10 and not math.isnan(pgd10):
                found += check_more_steps(pgd10, get(name), "PGD-10", name.upper())
    sweep = {0.0: clean, epsilon / 2: get("pgd10@0.5eps"), epsilon: pgd10, min(2 * epsilon, 1.0): get("pgd10@2eps")}
    sweep = {e: a for e, a in sweep.items() if not math.isnan(a)}
    if len(sweep) > 1:
        found += check_epsilon(sweep)
    return found


__all__ = ["check_epsilon", "check_more_steps", "check_order", "sanity_checks"]
