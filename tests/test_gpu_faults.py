"""The faults a first GPU run would hit, each shown on the CPU (issue: ready for the first GPU).

Each test failed on the code before its fix: a dropped run stayed alive in a reference cycle;
a Ray task that asked for no GPU saw every GPU; the memory estimate counted one forward for
TRADES and MART; a crashed worker of the GPU-sharing bench hung it for 30 minutes; compile
time was charged to training time."""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any

import pytest
import torch
from torch import nn

import trainables.training.engine as engine
from trainables.config import parse_config
from trainables.training.engine import start_run
from trainables.training.memory_estimate import activation_bytes

TINY = {"dataset": "digits", "model": "small_cnn", "batch_size": 16, "max_batches": 2, "epochs": 1,
        "eval.examples": 16, "eval.steps": 1, "co.enabled": False}


@pytest.mark.parametrize("method", ["pgd", "atta", "atas"])
def test_a_dropped_run_frees_its_model_and_memories_without_the_cycle_collector(method: str) -> None:
    run = start_run(parse_config({**TINY, "method": method}), device="cpu")
    run.step()
    model = weakref.ref(run.model)
    gc.disable()  # only reference counting: what frees GPU memory at once in a reused actor
    try:
        del run
        assert model() is None
    finally:
        gc.enable()


def _gpus_seen(runtime_env: dict[str, Any] | None) -> str | None:
    import ray

    @ray.remote(num_gpus=0)
    def visible() -> str | None:
        import os

        return os.environ.get("CUDA_VISIBLE_DEVICES")

    ray.init(address="local", num_cpus=1, num_gpus=1, include_dashboard=False, runtime_env=runtime_env)  # a fake GPU
    try:
        return ray.get(visible.remote())  # type: ignore[no-any-return]
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_a_ray_task_that_asked_for_no_gpu_sees_none_and_trains_on_the_cpu() -> None:
    from raysearch.tuning.resources import RAY_RUNTIME_ENV
    from trainables.trials.setup import TrialSetup, apply_resources

    assert _gpus_seen(None) is None  # Ray 2.60 by itself leaves every GPU visible to it
    assert _gpus_seen(RAY_RUNTIME_ENV) == ""  # what raysearch starts Ray with
    assert apply_resources(TrialSetup(gpus_per_trial=0)) == torch.device("cpu")


def _two_forwards_saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps for a clean and an adversarial forward alive together (TRADES, MART)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in weights:
            seen[s.data_ptr()] = s.nbytes()
        return t

    model.train(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        clean = model(x)
        adversarial = model((x + 0.01).requires_grad_(True))
    del clean, adversarial
    return sum(seen.values())


@pytest.mark.parametrize("loss", ["trades", "mart"])
def test_the_memory_estimate_covers_both_live_forwards_of_trades_and_mart(loss: str) -> None:
    from trainables.training.memory_estimate import probe_model

    cfg = parse_config({**TINY, "loss": loss})
    batch = 32
    measured = _two_forwards_saved_bytes(probe_model(cfg, (1, 8, 8), 10), torch.rand(batch, 1, 8, 8))
    estimate = activation_bytes(cfg, (1, 8, 8), 10, batch, bf16=False)
    ce = activation_bytes(parse_config(TINY), (1, 8, 8), 10, batch, bf16=False)
    assert estimate >= measured  # the two model forwards alone (the loss adds its own on top)
    assert estimate > 1.8 * ce


def test_compile_time_is_kept_out_of_training_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"compiled": 0.0}

    def compile_seconds() -> float:  # TorchDynamo's total, faked: one 0.5 s compile in the first epoch
        return clock["compiled"]

    def compiling_batch(*args: Any, **kwargs: Any) -> Any:
        if not clock["compiled"]:
            time.sleep(0.5)
            clock["compiled"] = 0.5
        return train_batch(*args, **kwargs)

    monkeypatch.setattr(engine, "compile_seconds", compile_seconds)
    run = start_run(parse_config({**TINY, "epochs": 2}), device="cpu")
    train_batch = run.method.train_batch
    monkeypatch.setattr(run.method, "train_batch", compiling_batch)
    started = time.perf_counter()
    first = run.step()
    elapsed = time.perf_counter() - started
    assert first["compile_seconds"] == 0.5
    assert first["train_seconds"] < elapsed - 0.45  # the compile's 0.5 s are not in it
    assert run.step()["compile_seconds"] == 0.5  # a total over the run: the second epoch compiled nothing


def crashing_worker(*args: Any) -> None:
    raise SystemExit(3)  # a worker process that dies before the barrier


def test_the_sharing_bench_gives_up_on_a_dead_worker_within_its_timeout() -> None:
    from raysearch.benchmarks.cases import Case
    from raysearch.benchmarks.gpu import measure_sharing

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with code 3"):
        measure_sharing(Case("small_cnn", "digits", 16, 2), "cpu", processes=[2], epochs=1, timeout=60,
                        worker=crashing_worker)
    assert time.monotonic() - started < 60
