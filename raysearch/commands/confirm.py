"""``raysearch confirm``: re-train the best recipes with more seeds, choose on the validation
split, measure on the test split (SPEC §8, confirmation).

The candidates are the top ``top`` finished full runs of the search by validation objective
(paper defaults among them; ``defaults: true`` adds every finished paper default, and
``search.reference: true`` adds the PGD-10 reference, which is compared with but never raced).
Seed one of each is the search's own run (its final weights are evaluated as they are); seeds
``seed + 1 …`` are trained anew at full fidelity. Every run is scored on the validation split
(the in-loop PGD, which *chooses*) and attacked on the test split (``search.confirm.attacks``,
which only *measures*).

With ``racing`` (the default) the seeds come in rounds: after each round,
:func:`raysearch.reporting.racing.race_round` drops the candidates clearly worse than the leader
on validation, and the stage stops once the race is decided or the seeds run out. Each round
is a Tune stage of its own in ``<run_dir>/confirm*/`` (same Ray session as the search;
``--resume`` continues them and the decisions, read from the rows, come out the same). Rows
already measured — this run's ``confirmation.csv``, or any run on the same storage
(:mod:`raysearch.rundir.known`) — are reused, not re-run.

``confirmation.csv`` gets one row per recipe and seed (``trial_id``, ``label``, ``seed``, the
test split's ``clean_acc`` and ``robust_acc``, the validation split's ``val_clean_acc``,
``val_robust_acc`` and ``val_objective``, ``backprops``, and why a candidate was ``dropped``).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysearch.rundir.known import add_known, config_hash, read_known
from raysearch.rundir.outcomes import ConfirmResult
from raysearch.rundir.records import TrialRecord, read_history
from raysearch.rundir.results import RunInfo, finished_runs, load_run, ranked, write_csv
from raysearch.rundir.summary import write_summary
from trainables.labels import describe
from trainables.registry import ConfigError

CONFIRMATION_CSV = "confirmation.csv"
COLUMNS = ("trial_id", "label", "seed", "clean_acc", "robust_acc", "val_clean_acc", "val_robust_acc",
           "val_objective", "backprops", "train_seconds", "recipe", "warm_start", "source", "dropped", "config_hash")
REFERENCE = "PGD-10"
OWN_SOURCES = ("this run", "search run")
PLANNED_FILE = "planned.json"  # the (recipe, seed) keys a confirmation stage was started for


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


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("seed", "backprops"):
            if row.get(key) not in (None, ""):
                row[key] = int(float(row[key]))
        for key in ("clean_acc", "robust_acc", "val_clean_acc", "val_robust_acc", "val_objective", "train_seconds"):
            row[key] = float(row[key]) if row.get(key) not in (None, "") else math.nan
    return rows


def _row(item: Item, measured: dict[str, Any], source: str) -> dict[str, Any]:
    row = {"trial_id": item.trial.trial_id, "label": item.label, "seed": item.seed,
           **{k: measured.get(k, math.nan) for k in ("clean_acc", "robust_acc", "val_clean_acc", "val_robust_acc",
                                                     "val_objective", "train_seconds")},
           "backprops": measured.get("backprops", item.trial.metrics.get("backprops")),
           "recipe": describe(item.config), "warm_start": item.trial.warm_start or "", "source": source,
           "dropped": "", "config_hash": config_hash(item.config)}
    row.update({k: v for k, v in measured.items() if k.startswith("test_")})
    return row


def _stage_folder(run_dir: Path, todo: list[Item]) -> tuple[Path, bool]:
    """Where the runs of ``todo`` go, and whether that is an interrupted stage to continue:
    ``confirm/`` first; a stage started for exactly these runs (or more) continues; runs it was
    not started for (the next round, more seeds or recipes later) go to a new stage
    ``confirm-2``, ...."""
    from raysearch.tuning.tuner import can_restore

    wanted = {item.key for item in todo}
    for n in itertools.count(1):
        path = run_dir / ("confirm" if n == 1 else f"confirm-{n}")
        if not path.exists():
            return path, False
        planned = path / PLANNED_FILE
        if can_restore(str(path)) and planned.exists() and \
                wanted <= {(str(t), int(seed)) for t, seed in json.loads(planned.read_text())}:
            return path, True
    raise AssertionError("unreachable")


def _stage_results(run_dir: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """(recipe trial id, seed) -> the final record of each finished confirmation run, over
    every confirmation stage of the run."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for folder in sorted(run_dir.glob("confirm*/trial_*")):
        records = [r for r in read_history(folder) if r.get("confirm_done")]
        params = folder / "params.json"
        if not records or not params.exists():
            continue
        config = json.loads(params.read_text())
        out[(str(config.get("trial.recipe")), int(config.get("seed", 0)))] = records[-1]
    return out


@dataclass
class Confirmation:
    """The state of one confirmation while its rounds run: what is measured, what it cost."""

    run: RunInfo
    attacks: str
    examples: int | None
    plan: Any
    progress: bool
    rows: dict[tuple[str, int], dict[str, Any]]
    known: dict[str, dict[str, Any]]
    own: dict[tuple[str, int], dict[str, Any]]
    reused_rows: int = 0
    interrupted: bool = False

    def take(self, items: list[Item], train: bool = True) -> list[Item]:
        """Fill in the rows already measured; return the items still to run (none unless ``train``,
        except the search's own runs, which are only tested)."""
        todo = []
        for item in items:
            hit = self.known.get(config_hash(item.config))
            if item.key in self.rows:
                continue
            if item.key in self.own:
                self.rows[item.key] = self.own[item.key]
            elif hit is not None:
                self.rows[item.key] = {**_row(item, hit, str(hit.get("source", ""))),
                                       "backprops": hit.get("backprops"), "train_seconds": hit.get("train_seconds")}
                self.reused_rows += 1
            elif train or item.checkpoint:
                todo.append(item)
        return todo

    def measure(self, items: list[Item], note: str = "") -> None:
        """Run ``items`` as one Tune stage (new, or continued after an interruption) and read their rows."""
        finished = _stage_results(self.run.run_dir)
        todo = [i for i in items if i.key not in finished]
        if todo:
            self._stage(todo, note)
            finished = _stage_results(self.run.run_dir)
        for item in items:
            measured = finished.get(item.key)
            if measured is not None:  # the search's own run cost the search, not the confirmation
                self.rows[item.key] = _row(item, measured, "search run" if measured.get("reused_run") else "this run")

    def _stage(self, todo: list[Item], note: str) -> None:
        from ray import tune

        from raysearch.tuning.fixed import FixedConfigs
        from raysearch.tuning.progress import ProgressLines
        from raysearch.tuning.resources import concurrent_slots, local_resources, ray_session
        from raysearch.tuning.tuner import (
            INTERRUPT,
            InterruptWatch,
            Stage,
            build_tuner,
            fit,
            quiet_tune,
            restore_tuner,
        )
        from trainables.train_workers import DRIVER_CPUS
        from trainables.trainable import confirm_trainable
        from trainables.trial import TrialSetup

        run, plan = self.run, self.plan
        cpus = float(run.search.get("cpus_per_trial", 1) or 1)
        request = plan.request if plan is not None else {"cpu": cpus}
        workers = plan.workers if plan is not None else int(run.search.get("workers_per_trial", 1) or 1)
        setup = TrialSetup(gpus_per_trial=request.get("gpu", 0.0), plugins=plan.plugins if plan is not None else (),
                           workers=workers, cpus_per_trial=request["cpu"], train_storage=str(run.run_dir / "train"))
        driver = request if workers == 1 else {"cpu": DRIVER_CPUS}  # a multi-worker run: Ray Train reserves the workers
        trainable = tune.with_resources(tune.with_parameters(confirm_trainable, setup=setup), driver)
        stage_path, restore = _stage_folder(run.run_dir, todo)
        with quiet_tune(), ray_session():
            INTERRUPT.clear()
            if restore:
                tuner = restore_tuner(str(stage_path), trainable)
            else:
                points = [{**item.config, "threads": item.config.get("threads") or max(1, int(cpus)),
                           "trial.recipe": item.trial.trial_id, "trial.label": item.label,
                           "trial.attacks": self.attacks, "trial.examples": self.examples,
                           **({"trial.checkpoint": item.checkpoint} if item.checkpoint else {})} for item in todo]
                callbacks: list[Any] = [InterruptWatch()]
                if self.progress:
                    callbacks.append(ProgressLines(len(points), run.reference_backprops or 0, stage="confirm"))
                    own_runs = sum(1 for item in todo if item.checkpoint)
                    print(f"[confirm] {note}{len(points)} runs ({own_runs} of them the search's own runs, tested "
                          f"without training), scored on the validation split and tested with {self.attacks} on the "
                          "test split", flush=True)
                slots = plan.concurrency if plan is not None else None
                if slots is None and workers > 1:  # room for every running trial's workers
                    slots = concurrent_slots(request, local_resources())
                tuner = build_tuner(Stage(stage_path.name, str(run.run_dir), trainable, {}, FixedConfigs(points),
                                          None, len(points), slots, callbacks))
                stage_path.mkdir(parents=True, exist_ok=True)
                (stage_path / PLANNED_FILE).write_text(json.dumps(sorted([list(item.key) for item in todo])))
            fit(tuner, str(run.run_dir))
        self.interrupted = self.interrupted or INTERRUPT.is_set()


def _race(conf: Confirmation, chosen: list[Candidate], seeds: int, margin: float) -> list[dict[str, Any]]:
    """Seeds in rounds; after each, drop the clearly worse on validation (module doc)."""
    from raysearch.reporting.racing import race_round

    alive = [c.trial.trial_id for c in chosen if c.races]
    labels = {c.trial.trial_id: c.label for c in chosen}
    rounds: list[dict[str, Any]] = []
    for i in range(seeds):
        wanted = [item(c, i) for c in chosen if c.trial.trial_id in alive or not c.races]
        trained = [w for w in wanted if next(c for c in chosen if c.trial.trial_id == w.trial.trial_id).train]
        todo = conf.take(trained) + conf.take([w for w in wanted if w not in trained], train=False)
        if todo:
            conf.measure(todo, f"seed {i + 1} of {seeds}, {len(alive)} candidates: ")
        if conf.interrupted:
            break
        rows = list(conf.rows.values())
        decision = race_round(rows, alive, margin) if len(alive) > 1 else None
        dropped = list(decision.dropped) if decision else []
        for drop in dropped:
            reason = drop.reason(labels[drop.leader])
            for key, row in conf.rows.items():
                if key[0] == drop.trial_id:
                    row["dropped"] = reason
        rounds.append({"seeds": i + 1, "alive": [labels[t] for t in alive],
                       "dropped": [{"label": labels[d.trial_id], "reason": d.reason(labels[d.leader])}
                                   for d in dropped],
                       "leader": labels[decision.leader] if decision else labels.get(alive[0], "") if alive else ""})
        if decision is not None:
            alive = list(decision.alive)
        if conf.progress:
            print(f"[confirm] round {i + 1}: {len(alive)} candidate(s) left"
                  + "".join(f"; {d['label']} {d['reason']}" for d in rounds[-1]["dropped"]), flush=True)
        if decision is None or decision.decided:
            if i + 1 < seeds and conf.progress:
                print(f"[confirm] decided after {i + 1} seed(s): no further seed can change the choice", flush=True)
            break
    return rounds


def run_confirmation(run_dir: str | Path, top: int, seeds: int, *, plan: Any = None, progress: bool = True,
                     attacks: str | None = None, examples: int | None = None, defaults: bool | None = None,
                     racing: bool | None = None, trial_ids: list[str] | None = None) -> ConfirmResult:
    """Confirm the run in ``run_dir`` (Ray must be initialized or will be, locally).
    ``trial_ids``: confirm exactly these trials (no race), instead of the top ``top``."""
    from raysearch.reporting.stats import choose, recipe_stats

    start = time.monotonic()
    run = load_run(run_dir)
    search = run.search.get("confirm") or {}
    attacks = attacks or search.get("attacks") or "pgd50x10"
    examples = examples if examples is not None else search.get("examples")
    defaults = bool(search.get("defaults", False)) if defaults is None else defaults
    racing = bool(search.get("racing", True)) if racing is None else racing
    margin = float(search.get("margin", 0.02))
    if trial_ids is not None:
        by_id = {t.trial_id: t for t in run.trials}
        chosen = [Candidate(by_id[t], by_id[t].warm_start or describe(by_id[t].config)) for t in trial_ids]
        racing = False
    else:
        chosen = candidates(run, top, defaults, bool(run.search.get("reference", False)))
    csv_path = run.run_dir / CONFIRMATION_CSV
    own = {(str(r["trial_id"]), int(r["seed"])): r for r in read_rows(csv_path) if r.get("source") in OWN_SOURCES}
    storage = run.run_dir.parent
    conf = Confirmation(run, attacks, examples, plan, progress, {}, read_known(storage), own)
    rounds: list[dict[str, Any]] = []
    if racing:
        rounds = _race(conf, chosen, seeds, margin)
    else:
        every = [item(c, i) for c in chosen for i in range(seeds)]
        trained = [w for w in every if next(c for c in chosen if c.trial.trial_id == w.trial.trial_id).train]
        todo = conf.take(trained) + conf.take([w for w in every if w not in trained], train=False)
        if todo:
            conf.measure(todo, f"{len(every) - len(todo)} of {len(every)} recipe-seeds measured before; ")
    order = [item(c, i) for c in chosen for i in range(seeds)]
    ordered = [conf.rows[i.key] for i in order if i.key in conf.rows]
    mine = [r for r in ordered if r.get("source") == "this run"]
    backprops = sum(int(r.get("backprops") or 0) for r in mine)
    seconds = sum(float(r.get("train_seconds") or 0.0) for r in mine if not math.isnan(float(r.get("train_seconds") or 0)))
    write_csv(ordered, csv_path)
    add_known(storage, mine, str(run.run_dir))
    stats = recipe_stats(ordered, run.reference_backprops, float(run.experiment.get("cost_weight", 0.1) or 0.1))
    state = "interrupted" if conf.interrupted else "finished"
    target = run.summary.get("target_robust_acc")
    pick = choose(stats, target, exclude=REFERENCE) or choose(stats, None, exclude=REFERENCE)
    write_summary(run.run_dir, {
        "confirm_backprops": backprops,
        "confirm_train_seconds": round(seconds, 3), "confirm_rows": len(ordered),
        "confirm_reused_rows": conf.reused_rows, "confirm_state": state,
        "confirm_wall_seconds": round(time.monotonic() - start, 3), "confirm_seeds": seeds, "confirm_top": top,
        "confirm_attacks": attacks, "confirm_racing": racing, "confirm_rounds": rounds,
        "confirm_reused_from": sorted({str(r["source"]) for r in ordered if r.get("source") not in OWN_SOURCES}),
        **({"chosen_trial": pick.trial_id, "chosen_label": pick.label, "chosen_cost_ratio": round(pick.cost_ratio, 4),
            "chosen_by": "validation"} if pick is not None else {}),
        **({"state": "interrupted"} if conf.interrupted else {}),
    })
    return ConfirmResult(run.run_dir, ordered, stats, backprops, seconds, time.monotonic() - start, conf.reused_rows,
                         conf.interrupted, rounds)


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
        from trainables.evaluation import parse_attacks

        parse_attacks(attacks, allow_autoattack=False)
    run = load_run(path)
    if not candidates(run, top):
        raise ConfigError("run_dir", str(run_dir), "has no finished full-fidelity trial to confirm")
    result = run_confirmation(path, top, seeds, progress=progress, attacks=attacks)
    if progress:
        from raysearch.reporting.text import confirmation_text

        print(confirmation_text(result), flush=True)
    return result


__all__ = ["CONFIRMATION_CSV", "Candidate", "ConfirmResult", "candidates", "config_hash", "confirm", "item",
           "read_rows", "run_confirmation"]
