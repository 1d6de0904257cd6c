"""The confirmation's runs as Tune stages: which of them are measured already (this run's rows,
the storage's known runs), the stage folders ``<run_dir>/confirm*/`` they run in (an interrupted
one continued, a new one for runs it was not started for), and their results read back.

:class:`Confirmation` holds the state of one confirmation while its rounds run; the rounds
themselves, and what the confirmation leaves, are :mod:`raysearch.pipeline.confirmation`'s.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysearch.pipeline.candidates import Item, _row
from raysearch.rundir.known import config_hash
from raysearch.rundir.records import read_history
from raysearch.rundir.results import RunInfo

PLANNED_FILE = "planned.json"  # the (recipe, seed) keys a confirmation stage was started for


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
    ray: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # Ray, entered by the first stage

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
        """Run ``todo`` as one Tune stage in its folder (:func:`_stage_folder`), in the search's Ray
        session, else in one the first stage starts and the confirmation's end stops (not one per round)."""
        from raysearch.tuning.resources import ray_session
        from raysearch.tuning.tuner import INTERRUPT, fit, quiet_tune, restore_tuner

        trainable, cpus, request, workers = self._trainable()
        stage_path, restore = _stage_folder(self.run.run_dir, todo)
        self.ray.enter_context(ray_session())  # a no-op while Ray is up
        with quiet_tune():
            INTERRUPT.clear()
            if restore:
                tuner = restore_tuner(str(stage_path), trainable)
            else:
                tuner = self._new_tuner(todo, note, stage_path, trainable, cpus, request, workers)
            fit(tuner, str(self.run.run_dir))
        self.interrupted = self.interrupted or INTERRUPT.is_set()

    def _trainable(self) -> tuple[Any, float, dict[str, Any], int]:
        """The confirmation trainable with its resources, and the CPUs, request and workers of a run."""
        from ray import tune

        from trainables.distributed.workers import DRIVER_CPUS
        from trainables.trials.setup import TrialSetup
        from trainables.tune.functions import confirm_trainable

        run, plan = self.run, self.plan
        cpus = float(run.search.get("cpus_per_trial", 1) or 1)
        request = plan.request if plan is not None else {"cpu": cpus}
        workers = plan.workers if plan is not None else int(run.search.get("workers_per_trial", 1) or 1)
        setup = TrialSetup(gpus_per_trial=request.get("gpu", 0.0), plugins=plan.plugins if plan is not None else (),
                           workers=workers, cpus_per_trial=request["cpu"], train_storage=str(run.run_dir / "train"))
        driver = request if workers == 1 else {"cpu": DRIVER_CPUS}  # a multi-worker run: Ray Train reserves the workers
        trainable = tune.with_resources(tune.with_parameters(confirm_trainable, setup=setup), driver)
        return trainable, cpus, request, workers

    def _new_tuner(self, todo: list[Item], note: str, stage_path: Path, trainable: Any, cpus: float,
                   request: dict[str, Any], workers: int) -> Any:
        """A new Tune stage for ``todo`` in ``stage_path``, with the keys it was started for written down."""
        from raysearch.tuning.fixed import FixedConfigs
        from raysearch.tuning.progress import ProgressLines
        from raysearch.tuning.resources import concurrent_slots, local_resources
        from raysearch.tuning.tuner import InterruptWatch, Stage, build_tuner

        run, plan = self.run, self.plan
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
        return tuner
