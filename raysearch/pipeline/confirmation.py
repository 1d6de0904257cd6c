"""The confirmation stage: re-train the best recipes with more seeds, choose on the validation
split, measure on the test split, and leave ``confirmation.csv``, the summary's ``confirm_*``
keys and a :class:`~raysearch.rundir.outcomes.ConfirmResult` (SPEC §8, confirmation).

The candidates are the top ``top`` finished full runs of the search by validation objective
(paper defaults among them; ``defaults: true`` adds every finished paper default, and
``search.reference: true`` adds the PGD-10 reference, which is compared with but never raced):
:mod:`raysearch.pipeline.candidates`. Seed one of each is the search's own run (its final
weights are evaluated as they are); seeds ``seed + 1 …`` are trained anew at full fidelity.
Every run is scored on the validation split (the in-loop PGD, which *chooses*) and attacked on
the test split (``search.confirm.attacks``, which only *measures*).

With ``racing`` (the default) the seeds come in rounds: after each round,
:func:`raysearch.reporting.racing.race_round` drops the candidates clearly worse than the leader
on validation, and the stage stops once the race is decided or the seeds run out. Each round
is a Tune stage of its own in ``<run_dir>/confirm*/`` (:mod:`raysearch.pipeline.confirmation_stage`;
same Ray session as the search; ``--resume`` continues them and the decisions, read from the
rows, come out the same). Rows already measured — this run's ``confirmation.csv``, or any run on
the same storage (:mod:`raysearch.rundir.known`) — are reused, not re-run.

``confirmation.csv`` gets one row per recipe and seed (``trial_id``, ``label``, ``seed``, the
test split's ``clean_acc`` and ``robust_acc``, the validation split's ``val_clean_acc``,
``val_robust_acc`` and ``val_objective``, ``backprops``, and why a candidate was ``dropped``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from raysearch.pipeline.candidates import REFERENCE, Candidate, Item, candidates, item
from raysearch.pipeline.confirmation_stage import PLANNED_FILE, Confirmation
from raysearch.rundir.confirmation_rows import CONFIRMATION_CSV, read_rows
from raysearch.rundir.known import add_known, read_known
from raysearch.rundir.outcomes import ConfirmResult
from raysearch.rundir.results import RunInfo, load_run, write_csv
from raysearch.rundir.summary import write_summary
from trainables.labels import describe

OWN_SOURCES = ("this run", "search run")


def _chosen(run: RunInfo, top: int, defaults: bool, racing: bool,
            trial_ids: list[str] | None) -> tuple[list[Candidate], bool]:
    """The candidates, and whether they race: exactly ``trial_ids`` (no race), or :func:`candidates`."""
    if trial_ids is not None:
        by_id = {t.trial_id: t for t in run.trials}
        return [Candidate(by_id[t], by_id[t].warm_start or describe(by_id[t].config)) for t in trial_ids], False
    return candidates(run, top, defaults, bool(run.search.get("reference", False))), racing


def _trained(chosen: list[Candidate], wanted: list[Item]) -> list[Item]:
    """The items of ``wanted`` whose candidate trains (the others only take seeds measured already)."""
    return [w for w in wanted if next(c for c in chosen if c.trial.trial_id == w.trial.trial_id).train]


def _all_seeds(conf: Confirmation, chosen: list[Candidate], seeds: int) -> list[dict[str, Any]]:
    """Every candidate at every seed, as one stage (no race: no rounds)."""
    every = [item(c, i) for c in chosen for i in range(seeds)]
    trained = _trained(chosen, every)
    todo = conf.take(trained) + conf.take([w for w in every if w not in trained], train=False)
    if todo:
        conf.measure(todo, f"{len(every) - len(todo)} of {len(every)} recipe-seeds measured before; ")
    return []


def _race(conf: Confirmation, chosen: list[Candidate], seeds: int, margin: float) -> list[dict[str, Any]]:
    """Seeds in rounds; after each, drop the clearly worse on validation (module doc)."""
    from raysearch.reporting.racing import race_round

    alive = [c.trial.trial_id for c in chosen if c.races]
    labels = {c.trial.trial_id: c.label for c in chosen}
    rounds: list[dict[str, Any]] = []
    for i in range(seeds):
        wanted = [item(c, i) for c in chosen if c.trial.trial_id in alive or not c.races]
        trained = _trained(chosen, wanted)
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


def _pick_fields(stats: list[Any], target: Any) -> dict[str, Any]:
    """The summary's ``chosen_*`` keys: the validation's pick (meeting ``target`` if one does), or none."""
    from raysearch.reporting.stats import choose

    pick = choose(stats, target, exclude=REFERENCE) or choose(stats, None, exclude=REFERENCE)
    if pick is None:
        return {}
    return {"chosen_trial": pick.trial_id, "chosen_label": pick.label, "chosen_cost_ratio": round(pick.cost_ratio, 4),
            "chosen_by": "validation"}


def run_confirmation(run_dir: str | Path, top: int, seeds: int, *, plan: Any = None, progress: bool = True,
                     attacks: str | None = None, examples: int | None = None, defaults: bool | None = None,
                     racing: bool | None = None, trial_ids: list[str] | None = None) -> ConfirmResult:
    """Confirm the run in ``run_dir`` (in the caller's Ray session, else in one of its own).
    ``trial_ids``: confirm exactly these trials (no race), instead of the top ``top``."""
    from raysearch.reporting.stats import recipe_stats

    start = time.monotonic()
    run = load_run(run_dir)
    search = run.search.get("confirm") or {}
    attacks = attacks or search.get("attacks") or "pgd50x10"
    examples = examples if examples is not None else search.get("examples")
    defaults = bool(search.get("defaults", False)) if defaults is None else defaults
    racing = bool(search.get("racing", True)) if racing is None else racing
    margin = float(search.get("margin", 0.02))
    chosen, racing = _chosen(run, top, defaults, racing, trial_ids)
    csv_path = run.run_dir / CONFIRMATION_CSV
    own = {(str(r["trial_id"]), int(r["seed"])): r for r in read_rows(csv_path) if r.get("source") in OWN_SOURCES}
    storage = run.run_dir.parent
    conf = Confirmation(run, attacks, examples, plan, progress, {}, read_known(storage), own)
    with conf.ray:  # Ray once for every round, started only if one trains (Confirmation._stage)
        rounds = _race(conf, chosen, seeds, margin) if racing else _all_seeds(conf, chosen, seeds)
    order = [item(c, i) for c in chosen for i in range(seeds)]
    ordered = [conf.rows[i.key] for i in order if i.key in conf.rows]
    mine = [r for r in ordered if r.get("source") == "this run"]
    backprops = sum(int(r.get("backprops") or 0) for r in mine)
    seconds = sum(float(r.get("train_seconds") or 0.0) for r in mine
                  if not math.isnan(float(r.get("train_seconds") or 0)))
    write_csv(ordered, csv_path)
    add_known(storage, mine, str(run.run_dir))
    stats = recipe_stats(ordered, run.reference_backprops, float(run.experiment.get("cost_weight", 0.1) or 0.1))
    state = "interrupted" if conf.interrupted else "finished"
    picked = _pick_fields(stats, run.summary.get("target_robust_acc"))
    write_summary(run.run_dir, {
        "confirm_backprops": backprops,
        "confirm_train_seconds": round(seconds, 3), "confirm_rows": len(ordered),
        "confirm_reused_rows": conf.reused_rows, "confirm_state": state,
        "confirm_wall_seconds": round(time.monotonic() - start, 3), "confirm_seeds": seeds, "confirm_top": top,
        "confirm_attacks": attacks, "confirm_racing": racing, "confirm_rounds": rounds,
        "confirm_reused_from": sorted({str(r["source"]) for r in ordered if r.get("source") not in OWN_SOURCES}),
        **picked,
        **({"state": "interrupted"} if conf.interrupted else {}),
    })
    return ConfirmResult(run.run_dir, ordered, stats, backprops, seconds, time.monotonic() - start, conf.reused_rows,
                         conf.interrupted, rounds)


__all__ = ["OWN_SOURCES", "PLANNED_FILE", "REFERENCE", "Candidate", "Confirmation", "Item", "candidates", "item",
           "run_confirmation"]
