"""The smoke check's parts inside one training process: memory layouts, host syncs, bf16
against fp32, the memory estimate and release, torch.compile; and the ``[smoke]`` line every
part prints.

On a machine without CUDA each part runs its CPU twin and the checks that need CUDA say
``skipped (needs CUDA)``.
"""

from __future__ import annotations

import gc
import sys
import weakref
from typing import Any

SYN = {"dataset": "synthetic", "synthetic_size": 512, "eval.examples": 64, "eval.steps": 3}


def say(*parts: Any) -> None:
    """One ``[smoke]`` line on standard output."""
    print("[smoke]", *parts, flush=True)


def start(values: dict[str, Any], device: str | None = None) -> Any:
    """A started :class:`~trainables.training.engine.Run` of the config ``values``."""
    from trainables.config import parse_config
    from trainables.training.engine import start_run

    return start_run(parse_config(values), device)


def layouts(device: str) -> dict[str, float]:
    from raysearch.benchmarks.cases import epoch_seconds

    out = {}
    cases: tuple[tuple[str, dict[str, Any]], ...] = (("small_cnn", {"max_batches": 4}),)
    if device == "cuda":  # on a CPU a ResNet epoch takes half a minute: the small CNN shows the paths
        cases += (("preact_resnet18", {**SYN, "max_batches": 2}),)
    for model, extra in cases:
        for precision in ("auto", "fp32"):
            for channels_last in (None, False):
                run = start({"model": model, "k": 3, "precision": precision, "channels_last": channels_last,
                            "device": device, **extra})
                epoch_seconds(run)  # warm-up
                seconds = min(epoch_seconds(run) for _ in range(2))
                weight = next(p for p in run.model.parameters() if p.dim() == 4)
                import torch

                cl = weight.is_contiguous(memory_format=torch.channels_last) and weight.shape[1] > 1
                key = f"{model} {precision} bf16={run._bf16()} channels_last={cl}"
                out[key] = seconds
                say(f"{key}: PGD-3 epoch {seconds:.3f}s")
    return out


def syncs(device: str) -> dict[str, int]:
    if device != "cuda":
        say("syncs: skipped (needs CUDA: torch.cuda.set_sync_debug_mode)")
        return {}
    import warnings

    import torch

    out = {}
    for values in ({"k": 3}, {"method": "atta"}, {"method": "atas"}, {"method": "free"}, {"loss": "trades", "k": 2},
                   {"loss": "mart", "k": 2}, {"schedule": "mplus", "method": "pgd"}):
        run = start({**SYN, **values, "device": device})
        run.train_epoch()
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.train_epoch()
        torch.cuda.set_sync_debug_mode(0)
        where = sorted({f"{x.filename.rsplit('/', 1)[-1]}:{x.lineno}" for x in caught})[:5]
        out[str(values)] = len(caught)
        say(f"syncs {values}: {len(caught)} in {run.batches_per_epoch} batches {where}")
    return out


def precision(device: str) -> dict[str, float]:
    """bf16 autocast against fp32 on the same trained weights (bf16 autocast runs on the CPU too)."""
    import dataclasses

    import torch
    import torch.nn.functional as F

    from trainables.attacks import random_init
    from trainables.evaluation.accuracy import evaluate_accuracy
    from trainables.methods import build_loss
    from trainables.methods.base import attack_gradient, clean_probabilities

    run = start({"epochs": 3, "k": 3, "epsilon": 0.1, "co.enabled": False, "device": device, "precision": "bf16",
                **({} if device == "cuda" else {"max_batches": 4, "batch_size": 32})})  # bf16 is slow on CPUs
    for _ in range(3):
        run.step()
    run.model.eval()
    batch = next(iter(run.loader))
    delta = random_init(batch.x, 0.1)
    out: dict[str, float] = {}
    fp32 = dataclasses.replace(run.ctx, autocast=lambda: torch.autocast(run.device.type, enabled=False))
    for loss in ("ce", "trades"):
        bf16 = dataclasses.replace(run.ctx, loss=build_loss(loss))
        probs = clean_probabilities(bf16, batch.x)[0]
        g16 = attack_gradient(bf16, batch.x, batch.y, delta, probs)
        g32 = attack_gradient(dataclasses.replace(fp32, loss=build_loss(loss)), batch.x, batch.y, delta, probs)
        agree = float((g16.sign() == g32.sign()).float().mean())
        cosine = float(F.cosine_similarity(g16.flatten(), g32.flatten(), 0))
        out[f"{loss}_sign_agreement"], out[f"{loss}_cosine"] = agree, cosine
        say(f"{loss} input gradient bf16 vs fp32: sign agreement {agree:.4f}, cosine {cosine:.4f}")
    torch.manual_seed(0)
    acc = evaluate_accuracy(run.model, run.val_x, run.val_y, 0.1, 10, 0.025)
    out["robust_fp32"] = acc.robust_acc
    say(f"PGD-10 robust accuracy of the bf16-trained model, evaluated in fp32 (as in-loop and evaluate): "
        f"{acc.robust_acc:.4f}")
    return out


def memory(device: str) -> dict[str, float]:
    """The share check's estimate against the peak (CUDA), and memory released on ``del run``."""
    import torch

    from trainables.training.memory_estimate import estimate_memory

    values = {**SYN, "model": "preact_resnet18" if device == "cuda" else "small_cnn", "batch_size": 64,
              "synthetic_size": 128, "max_batches": 2, "method": "atta", "loss": "trades", "k": 2,
              "eval.batch_size": 64, "device": device}
    estimate = estimate_memory(values)
    out = {"estimate_allocated_mib": estimate.allocated_bytes / 2**20, "estimate_total_mib": estimate.total_bytes / 2**20}
    if device == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    run = start(values)
    run.step()
    if device == "cuda":
        out["peak_allocated_mib"] = (torch.cuda.max_memory_allocated() - before) / 2**20
        say(f"memory: estimate {out['estimate_allocated_mib']:.0f} MiB allocated ({out['estimate_total_mib']:.0f} "
            f"MiB with margin and CUDA context), measured peak {out['peak_allocated_mib']:.0f} MiB")
    else:
        say(f"memory: estimate {out['estimate_allocated_mib']:.0f} MiB allocated; peak: skipped (needs CUDA)")
    model = weakref.ref(run.model)
    del run
    freed = model() is None  # without gc.collect(): no reference cycle may keep a dropped run alive
    out["released_without_gc"] = float(freed)
    if device == "cuda":
        out["left_mib"] = (torch.cuda.memory_allocated() - before) / 2**20
    say(f"memory released when the run is dropped (no gc.collect): {freed}")
    return out


def compiled(device: str) -> dict[str, Any]:
    import torch

    from raysearch.benchmarks.cases import epoch_seconds
    from trainables.methods import Plan

    out: dict[str, Any] = {}
    for compile_ in (False, True):
        run = start({"k": 3, "compile": compile_, "device": device, "max_batches": 3})
        seconds = []
        for t in range(4):
            k = 3 if t < 2 else 5
            run.schedule.plan = lambda _t, k=k: Plan(k)  # type: ignore[method-assign]
            seconds.append(round(epoch_seconds(run), 3))
        out[f"compile={compile_}"] = {"epoch_seconds": seconds, "compile_seconds": round(run.cost.compile_seconds, 2)}
        say(f"compile={compile_}: epoch seconds at K=3,3,5,5: {seconds}; compile seconds kept out of training: "
            f"{run.cost.compile_seconds:.2f}")
    stats = dict(torch._dynamo.utils.counters["stats"]) if "torch._dynamo" in sys.modules else {}
    out["dynamo"] = {k: int(v) for k, v in stats.items()}
    say(f"dynamo counters: {out['dynamo']}")
    return out


__all__ = ["SYN", "compiled", "layouts", "memory", "precision", "say", "start", "syncs"]
