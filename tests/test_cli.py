"""The command line: exit codes, one-line errors before anything starts, the --json contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raysearch.cli import main

TINY = ["--set", "epochs=1", "--set", "eval.examples=50", "--set", "eval.steps=2", "--set", "epsilon=0.1"]


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one clear line
    return err[0]


@pytest.mark.parametrize(("overrides", "expected"), [
    (["epsilom=0.1"], "did you mean 'epsilon'"),
    (["amata.kmax=4"], "did you mean 'amata.k_max'"),
    (["method=pdg"], "did you mean 'pgd'"),
    (["schedule=amta"], "did you mean 'amata'"),
    (["model=small_cnnn"], "did you mean 'small_cnn'"),
    (["dataset=cifar"], "did you mean"),
    (["epsilon=0"], "epsilon=0"),
    (["epsilon=1.5"], "must be in (0, 1]"),
    (["amata.k_min=6", "amata.k_max=3"], "must be >= amata.k_min (6)"),
    (["epochs=0"], "epochs=0"),
    (["epochs=-3"], "positive whole number"),
    (["batch_size=0"], "batch_size=0"),
    (["epochs=2.5"], "whole number"),
    (["method=free", "loss=trades"], "loss"),
    (["mplus.gamma=0.9"], "mplus.gamma"),
    (["eval.steps=0"], "eval.steps"),
    (["notakey"], "expected KEY=VALUE"),
])
def test_train_bad_input_exits_2_with_one_line(overrides: list[str], expected: str,
                                                capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["train", "--out", str(tmp_path / "out")]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 2
    line = _error_line(capsys)
    assert line.startswith("raysearch train: error:") and expected in line
    assert not (tmp_path / "out").exists()  # nothing was started


def test_missing_dataset_says_how_to_get_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["train", "--set", "dataset=cifar10", "--set", f"data_root={tmp_path}", "--out",
                 str(tmp_path / "out")]) == 2
    line = _error_line(capsys)
    assert "cifar10 not found" in line and "download: true" in line


def test_unknown_experiment_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "demoo"]) == 2
    line = _error_line(capsys)
    assert "demo" in line and "did you mean 'demo'" in line
    assert main(["train", "missing.yaml"]) == 2
    assert "no such file" in _error_line(capsys)


def test_unwritable_output_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", *TINY, "--out", str(blocker / "sub")]) == 2
    assert "not writable" in _error_line(capsys)


@pytest.mark.parametrize(("args", "expected"), [
    (["--set", "search.space=amat"], "did you mean 'amata'"),
    (["--set", "search.samples=0"], "search.samples"),
    (["--set", "search.sampels=4"], "did you mean 'samples'"),
    (["--gpus-per-trial", "1.5"], "whole number"),
    (["--cpus-per-trial", "0"], "cpus_per_trial"),
    (["--set", "epsilon=2"], "epsilon"),
])
def test_search_bad_input_exits_2_before_ray_starts(args: list[str], expected: str,
                                                     capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import ray

    assert main(["search", *args, "--storage", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert line.startswith("raysearch search: error:") and expected in line
    assert not ray.is_initialized()


def test_search_unwritable_storage(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import ray

    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["search", "--storage", str(blocker / "runs")]) == 2
    assert "storage" in _error_line(capsys)
    assert not ray.is_initialized()


def test_train_json_is_the_last_stdout_line(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "raysearch", "train", *TINY, "--set", "schedule=amata",
                           "--json", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300, check=True)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("epochs", "batches_per_epoch", "backprops", "forwards", "train_seconds", "clean_acc",
                "robust_acc", "objective", "history"):
        assert key in summary, key
    (epoch,) = summary["history"]
    for key in ("epoch", "k", "alpha", "backprops", "train_acc", "clean_acc", "robust_acc", "grad_magnitude"):
        assert key in epoch, key
    # Amata 2 -> 10 at t = 0: K = 2, alpha = tau / K = 2.5 * 0.1 / 2; M = 10 batches of digits
    assert epoch["k"] == 2 and epoch["alpha"] == pytest.approx(0.125)
    assert summary["batches_per_epoch"] == 10 and summary["backprops"] == 3 * 10
    assert "epoch   1/1" in proc.stderr  # progress on stderr, JSON alone on stdout
    for name in ("config.yaml", "summary.json", "state.pt", "best.pt"):
        assert (tmp_path / "out" / name).is_file(), name
    assert list((tmp_path / "out" / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("parts", ["trails", ",", "attack,gpus"])
def test_bench_bad_parts_exit_2_with_one_line(parts: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--parts", parts])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "choose from attack, overhead, search, trials, gpu" in err[0], err
