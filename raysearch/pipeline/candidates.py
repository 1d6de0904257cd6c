"""What the confirmation stage confirms: the candidate recipes of a search (its top finished full
runs, the paper defaults, the PGD-10 reference), each recipe's runs at one seed, and the
``confirmation.csv`` row a measured run becomes.

Seed one of a candidate is the search's own run (its final weights are evaluated as they are);
seeds ``seed + 1 …`` are trained anew at full fidelity (SPEC §8, confirmation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from raysearch.rundir.known import config_hash
from raysearch.rundir.records import TrialRecord
from raysearch.rundir.results import RunInfo, finished_runs, ranked
from trainables.labels import REFERENCE_LABEL, describe

REFERENCE = REFERENCE_LABEL


@dataclass(frozen=True)
class Candidate:
    """A recipe to confirm: its search trial, its label, and whether it races (the reference
    is measured beside the race; ``train`` False: only seeds already measured are taken)."""

    trial: TrialRecord
    label: str
    races: bool = True
    train: bool = True


@dataclass
class Item:
    """One confirmation run: a recipe (its search trial) at one seed."""

    trial: TrialRecord
    label: str
    seed: int
    config: dict[str, Any]
    checkpoint: str | None  # the search's own run: evaluate this checkpoint, train nothing

    @property
    def key(self) -> tuple[str, int]:
        return self.trial.trial_id, self.seed


def candidates(run: RunInfo, top: int, defaults: bool = False, reference: bool = False) -> list[Candidate]:
    """The top ``top`` finished full runs by validation objective (distinct configs, paper
    defaults among them), then every other finished paper default (``defaults``), then the
    finished PGD-10 reference: trained with every seed (``reference``) or taken as measured."""
    chosen: list[Candidate] = []
    seen: set[str] = set()
    done = finished_runs(run.trials)
    for trial in ranked(done):
        if len(chosen) >= top:
            break
        fingerprint = config_hash(trial.config)
        if fingerprint in seen or trial.warm_start == REFERENCE:
            continue
        seen.add(fingerprint)
        chosen.append(Candidate(trial, trial.warm_start or f"#{len(chosen) + 1} {describe(trial.config)}"))
    for trial in done:
        fingerprint = config_hash(trial.config)
        if trial.warm_start and fingerprint not in seen and (defaults or trial.warm_start == REFERENCE):
            seen.add(fingerprint)
            is_reference = trial.warm_start == REFERENCE
            chosen.append(Candidate(trial, trial.warm_start, races=not is_reference,
                                    train=not is_reference or reference or defaults))
    return chosen


def item(candidate: Candidate, i: int) -> Item:
    """The candidate's ``i``-th seed (0: the search's own run)."""
    trial = candidate.trial
    base = int(trial.config.get("seed", 0) or 0)
    # The search's own run is seed one; a population member's weights came through exploits,
    # not its learned schedule, so every seed replays that schedule from scratch.
    own = i == 0 and trial.checkpoint is not None and not trial.population
    return Item(trial, candidate.label, base + i, {**trial.config, "seed": base + i},
                str(trial.checkpoint) if own else None)


def _row(item: Item, measured: dict[str, Any], source: str) -> dict[str, Any]:
    """The ``confirmation.csv`` row of ``item`` from what was ``measured`` (``source``: where)."""
    row = {"trial_id": item.trial.trial_id, "label": item.label, "seed": item.seed,
           **{k: measured.get(k, math.nan) for k in ("clean_acc", "robust_acc", "val_clean_acc", "val_robust_acc",
                                                     "val_objective", "train_seconds")},
           "backprops": measured.get("backprops", item.trial.metrics.get("backprops")),
           "recipe": describe(item.config), "warm_start": item.trial.warm_start or "", "source": source,
           "dropped": "", "config_hash": config_hash(item.config)}
    row.update({k: v for k, v in measured.items() if k.startswith("test_")})
    return row
