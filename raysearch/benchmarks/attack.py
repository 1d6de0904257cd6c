"""Attack efficiency and non-model overhead: how much a PGD-K epoch costs over a natural one,
and the share of an epoch spent outside forward/backward passes.

- **Attack efficiency**: time of a PGD-K epoch over time of a natural (K = 0) epoch, for
  K = 1, 3, 10, next to its limit (2K + 3)/3 (an attack step is a forward plus an
  input-gradient backward, about 2/3 of a training step) and the target 1.10 × limit.
  Each K has its own :class:`~trainables.training.engine.Run`; the time is that run's
  ``train_seconds`` for one epoch of ``max_batches`` batches (the training loop only).
  After one warm-up epoch per run, the epochs of all K are *interleaved* within each
  repetition and the ratio is the median over repetitions of the paired ratios, so that
  a load change on a shared machine hits numerator and denominator alike.
- **Non-model overhead**: the share of an epoch spent outside forward/backward passes
  (optimizer step, data gather and augmentation, projections, statistics, Python). It is
  1 − (time of the same passes, run bare on pre-made tensors) / (epoch time): the bare
  passes are the run's own model, autocast and batch-norm mode, K forward + input-gradient
  backward passes and one forward + weight backward per batch. Timing the bare passes
  needs no profiler (which would itself slow the small kernels it measures).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from raysearch.benchmarks.cases import Case, epoch_seconds, log, make_run

ATTACK_KS = (1, 3, 10)
OVERHEAD_KS = (0, 10)
TARGET_FACTOR = 1.10


def attack_limit(k: int) -> float:
    """(2K + 3)/3: a PGD-K batch is one training step plus K attack steps of 2/3 of one."""
    return (2 * k + 3) / 3


def attack_target(k: int) -> float:
    return TARGET_FACTOR * attack_limit(k)


def non_model_share(epoch_seconds: float, model_seconds: float) -> float:
    """The share of an epoch outside forward/backward passes (never below 0)."""
    return max(0.0, 1.0 - model_seconds / epoch_seconds) if epoch_seconds > 0 else 0.0


def bare_pass_seconds(run: Any, k: int) -> float:
    """Seconds of the forward/backward passes of one PGD-K epoch of ``run``, run bare on one
    pre-made batch: per batch K forward + input-gradient backward passes (attack batch-norm
    mode) and one forward + weight backward, under the run's autocast; no optimizer step."""
    import torch
    import torch.nn.functional as F

    from trainables.methods.base import bn_mode
    from trainables.training.cost import Stopwatch

    batch = next(iter(run.loader))
    x, y = batch.x, batch.y
    delta = torch.zeros_like(x)
    model = run.forward_model
    with Stopwatch(run.device) as watch:
        for _ in range(run.batches_per_epoch):
            with bn_mode(run.model, run.config.attack_bn):
                for _ in range(k):
                    d = delta.requires_grad_(True)
                    with run.autocast():
                        loss = F.cross_entropy(model(x + d).float(), y)
                    torch.autograd.grad(loss, d)
            run.model.train(True)
            run.optimizer.zero_grad(set_to_none=True)
            with run.autocast():
                loss = F.cross_entropy(model(x).float(), y)
            loss.backward()
    return watch.seconds


def _time_epochs(case: Case, runs: dict[int, Any], overhead_ks: tuple[int, ...],
                 repeats: int) -> tuple[dict[int, list[float]], dict[int, list[float]]]:
    """(epoch seconds per K, bare-pass seconds per overhead K), interleaved per repetition."""
    epochs: dict[int, list[float]] = {k: [] for k in runs}
    bare: dict[int, list[float]] = {k: [] for k in overhead_ks}
    for k, run in runs.items():  # warm-up: allocator, kernels/primitives, autotuning
        epoch_seconds(run)
        if k in bare:
            bare_pass_seconds(run, k)
    for rep in range(repeats):
        for k, run in runs.items():
            epochs[k].append(epoch_seconds(run))
            if k in bare:
                bare[k].append(bare_pass_seconds(run, k))
        log(f"{case.model}/{case.dataset} repetition {rep + 1}/{repeats}: "
            + ", ".join(f"K={k} {epochs[k][-1]:.3f}s" for k in runs))
    return epochs, bare


def measure_case(case: Case, ks: Iterable[int], overhead_ks: Iterable[int], device: str,
                 repeats: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(attack-efficiency rows, non-model-overhead rows) for one model/dataset pair."""
    ks, overhead_ks = tuple(ks), tuple(overhead_ks)
    runs = {k: make_run(case, k, device) for k in sorted({0, *ks, *overhead_ks})}
    epochs, bare = _time_epochs(case, runs, overhead_ks, repeats)
    attack = []
    for k in ks:
        ratio = statistics.median(t / t0 for t, t0 in zip(epochs[k], epochs[0], strict=True))
        attack.append({"model": case.model, "dataset": case.dataset, "k": k, "ratio": ratio,
                       "limit": attack_limit(k), "target": attack_target(k), "ok": ratio <= attack_target(k),
                       "natural_seconds": statistics.median(epochs[0]),
                       "pgd_seconds": statistics.median(epochs[k]),
                       "batch_size": case.batch_size, "batches": runs[k].batches_per_epoch})
    overhead = []
    for k in overhead_ks:
        # paired per repetition, like the ratios: the bare passes run right after the epoch
        share = statistics.median(non_model_share(e, m) for e, m in zip(epochs[k], bare[k], strict=True))
        overhead.append({"model": case.model, "dataset": case.dataset, "k": k,
                         "epoch_seconds": statistics.median(epochs[k]),
                         "model_seconds": statistics.median(bare[k]), "share": share})
    return attack, overhead


__all__ = ["ATTACK_KS", "OVERHEAD_KS", "TARGET_FACTOR", "attack_limit", "attack_target", "bare_pass_seconds",
           "measure_case", "non_model_share"]
