"""``raysearch confirm``: re-train the best recipes and the paper defaults with more seeds and
measure them on the *test* split (SPEC §8, confirmation).

The top ``top`` recipes of the search (finished full runs, by objective) and every finished
paper default get ``seeds`` seeds in all: the search's own run is seed ``seed`` (its final
weights are evaluated as they are), and seeds ``seed + 1 …`` are trained anew at full
fidelity. Every run is attacked on the test split (``search.confirm.attacks``, PGD-50×10 by
default). The runs are a Tune stage of their own in ``<run_dir>/confirm/``: they run in
parallel, in the same Ray session as the search, and ``--resume`` continues them. Rows
already measured (this run's ``confirmation.csv``, or an earlier run of the same experiment
with the identical config and seed) are reused, not re-run.

``confirmation.csv`` gets one row per recipe and seed (``trial_id``, ``label``, ``seed``,
``clean_acc``, ``robust_acc``, ``backprops`` and more); :mod:`raysearch.reporting.stats` turns
them into means and 95 % intervals, and the headline claims only what those support.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysearch.rundir.records import TrialRecord, read_history
from raysearch.rundir.results import RunInfo, finished_runs, load_run, ranked, write_csv
from raysearch.rundir.summary import write_summary
from trainables.labels import describe
from trainables.registry import ConfigError

CONFIRMATION_CSV = "confirmation.csv"
COLUMNS = ("trial_id", "label", "seed", "clean_acc", "robust_acc", "backprops", "train_seconds", "recipe",
           "warm_start", "source", "config_hash")


def config_hash(config: dict[str, Any]) -> str:
    """A fingerprint of a run's resolved config (paths left out), seed included."""
    from trainables.config import parse_config

    flat = parse_config(config).to_flat()
    flat.pop("data_root", None)
    return hashlib.sha1(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


@dataclass
class ConfirmResult:
    """The confirmation's rows, per-recipe statistics, what it cost and whether it was cut short."""

    run_dir: Path
    rows: list[dict[str, Any]]
    stats: list[Any] = field(default_factory=list)
    backprops: int = 0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    reused_rows: int = 0
    interrupted: bool = False


def recipes(run: RunInfo, top: int, defaults: bool = True) -> list[tuple[TrialRecord, str]]:
    """(trial, label) of the top ``top`` searched recipes and every finished paper default
    (``defaults`` False: the top ``top`` finished trials, paper defaults or not)."""
    chosen: list[tuple[TrialRecord, str]] = []
    seen: set[str] = set()
    for trial in ranked(finished_runs(run.trials)):
        if len([c for c in chosen if not c[0].warm_start or not defaults]) >= top:
            break
        if trial.warm_start and defaults:
            continue
        fingerprint = config_hash(trial.config)
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        chosen.append((trial, f"#{len(chosen) + 1} {describe(trial.config)}"))
    for trial in finished_runs(run.trials) if defaults else []:
        if trial.warm_start and config_hash(trial.config) not in seen:
            seen.add(config_hash(trial.config))
            chosen.append((trial, trial.warm_start))
    return chosen


def plan_items(run: RunInfo, top: int, seeds: int, defaults: bool = True) -> list[Item]:
    items = []
    for trial, label in recipes(run, top, defaults):
        base = int(trial.config.get("seed", 0) or 0)
        for i in range(seeds):
            config = {**trial.config, "seed": base + i}
            # The search's own run is seed one; a population member's weights came through
            # exploits, not its learned schedule, so every seed replays that schedule from scratch.
            own = i == 0 and trial.checkpoint is not None and not trial.population
            checkpoint = str(trial.checkpoint) if own else None
            items.append(Item(trial, label, base + i, config, checkpoint))
    return items


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("seed", "backprops"):
            if row.get(key) not in (None, ""):
                row[key] = int(float(row[key]))
        for key in ("clean_acc", "robust_acc", "train_seconds"):
            row[key] = float(row[key]) if row.get(key) not in (None, "") else math.nan
    return rows


OWN_SOURCES = ("this run", "search run")


def _known_rows(run: RunInfo) -> dict[str, dict[str, Any]]:
    """config hash -> a measured row from an earlier run directory beside this one."""
    known: dict[str, dict[str, Any]] = {}
    for folder in sorted(p for p in run.run_dir.parent.iterdir() if p.is_dir() and p != run.run_dir):
        for row in read_rows(folder / CONFIRMATION_CSV):
            if row.get("config_hash") and not math.isnan(row["robust_acc"]):
                # trained there: its source is that folder (it costs this run nothing); a row
                # that folder reused in turn keeps the folder it was trained in
                source = str(folder) if row.get("source") in OWN_SOURCES or not row.get("source") else row["source"]
                known.setdefault(str(row["config_hash"]), {**row, "source": source})
    return known


def _row(item: Item, measured: dict[str, Any], source: str) -> dict[str, Any]:
    row = {"trial_id": item.trial.trial_id, "label": item.label, "seed": item.seed,
           "clean_acc": measured.get("clean_acc", math.nan), "robust_acc": measured.get("robust_acc", math.nan),
           "backprops": measured.get("backprops", item.trial.metrics.get("backprops")),
           "train_seconds": measured.get("train_seconds", math.nan), "recipe": describe(item.config),
           "warm_start": item.trial.warm_start or "", "source": source, "config_hash": config_hash(item.config)}
    row.update({k: v for k, v in measured.items() if k.startswith("test_")})
    return row


PLANNED_FILE = "planned.json"  # the (recipe, seed) keys a confirmation stage was started for


def _stage_folder(run_dir: Path, todo: list[Item]) -> tuple[Path, bool]:
    """Where the runs of ``todo`` go, and whether that is an interrupted stage to continue:
    ``confirm/`` first; a stage started for exactly these runs (or more) continues; runs it was
    not started for (more seeds or recipes later) go to a new stage ``confirm-2``, ...."""
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


def run_confirmation(run_dir: str | Path, top: int, seeds: int, *, plan: Any = None, progress: bool = True,
                     attacks: str | None = None, examples: int | None = None, defaults: bool = True) -> ConfirmResult:
    """Confirm the run in ``run_dir`` (Ray must be initialized or will be, locally)."""
    from raysearch.tuning.progress import ProgressLines
    from raysearch.tuning.tuner import (
        INTERRUPT,
        InterruptWatch,
        Stage,
        build_tuner,
        fit,
        quiet_tune,
        restore_tuner,
    )

    start = time.monotonic()
    run = load_run(run_dir)
    search = run.search.get("confirm") or {}
    attacks = attacks or search.get("attacks") or "pgd50x10"
    examples = examples if examples is not None else search.get("examples")
    items = plan_items(run, top, seeds, defaults)
    csv_path = run.run_dir / CONFIRMATION_CSV
    own = {(str(r["trial_id"]), int(r["seed"])): r for r in read_rows(csv_path) if r.get("source") in OWN_SOURCES}
    known = _known_rows(run)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    todo: list[Item] = []
    reused_rows = 0
    for item in items:
        hit = known.get(config_hash(item.config))
        if item.key in own:
            rows[item.key] = own[item.key]
        elif hit is not None:
            rows[item.key] = {**_row(item, hit, str(hit.get("source", ""))),
                              "backprops": hit.get("backprops"), "train_seconds": hit.get("train_seconds")}
            reused_rows += 1
        else:
            todo.append(item)
    interrupted = False
    if todo:
        from ray import tune

        from raysearch.tuning.fixed import FixedConfigs
        from trainables.train_workers import DRIVER_CPUS
        from trainables.trainable import confirm_trainable
        from trainables.trial import TrialSetup

        cpus = float(run.search.get("cpus_per_trial", 1) or 1)
        request = plan.request if plan is not None else {"cpu": cpus}
        workers = plan.workers if plan is not None else int(run.search.get("workers_per_trial", 1) or 1)
        setup = TrialSetup(gpus_per_trial=request.get("gpu", 0.0), plugins=plan.plugins if plan is not None else (),
                           workers=workers, cpus_per_trial=request["cpu"], train_storage=str(run.run_dir / "train"))
        driver = request if workers == 1 else {"cpu": DRIVER_CPUS}  # a multi-worker run: Ray Train reserves the workers
        trainable = tune.with_resources(tune.with_parameters(confirm_trainable, setup=setup), driver)
        from raysearch.tuning.resources import ray_session

        stage_path, restore = _stage_folder(run.run_dir, todo)
        with quiet_tune(), ray_session():
            INTERRUPT.clear()
            if restore:
                tuner = restore_tuner(str(stage_path), trainable)
            else:
                points = [{**item.config, "threads": item.config.get("threads") or max(1, int(cpus)),
                           "trial.recipe": item.trial.trial_id, "trial.label": item.label,
                           "trial.attacks": attacks, "trial.examples": examples,
                           **({"trial.checkpoint": item.checkpoint} if item.checkpoint else {})} for item in todo]
                callbacks: list[Any] = [InterruptWatch()]
                if progress:
                    callbacks.append(ProgressLines(len(points), run.reference_backprops or 0, stage="confirm"))
                    own_runs = sum(1 for item in todo if item.checkpoint)
                    print(f"[confirm] {len(points)} runs: {len(items) - reused_rows} of {len(items)} recipe-seeds "
                          f"({reused_rows} confirmed before; {own_runs} are the search's own runs, tested without "
                          f"training), tested with {attacks} on the test split", flush=True)
                slots = plan.concurrency if plan is not None else None
                if slots is None and workers > 1:  # room for every running trial's workers
                    from raysearch.tuning.resources import concurrent_slots, local_resources

                    slots = concurrent_slots(request, local_resources())
                tuner = build_tuner(Stage(stage_path.name, str(run.run_dir), trainable, {},
                                          FixedConfigs(points), None, len(points),
                                          slots, callbacks))
                stage_path.mkdir(parents=True, exist_ok=True)
                (stage_path / PLANNED_FILE).write_text(json.dumps(sorted([list(item.key) for item in todo])))
            fit(tuner, str(run.run_dir))
        interrupted = INTERRUPT.is_set()
    finished = _stage_results(run.run_dir)
    for item in todo:
        measured = finished.get(item.key)
        if measured is not None:  # the search's own run cost the search, not the confirmation
            rows[item.key] = _row(item, measured, "search run" if measured.get("reused_run") else "this run")
    ordered = [rows[item.key] for item in items if item.key in rows]
    mine = [r for r in ordered if r.get("source") == "this run"]
    backprops = sum(int(r.get("backprops") or 0) for r in mine)
    seconds = sum(float(r.get("train_seconds") or 0.0) for r in mine if not math.isnan(float(r.get("train_seconds") or 0)))
    write_csv(ordered, csv_path)
    from raysearch.reporting.stats import recipe_stats

    stats = recipe_stats(ordered, run.reference_backprops, float(run.experiment.get("cost_weight", 0.1) or 0.1))
    write_summary(run.run_dir, {
        "confirm_backprops": backprops,
        "confirm_train_seconds": round(seconds, 3), "confirm_rows": len(ordered), "confirm_reused_rows": reused_rows,
        "confirm_state": "interrupted" if interrupted else ("finished" if len(ordered) == len(items) else "partial"),
        "confirm_wall_seconds": round(time.monotonic() - start, 3), "confirm_seeds": seeds, "confirm_top": top,
        "confirm_attacks": attacks,
        **({"state": "interrupted"} if interrupted else {}),
    })
    return ConfirmResult(run.run_dir, ordered, stats, backprops, seconds, time.monotonic() - start, reused_rows,
                         interrupted)


def confirm(run_dir: str | Path, top: int | None = None, seeds: int | None = None, progress: bool = True,
            attacks: str | None = None) -> ConfirmResult:
    """Confirm an existing run directory: ``top`` recipes and the paper defaults, ``seeds`` seeds.

    Example::

        >>> import raysearch
        >>> result = raysearch.confirm("runs/demo-20261202-120000", top=2, seeds=3)  # doctest: +SKIP
        >>> [(s.label, s.robust.mean) for s in result.stats]  # doctest: +SKIP
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
    if not recipes(run, top):
        raise ConfigError("run_dir", str(run_dir), "has no finished full-fidelity trial to confirm")
    result = run_confirmation(path, top, seeds, progress=progress, attacks=attacks)
    if progress:
        from raysearch.reporting.text import confirmation_text

        print(confirmation_text(result), flush=True)
    return result


__all__ = ["CONFIRMATION_CSV", "ConfirmResult", "config_hash", "confirm", "plan_items", "read_rows", "recipes",
           "run_confirmation"]
