"""How good a model is: accuracy under attack (clean, PGD, CW; in the loop and on the test
split), the evaluation attacks by name, what a run watches (catastrophic overfitting, PMP),
and the objective a search minimizes.

The package imports nothing itself (``scoring`` and ``attack_names`` need no torch). 0.2's
``trainables.evaluation`` module was one file: its names resolve here for one release."""

from __future__ import annotations

import importlib
from typing import Any

_MOVED = {  # 0.2's trainables.evaluation name -> the module of this package that holds it
    **dict.fromkeys(("Accuracy", "fgsm_attack", "evaluate_accuracy", "attack_accuracy", "test_split_accuracy"),
                    "accuracy"),
    **dict.fromkeys(("Attack", "STEP_FRACTION", "attack_pattern", "parse_attacks"), "attack_names"),
    **dict.fromkeys(("COMonitor", "pmp_criterion"), "monitors"),
}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MOVED[name]}"), name)
