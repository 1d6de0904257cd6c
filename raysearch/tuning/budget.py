"""What trials cost before they run, and the search budget (SPEC §8, ``search.budget``).

:class:`CostModel` knows the experiment's data size, batch size, epochs and fidelity levels,
so it can say how many backprops a recipe's run at a level costs: exactly for schedules whose
plan is fixed (constant, Amata, DEAT-d, piecewise) and as an upper bound for controllers
(M+, DEAT-acc: K_t ≤ min(t, their largest K)). The searcher starts a trial only when what is
spent, plus what the running trials are committed to, plus the costliest first level any
trial of the space can have, fits the budget; the scheduler promotes a trial to its next
level only when that level fits too. So the budget is never exceeded by more than the
estimates' slack, and paper defaults, which always finish, are counted but never stopped.

The space probe (:func:`branch_configs`) walks every branch of a define-by-run space with
integer ranges at their upper end and float ranges at both ends: the costliest configuration
of each branch is among them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainables.config import TrainConfig, parse_config
from trainables.data.loader import batches_in
from trainables.evaluation.scoring import reference_backprops
from trainables.schedules import Schedule
from trainables.training.run_parts import make_schedule
from trainables.trials.fidelity import level_config, level_epochs
from trainables.trials.setup import split_trial_config


class _Probe:
    """A stand-in Optuna trial that walks one corner of a define-by-run space: one choice of
    every categorical, the upper end of every integer range (K_min, K_max: K only grows with
    them) and either end of every float range, a two-way branch (K is monotone in each float,
    but either way: Amata's K grows with η and shrinks with its step switch)."""

    def __init__(self, path: list[int]) -> None:
        self.path, self.depth = list(path), 0
        self.params: dict[str, Any] = {}
        self.branches: list[tuple[int, int]] = []

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        if self.depth >= len(self.path):
            self.path.append(0)
            self.branches.append((self.depth, len(choices)))
        value = choices[self.path[self.depth]]
        self.depth += 1
        self.params[name] = value
        return value

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        self.params[name] = high
        return high

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return float(self.suggest_categorical(name, (high, low) if low < high else (high,)))


def _branches(space: Callable[..., Any]) -> Iterator[dict[str, Any]]:
    stack: list[list[int]] = [[]]
    while stack:
        probe = _Probe(stack.pop())
        constants = space(probe) or {}
        yield {**probe.params, **constants}
        for depth, n in probe.branches:
            stack.extend(probe.path[:depth] + [i] for i in range(1, n))


def branch_configs(train: Mapping[str, Any], space: Callable[..., Any]) -> list[TrainConfig]:
    """One TrainConfig per corner of the space (see :class:`_Probe`): every categorical choice,
    integer ranges at their upper end, float ranges at both ends."""
    from search_spaces import strip_search_keys

    return [parse_config({**train, **strip_search_keys(b)}) for b in _branches(space)]


def max_k(configs: Iterable[TrainConfig], epochs: int) -> int:
    """The largest K (adversarial backprops per batch) any of ``configs`` can reach."""
    return max(make_schedule(cfg).max_k(epochs) for cfg in configs)


def _is_controller(schedule: Schedule) -> bool:
    return type(schedule).observe is not Schedule.observe


def run_backprops(cfg: TrainConfig, batches_per_epoch: int) -> int:
    """Backprops of a whole run of ``cfg``: Σ_t (K_t + 1)·M, exact for a fixed plan and an upper
    bound for a controller (K_t ≤ min(t, its largest K))."""
    schedule = make_schedule(cfg)
    if _is_controller(schedule):
        top = schedule.max_k(cfg.epochs)
        ks = [min(t, top) for t in range(cfg.epochs)]
    else:
        ks = [schedule.plan(t).k for t in range(cfg.epochs)]
    return sum((k + 1) * batches_per_epoch for k in ks)


@dataclass(frozen=True)
class CostModel:
    """Backprops of a recipe's run at each fidelity level of an experiment (see module doc).

    ``base``: the experiment's training keys, under every trial's own (``epochs``,
    ``batch_size`` and the rest come from there)."""

    train_size: int
    batch_size: int
    max_batches: int
    epochs: int
    levels: tuple[tuple[float, float], ...]
    base: tuple[tuple[str, Any], ...] = ()

    def level_epochs(self, level: int) -> int:
        return level_epochs(self.levels[level][0], self.epochs)

    def level_batches(self, level: int) -> int:
        n = max(1, math.ceil(self.levels[level][1] * self.train_size))
        return batches_in(n, self.batch_size, max_batches=self.max_batches)

    @property
    def reference_backprops(self) -> int:
        """One reference run: PGD-10 for the experiment's epochs and data."""
        last = len(self.levels) - 1
        return reference_backprops(self.epochs, self.level_batches(last))

    def level_backprops(self, config: Mapping[str, Any] | TrainConfig, level: int) -> int:
        if not isinstance(config, TrainConfig):
            train, _ = split_trial_config(dict(config))  # a trial config may carry the search's controls
            config = parse_config({**dict(self.base), **train})
        cfg = config
        return run_backprops(level_config(cfg, self.levels[level]), self.level_batches(level))

    def trial_backprops(self, config: Mapping[str, Any] | TrainConfig, start: int = 0) -> int:
        """A trial through every level from ``start`` (a paper default starts at the last)."""
        return sum(self.level_backprops(config, level) for level in range(start, len(self.levels)))


@dataclass(frozen=True)
class Budget:
    """``search.budget`` in backprops (``limit``) or ``search.budget_seconds``; the costliest
    first level any trial of the space can have (``first_level``) and the cost model."""

    cost: CostModel
    first_level: int
    limit: float | None = None
    seconds: float | None = None

    def limit_backprops(self, spent_backprops: float, spent_seconds: float) -> float:
        """The budget in backprops now: the seconds budget converts at the measured rate."""
        limits = [self.limit] if self.limit is not None else []
        if self.seconds is not None and spent_seconds > 0 and spent_backprops > 0:
            limits.append(self.seconds * spent_backprops / spent_seconds)
        return min(limits) if limits else math.inf

    def fits(self, spent_backprops: float, spent_seconds: float, committed: float, more: float) -> bool:
        return spent_backprops + committed + more <= self.limit_backprops(spent_backprops, spent_seconds)


__all__ = ["Budget", "CostModel", "branch_configs", "max_k", "run_backprops"]
