"""Tests for trainables.training.engine, trainables.evaluation and its scoring: seeded determinism, exact checkpoint
continuation, accuracy ordering of a trained model, divergence, the catastrophic-overfitting
rule, the objective formula and Amata's PMP criterion."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import roundtrip
from torch import nn

import trainables.attacks.pgd as pgd_module
from trainables.attacks import input_gradient, pgd_step
from trainables.config import parse_config
from trainables.evaluation.accuracy import evaluate_accuracy
from trainables.evaluation.monitors import COMonitor, pmp_criterion
from trainables.evaluation.scoring import (
    DIVERGED_OBJECTIVE,
    reference_backprops,
    tradeoff_objective,
)
from trainables.methods import BatchStats
from trainables.training.engine import CO, COMPLETED, DIVERGED, RUNNING, Run, start_run

TINY = {"dataset": "digits", "model": "small_cnn", "batch_size": 16, "max_batches": 3,
        "eval.examples": 32, "eval.steps": 2, "epsilon": 0.1, "co.enabled": False}


def _run(values: dict[str, Any], epochs: int | None = None) -> Run:
    merged = {**TINY, **values}
    if epochs is not None:
        merged["epochs"] = epochs
    return start_run(parse_config(merged), device="cpu")


def _steps(run: Run, n: int | None = None) -> Run:
    for _ in range(n if n is not None else run.config.epochs):
        run.step()
    return run


def _timeless(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in rec.items() if not k.endswith("_seconds")} for rec in history]


# --- determinism and checkpoints ----------------------------------------------------------


def test_same_seed_same_history() -> None:
    values = {"method": "pgd", "k": 2, "seed": 3, "eval.fgsm": True}
    first = _timeless(_steps(_run(values, 2)).history)
    second = _timeless(_steps(_run(values, 2)).history)
    assert first == second  # exact float equality
    other = _timeless(_steps(_run({**values, "seed": 4}, 2)).history)
    assert other != first


CHECKPOINTED = {
    "pgd+amata": {"method": "pgd", "schedule": "amata", "amata.k_min": 1, "amata.k_max": 3},
    "free+mplus": {"method": "free", "schedule": "mplus", "mplus.gamma": 1.0},
    "free+carry": {"method": "free", "k": 1, "free.carry_delta": True},
    "atas": {"method": "atas", "k": 1},
    "atta+trades": {"method": "atta", "k": 1, "loss": "trades", "atta.reset_every": 2},
}


@pytest.mark.parametrize("name", sorted(CHECKPOINTED))
def test_checkpoint_round_trip_continues_exactly(name: str) -> None:
    values = {**CHECKPOINTED[name], "epochs": 4}
    whole = _steps(_run(values))  # runs one after another: Run() reseeds the global RNG
    half = _steps(_run(values), 2)
    state = roundtrip(half.state_dict())
    resumed = _run(values)
    resumed.load_state_dict(state)
    assert resumed.epoch == 2 and not resumed.finished
    _steps(resumed, 2)
    assert _timeless(resumed.history) == _timeless(whole.history)
    assert resumed.status == whole.status == COMPLETED
    assert (resumed.cost.backprops, resumed.cost.forwards) == (whole.cost.backprops, whole.cost.forwards)
    for a, b in zip(resumed.model.state_dict().values(), whole.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    if name in ("atas", "atta+trades"):
        assert torch.equal(resumed.method.memory.delta, whole.method.memory.delta)
    if name == "atas":
        assert torch.equal(resumed.method.v, whole.method.v) and (whole.method.v > 0).any()
    if name == "free+mplus":
        assert (resumed.schedule.k, resumed.schedule.threshold) == (whole.schedule.k, whole.schedule.threshold)
    if name == "free+carry":
        assert torch.equal(resumed.method.delta, whole.method.delta)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_free_carry_delta_resumes_on_cuda_from_a_cpu_checkpoint() -> None:
    # The trainable loads checkpoints with map_location="cpu"; the carried delta must follow x.
    values = {**TINY, "method": "free", "k": 1, "free.carry_delta": True, "epochs": 2}
    first = start_run(parse_config(values), device="cuda")
    first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = start_run(parse_config(values), device="cuda")
    resumed.load_state_dict(torch.load(buffer, map_location="cpu", weights_only=True))
    assert resumed.step()["status"] == COMPLETED


def test_amata_history_reports_k_and_alpha() -> None:
    run = _steps(_run({"method": "pgd", "schedule": "amata", "amata.k_min": 1, "amata.k_max": 3,
                       "eval.every": 4}, 4))
    assert [rec["k"] for rec in run.history] == [1, 1, 2, 2]
    assert [rec["alpha"] for rec in run.history] == pytest.approx([0.25, 0.25, 0.125, 0.125])  # 2.5 eps / K
    assert [rec["epoch"] for rec in run.history] == [1, 2, 3, 4]
    summary = run.summary()
    assert summary["epochs"] == 4 and summary["batches_per_epoch"] == 3
    assert [rec["backprops"] for rec in summary["history"]] == [6, 12, 21, 30]


# --- evaluation ------------------------------------------------------------------------


class _Threshold(nn.Module):
    """Class 1 iff the image mean exceeds 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1).mean(1)
        return torch.stack([torch.zeros_like(z), 10 * (z - 0.5)], 1)


def test_evaluate_accuracy_exact_on_a_threshold_model() -> None:
    values = torch.tensor([0.2, 0.47, 0.52, 0.56, 0.9, 0.3, 0.53, 0.44, 0.7])
    x = values.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    y = (values > 0.5).long()
    y[-1] = 0  # one mislabeled example
    # eps = 0.05 moves the mean by 0.05: 0.47, 0.52 and 0.53 cross 0.5; the rest cannot.
    torch.manual_seed(0)
    acc = evaluate_accuracy(_Threshold(), x, y, epsilon=0.05, steps=10, alpha=0.05 / 4, batch_size=4)
    assert acc.clean_acc == pytest.approx(8 / 9)
    assert acc.robust_acc == pytest.approx(5 / 9)
    assert acc.fgsm_acc == pytest.approx(5 / 9)
    assert math.isnan(evaluate_accuracy(_Threshold(), x, y, 0.05, 1, 0.05, fgsm=False).fgsm_acc)


def test_trained_model_robust_below_fgsm_below_clean() -> None:
    run = _run({"method": "pgd", "k": 1, "epsilon": 0.1, "max_batches": 0, "batch_size": 128,
                "eval.examples": 200, "eval.steps": 10, "eval.every": 2}, 2)
    record = _steps(run).history[-1]
    assert record["clean_acc"] > 0.5  # it learned something
    assert record["robust_acc"] <= record["fgsm_acc"] <= record["clean_acc"]
    assert record["robust_acc"] < record["clean_acc"]
    assert run.model.training  # evaluation put the model back in training mode


# --- divergence and catastrophic overfitting -----------------------------------------------


def test_huge_learning_rate_diverges() -> None:
    run = _run({"method": "pgd", "k": 0, "lr": 1e6, "max_batches": 0, "batch_size": 128}, 3)
    record = run.step()
    assert record["status"] == DIVERGED == run.status and run.finished
    assert record["objective"] == DIVERGED_OBJECTIVE == 10.0
    assert not math.isfinite(record["train_loss"])
    assert run.cost.eval_seconds == 0.0  # no evaluation of a diverged model
    assert math.isnan(record["robust_acc"]) and math.isnan(record["clean_acc"])  # nor an old epoch's numbers
    assert run.summary()["status"] == DIVERGED


def test_nan_loss_diverges(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run({"method": "pgd", "k": 1}, 3)
    train_batch = run.method.train_batch

    def nan_loss(*args: Any) -> BatchStats:
        stats = train_batch(*args)
        stats.loss = stats.loss * float("nan")
        return stats

    run.step()
    assert run.status == RUNNING
    monkeypatch.setattr(run.method, "train_batch", nan_loss)
    record = run.step()
    assert (record["status"], record["objective"]) == (DIVERGED, 10.0)
    assert [rec["status"] for rec in run.history] == [RUNNING, DIVERGED]


def test_co_monitor_rule_on_scripted_sequences() -> None:
    monitor = COMonitor(drop=0.2)
    script = [  # (robust, fgsm, flagged)
        (0.30, 0.40, False),
        (0.50, 0.60, False),   # new bests 0.5 / 0.6
        (0.35, 0.62, False),   # fell 0.15: not more than 0.2
        (0.25, 0.70, True),    # fell 0.25 while FGSM rose: CO
        (0.20, 0.30, False),   # both fell by more than 0.2: not CO
        (0.10, 0.50, True),    # robust fell 0.4, FGSM only 0.2 (not more than 0.2)
    ]
    for robust, fgsm, flagged in script:
        assert monitor.update(robust, fgsm) is flagged
    assert (monitor.best_robust, monitor.best_fgsm) == (0.50, 0.70)
    restored = COMonitor(0.2)
    restored.load_state_dict(monitor.state_dict())
    assert restored.update(0.25, 0.7) is True


def test_co_monitor_without_fgsm() -> None:
    monitor = COMonitor(drop=0.1)
    assert monitor.update(0.6, math.nan) is False
    assert monitor.update(0.45, math.nan) is True  # no FGSM measurement: robust drop alone
    assert monitor.best_fgsm == 0.0


def test_co_stops_the_run_and_scores_its_best(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run({"method": "fgsm_rs", "co.enabled": True, "co.drop": 0.2}, 5)
    scripted = iter([(0.5, 0.5), (0.6, 0.6), (0.3, 0.9)])
    monkeypatch.setattr(run, "evaluate", lambda: dict(
        zip(("robust_acc", "fgsm_acc"), next(scripted), strict=True), clean_acc=0.9))
    statuses = [run.step()["status"] for _ in range(3)]
    assert statuses == [RUNNING, RUNNING, CO] and run.finished
    record = run.history[-1]
    m = run.batches_per_epoch
    assert record["best_robust_acc"] == 0.6
    assert record["objective"] == pytest.approx((1 - 0.6) + 0.1 * run.cost.backprops / (11 * m * 5))


# --- the objective --------------------------------------------------------------------


def test_objective_formula() -> None:
    assert reference_backprops(10, 7) == 770
    assert tradeoff_objective(0.45, 220, 770, 0.1) == pytest.approx(0.55 + 0.1 * 220 / 770)
    assert tradeoff_objective(1.0, 0, 770, 0.1) == 0.0


@pytest.mark.parametrize("cost_weight", [0.1, 0.5])
def test_run_objective_is_robust_error_plus_weighted_backprops(cost_weight: float) -> None:
    run = _steps(_run({"method": "pgd", "k": 1, "cost_weight": cost_weight}, 2))
    m = run.batches_per_epoch
    assert run.reference_backprops == 11 * m * 2
    for rec in run.history:
        expected = (1 - rec["robust_acc"]) + cost_weight * rec["backprops"] / (11 * m * 2)
        assert rec["objective"] == pytest.approx(expected, rel=1e-12)
    assert run.summary()["objective"] == run.history[-1]["objective"]


def test_pgd10_for_all_epochs_costs_exactly_one_weight_unit() -> None:
    run = _steps(_run({"method": "pgd", "k": 10, "eval.every": 2, "max_batches": 1}, 2))
    assert run.cost.backprops == run.reference_backprops
    assert run.history[-1]["objective"] == pytest.approx(1 - run.history[-1]["robust_acc"] + 0.1)


# --- Amata's PMP criterion (eq. 14) ---------------------------------------------------------


def test_pmp_criterion_in_the_loop() -> None:
    run = _steps(_run({"method": "pgd", "schedule": "amata", "amata.k_min": 1, "amata.k_max": 2,
                       "eval.pmp": True, "eval.examples": 24}, 2))
    for rec in run.history:
        assert math.isfinite(rec["pmp_c"]) and rec["pmp_c"] >= -1e-6
    no_pmp = _steps(_run({"method": "pgd", "k": 1}, 1))
    assert "pmp_c" not in no_pmp.history[-1]


def _hamiltonian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, k: int,
                 alpha: float, gamma: float) -> float:
    delta = torch.zeros_like(x)
    for _ in range(k):
        grad, _, _ = input_gradient(model, x, delta, y, F.cross_entropy)
        delta = pgd_step(delta, grad, alpha, x, eps)
    params = list(model.parameters())
    grads = torch.autograd.grad(F.cross_entropy(model(x + delta), y), params)
    return sum(float(g.pow(2).sum()) for g in grads) - gamma * k


def test_pmp_criterion_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    zero_start = lambda x, eps: torch.zeros_like(x)  # noqa: E731  deterministic attacks
    monkeypatch.setattr(pgd_module, "random_init", zero_start)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.rand(12, 1, 4, 4), torch.arange(12) % 3
    eps, gamma, tau = 0.1, 0.04, 0.25
    k_t, alpha_t = 2, 0.125
    values = {k: _hamiltonian(model, x, y, eps, k, tau / k, gamma) for k in (1, 2, 4)}
    current = _hamiltonian(model, x, y, eps, k_t, alpha_t, gamma)
    c = pmp_criterion(model, x, y, eps, k_t, alpha_t, gamma, grid_k=(1, 2, 4), tau=tau)
    assert c == pytest.approx(max([current, *values.values()]) - current, rel=1e-5, abs=1e-9)
    assert c >= 0
    assert all(p.grad is None for p in model.parameters())
    # Natural training compared with nothing else: C = 0 exactly.
    assert pmp_criterion(model, x, y, eps, 0, 0.1, gamma, grid_k=()) == 0.0


def test_tune_metrics_keep_the_objective_finite() -> None:
    from trainables.trials.report import tune_metrics

    assert tune_metrics({"objective": float("nan"), "train_loss": float("nan")})["objective"] == DIVERGED_OBJECTIVE
    assert tune_metrics({"objective": 0.25, "k": 3}) == {"objective": 0.25, "k": 3}
