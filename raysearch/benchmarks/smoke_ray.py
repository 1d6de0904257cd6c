"""The smoke check's parts through Ray: a data-parallel trial's process group (NCCL on CUDA,
gloo on the CPU) and four trials at 0.25 GPU (memory caps, one trial per slot), with what a
trial that asked for no GPU sees."""

from __future__ import annotations

from typing import Any

from raysearch.benchmarks.smoke_engine import say


def ddp(device: str) -> dict[str, Any]:
    """A data-parallel run of 2 Ray Train workers (NCCL when there are 2 GPUs, else gloo on CPUs)."""
    import tempfile

    import ray
    import torch

    from raysearch.tuning.resources import ray_session
    from trainables.distributed.workers import train_data_parallel

    use_gpu = device == "cuda" and torch.cuda.device_count() >= 2
    with ray_session(), tempfile.TemporaryDirectory() as storage:  # raysearch's Ray session: joins $RAY_ADDRESS
        # workers that cannot be placed fail only after three 60 s startup timeouts: say what is free
        say(f"ddp: {ray.available_resources().get('CPU', 0):.2f} of {ray.cluster_resources().get('CPU', 0):.0f} "
            "CPUs free")
        # one thread in all on the CPU: two half-CPU workers, placed beside whatever else runs
        result = train_data_parallel({"k": 2, "epochs": 1, "eval.examples": 50, "batch_size": 64,
                                      **({"threads": 2} if use_gpu else {"threads": 1, "max_batches": 6})}, 2,
                                     storage=storage, use_gpu=use_gpu)
    robust = float(result.metrics.get("robust_acc", float("nan")))
    backend = "nccl" if use_gpu else "gloo"
    say(f"data-parallel run, 2 Ray Train workers ({backend}) on nodes {result.metrics.get('worker_nodes')}: "
        f"robust acc {robust:.3f}, backprops {result.cost.get('backprops')}")
    return {"backend": backend, "robust_acc": robust, "world_size": result.metrics.get("world_size")}


def _probe(gpus: float) -> tuple[str | None, Any, str]:
    import os

    import torch

    from trainables.trials.setup import TrialSetup, apply_resources

    device = apply_resources(TrialSetup(gpus_per_trial=gpus))
    fraction = torch.cuda.is_available() and gpus < 1 and gpus > 0
    return os.environ.get("CUDA_VISIBLE_DEVICES"), fraction, str(device or "cuda")


def ray_trials(device: str) -> dict[str, Any]:
    import tempfile

    import ray

    from raysearch.pipeline.run import search
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


__all__ = ["ddp", "ray_trials"]
