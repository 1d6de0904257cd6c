"""Tests for trainables.weights: one rule for which weights count (``checkpoint: last | best``),
the engine's reported accuracies and objective following it, and both candidates recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainables.config import parse_config
from trainables.registry import ConfigError
from trainables.training.engine import Run, start_run
from trainables.weights import counts_best, scored_file

TINY = {"dataset": "digits", "model": "small_cnn", "batch_size": 16, "max_batches": 2, "epochs": 3,
        "eval.examples": 32, "eval.steps": 1, "epsilon": 0.1, "co.enabled": False}
SCRIPT = [0.5, 0.3, 0.2]  # robust accuracy per epoch: the best is the first, the last the worst


@pytest.mark.parametrize(("rule", "status", "best"), [
    ("last", "completed", False), ("last", "pruned", False), ("last", "catastrophic_overfitting", True),
    ("best", "completed", True), ("best", "diverged", True), ("last", "", False),
])
def test_counts_best(rule: str, status: str, best: bool) -> None:
    assert counts_best(rule, status) is best


def test_scored_file_of_a_folder(tmp_path: Path) -> None:
    (tmp_path / "best.pt").write_bytes(b"")
    assert scored_file(tmp_path, "last", "completed") == (tmp_path / "best.pt", None)  # nothing else there
    (tmp_path / "state.pt").write_bytes(b"")
    assert scored_file(tmp_path, "last", "completed") == (tmp_path / "state.pt", "model")
    assert scored_file(tmp_path, "best", "completed") == (tmp_path / "best.pt", None)
    (tmp_path / "best.pt").unlink()
    assert scored_file(tmp_path, "best", "completed") == (tmp_path / "state.pt", "best_model")


def test_checkpoint_key_is_validated() -> None:
    assert parse_config({}).checkpoint == "last"
    assert parse_config({"checkpoint": "best"}).checkpoint == "best"
    with pytest.raises(ConfigError, match="checkpoint.*last, best"):
        parse_config({"checkpoint": "final"})


def _scripted(rule: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Run, list[dict[str, Any]]]:
    run = start_run(parse_config({**TINY, "checkpoint": rule}), device="cpu")
    script = iter(SCRIPT)
    monkeypatch.setattr(run, "evaluate", lambda: (lambda r: {"clean_acc": r + 0.1, "robust_acc": r, "fgsm_acc": r})(
        next(script)))
    return run, [run.step() for _ in SCRIPT]


@pytest.mark.parametrize("rule", ["last", "best"])
def test_reported_accuracies_follow_the_rule_and_both_are_recorded(rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run, records = _scripted(rule, monkeypatch)
    assert [r["robust_acc_last"] for r in records] == SCRIPT
    assert [r["robust_acc_best"] for r in records] == [0.5, 0.5, 0.5]
    assert [r["clean_acc_best"] for r in records] == [0.6, 0.6, 0.6]
    expected = [0.5, 0.5, 0.5] if rule == "best" else SCRIPT
    assert [r["robust_acc"] for r in records] == expected
    assert records[-1]["objective"] == pytest.approx(run.objective(expected[-1]))
    summary = run.summary()
    assert (summary["robust_acc"], summary["robust_acc_last"], summary["robust_acc_best"]) == (expected[-1], 0.2, 0.5)
    assert summary["scored_checkpoint"] == rule
    final = {k: v for k, v in run.model.state_dict().items()}
    scored = run.scored_weights()
    assert run.best_model is not None
    same_as = run.best_model if rule == "best" else final
    assert all(torch.equal(scored[k], same_as[k].cpu()) for k in scored)


def test_the_best_evaluation_survives_a_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    run, _ = _scripted("best", monkeypatch)
    again = start_run(parse_config({**TINY, "checkpoint": "best"}), device="cpu")
    again.load_state_dict(run.state_dict())
    assert again.scored_eval()["robust_acc"] == 0.5 and again.scored_eval()["robust_acc_last"] == 0.2
