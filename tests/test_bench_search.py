"""raysearch bench --search: the rank correlation by hand, and a quick comparison's JSON line
(the contract keys, medians of the rows, and each search's cost and confirmed answer)."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from raysearch.benchmarks.economics import DEFAULT_VARIANTS, VARIANTS, spearman


def test_spearman_by_hand_with_ties() -> None:
    # ranks x 1..5, y 1, 2, 3.5, 5, 3.5: cov 8, sx sqrt(10), sy sqrt(9.5) -> 8 / sqrt(95)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([0.1, 0.5, 0.2], [1, 9, 4]) == pytest.approx(1.0)  # monotone, not linear


def test_spearman_needs_three_finite_pairs_and_some_spread() -> None:
    assert math.isnan(spearman([1, 2], [2, 1]))
    assert math.isnan(spearman([1, 2, math.nan, 4], [1, 2, 3, math.inf]))  # two pairs left
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))  # no ranking to correlate
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])


def test_baseline_is_raysearch_0_2s_answer_and_new_is_todays_default() -> None:
    baseline = dict(o.split("=", 1) for o in VARIANTS["baseline"])
    # 0.2: PGD-10 trained as a reference, every candidate on every seed, the paper defaults confirmed too
    assert baseline == {"search.reuse": "false", "search.reference": "true", "search.confirm.racing": "false",
                        "search.confirm.defaults": "true", "search.budget": "4"}
    assert VARIANTS["new"] == ["search.reuse=false"]  # the demo as shipped, nothing reused from earlier runs
    assert DEFAULT_VARIANTS == ("baseline", "new")


@pytest.mark.slow
def test_quick_comparison_prints_the_contract_keys_last(capsys: pytest.CaptureFixture[str]) -> None:
    from raysearch.commands.bench import bench

    result = bench(json_output=True, quick=True, search=True, seeds=(0,))
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == json.loads(json.dumps(result))
    rows = result["rows"]
    assert {r["variant"] for r in rows} == {"baseline", "new"}
    for variant in ("baseline", "new"):
        mine = [r for r in rows if r["variant"] == variant]
        assert result[f"{variant}_cost_runs"] == statistics.median(r["cost_runs"] for r in mine)
        assert result[f"{variant}_total_cost_runs"] == statistics.median(r["total_cost_runs"] for r in mine)
        assert result[f"{variant}_confirmed_objective"] == statistics.median(r["confirmed_objective"] for r in mine)
        for r in mine:
            assert r["total_cost_runs"] == pytest.approx(r["cost_runs"] + r["confirm_cost_runs"])
            assert r["cost_runs"] > 0 and r["confirm_cost_runs"] >= 0 and 0 < r["confirmed_objective"] < 2 and r["best"]
    # quick: top 1 races alone, so today's confirmation trains nothing; 0.2's re-trains the defaults
    assert result["rows"][0]["confirm_cost_runs"] > 0 and result["rows"][1]["confirm_cost_runs"] == 0
    # 0.2's answer trains PGD-10 again and confirms the defaults: it costs more than today's
    assert result["baseline_total_cost_runs"] > result["new_total_cost_runs"]


@pytest.mark.slow
def test_each_fidelity_level_is_correlated_with_the_confirmed_full_runs(tmp_path) -> None:
    from raysearch.benchmarks.economics import QUICK, measure_fidelity
    from raysearch.tuning.resources import ray_session

    with ray_session():
        fidelity = measure_fidelity(3, 2, 0, str(tmp_path), QUICK)
    levels = fidelity["levels"]
    assert fidelity["recipes"] == 3  # quick: 2 epochs, the proxy 1 epoch on half the data
    assert [(level["epochs"], level["data_fraction"]) for level in levels] == [(1, 0.5), (2, 1.0)]
    assert all(-1 <= level["spearman"] <= 1 for level in levels)
