"""raysearch evaluate: attack names, the gradient-masking checks, checkpoint targets, and (slow)
the top trial of a real search attacked on the test split."""

from __future__ import annotations

import csv
import importlib
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from raysearch.commands.evaluate import evaluate
from raysearch.pipeline.evaluation import AUTOATTACK_MISSING
from raysearch.pipeline.masking_checks import (
    check_epsilon,
    check_more_steps,
    check_order,
    sanity_checks,
)
from raysearch.pipeline.targets import config_near, weights_in
from trainables.evaluation.attack_names import Attack, parse_attacks
from trainables.registry import ConfigError

evaluation = importlib.import_module("raysearch.pipeline.evaluation")  # where evaluate_model looks up autoattack


# ---------------------------------------------------------------------------- attack names


def test_parse_attacks() -> None:
    assert parse_attacks("pgd50x10,cw20,autoattack") == [
        Attack("pgd50x10", "pgd", 50, 10), Attack("cw20", "cw", 20, 1), Attack("autoattack", "autoattack")]
    assert parse_attacks(["PGD7", " cw5x2 "]) == [Attack("pgd7", "pgd", 7, 1), Attack("cw5x2", "cw", 5, 2)]
    for bad in ("pgd", "fgsm", "pgd0", "pgd10x0", "", "apgd100"):
        with pytest.raises(ConfigError, match="attacks"):
            parse_attacks(bad)


# ---------------------------------------------------------------------------- sanity checks


def test_more_steps_check_flags_a_weaker_strong_attack() -> None:
    assert check_more_steps(0.40, 0.38) == []
    assert check_more_steps(0.40, 0.40) == []
    (warning,) = check_more_steps(0.40, 0.45)
    assert "PGD-50x10" in warning and "gradient masking" in warning
    assert check_more_steps(0.40, 0.405, tolerance=0.01) == []


def test_order_check_wants_robust_below_fgsm_below_clean() -> None:
    assert check_order(clean=0.9, fgsm=0.6, robust=0.5) == []
    (warning,) = check_order(clean=0.9, fgsm=0.4, robust=0.5)
    assert "FGSM" in warning and "PGD" in warning
    (warning,) = check_order(clean=0.5, fgsm=0.6, robust=0.4)
    assert "clean" in warning
    assert len(check_order(clean=0.3, fgsm=0.5, robust=0.6)) == 2


def test_epsilon_check_wants_accuracy_to_fall_as_epsilon_grows() -> None:
    assert check_epsilon({0.0: 0.9, 0.1: 0.6, 0.2: 0.4, 0.4: 0.1}) == []
    assert check_epsilon({0.4: 0.1, 0.0: 0.9, 0.2: 0.1}) == []  # order of the mapping is irrelevant
    (warning,) = check_epsilon({0.0: 0.9, 0.1: 0.3, 0.2: 0.5})
    assert "ε = 0.1" in warning and "ε = 0.2" in warning


def test_sanity_checks_on_a_masked_model_row() -> None:
    good = {"clean": 0.9, "fgsm": 0.6, "pgd10": 0.5, "pgd50x10": 0.45, "cw20": 0.47, "pgd10@0.5eps": 0.7,
            "pgd10@2eps": 0.1, "autoattack": math.nan}
    assert sanity_checks(good, 0.1) == []
    masked = {**good, "pgd50x10": 0.55, "pgd10@2eps": 0.8, "fgsm": 0.45}
    found = sanity_checks(masked, 0.1)
    assert len(found) == 3
    assert any("PGD50X10" in w for w in found) and any("FGSM" in w for w in found)
    assert any("ε = 0.2" in w for w in found)


# ---------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """raysearch train's output folder (state.pt, best.pt, config.yaml) of a 2-epoch digits run."""
    from raysearch.commands.train import train

    out = tmp_path_factory.mktemp("train") / "out"
    train("demo", ["epochs=2", "eval.examples=60", "method=fgsm_rs", "seed=3"], out_dir=out, progress=False)
    return out


def test_evaluate_a_checkpoint_folder(checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(evaluation, "autoattack_available", lambda: False)
    result = evaluate(checkpoint, attacks="pgd20x2,cw5,autoattack", examples=30, device="cpu")
    (row,) = result.rows
    assert row["examples"] == 30 and row["model"] == "out" and row["recipe"].startswith("FGSM-RS")
    assert row["weights"].endswith("state.pt") and row["checkpoint"] == "last"  # checkpoint: last, the default
    for name in ("clean", "fgsm", "pgd10", "pgd20x2", "cw5", "pgd10@0.5eps", "pgd10@2eps"):
        assert 0.0 <= row[name] <= 1.0, name
    assert row["pgd20x2"] <= row["clean"] and row["pgd10@2eps"] <= row["pgd10@0.5eps"]
    assert math.isnan(row["autoattack"])
    assert result.skipped == [AUTOATTACK_MISSING] and "raysearch[autoattack]" in AUTOATTACK_MISSING
    assert result.csv_path == checkpoint / "evaluation.csv" and result.md_path == checkpoint / "evaluation.md"
    with result.csv_path.open() as f:
        (csv_row,) = list(csv.DictReader(f))
    assert float(csv_row["pgd20x2"]) == row["pgd20x2"] and csv_row["autoattack"] == ""
    md = result.md_path.read_text()
    assert "Test split (30 examples)" in md and "Skipped: AutoAttack skipped" in md and "| out |" in md
    assert "install raysearch[autoattack]" in capsys.readouterr().out


def test_file_targets_and_bad_input(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "autoattack_available", lambda: False)
    by_folder = evaluate(checkpoint, attacks="pgd5", examples=20, progress=False).rows[0]
    by_file = evaluate(checkpoint / "state.pt", attacks="pgd5", examples=20, progress=False).rows[0]
    assert {k: by_file[k] for k in ("clean", "pgd10", "pgd5")} == {k: by_folder[k] for k in ("clean", "pgd10", "pgd5")}
    best = evaluate(checkpoint / "best.pt", attacks="pgd5", examples=20, progress=False).rows[0]
    assert best["weights"].endswith("best.pt") and best["checkpoint"] == "file" and 0.0 <= best["pgd5"] <= best["clean"]
    with pytest.raises(ConfigError, match="no such run directory or checkpoint"):
        evaluate(checkpoint / "missing.pt")
    with pytest.raises(ConfigError, match="attacks"):
        evaluate(checkpoint, attacks="pgd")
    with pytest.raises(ConfigError, match="examples"):
        evaluate(checkpoint, examples=0)
    with pytest.raises(ConfigError, match="device"):
        evaluate(checkpoint, device="gpu7")
    with pytest.raises(ConfigError, match="top"):
        evaluate(checkpoint, top=0)


@pytest.mark.parametrize(("config", "status", "weights", "key", "which"), [
    ({}, None, "state.pt", "model", "last"),  # the default rule, the state's own status (completed)
    ({"checkpoint": "last"}, "completed", "state.pt", "model", "last"),
    ({"checkpoint": "last"}, "catastrophic_overfitting", "best.pt", None, "best"),  # SPEC 6: keeps its best
    ({"checkpoint": "best"}, "completed", "best.pt", None, "best"),
])
def test_the_checkpoint_rule_decides_which_weights_a_folder_gives(
        checkpoint: Path, config: dict[str, Any], status: str | None, weights: str, key: str | None, which: str) -> None:
    folder, path, state_key, picked = weights_in(checkpoint, config, status)
    assert (folder, path.name, state_key, picked) == (checkpoint, weights, key, which)


@pytest.mark.slow
def test_autoattack_runs_through_the_authors_package_and_is_not_weaker_than_apgd_ce(checkpoint: Path) -> None:
    pytest.importorskip("pyautoattack")
    from pyautoattack import AutoAttack

    result = evaluate(checkpoint, attacks="pgd20,autoattack", examples=16, progress=False)
    (row,) = result.rows
    assert result.skipped == []
    assert 0.0 <= row["autoattack"] <= row["clean"]
    # APGD-CE alone (the first of the four attacks of the standard version) on the same examples
    from trainables.config import parse_config
    from trainables.data import load_dataset, materialize
    from trainables.models import build_model

    cfg = parse_config(config_near(checkpoint))
    data = load_dataset(cfg.dataset, cfg.data_root)
    test = materialize(data.test, 16)
    model = build_model(cfg.model, data.num_classes, data.input_shape, data.mean, data.std)
    model.load_state_dict(torch.load(checkpoint / "best.pt", map_location="cpu", weights_only=True))
    model.eval()
    apgd = AutoAttack(model, norm="Linf", eps=cfg.epsilon, version="custom", attacks=["apgd-ce"], device="cpu", seed=0)
    _, y_adv = apgd.run_standard_evaluation(test.images(), test.y, batch_size=16)
    apgd_ce = (y_adv == test.y).float().mean().item()
    assert row["autoattack"] <= apgd_ce + 1e-9


# ---------------------------------------------------------------------------- a real search (slow)


@pytest.mark.slow
def test_pgd50x10_is_at_most_in_loop_pgd10_on_the_same_examples(tiny_search_run: dict[str, Any]) -> None:  # noqa: F811
    from raysearch.commands.report import report
    from raysearch.rundir.results import best_trial, load_run
    from trainables.config import parse_config
    from trainables.data import load_dataset
    from trainables.evaluation.accuracy import evaluate_accuracy
    from trainables.models import build_model

    run_dir, n = tiny_search_run["run_dir"], 60
    result = evaluate(run_dir, top=1, attacks="pgd50x10,cw20", examples=n, device="cpu", progress=False)
    (row,) = result.rows
    best = best_trial(load_run(run_dir).trials)
    assert row["model"] == best.trial_id and row["examples"] == n
    assert result.csv_path == run_dir / "evaluation.csv" and result.md_path.exists()

    # the in-loop attack (PGD-10, α = ε/4, 1 restart) on the same model and test examples
    cfg = parse_config(best.config)
    data = load_dataset(cfg.dataset, cfg.data_root)
    model = build_model(cfg.model, data.num_classes, data.input_shape, data.mean, data.std)
    saved = torch.load(Path(row["weights"]), map_location="cpu", weights_only=True)
    model.load_state_dict(saved["model"] if row["weights"].endswith("state.pt") else saved)  # checkpoint: last
    torch.manual_seed(1)
    in_loop = evaluate_accuracy(model, data.test.images()[:n], data.test.y[:n], cfg.epsilon, cfg.eval.steps,
                                cfg.epsilon / 4)
    assert row["clean"] == pytest.approx(in_loop.clean_acc)
    assert row["pgd50x10"] <= in_loop.robust_acc
    assert row["cw20"] <= row["clean"]

    report(run_dir, progress=False)
    assert "## Final evaluation (test split)" in (run_dir / "report.md").read_text()
