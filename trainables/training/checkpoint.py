"""A run's state on disk: ``state.pt`` (everything to continue exactly), ``best.pt`` (the best
weights so far) and, for a search trial, ``trial.json`` (which fidelity level it is at and what
earlier levels cost). Loaded with ``weights_only=True``. Which of the two weights count is
:mod:`trainables.weights`' rule (re-exported here)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from trainables.weights import BEST_FILE, CHECKPOINT_RULES, STATE_FILE, counts_best, scored_file

TRIAL_FILE = "trial.json"


def save_run(run: Any, directory: str | os.PathLike[str]) -> None:
    """Write ``run``'s state and best weights into ``directory``."""
    torch.save(run.state_dict(), Path(directory) / STATE_FILE)
    if run.best_model is not None:
        torch.save(run.best_model, Path(directory) / BEST_FILE)


def load_run_state(directory: str | os.PathLike[str]) -> dict[str, Any]:
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=True)


def save_progress(directory: str | os.PathLike[str], progress: dict[str, Any]) -> None:
    Path(directory, TRIAL_FILE).write_text(json.dumps(progress))


def load_progress(directory: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(directory, TRIAL_FILE)
    return dict(json.loads(path.read_text())) if path.exists() else {}


__all__ = ["BEST_FILE", "CHECKPOINT_RULES", "STATE_FILE", "TRIAL_FILE", "counts_best", "load_progress",
           "load_run_state", "save_progress", "save_run", "scored_file"]
