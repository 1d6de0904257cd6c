"""Racing over seeds: the confirmation adds seeds in rounds and drops the clearly worse.

The procedure is *racing* as irace runs it (López-Ibáñez et al., "The irace package", 2016;
Birattari et al.'s F-race, 2002) with irace's paired Student-t elimination (``testType:
t-test``): every seed is a block (one seed gives every candidate the same initialization and
data order, so differences are paired), and after each round that leaves at least
``first_test`` shared seeds, a candidate whose paired difference in *validation* objective
against the leader (the lowest mean) has a 95 % interval entirely above zero is dropped.
The race is decided when every candidate but the leader is dropped or lies within
``margin`` of it (the headline's claims no longer change with more seeds), or when the seeds
run out. Only the validation split is read: the test split never decides.

Example::

    >>> rows = [{"trial_id": t, "seed": s, "val_objective": v} for t, s, v in
    ...         [("a", 0, 0.20), ("a", 1, 0.21), ("b", 0, 0.40), ("b", 1, 0.42)]]
    >>> race_round(rows, ("a", "b")).dropped[0].trial_id
    'b'
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raysearch.reporting.stats import Interval, paired_difference

KEY = "val_objective"
FIRST_TEST = 2  # irace tests after 5 blocks; the confirmation has 2-5 seeds, so after 2


@dataclass(frozen=True)
class Drop:
    """A candidate left behind: after ``seeds`` seeds, its paired difference against ``leader``."""

    trial_id: str
    seeds: int
    leader: str
    diff: Interval

    def reason(self, leader_label: str) -> str:
        return (f"dropped after {self.seeds} seeds: validation objective {self.diff.mean:+.4f} worse than "
                f"{leader_label} (95% CI {self.diff.low:+.4f} to {self.diff.high:+.4f})")


@dataclass(frozen=True)
class RoundDecision:
    leader: str
    alive: tuple[str, ...]
    dropped: tuple[Drop, ...]
    decided: bool


def mean_of(rows: Sequence[dict[str, Any]], trial_id: str, key: str = KEY) -> float:
    values = [float(r[key]) for r in rows if str(r["trial_id"]) == trial_id and r.get(key) is not None
              and math.isfinite(float(r[key]))]
    return statistics.fmean(values) if values else math.inf


def race_round(rows: Sequence[dict[str, Any]], alive: Sequence[str], margin: float = 0.02,
               first_test: int = FIRST_TEST, key: str = KEY) -> RoundDecision:
    """One elimination step over the candidates ``alive`` (trial ids) from their measured rows."""
    leader = min(alive, key=lambda t: (mean_of(rows, t, key), list(alive).index(t)))
    dropped, kept, settled = [], [leader], True
    for trial in alive:
        if trial == leader:
            continue
        diff = paired_difference(rows, trial, leader, key)
        if diff.n >= first_test and diff.low > 0:
            dropped.append(Drop(trial, diff.n, leader, diff))
            continue
        kept.append(trial)
        if not (diff.n >= first_test and -margin <= diff.low and diff.high <= margin):
            settled = False
    return RoundDecision(leader, tuple(t for t in alive if t in kept), tuple(dropped), settled)


__all__ = ["Drop", "FIRST_TEST", "RoundDecision", "mean_of", "race_round"]
