"""raysearch bench: the formulas, the report and a quick run's shape. No timing is asserted:
speed targets are met and shown by the benchmark, not by timed tests."""

from __future__ import annotations

import json

import pytest
import torch
from rich.console import Console

from raysearch.benchmarks.attack import attack_limit, attack_target, non_model_share
from raysearch.benchmarks.cases import Case, settings
from raysearch.benchmarks.gpu import measure_precisions, measure_sharing
from raysearch.benchmarks.search_overhead import SEARCH_OVERHEAD_TARGET
from raysearch.benchmarks.smoke import failure_line
from raysearch.benchmarks.tables import print_report
from raysearch.commands.bench import bench
from raysearch.rundir.outcomes import search_overhead_fraction
from trainables.registry import ConfigError


def test_attack_limit_is_one_training_step_plus_k_two_thirds_steps() -> None:
    assert attack_limit(0) == 1
    assert attack_limit(1) == pytest.approx(5 / 3)
    assert attack_limit(3) == pytest.approx(3)
    assert attack_limit(10) == pytest.approx(23 / 3)
    assert attack_target(10) == pytest.approx(1.1 * 23 / 3)


def test_search_overhead_is_the_share_of_slot_time_inside_trials() -> None:
    assert search_overhead_fraction(90.0, 50.0, 2) == pytest.approx(0.9)
    assert search_overhead_fraction(10.0, 10.0, 1) == pytest.approx(1.0)
    assert search_overhead_fraction(5.0, 0.0, 2) == 0.0


def test_a_failed_smoke_part_says_the_cause_after_the_header_line() -> None:
    # Ray Train's ControllerError: a header line, then the cause (a startup timeout here)
    err = RuntimeError("Training failed due to controller error:\nThe worker group startup timed out after 60.0 seconds"
                       "\n\n  waiting for 2 workers.")
    assert failure_line(err) == ("RuntimeError: Training failed due to controller error: / The worker group startup "
                                 "timed out after 60.0 seconds / waiting for 2 workers.")
    assert failure_line(ValueError("x" * 900)) == "ValueError: " + "x" * 600


def test_non_model_share() -> None:
    assert non_model_share(2.0, 1.5) == pytest.approx(0.25)
    assert non_model_share(1.0, 1.2) == 0.0  # noise cannot make it negative
    assert non_model_share(0.0, 1.0) == 0.0


def test_settings_state_what_is_timed() -> None:
    cpu = settings("cpu", quick=False)
    assert cpu.threads == 1
    assert [(c.model, c.dataset, c.batch_size) for c in cpu.cases] == [
        ("small_cnn", "digits", 32), ("preact_resnet18", "synthetic", 32)]
    assert [c.model for c in settings("cpu", quick=True).cases] == ["small_cnn"]
    gpu = settings("cuda", quick=False, threads=4)
    assert gpu.threads == 4 and {c.batch_size for c in gpu.cases} == {128}
    config = Case("small_cnn", "digits", 32, 3).config(10, "cpu")
    assert config["max_batches"] == 3 and config["k"] == 10 and config["method"] == "pgd"


def test_unknown_parts_are_rejected() -> None:
    with pytest.raises(ConfigError, match="parts"):
        bench(parts=("attack", "speed"))


def test_quick_bench_prints_one_json_object_last(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    result = bench(json_output=True, quick=True, parts=("attack", "overhead"))
    assert torch.get_num_threads() == threads  # restored
    last = capsys.readouterr().out.strip().splitlines()[-1]
    printed = json.loads(last)
    assert printed == json.loads(json.dumps(result))
    rows = printed["attack_efficiency"]
    assert [(r["model"], r["k"]) for r in rows] == [("small_cnn", 1), ("small_cnn", 3), ("small_cnn", 10)]
    for row in rows:
        assert row["ratio"] > 0 and row["limit"] == pytest.approx(attack_limit(row["k"]))
        assert row["target"] == pytest.approx(1.1 * row["limit"]) and isinstance(row["ok"], bool)
    assert [r["k"] for r in printed["non_model_overhead"]] == [0, 10]
    assert all(0 <= r["share"] <= 1 for r in printed["non_model_overhead"])
    assert printed["search_overhead"] is None and printed["threads"] == 1


def test_report_shows_each_ratio_next_to_its_target() -> None:
    result = {
        "device": "cpu", "threads": 1, "torch": "x", "load_average": {"before": 1.0, "after": 2.0, "cpus": 2},
        "attack_efficiency": [{"model": "small_cnn", "k": 10, "ratio": 8.0, "limit": 23 / 3, "target": 1.1 * 23 / 3,
                               "ok": True, "batch_size": 32, "batches": 10}],
        "non_model_overhead": [{"model": "small_cnn", "k": 10, "epoch_seconds": 0.5, "model_seconds": 0.45,
                                "share": 0.1}],
        "search_overhead": 0.5,
        "search": {"fraction": 0.5, "target": 0.9, "ok": False, "wall_seconds": 10.0, "trial_seconds_sum": 10.0,
                   "concurrency": 2, "startup_seconds": 3.0, "trials": 24, "epochs": 6},
        "gpu": {"name": "GPU", "precision": [{"precision": "bf16", "images_per_second": 1000.0}],
                "sharing": [{"processes": 2, "images_per_second": 1500.0, "speedup": 1.5}]},
    }
    console = Console(record=True, width=200)
    print_report(result, console)
    text = console.export_text()
    assert "8.00" in text and "7.67" in text and "8.43" in text
    assert "10.0%" in text and "50.0% of slot time in trials" in text and "1.50" in text
    assert "24 trials of up to 6 epochs" in text and "start-up before Tune 3.0 s" in text


def test_gpu_measurements_run_on_any_device() -> None:
    case = Case("small_cnn", "digits", 16, 1)
    rows = measure_precisions(case, "cpu", repeats=1)
    assert [r["precision"] for r in rows] == ["fp32", "bf16"] and all(r["images_per_second"] > 0 for r in rows)


@pytest.mark.slow
def test_sharing_processes_report_aggregate_throughput() -> None:
    rows = measure_sharing(Case("small_cnn", "digits", 16, 2), "cpu", processes=(1, 2), epochs=1)
    assert [r["processes"] for r in rows] == [1, 2] and rows[0]["speedup"] == 1.0
    assert all(r["images_per_second"] > 0 for r in rows)


@pytest.mark.slow
def test_quick_bench_with_the_search(capsys: pytest.CaptureFixture[str]) -> None:
    result = bench(json_output=True, quick=True, parts=("search",))
    assert 0 < result["search_overhead"] <= 1
    assert result["search"]["trials"] == settings("cpu", quick=True).search_samples
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["search_overhead"] == result["search_overhead"]
    assert result["search"]["target"] == SEARCH_OVERHEAD_TARGET == 0.95
