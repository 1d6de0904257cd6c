"""Population-based search (PBT / PB2): a member that exploits another continues exactly as
that member would have, the learned schedule replays as ``piecewise``, and a CPU population on
digits ends with a ``best.yaml`` that ``raysearch train`` replays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import roundtrip

from trainables.config import parse_config
from trainables.training.engine import start_run
from trainables.tune.pbt_member import (
    decode,
    encode,
    learned_schedule,
    member_config,
    population_objective,
    replay_config,
)

TINY = {"dataset": "digits", "model": "small_cnn", "batch_size": 32, "max_batches": 3, "epochs": 4,
        "eval.examples": 40, "eval.steps": 2, "epsilon": 0.1, "co.enabled": False, "method": "pgd"}


def _timeless(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.endswith("_seconds")}


def test_an_exploiting_member_continues_exactly_as_its_parent_until_the_perturbation() -> None:
    parent = start_run(member_config({**TINY, "k": 3, "alpha": 0.03}), "cpu")
    parent.step()
    parent.step()
    state = roundtrip(parent.state_dict())  # the checkpoint on disk the child restores
    expected = parent.step()  # before any other run reseeds the process
    same = start_run(member_config({**TINY, "k": 3, "alpha": 0.03, "seed": 7}), "cpu")  # another member's seed
    same.load_state_dict(state)
    assert _timeless(same.step()) == _timeless(expected)  # the state, not the member, decides
    perturbed = start_run(member_config({**TINY, "k": 5, "alpha": 0.02}), "cpu")
    perturbed.load_state_dict(state)
    record = perturbed.step()
    per_batch = perturbed.batches_per_epoch
    assert record["k"] == 5 and record["alpha"] == pytest.approx(0.02)
    assert record["backprops"] == 2 * (3 + 1) * per_batch + (5 + 1) * per_batch  # inherited + its own
    assert learned_schedule(perturbed.history) == {"schedule": "piecewise", "piecewise.k": [3, 3, 5],
                                                   "piecewise.alpha": [0.03, 0.03, 0.02]}


def test_the_piecewise_schedule_replays_a_k_and_alpha_sequence_and_its_backprops() -> None:
    ks, alphas = [1, 4, 0, 2], [0.1, 0.025, 0.05, 0.04]
    run = start_run(parse_config({**TINY, "schedule": "piecewise", "piecewise.k": ks, "piecewise.alpha": alphas}),
                    "cpu")
    records = [run.step() for _ in range(4)]
    assert [r["k"] for r in records] == ks
    assert [r["alpha"] for r in records[:2]] + [records[3]["alpha"]] == pytest.approx([0.1, 0.025, 0.04])
    # K attack backprops and one weight backprop per batch (K=0: natural training)
    assert run.cost.backprops == sum((k + 1) * run.batches_per_epoch for k in ks)


def test_member_config_rounds_pb2s_real_k_and_replay_drops_the_last_k() -> None:
    assert member_config({**TINY, "k": 4.6, "alpha": 0.03}).k == 5
    assert member_config({**TINY, "k": 0.2, "alpha": 0.03}).k == 1
    replay = replay_config({**TINY, "k": 5, "alpha": 0.02, "schedule": "constant"},
                           {"schedule": "piecewise", "piecewise.k": [3, 5], "piecewise.alpha": [0.03, 0.02]})
    assert "k" not in replay and "alpha" not in replay and replay["piecewise.k"] == [3, 5]
    assert decode(encode([3, 3, 5]), int) == [3, 3, 5] and decode(encode([0.03, 0.02])) == [0.03, 0.02]


def test_the_exploit_criterion_weighs_robustness_against_the_compute_so_far() -> None:
    cheap = start_run(member_config({**TINY, "k": 1, "alpha": 0.1}), "cpu")
    costly = start_run(member_config({**TINY, "k": 10, "alpha": 0.025}), "cpu")
    cheap.step()
    costly.step()
    per_epoch_reference = cheap.reference_backprops / 4  # PGD-10 for one of the 4 epochs
    # same robust accuracy: the costlier member ranks worse by cost_weight x its cost ratio so far
    assert population_objective(cheap, 0.5) == pytest.approx(0.5 + 0.1 * (2 * 3) / per_epoch_reference)
    assert population_objective(costly, 0.5) == pytest.approx(0.5 + 0.1 * (11 * 3) / per_epoch_reference)
    assert population_objective(costly, 0.5) > population_objective(cheap, 0.5)


@pytest.mark.slow
@pytest.mark.usefixtures("shared_ray")
@pytest.mark.parametrize(("algorithm", "members", "epochs"), [("pbt", 3, 3), ("pb2", 2, 2)])
def test_a_cpu_population_on_digits_ends_with_a_replayable_best_yaml(algorithm: str, members: int, epochs: int,
                                                                     tmp_path: Path) -> None:
    from raysearch.commands.report import report
    from raysearch.commands.search import search
    from raysearch.commands.train import train
    from raysearch.rundir.results import load_run

    result = search("demo", [f"epochs={epochs}", "eval.examples=60", f"search.algorithm={algorithm}",
                             f"search.population={members}", "search.confirm.top=0"],
                    storage=str(tmp_path), name=algorithm, progress=False)
    assert len(result.trials) == members and all(t.status.value == "completed" for t in result.trials)
    run = load_run(result.run_dir)
    for trial in run.trials:
        ks = trial.config["piecewise.k"]
        assert trial.population and trial.config["schedule"] == "piecewise" and len(ks) == epochs
        assert all(1 <= k <= 10 for k in ks)
        per_batch = run.batches_per_epoch or 0
        assert trial.metrics["backprops"] == sum((k + 1) * per_batch for k in ks)  # the inherited epochs too
    spent = sum(t.spent_backprops for t in run.trials)
    assert result.summary["search_backprops"] == spent  # what the members trained themselves
    report(result.run_dir, progress=False)
    best = yaml.safe_load((Path(result.run_dir) / "best.yaml").read_text())
    assert best["schedule"] == "piecewise" and "k" not in best
    replay = train(Path(result.run_dir) / "best.yaml", out_dir=tmp_path / "replay", progress=False)
    assert [r["k"] for r in replay.summary["history"]] == best["piecewise"]["k"]
    assert replay.summary["backprops"] == result.best.metrics["backprops"]
    assert (Path(result.run_dir) / "schedules.png").stat().st_size > 0
