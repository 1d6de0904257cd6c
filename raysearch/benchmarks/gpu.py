"""GPU throughput: images/s of preact_resnet18 PGD-10 training per precision (fp32, bf16
autocast), the aggregate images/s of 1, 2 and 4 processes sharing the GPU, and the device's
state that decides such figures besides the code.

Each sharing process is capped to its share with ``torch.cuda.set_per_process_memory_fraction``.
The measurements run on any device (the tests run them on the CPU).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from raysearch.benchmarks.cases import Case, Settings, epoch_seconds, make_run

SHARE_PROCESSES = (1, 2, 4)


def measure_precisions(case: Case, device: str, repeats: int,
                       precisions: Iterable[str] = ("fp32", "bf16")) -> list[dict[str, Any]]:
    """Images/s of PGD-10 training of ``case`` per precision (channels_last as the engine picks).
    The fp32 row is true fp32: TF32 is off for it (PyTorch lets cuDNN convolutions use TF32 by
    default, which would make it a TF32 row)."""
    import torch

    rows = []
    for precision in precisions:
        run = make_run(case, 10, device, precision=precision)
        with no_tf32(precision == "fp32"):
            epoch_seconds(run)
            seconds = statistics.median(epoch_seconds(run) for _ in range(repeats))
        images = run.batches_per_epoch * case.batch_size
        rows.append({"model": case.model, "k": 10, "precision": precision, "batch_size": case.batch_size,
                     "images_per_second": images / seconds})
        del run
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


@contextlib.contextmanager
def no_tf32(active: bool = True) -> Iterator[None]:
    """TF32 off for cuDNN convolutions and CUDA matmuls inside the block (restored after)."""
    import torch

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if active:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def device_state() -> dict[str, Any]:
    """What decides GPU figures besides the code: TF32 settings and whether CUDA MPS (several
    processes sharing one GPU's compute) is running; recorded next to the bench's figures."""
    import shutil
    import subprocess

    import torch

    mps = None
    if shutil.which("pgrep"):
        found = subprocess.run(["pgrep", "-c", "nvidia-cuda-mps"], capture_output=True, text=True)
        mps = found.returncode == 0 and int(found.stdout.strip() or 0) > 0
    return {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "mps_daemon": mps, "mps_pipe": os.environ.get("CUDA_MPS_PIPE_DIRECTORY")}


def _share_worker(case: Case, device: str, processes: int, epochs: int, threads: int,
                  barrier: Any, results: Any) -> None:
    """One of ``processes`` trials sharing a device: warm up, wait for the others, train."""
    import torch

    torch.set_num_threads(threads)
    if device == "cuda":
        torch.cuda.set_per_process_memory_fraction(1.0 / processes)
    run = make_run(case, 10, device)
    epoch_seconds(run)
    barrier.wait()
    start = time.time()
    for _ in range(epochs):
        epoch_seconds(run)
    results.put((start, time.time(), epochs * run.batches_per_epoch * case.batch_size))


def measure_sharing(case: Case, device: str, processes: Iterable[int] = SHARE_PROCESSES, epochs: int = 3,
                    threads: int = 1, timeout: float = 600.0, worker: Callable[..., None] | None = None,
                    ) -> list[dict[str, Any]]:
    """Aggregate images/s of N separate processes training PGD-10 on one device at once:
    all images over the span from the first start to the last end.

    A worker that dies (or a run that takes longer than ``timeout`` seconds) ends the
    measurement with a RuntimeError instead of a hang: the barrier has the same timeout, the
    workers are daemons, and the results are awaited while watching them."""
    ctx = mp.get_context("spawn")
    rows = []
    for n in processes:
        barrier, results = ctx.Barrier(n, timeout=timeout), ctx.Queue()
        workers = [ctx.Process(target=worker or _share_worker, args=(case, device, n, epochs, threads, barrier, results),
                               daemon=True) for _ in range(n)]
        for w in workers:
            w.start()
        try:
            spans = _await_workers(workers, results, timeout)
        finally:
            for w in workers:
                if w.is_alive():
                    w.terminate()
                w.join(timeout=10)
        images = sum(s[2] for s in spans)
        wall = max(s[1] for s in spans) - min(s[0] for s in spans)
        rows.append({"processes": n, "model": case.model, "k": 10, "images_per_second": images / wall})
    base = rows[0]["images_per_second"] if rows else 0.0
    for row in rows:
        row["speedup"] = row["images_per_second"] / base if base else 0.0
    return rows


def _await_workers(workers: list[Any], results: Any, timeout: float) -> list[Any]:
    """One result per worker, or a RuntimeError as soon as one died without giving its result."""
    import queue

    spans: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(spans) < len(workers):
        try:
            spans.append(results.get(timeout=0.5))
            continue
        except queue.Empty:
            pass
        dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"a GPU-sharing worker exited with code {dead[0]}; the sharing figures are not measured")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the GPU-sharing workers gave no result within {timeout:.0f} s")
    return spans


def measure_gpu(s: Settings) -> dict[str, Any]:
    """The GPU's name and memory, its state, the precision rows and the sharing rows."""
    import torch

    case = Case("preact_resnet18", "synthetic", s.gpu_batch_size, s.gpu_batches)
    return {"name": torch.cuda.get_device_name(),
            "memory_bytes": torch.cuda.get_device_properties(0).total_memory, "state": device_state(),
            "precision": measure_precisions(case, "cuda", s.repeats),
            "sharing": measure_sharing(case, "cuda", SHARE_PROCESSES, epochs=s.repeats)}


__all__ = ["SHARE_PROCESSES", "device_state", "measure_gpu", "measure_precisions", "measure_sharing", "no_tf32"]
