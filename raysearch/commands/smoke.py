"""``raysearch bench --smoke``: every GPU path once, in a few minutes, with its key figures.

Each part prints ``[smoke]`` lines and returns its figures; a part that fails prints one
``FAILED`` line and the others still run. On a machine without CUDA every part runs its CPU
twin (the same code on the CPU) and the checks that need CUDA say ``skipped (needs CUDA)``:
that is how the test suite runs it.

- ``layouts``: bf16/fp32 × channels_last on/off, epoch seconds (small_cnn on digits,
  preact_resnet18 on CIFAR-shaped data);
- ``syncs``: host synchronizations in one epoch of each method and loss (CUDA's sync debug
  mode): a constant count is fine, one that grows with the batches is not;
- ``precision``: bf16 against fp32 input gradients on the same trained weights (sign agreement,
  cosine) and PGD-10 robust accuracy (evaluation itself runs in fp32);
- ``memory``: the share check's estimate against the measured peak, and the memory released
  when a run is dropped (no reference cycle keeps it);
- ``compile``: torch.compile epoch seconds at K = 3, 3, 5, 5, compile seconds kept out of
  training seconds, recompiles;
- ``ddp``: a data-parallel trial's process group (NCCL on CUDA, gloo on the CPU);
- ``ray``: four trials at 0.25 GPU through Ray (memory caps, one trial per slot), and what a
  trial that asked for no GPU sees;
- ``bench``: the quick benchmark.
"""

from __future__ import annotations

import gc
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any

PARTS = ("layouts", "syncs", "precision", "memory", "compile", "ddp", "ray", "bench")
SYN = {"dataset": "synthetic", "synthetic_size": 512, "eval.examples": 64, "eval.steps": 3}


def say(*parts: Any) -> None:
    print("[smoke]", *parts, flush=True)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _run(values: dict[str, Any], device: str | None = None) -> Any:
    from trainables.config import parse_config
    from trainables.engine import start_run

    return start_run(parse_config(values), device)


def layouts(device: str) -> dict[str, float]:
    from raysearch.commands.bench import epoch_seconds

    out = {}
    cases: tuple[tuple[str, dict[str, Any]], ...] = (("small_cnn", {"max_batches": 4}),)
    if device == "cuda":  # on a CPU a ResNet epoch takes half a minute: the small CNN shows the paths
        cases += (("preact_resnet18", {**SYN, "max_batches": 2}),)
    for model, extra in cases:
        for precision in ("auto", "fp32"):
            for channels_last in (None, False):
                run = _run({"model": model, "k": 3, "precision": precision, "channels_last": channels_last,
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
        run = _run({**SYN, **values, "device": device})
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
    from trainables.evaluation import evaluate_accuracy
    from trainables.methods import build_loss
    from trainables.methods.base import attack_gradient, clean_probabilities

    run = _run({"epochs": 3, "k": 3, "epsilon": 0.1, "co.enabled": False, "device": device, "precision": "bf16",
                **({} if device == "cuda" else {"max_batches": 4})})  # bf16 is slow on CPUs
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

    from trainables.memory_estimate import estimate_memory

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
    run = _run(values)
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

    from raysearch.commands.bench import epoch_seconds
    from trainables.methods import Plan

    out: dict[str, Any] = {}
    for compile_ in (False, True):
        run = _run({"k": 3, "compile": compile_, "device": device, "max_batches": 3})
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


def ddp(device: str) -> dict[str, Any]:
    """A data-parallel run of 2 Ray Train workers (NCCL when there are 2 GPUs, else gloo on CPUs)."""
    import tempfile

    import ray
    import torch

    from trainables.train_workers import train_data_parallel

    use_gpu = device == "cuda" and torch.cuda.device_count() >= 2
    started = not ray.is_initialized()
    try:
        with tempfile.TemporaryDirectory() as storage:
            result = train_data_parallel({"k": 2, "epochs": 1, "eval.examples": 50, "batch_size": 64, "threads": 2,
                                          **({} if use_gpu else {"max_batches": 6})}, 2,
                                         storage=storage, use_gpu=use_gpu)
    finally:
        if started:
            ray.shutdown()
    robust = float(result.metrics.get("robust_acc", float("nan")))
    backend = "nccl" if use_gpu else "gloo"
    say(f"data-parallel run, 2 Ray Train workers ({backend}) on nodes {result.metrics.get('worker_nodes')}: "
        f"robust acc {robust:.3f}, backprops {result.cost.get('backprops')}")
    return {"backend": backend, "robust_acc": robust, "world_size": result.metrics.get("world_size")}


def _probe(gpus: float) -> tuple[str | None, Any, str]:
    import os

    import torch

    from trainables.trial import TrialSetup, apply_resources

    device = apply_resources(TrialSetup(gpus_per_trial=gpus))
    fraction = torch.cuda.is_available() and gpus < 1 and gpus > 0
    return os.environ.get("CUDA_VISIBLE_DEVICES"), fraction, str(device or "cuda")


def ray_trials(device: str) -> dict[str, Any]:
    import tempfile

    import ray

    from raysearch.commands.search import search
    from raysearch.tuning.resources import ray_session

    gpus = 0.25 if device == "cuda" else None
    with ray_session():  # raysearch's Ray session (its runtime env), kept up for the probes after the search
        with tempfile.TemporaryDirectory() as tmp:
            result = search("demo", ["epochs=1", "eval.examples=100", "search.space=baselines", "search.scheduler=none",
                                     "search.time_attr=backprops", "search.confirm.top=0", "search.warm_start=false"],
                            samples=4, gpus_per_trial=gpus, cpus_per_trial=1 if device != "cuda" else 2, storage=tmp,
                            progress=False)
        trials = [(t.status.value, round(float(t.metrics.get("train_seconds", 0)), 2)) for t in result.trials]
        say(f"ray: {result.concurrency} slots, 4 trials (status, train s): {trials}")
        probes = ray.get([ray.remote(num_gpus=g)(_probe).remote(g) for g in ((0.25, 0.0) if device == "cuda" else (0.0,))])
        say(f"ray tasks (CUDA_VISIBLE_DEVICES, capped, device) at {'0.25 and 0' if device == 'cuda' else '0'} GPUs: "
            f"{probes}")
    return {"slots": result.concurrency, "trials": trials, "probes": probes}


def quick_bench(device: str) -> dict[str, Any]:
    from raysearch.commands.bench import bench

    return bench(quick=True, parts=("attack", "overhead", "gpu"), device=device)


RUNNERS: dict[str, Callable[[str], Any]] = {
    "layouts": layouts, "syncs": syncs, "precision": precision, "memory": memory, "compile": compiled,
    "ddp": ddp, "ray": ray_trials, "bench": quick_bench,
}


def smoke(parts: tuple[str, ...] = PARTS, device: str | None = None) -> dict[str, Any]:
    """Run the smoke ``parts`` on ``device`` (default: CUDA when there is one); their figures."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    from raysearch.commands.bench import device_state

    state = device_state()
    say(f"torch {torch.__version__} on {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}; "
        + ", ".join(f"{k} {v}" for k, v in state.items()))
    out: dict[str, Any] = {"device": device, "state": state}
    for name in parts:
        start = time.monotonic()
        try:
            out[name] = RUNNERS[name](device)
        except Exception as err:  # one failed path must not hide the others
            out[name] = {"failed": f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"}
            say(f"{name} FAILED: {out[name]['failed']}")
        say(f"-- {name}: {time.monotonic() - start:.0f}s")
    return out


__all__ = ["PARTS", "RUNNERS", "smoke"]
