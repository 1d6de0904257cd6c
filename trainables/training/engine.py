"""One adversarial-training run, epoch by epoch: the training loop of raysearch.

:class:`Run` holds everything that lives across epochs (data on the device, model,
optimizer, method memories, schedule/controller state, cost counters, RNG) and
round-trips through ``state_dict`` so a checkpointed run continues exactly as if never
interrupted. :meth:`Run.step` trains one epoch, evaluates, and returns the epoch's record
(the metrics Ray Tune reports and ``raysearch train --json`` prints).

The batch loop never synchronizes with the host: statistics accumulate on the device and
are read once per epoch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch

from trainables.config import TrainConfig
from trainables.data import Dataset, materialize
from trainables.evaluation.accuracy import evaluate_accuracy
from trainables.evaluation.monitors import COMonitor, pmp_criterion
from trainables.evaluation.scoring import (
    DIVERGED_OBJECTIVE,
    reference_backprops,
    target_objective,
    tradeoff_objective,
)
from trainables.plan import Plan
from trainables.registry import ConfigError
from trainables.schedules import EpochStats
from trainables.status import Status
from trainables.training.attack_forward import compile_seconds
from trainables.training.cost import Cost, Stopwatch
from trainables.training.run_parts import RunParts, build_parts, resolve_device, uses_bf16
from trainables.weights import counts_best

# Kept for callers of 0.1: the engine's statuses as plain strings.
RUNNING, COMPLETED, DIVERGED, CO = (s.value for s in (Status.RUNNING, Status.COMPLETED, Status.DIVERGED, Status.CO))
BatchCallback = Callable[[int, int], None]  # (batch index, batches per epoch)


def learning_rate(cfg: TrainConfig, progress: float) -> float:
    """LR at fractional epoch ``progress`` ∈ [0, epochs] (per batch, independent of replays)."""
    u = progress / cfg.epochs
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * u))
    if cfg.lr_schedule == "cyclic":  # fast_adversarial's triangle: 0 → lr at 2/5 → 0
        return cfg.lr * (u / 0.4 if u < 0.4 else max(0.0, (1 - u) / 0.6))
    if cfg.lr_schedule == "multistep":
        return cfg.lr * (0.1 if u >= 0.5 else 1.0) * (0.1 if u >= 0.75 else 1.0)
    return cfg.lr


def seed_process(cfg: TrainConfig) -> None:
    """The process edge: CPU threads (CPU results depend on them) and the run's seed."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)


def start_run(cfg: TrainConfig, device: torch.device | str | None = None, data: Dataset | None = None,
              gpu_share: float = 1.0) -> Run:
    """Seed this process for ``cfg`` and build its run (the usual way to begin training).

    Example::

        >>> from trainables.config import parse_config
        >>> run = start_run(parse_config({"epochs": 1, "eval.examples": 50}), "cpu")
        >>> record = run.step()
        >>> record["epoch"], record["status"]
        (1, 'completed')
    """
    seed_process(cfg)
    dev = torch.device(device) if device is not None else resolve_device(cfg.device)
    return Run(cfg, build_parts(cfg, dev, data, gpu_share), dev)


class Run:
    """An adversarial-training run of ``config`` with ``parts`` on ``device``.

    Building one changes no global state; :func:`start_run` seeds the process first."""

    def __init__(self, config: TrainConfig, parts: RunParts, device: torch.device) -> None:
        cfg = config
        self.config, self.device = cfg, device
        data = parts.data
        self.num_classes, self.input_shape = data.num_classes, data.input_shape
        val = materialize(data.val, cfg.eval.examples)
        self.val_x, self.val_y = val.images().to(device), val.y.to(device)
        self.loader, self.model, self.optimizer = parts.loader, parts.model, parts.optimizer
        self.method, self.schedule, self.forward_model = parts.method, parts.schedule, parts.forward
        self.ctx, self.reduce_sums = parts.ctx, parts.reduce_sums
        self.autocast = self.ctx.autocast
        self.cost = Cost()
        self.co = COMonitor(cfg.co.drop)
        self.epoch = 0
        self.status = Status.RUNNING
        self.history: list[dict[str, Any]] = []
        self.best_robust_acc = -1.0
        self.best_eval: dict[str, float] = {}  # the evaluation of the best-validation weights
        self.best_model: dict[str, torch.Tensor] | None = None
        self.last_eval: dict[str, float] = {"clean_acc": 0.0, "robust_acc": 0.0, "fgsm_acc": 0.0}
        if cfg.objective == "target" and cfg.numeric_target is None:
            raise ConfigError("target_robust_acc", cfg.target_robust_acc,
                              "'reference' is resolved by raysearch search; a single run needs a number in (0, 1]")

    # -- configuration-derived helpers ------------------------------------------------------
    def _bf16(self) -> bool:
        return uses_bf16(self.config, self.device)

    @property
    def batches_per_epoch(self) -> int:
        return len(self.loader)

    @property
    def reference_backprops(self) -> int:
        return reference_backprops(self.config.epochs, self.batches_per_epoch)

    @property
    def finished(self) -> bool:
        return self.status != Status.RUNNING or self.epoch >= self.config.epochs

    # -- one epoch ----------------------------------------------------------------------------
    def train_epoch(self, on_batch: BatchCallback | None = None) -> dict[str, Any]:
        """Train epoch ``self.epoch`` with the schedule's plan; returns the training half of the record."""
        cfg, t = self.config, self.epoch
        plan: Plan = self.schedule.plan(t)
        self.method.start_epoch(t)
        batches = self.batches_per_epoch
        sums = torch.zeros(5, device=self.device)  # loss·n, correct, grad_l1, alpha, examples
        count = forwards = backprops = 0
        self.model.train(True)
        compiling = compile_seconds()
        with Stopwatch(self.device) as watch:
            for i, batch in enumerate(self.loader):
                lr = learning_rate(cfg, t + i / batches)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                stats = self.method.train_batch(batch, plan, self.ctx)
                sums[0] += stats.loss * stats.count
                sums[1] += stats.correct
                sums[2] += stats.grad_l1
                sums[3] += stats.alpha
                count += stats.count
                forwards += stats.forwards
                backprops += stats.backprops
                if on_batch is not None:
                    on_batch(i, batches)
        sums[4] = count
        loss_sum, correct, grad_l1, alpha_sum, count = self.reduce_sums(sums).tolist()  # the one host sync
        compiled = compile_seconds() - compiling  # torch.compile's graph building, not training
        self.cost.compile_seconds += compiled
        self.cost.train_seconds += max(0.0, watch.seconds - compiled)
        self.cost.forwards += forwards
        self.cost.backprops += backprops
        train_acc = correct / count
        self.schedule.observe(t, EpochStats(train_acc=train_acc, grad_magnitude=grad_l1))
        self.epoch += 1
        return {
            "epoch": self.epoch, "k": plan.k, "alpha": alpha_sum / batches, "lr": lr,
            "train_loss": loss_sum / count, "train_acc": train_acc, "grad_magnitude": grad_l1,
            "backprops": self.cost.backprops, "forwards": self.cost.forwards,
            "train_seconds": self.cost.train_seconds, "compile_seconds": self.cost.compile_seconds,
        }

    def evaluate(self) -> dict[str, float]:
        """Clean / PGD / FGSM accuracy on the fixed validation subset (eval seconds counted).

        In fp32, like ``raysearch evaluate``: trials are selected on the metric the final
        evaluation reports (bf16 input gradients would make a slightly weaker attack)."""
        ev = self.config.eval
        alpha = ev.alpha if ev.alpha is not None else self.config.epsilon / 4
        with Stopwatch(self.device) as watch:
            acc = evaluate_accuracy(self.model, self.val_x, self.val_y, self.config.epsilon, ev.steps,
                                    alpha, ev.restarts, ev.fgsm, ev.batch_size, early_stop=ev.early_stop)
        self.cost.eval_seconds += watch.seconds
        return {"clean_acc": acc.clean_acc, "robust_acc": acc.robust_acc, "fgsm_acc": acc.fgsm_acc}

    def validation_scores(self) -> dict[str, float]:
        """The current weights on the validation subset as ``val_*`` keys, objective included:
        what a confirmation chooses by (the test split only measures)."""
        val = self.evaluate()
        return {"val_clean_acc": val["clean_acc"], "val_robust_acc": val["robust_acc"],
                "val_objective": self.objective(val["robust_acc"])}

    def objective(self, robust_acc: float) -> float:
        """The run's objective (SPEC §7): the trade-off, or the target objective."""
        cfg = self.config
        target = cfg.numeric_target
        if cfg.objective == "target" and target is not None:
            return target_objective(robust_acc, self.cost.backprops, self.reference_backprops, target)
        if cfg.cost == "seconds":
            reference = cfg.reference_seconds or self._estimated_reference_seconds()
            return tradeoff_objective(robust_acc, self.cost.train_seconds, reference, cfg.cost_weight)
        return tradeoff_objective(robust_acc, self.cost.backprops, self.reference_backprops, cfg.cost_weight)

    def _estimated_reference_seconds(self) -> float:
        # Without a measured PGD-10 time, assume seconds scale with backprops.
        per_backprop = self.cost.train_seconds / max(self.cost.backprops, 1)
        return per_backprop * self.reference_backprops

    def step(self, on_batch: BatchCallback | None = None) -> dict[str, Any]:
        """Train one epoch, evaluate when due, apply the divergence and CO rules; the epoch's record."""
        cfg = self.config
        record = self.train_epoch(on_batch)
        if not math.isfinite(record["train_loss"]):
            self.status = Status.DIVERGED
            # Not finite weights: nothing to measure, and no earlier epoch's accuracy either.
            self.last_eval = dict.fromkeys(("clean_acc", "robust_acc", "fgsm_acc"), math.nan)
        elif self.epoch % cfg.eval.every == 0 or self.epoch >= cfg.epochs:
            self.last_eval = self.evaluate()
            robust = self.last_eval["robust_acc"]
            if robust > self.best_robust_acc:
                self.best_robust_acc, self.best_eval = robust, dict(self.last_eval)
                self.best_model = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            if cfg.co.enabled and self.co.update(robust, self.last_eval["fgsm_acc"]):
                self.status = Status.CO
            if cfg.eval.pmp:
                record["pmp_c"] = self._pmp(record["k"], record["alpha"])
        record.update(self.scored_eval())
        record["best_robust_acc"] = max(self.best_robust_acc, 0.0)
        record["cost_runs"] = self.cost.backprops / self.reference_backprops  # in reference runs
        record["eval_seconds"] = self.cost.eval_seconds
        if self.status == Status.DIVERGED:
            record["objective"] = DIVERGED_OBJECTIVE
        else:
            record["objective"] = self.objective(record["robust_acc"])
        if self.status == Status.RUNNING and self.epoch >= cfg.epochs:
            self.status = Status.COMPLETED
        record["status"] = self.status.value
        self.history.append(record)
        return record

    def _counts_best(self) -> bool:
        return counts_best(self.config.checkpoint, self.status) and self.best_model is not None

    def scored_eval(self) -> dict[str, float]:
        """The validation accuracies of the weights that count (``checkpoint``, decided by
        :func:`~trainables.training.checkpoint.counts_best`) as ``clean_acc``/``robust_acc``/``fgsm_acc``,
        and both candidates beside them: ``*_last`` (the latest evaluation) and ``*_best`` (the
        best-validation one), so a gap (catastrophic overfitting) shows in every result."""
        best = self.best_eval or self.last_eval
        both = {f"{k}_last": v for k, v in self.last_eval.items()} | {f"{k}_best": v for k, v in best.items()}
        return {**(best if self._counts_best() else self.last_eval), **both}

    def scored_weights(self) -> dict[str, torch.Tensor]:
        """The weights that count (``checkpoint``): the final ones, or the best-validation ones
        under ``checkpoint: best`` and for a run stopped for catastrophic overfitting."""
        if self._counts_best():
            assert self.best_model is not None
            return self.best_model
        return {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def _pmp(self, k: int, alpha: float) -> float:
        x, y = self.val_x[:128], self.val_y[:128]
        tau = self.config.amata.tau or 2.5 * self.config.epsilon
        alpha_t = alpha if alpha > 0 else tau / max(k, 1)
        return pmp_criterion(self.model, x, y, self.config.epsilon, k, alpha_t,
                             self.config.eval.pmp_gamma, tau=tau)

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimizer, method memories, schedule
        state, cost counters, history and RNG states (loadable with ``weights_only=True``)."""
        return {
            "epoch": self.epoch, "status": self.status.value, "history": copy.deepcopy(self.history),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "method": self.method.state_dict(), "schedule": self.schedule.state_dict(),
            "cost": self.cost.state_dict(), "co": self.co.state_dict(),
            "best_robust_acc": self.best_robust_acc, "best_eval": dict(self.best_eval), "best_model": self.best_model,
            "last_eval": dict(self.last_eval),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "config": self.config.to_flat(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.status = int(state["epoch"]), Status(state["status"])
        self.history = list(state["history"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.load_state_dict(state["method"])
        self.schedule.load_state_dict(state["schedule"])
        self.cost.load_state_dict(state["cost"])
        self.co.load_state_dict(state["co"])
        self.best_robust_acc, self.best_model = float(state["best_robust_acc"]), state["best_model"]
        self.best_eval = dict(state.get("best_eval", {}))
        self.last_eval = dict(state["last_eval"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])

    def summary(self) -> dict[str, Any]:
        """The run's result in the ``raysearch train --json`` contract shape."""
        last = self.history[-1] if self.history else {}
        keys = ("epoch", "k", "alpha", "backprops", "train_acc", "clean_acc", "robust_acc", "fgsm_acc",
                "robust_acc_last", "robust_acc_best", "grad_magnitude", "train_loss", "objective", "lr")
        return {
            "epochs": self.epoch, "batches_per_epoch": self.batches_per_epoch,
            "backprops": self.cost.backprops, "forwards": self.cost.forwards,
            "train_seconds": self.cost.train_seconds, "eval_seconds": self.cost.eval_seconds,
            "compile_seconds": self.cost.compile_seconds, "reference_backprops": self.reference_backprops,
            "clean_acc": last.get("clean_acc", 0.0), "robust_acc": last.get("robust_acc", 0.0),
            "fgsm_acc": last.get("fgsm_acc", 0.0), "best_robust_acc": max(self.best_robust_acc, 0.0),
            **{k: last.get(k, 0.0) for k in ("clean_acc_last", "robust_acc_last", "clean_acc_best", "robust_acc_best")},
            "scored_checkpoint": "best" if self._counts_best() else "last",
            "objective": last.get("objective", math.nan), "status": self.status.value,
            "history": [{k: rec[k] for k in keys if k in rec} for rec in self.history],
        }
