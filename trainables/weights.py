"""Which weights count: the one rule (``checkpoint: last | best``) for the engine's reported
accuracies and objective, confirmation, ``raysearch evaluate`` and the report.

``last`` (the default) takes a run's final weights: the ATAS paper reports its last epoch
(``ATAS.py`` saves only ``last.pt``), and it is what the search scored and confirmation
measured before this key (DEAT's scripts, in contrast, save the best PGD-10 epoch). ``best`` takes the weights of the best validation robust accuracy (``best.pt``). A run
stopped for catastrophic overfitting keeps its best checkpoint under either rule (SPEC §6): its
final weights are the collapsed ones the stop was made to avoid. Both accuracies are recorded
in every result (``robust_acc_last``, ``robust_acc_best``), so the gap shows.

No torch here: the CLI decides which file to load before torch is imported.

Example::

    >>> counts_best("last", "completed"), counts_best("last", "catastrophic_overfitting")
    (False, True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainables.status import Status

STATE_FILE, BEST_FILE = "state.pt", "best.pt"
CHECKPOINT_RULES = ("last", "best")
DEFAULT_CHECKPOINT = "last"


def counts_best(rule: str, status: str | Status) -> bool:
    """Whether a run that ended with ``status`` is scored on its best-validation weights under
    ``rule`` (else on its final weights): always under ``best``; under ``last`` only when it
    was stopped for catastrophic overfitting."""
    return rule == "best" or Status.of(status, Status.RUNNING) == Status.CO


def rule_of(config: Mapping[str, Any]) -> str:
    """The ``checkpoint`` rule of a flat training config (its default when unset)."""
    return str(config.get("checkpoint", DEFAULT_CHECKPOINT))


def scored_file(directory: str | os.PathLike[str], rule: str, status: str | Status) -> tuple[Path, str | None]:
    """(file, key of the weights in it; None: the file is the weights) of the weights that count
    in a checkpoint folder: ``best.pt`` (or the ``best_model`` of ``state.pt``) when
    :func:`counts_best`, else the ``model`` of ``state.pt``. A folder without ``state.pt``
    has only ``best.pt`` to offer."""
    folder = Path(directory)
    best, state = folder / BEST_FILE, folder / STATE_FILE
    if not state.exists():
        return best, None
    if counts_best(rule, status):
        return (best, None) if best.exists() else (state, "best_model")
    return state, "model"


__all__ = ["BEST_FILE", "CHECKPOINT_RULES", "DEFAULT_CHECKPOINT", "STATE_FILE", "counts_best", "rule_of",
           "scored_file"]
