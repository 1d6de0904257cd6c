"""One member of a population-based search (PBT / PB2) that learns K(t) and α(t).

A member trains with the ``constant`` schedule at its config's ``k`` and ``alpha``; Ray's
``PopulationBasedTraining`` or ``PB2`` changes them while it trains. When the scheduler
*exploits*, Tune restarts the member with a better member's checkpoint and a perturbed config:
the member loads that run state whole (weights, optimizer, per-example memories, schedule,
cost counters and history, the random state) and continues exactly as its parent would have,
with the new K and α from its next epoch on.

So a member's ``backprops`` include what it inherited (what its final model cost), while
``trial_backprops`` counts only the epochs it trained itself (what the search paid). Its
learned schedule is the K and α of every epoch of its run state's history, the inherited
epochs included; :func:`learned_schedule` turns it into a ``piecewise`` schedule, which
``raysearch train best.yaml`` replays from scratch.

The exploit criterion is cost-aware (:func:`population_objective`): the trade-off (or target)
objective with the compute spent *so far* against PGD-10 for the same epochs, so members at
any epoch are compared on robustness for their compute, and the population does not simply
climb to the largest K.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.config import TrainConfig, parse_config
from trainables.evaluation.scoring import DIVERGED_OBJECTIVE, target_objective, tradeoff_objective
from trainables.status import Status
from trainables.training.checkpoint import STATE_FILE, load_progress, load_run_state
from trainables.training.engine import Run, start_run
from trainables.trials.report import report_epoch
from trainables.trials.setup import TrialSetup, apply_resources, enter_trial
from trainables.tune.functions import guard_failed

POPULATION_METRIC = "population_objective"  # what PBT / PB2 rank members by (minimized)
MUTABLE = ("k", "alpha")  # what the population learns
SPENT_FILE = "population.json"  # a member's own spending and exploits, in its trial folder


def population_objective(run: Run, robust_acc: float) -> float:
    """The run's objective with the compute spent so far against PGD-10 for the same epochs."""
    cfg = run.config
    if run.status == Status.DIVERGED or not math.isfinite(robust_acc):
        return DIVERGED_OBJECTIVE
    reference = run.reference_backprops * max(run.epoch, 1) / cfg.epochs
    target = cfg.numeric_target
    if cfg.objective == "target" and target is not None:
        return target_objective(robust_acc, run.cost.backprops, reference, target)
    return tradeoff_objective(robust_acc, run.cost.backprops, reference, cfg.cost_weight)


def learned_schedule(history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``piecewise`` schedule that replays a run's K and α, one per epoch of ``history``."""
    ks = [int(record["k"]) for record in history]
    alphas = [float(record["alpha"]) for record in history]
    return {"schedule": "piecewise", "piecewise.k": ks, "piecewise.alpha": [round(a, 6) for a in alphas]}


def replay_config(config: Mapping[str, Any], schedule: Mapping[str, Any]) -> dict[str, Any]:
    """A member's training config with its learned ``schedule`` in place of its last K and α."""
    kept = {k: v for k, v in config.items() if k not in MUTABLE and not k.startswith(("constant.", "piecewise."))}
    return {**kept, **schedule}


def encode(values: Sequence[float]) -> str:
    """A list as one CSV-safe metric (Tune's progress.csv flattens lists badly)."""
    return " ".join(f"{v:g}" for v in values)


def decode(text: str, kind: type = float) -> list[Any]:
    return [kind(float(v)) for v in str(text).split()] if text and str(text) != "nan" else []


@dataclass
class Spent:
    """What one member trained itself (not what it inherited) and the exploits it received."""

    backprops: int = 0
    seconds: float = 0.0
    exploits: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, folder: str | None) -> Spent | None:
        path = Path(folder, SPENT_FILE) if folder else None
        if path is None or not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def write(self, folder: str | None) -> None:
        if folder:
            Path(folder, SPENT_FILE).write_text(json.dumps(self.__dict__))


def member_config(config: Mapping[str, Any]) -> TrainConfig:
    """The member's training config: the constant schedule at its (rounded) K and its α."""
    values = dict(config)
    values["k"] = max(1, int(round(float(values.get("k", 1)))))  # PB2 proposes real numbers
    values["schedule"] = "constant"
    return parse_config(values)


def _trial() -> tuple[str, str | None]:
    from ray import tune

    context = tune.get_context()
    try:
        folder: str | None = str(context.get_trial_dir())
    except Exception:
        folder = None
    return str(context.get_trial_id()), folder


@guard_failed
def population_trainable(config: dict[str, Any], setup: TrialSetup | None = None) -> None:
    """Ray Tune function trainable of one population member (see the module docstring)."""
    from ray import tune

    setup, train_keys, _ = enter_trial(config, setup)
    cfg = member_config(train_keys)
    run = start_run(cfg, apply_resources(setup))
    me, folder = _trial()
    spent = Spent.read(folder)
    donor = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            progress = load_progress(directory)
            if Path(directory, STATE_FILE).exists():
                run.load_state_dict(load_run_state(directory))
        owner = progress.get("owner")
        if spent is None:  # a resumed search in a new session: the member's own last checkpoint
            spent = Spent(int(progress.get("own_backprops", 0)), float(progress.get("own_seconds", 0.0)))
        if owner not in (None, me):
            donor = {"from": owner, "epoch": run.epoch, "k": cfg.k, "alpha": cfg.alpha}
            spent.exploits.append(donor)
    spent = spent or Spent()
    if run.finished and run.history:  # restored a finished state: say so once, train nothing
        _report(run, dict(run.history[-1]), spent, donor, me)
    while not run.finished:
        before = run.cost.backprops, run.cost.train_seconds
        record = run.step()
        spent.backprops += run.cost.backprops - before[0]
        spent.seconds += run.cost.train_seconds - before[1]
        spent.write(folder)
        _report(run, record, spent, donor, me)
        donor = None


def _report(run: Run, record: dict[str, Any], spent: Spent, donor: dict[str, Any] | None, me: str) -> None:
    learned = learned_schedule(run.history)
    robust = record["robust_acc"]  # the weights that count (trainables.training.checkpoint.counts_best)
    extra = {
        POPULATION_METRIC: population_objective(run, robust), "population": True, "full_fidelity": True,
        "trial_backprops": spent.backprops, "trial_train_seconds": spent.seconds,
        "schedule_k": encode(learned["piecewise.k"]), "schedule_alpha": encode(learned["piecewise.alpha"]),
        "exploited_from": donor["from"] if donor else "", "exploits": len(spent.exploits),
        # the last epoch is no perturbation point: an exploit there would replace a finished
        # member by a copy of another, training nothing
        "done": run.finished,
    }
    with tempfile.TemporaryDirectory() as directory:
        report_epoch(run, record, directory, extra,
                     {"owner": me, "own_backprops": spent.backprops, "own_seconds": spent.seconds})


__all__ = ["MUTABLE", "POPULATION_METRIC", "Spent", "decode", "encode", "learned_schedule", "member_config",
           "population_objective", "population_trainable", "replay_config"]
