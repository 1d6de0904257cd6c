"""Trainables that fail on purpose, for the fault tests (imported by Ray's workers by name)."""

from __future__ import annotations

from typing import Any

from trainables.trainable import TrialSetup, guard_failed, tune_trainable


@guard_failed
def fails_on_pgd10(config: dict[str, Any], setup: TrialSetup | None = None) -> None:
    """The real trainable, except that the PGD-10 paper default crashes every time it starts."""
    if config.get("trial.warm_start") == "PGD-10":
        raise RuntimeError("injected failure: this trial crashes every time")
    tune_trainable(config, setup)
