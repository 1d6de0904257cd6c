"""``raysearch confirm``: re-train the best recipes of a finished search with more seeds, choose
on the validation split, measure on the test split (SPEC §8, confirmation).

This module checks the arguments against the run directory, hands them to
:func:`raysearch.pipeline.confirmation.run_confirmation` (the stage itself: candidates, racing
rounds, ``confirmation.csv``, the summary) and prints
:func:`raysearch.reporting.text.confirmation_text` of its result.
"""

from __future__ import annotations

from pathlib import Path

from raysearch.pipeline.candidates import _row
from raysearch.pipeline.confirmation import (
    OWN_SOURCES,
    PLANNED_FILE,
    REFERENCE,
    Candidate,
    Confirmation,
    Item,
    _race,
    candidates,
    item,
    run_confirmation,
)
from raysearch.pipeline.confirmation_stage import _stage_folder, _stage_results
from raysearch.rundir.confirmation_rows import COLUMNS, CONFIRMATION_CSV, read_rows
from raysearch.rundir.known import config_hash
from raysearch.rundir.outcomes import ConfirmResult
from raysearch.rundir.results import load_run
from trainables.registry import ConfigError


def confirm(run_dir: str | Path, top: int | None = None, seeds: int | None = None, progress: bool = True,
            attacks: str | None = None) -> ConfirmResult:
    """Confirm an existing run directory: its ``top`` recipes raced over up to ``seeds`` seeds.

    Example::

        >>> import raysearch
        >>> result = raysearch.confirm("runs/demo-20261202-120000", top=2, seeds=3)  # doctest: +SKIP
        >>> [(s.label, s.val_robust.mean, s.robust.mean) for s in result.stats]  # doctest: +SKIP
    """
    from raysearch.rundir.results import read_experiment

    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise ConfigError("run_dir", str(run_dir), "is not a directory")
    _, meta = read_experiment(path.resolve())
    defaults = (meta.get("search") or {}).get("confirm") or {}
    top = int(defaults.get("top", 3) if top is None else top)
    seeds = int(defaults.get("seeds", 3) if seeds is None else seeds)
    if top < 0:
        raise ConfigError("top", top, "must be >= 0")
    if seeds < 1:
        raise ConfigError("seeds", seeds, "must be >= 1 (the search's own run counts as one)")
    if attacks is not None:
        from trainables.evaluation.attack_names import parse_attacks

        parse_attacks(attacks, allow_autoattack=False)
    run = load_run(path)
    if not candidates(run, top):
        raise ConfigError("run_dir", str(run_dir), "has no finished full-fidelity trial to confirm")
    result = run_confirmation(path, top, seeds, progress=progress, attacks=attacks)
    if progress:
        from raysearch.reporting.text import confirmation_text

        print(confirmation_text(result), flush=True)
    return result


# Shims for one release: these names lived here before the stage moved to raysearch.pipeline
# (candidates, confirmation_stage, confirmation) and raysearch.rundir (confirmation_rows,
# outcomes). Import them from there; Tune may have pickled the classes by this module path, so
# they stay importable here until the next release drops this list.
__all__ = ["COLUMNS", "CONFIRMATION_CSV", "OWN_SOURCES", "PLANNED_FILE", "REFERENCE", "Candidate", "ConfirmResult",
           "Confirmation", "Item", "_race", "_row", "_stage_folder", "_stage_results", "candidates", "config_hash",
           "confirm", "item", "read_rows", "run_confirmation"]
