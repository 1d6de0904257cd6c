"""The racing rule of the confirmation (irace's paired t-test elimination over seeds)."""

from __future__ import annotations

import statistics

import pytest

from raysearch.reporting.racing import race_round
from raysearch.reporting.stats import t_quantile


def _rows(trial: str, values: list[float]) -> list[dict]:
    return [{"trial_id": trial, "seed": s, "val_objective": v} for s, v in enumerate(values)]


def test_a_clearly_worse_candidate_is_dropped_after_the_round_that_separates_it() -> None:
    leader, worse = [0.20, 0.22, 0.21], [0.30, 0.33, 0.31]
    # after one seed nothing is tested (no interval from one pair)
    first = race_round(_rows("a", leader[:1]) + _rows("b", worse[:1]), ["a", "b"])
    assert first.alive == ("a", "b") and not first.dropped and not first.decided
    # after two seeds the paired differences are 0.10 and 0.11: mean 0.105, s = 0.00707,
    # half width t(0.975, 1) * s / sqrt(2) = 12.706 * 0.005 = 0.0635: the interval [0.0415, 0.1685] > 0
    second = race_round(_rows("a", leader[:2]) + _rows("b", worse[:2]), ["a", "b"])
    assert second.alive == ("a",) and second.decided and second.leader == "a"
    drop = second.dropped[0]
    half = t_quantile(1) * statistics.stdev([0.10, 0.11]) / 2 ** 0.5
    assert drop.trial_id == "b" and drop.seeds == 2
    assert drop.diff.mean == pytest.approx(0.105) and drop.diff.low == pytest.approx(0.105 - half)
    assert drop.reason("#1 A").startswith("dropped after 2 seeds: validation objective +0.1050 worse than #1 A")


def test_a_tie_goes_on_to_the_last_seed() -> None:
    a, b = [0.20, 0.25, 0.22], [0.24, 0.21, 0.23]  # differences +0.04, -0.04, +0.01: no side clear
    for n in (2, 3):
        decision = race_round(_rows("a", a[:n]) + _rows("b", b[:n]), ["a", "b"])
        assert decision.alive == ("a", "b") and not decision.dropped and not decision.decided


def test_equivalent_within_the_margin_decides_the_race_without_dropping() -> None:
    a, b = [0.200, 0.210, 0.205], [0.201, 0.211, 0.206]  # b is 0.001 worse on every seed
    decision = race_round(_rows("a", a) + _rows("b", b), ["a", "b"], margin=0.02)
    # the difference 0.001 with no spread: interval [0.001, 0.001] > 0, so b is dropped
    assert decision.dropped and decision.decided
    c = [0.199, 0.212, 0.205]  # differences -0.001, +0.002, 0: inside ±0.02, not above 0
    decision = race_round(_rows("a", a) + _rows("c", c), ["a", "c"], margin=0.02)
    assert decision.alive == ("a", "c") and not decision.dropped and decision.decided
    assert not race_round(_rows("a", a) + _rows("c", c), ["a", "c"], margin=0.001).decided


def test_the_leader_is_the_lowest_mean_and_only_validation_is_read() -> None:
    rows = _rows("a", [0.30, 0.31]) + _rows("b", [0.20, 0.21])
    for row in rows:  # test-split numbers that would reverse the order are ignored
        row["objective"] = 1.0 - row["val_objective"]
    decision = race_round(rows, ["a", "b"])
    assert decision.leader == "b" and decision.alive == ("b",) and decision.dropped[0].trial_id == "a"


def test_a_confirmation_enters_ray_once_for_all_its_rounds_and_leaves_it_at_the_end(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each round is a Tune stage; Ray starts at the first one that trains (not before: a
    confirmation of known rows needs none) and stops when the confirmation ends, not per round."""
    import ray

    import raysearch.pipeline.confirmation_stage as stage
    import raysearch.tuning.tuner as tuner
    from raysearch.rundir.results import RunInfo

    up = {"now": False, "inits": 0, "shutdowns": 0}
    monkeypatch.setattr(ray, "is_initialized", lambda: up["now"])
    monkeypatch.setattr(ray, "init", lambda *a, **k: up.update(now=True, inits=up["inits"] + 1))
    monkeypatch.setattr(ray, "shutdown", lambda *a, **k: up.update(now=False, shutdowns=up["shutdowns"] + 1))
    fits: list[bool] = []
    monkeypatch.setattr(tuner, "fit", lambda *a, **k: fits.append(up["now"]))
    monkeypatch.setattr(stage, "_stage_folder", lambda run_dir, todo: (tmp_path / "confirm", False))
    monkeypatch.setattr(stage.Confirmation, "_trainable", lambda self: (None, 1.0, {"cpu": 1.0}, 1))
    monkeypatch.setattr(stage.Confirmation, "_new_tuner", lambda self, *a: None)
    run = RunInfo.__new__(RunInfo)
    object.__setattr__(run, "run_dir", tmp_path)
    conf = stage.Confirmation(run, "pgd10", None, None, False, {}, {}, {})
    with conf.ray:
        assert up["inits"] == 0  # nothing trained yet
        for _ in range(3):  # three rounds of a race
            conf._stage([], "round")
        assert fits == [True, True, True] and up == {"now": True, "inits": 1, "shutdowns": 0}
    assert up == {"now": False, "inits": 1, "shutdowns": 1}
