"""``raysearch bench``: the speed figures of SPEC §13, measured on the machine it runs on.

- **Attack efficiency**: time of a PGD-K epoch over time of a natural (K = 0) epoch, for
  K = 1, 3, 10, next to its limit (2K + 3)/3 (an attack step is a forward plus an
  input-gradient backward, about 2/3 of a training step) and the target 1.10 × limit.
  Each K has its own :class:`~trainables.engine.Run`; the time is that run's
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
- **Search overhead**: the demo search as ``raysearch search demo`` runs it (``--quick``: a
  two-trial, one-epoch version), the summed trial seconds (training + evaluation) over wall
  seconds × concurrent slots: the share of slot time spent inside trials (target ≥ 0.95).
  The wall time is the whole search, checking the input and starting Ray included; the
  start-up (until Tune starts) and the share inside trial functions (which adds building
  the run, checkpoints and reports) are reported beside it.
- **Trial overhead**: 500 tiny trials of the demo (``--quick``: 60), what each costs beyond its
  own work and how the driver's CPU seconds per trial grow from trial 50 to the last
  (:mod:`raysearch.commands.bench_trials`).
- **On a GPU**: images/s of preact_resnet18 PGD-10 training per precision (fp32, bf16
  autocast), and the aggregate images/s of 1, 2 and 4 processes sharing the GPU, each
  capped to its share with ``torch.cuda.set_per_process_memory_fraction``.

Speed is shown by this benchmark, never asserted by timed tests.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from raysearch.commands.search import search_overhead_fraction

ATTACK_KS = (1, 3, 10)
OVERHEAD_KS = (0, 10)
TARGET_FACTOR = 1.10
SEARCH_OVERHEAD_TARGET = 0.95
SHARE_PROCESSES = (1, 2, 4)
PARTS = ("attack", "overhead", "search", "trials", "gpu")


def attack_limit(k: int) -> float:
    """(2K + 3)/3: a PGD-K batch is one training step plus K attack steps of 2/3 of one."""
    return (2 * k + 3) / 3


def attack_target(k: int) -> float:
    return TARGET_FACTOR * attack_limit(k)


def non_model_share(epoch_seconds: float, model_seconds: float) -> float:
    """The share of an epoch outside forward/backward passes (never below 0)."""
    return max(0.0, 1.0 - model_seconds / epoch_seconds) if epoch_seconds > 0 else 0.0


@dataclass(frozen=True)
class Case:
    """One model/dataset pair timed at ``batch_size`` for ``batches`` batches per epoch."""

    model: str
    dataset: str
    batch_size: int
    batches: int

    def config(self, k: int, device: str, **overrides: Any) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "method": "pgd", "k": k,
                "batch_size": self.batch_size, "max_batches": self.batches, "epochs": 10_000,
                "synthetic_size": max(512, self.batch_size * self.batches), "device": device,
                "eval.examples": 1, **overrides}


@dataclass(frozen=True)
class Settings:
    """What the benchmark runs; :func:`settings` picks them for the device and mode."""

    device: str
    threads: int
    cases: tuple[Case, ...]
    repeats: int
    search_samples: int | None  # None: the demo's own
    search_overrides: tuple[str, ...]
    gpu_batches: int
    gpu_batch_size: int


def settings(device: str, quick: bool, threads: int | None = None) -> Settings:
    """CPU: 1 thread, batch 32 (small_cnn 10 batches, preact_resnet18 2 per epoch), 3 repetitions.
    GPU: batch 128 (small_cnn the whole digits split, 9 batches; preact_resnet18 8), 5.
    The search is the demo. Quick: small_cnn only, 3 batches, 2 repetitions, and a search of
    two one-epoch trials."""
    import torch

    gpu = device == "cuda"
    # One CPU thread by default, as a trial with cpus_per_trial 1 runs: stable on a shared
    # machine (OpenMP threads that wait for a descheduled sibling make timings erratic).
    threads = threads or (torch.get_num_threads() if gpu else 1)
    if quick:
        cases: tuple[Case, ...] = (Case("small_cnn", "digits", 128 if gpu else 32, 3),)
        return Settings(device, threads, cases, repeats=2, search_samples=2,
                        search_overrides=("epochs=1", "eval.examples=100", "search.space=baselines",
                                          "search.scheduler=none"),
                        gpu_batches=2, gpu_batch_size=128)
    cases = (Case("small_cnn", "digits", 128, 9), Case("preact_resnet18", "synthetic", 128, 8)) if gpu else (
        Case("small_cnn", "digits", 32, 10), Case("preact_resnet18", "synthetic", 32, 2))
    return Settings(device, threads, cases, repeats=5 if gpu else 3, search_samples=None, search_overrides=(),
                    gpu_batches=8, gpu_batch_size=128)


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _make_run(case: Case, k: int, device: str, **overrides: Any) -> Any:
    from trainables.config import parse_config
    from trainables.engine import start_run

    return start_run(parse_config(case.config(k, device, **overrides)))


def epoch_seconds(run: Any) -> float:
    """Wall seconds of one training epoch of ``run`` (its synchronized ``train_seconds``)."""
    before = run.cost.train_seconds
    run.train_epoch()
    return run.cost.train_seconds - before


def bare_pass_seconds(run: Any, k: int) -> float:
    """Seconds of the forward/backward passes of one PGD-K epoch of ``run``, run bare on one
    pre-made batch: per batch K forward + input-gradient backward passes (attack batch-norm
    mode) and one forward + weight backward, under the run's autocast; no optimizer step."""
    import torch
    import torch.nn.functional as F

    from trainables.cost import Stopwatch
    from trainables.methods.base import bn_mode

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


def measure_case(case: Case, ks: Iterable[int], overhead_ks: Iterable[int], device: str,
                 repeats: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(attack-efficiency rows, non-model-overhead rows) for one model/dataset pair."""
    ks, overhead_ks = tuple(ks), tuple(overhead_ks)
    runs = {k: _make_run(case, k, device) for k in sorted({0, *ks, *overhead_ks})}
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
        _log(f"{case.model}/{case.dataset} repetition {rep + 1}/{repeats}: "
             + ", ".join(f"K={k} {epochs[k][-1]:.3f}s" for k in runs))
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


def measure_search_overhead(samples: int | None = None, overrides: Iterable[str] = (),
                            storage: str | None = None) -> dict[str, Any]:
    """The demo search (``samples``/``overrides`` shrink it): the share of the concurrent slots'
    wall time spent inside trials, where the wall time is the whole search, Ray's start included."""
    import ray

    from raysearch.commands.search import search

    started = not ray.is_initialized()  # then the search starts Ray, and the wall time counts it
    try:
        with tempfile.TemporaryDirectory(dir=storage) as tmp:
            result = search("demo", list(overrides), samples=samples, storage=tmp, name="bench", progress=False,
                            confirm=False)
    finally:
        if started:
            ray.shutdown()
    fraction = result.search_overhead
    # Where the rest goes: before Tune starts (checks, Ray, the Tuner), outside the trial
    # functions afterwards (actor start-up, scheduling, idle slots at the end) or inside them
    # but outside training and evaluation (building the run, checkpoints, reports).
    # Tune's time_total_s is a trial function's wall time.
    function_seconds = sum(float(t.metrics.get("time_total_s", 0) or 0) for t in result.trials)
    epochs = {int(t.config.get("epochs", 0) or 0) for t in result.trials}
    return {"fraction": fraction, "target": SEARCH_OVERHEAD_TARGET, "ok": fraction >= SEARCH_OVERHEAD_TARGET,
            "wall_seconds": result.wall_seconds, "trial_seconds_sum": result.trial_seconds_sum,
            "trial_function_seconds_sum": function_seconds,
            "in_trial_functions": search_overhead_fraction(function_seconds, result.wall_seconds, result.concurrency),
            "startup_seconds": result.startup_seconds, "concurrency": result.concurrency,
            "trials": len(result.trials), "epochs": max(epochs, default=0)}


def measure_precisions(case: Case, device: str, repeats: int,
                       precisions: Iterable[str] = ("fp32", "bf16")) -> list[dict[str, Any]]:
    """Images/s of PGD-10 training of ``case`` per precision (channels_last as the engine picks).
    The fp32 row is true fp32: TF32 is off for it (PyTorch lets cuDNN convolutions use TF32 by
    default, which would make it a TF32 row)."""
    import torch

    rows = []
    for precision in precisions:
        run = _make_run(case, 10, device, precision=precision)
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
    run = _make_run(case, 10, device)
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
    import torch

    case = Case("preact_resnet18", "synthetic", s.gpu_batch_size, s.gpu_batches)
    return {"name": torch.cuda.get_device_name(),
            "memory_bytes": torch.cuda.get_device_properties(0).total_memory, "state": device_state(),
            "precision": measure_precisions(case, "cuda", s.repeats),
            "sharing": measure_sharing(case, "cuda", SHARE_PROCESSES, epochs=s.repeats)}


def bench(json_output: bool = False, quick: bool = False, *, threads: int | None = None,
          parts: Iterable[str] = PARTS, device: str | None = None, search: bool = False,
          seeds: Iterable[int] = (0, 1, 2)) -> dict[str, Any]:
    """Measure the speed figures of SPEC §13 here; print a table (or, with ``json_output``, one
    JSON object as the last line of standard output) and return them as a dict.

    Args:
        quick: a run of seconds (small_cnn only, fewer batches and repetitions) for smoke tests.
        threads: torch CPU threads for the whole benchmark (default: 1 on CPU, torch's setting on GPU).
        parts: which of "attack", "overhead", "search", "trials", "gpu" to measure.
        device: "cpu" or "cuda" (default: cuda when available).
        search: instead, compare the searches' cost and confirmed answers
            (:mod:`raysearch.commands.bench_search`) over the search ``seeds``.

    Example::

        >>> import raysearch
        >>> figures = raysearch.bench(quick=True, parts=("attack",))  # doctest: +SKIP
        >>> figures["attack_efficiency"][0]["ratio"]  # doctest: +SKIP
    """
    import torch

    if search:
        from raysearch.commands.bench_search import compare_searches, print_comparison

        comparison = compare_searches(tuple(seeds), quick=quick)
        if json_output:
            print(json.dumps(comparison, default=str), flush=True)
        else:
            print_comparison(comparison)
        return comparison
    parts = set(parts)
    unknown = parts - set(PARTS)
    if unknown:
        from trainables.registry import ConfigError

        raise ConfigError("parts", sorted(unknown), f"choose from {', '.join(PARTS)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    s = settings(device, quick, threads)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    result: dict[str, Any] = {
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(), "threads": s.threads, "torch": torch.__version__,
        "quick": quick, "repeats": s.repeats, "cases": [asdict(c) for c in s.cases],
        "attack_efficiency": [], "non_model_overhead": [], "search_overhead": None,
    }
    try:
        if parts & {"attack", "overhead"}:
            for case in s.cases:
                _log(f"timing {case.model}/{case.dataset}: batch {case.batch_size}, {case.batches} batches")
                attack, overhead = measure_case(case, ATTACK_KS if "attack" in parts else (),
                                                OVERHEAD_KS if "overhead" in parts else (), device, s.repeats)
                result["attack_efficiency"] += attack
                result["non_model_overhead"] += overhead
        if "search" in parts:
            _log("search overhead: the demo search" + (" (quick: 2 trials of 1 epoch)" if quick else ""))
            slots = measure_search_overhead(s.search_samples, s.search_overrides)
            result["search_overhead"] = slots["fraction"]
            result["search"] = slots
        if "trials" in parts:
            from raysearch.commands.bench_trials import QUICK_TRIALS, TRIALS, measure_trial_overhead

            count = QUICK_TRIALS if quick else TRIALS
            _log(f"trial overhead: {count} tiny trials of the demo (2 batches each)")
            trials = measure_trial_overhead(count)
            result["trial_overhead"] = trials
            result["per_trial_overhead_seconds"] = trials["per_trial_overhead_seconds"]
            result["driver_seconds_per_trial"] = trials["driver_seconds_per_trial"]
        if "gpu" in parts and device == "cuda":
            _log("GPU throughput per precision and with 1, 2, 4 processes sharing it")
            result["gpu"] = measure_gpu(s)
    finally:
        torch.set_num_threads(previous_threads)
    if load_before is not None:
        result["load_average"] = {"before": load_before[0], "after": os.getloadavg()[0], "cpus": os.cpu_count()}
    if json_output:
        print(json.dumps(result), flush=True)
    else:
        print_report(result)
    return result


def print_report(result: dict[str, Any], console: Any = None) -> None:
    """The benchmark as rich tables: each ratio next to its target."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    mark: Callable[[bool], str] = lambda ok: "[green]yes[/]" if ok else "[red]no[/]"  # noqa: E731
    load = result.get("load_average") or {}
    console.print(f"raysearch bench on {result['device']} ({result['threads']} threads, torch {result['torch']}"
                  + (f", load average {load['before']:.1f} -> {load['after']:.1f} on {load['cpus']} CPUs"
                     if load else "") + ")")
    if result["attack_efficiency"]:
        table = Table(title="Attack efficiency: PGD-K epoch / natural epoch")
        for column in ("model", "batch", "K", "ratio", "limit (2K+3)/3", "target 1.10x", "met"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for row in result["attack_efficiency"]:
            table.add_row(row["model"], f"{row['batch_size']}x{row['batches']}", str(row["k"]),
                          f"{row['ratio']:.2f}", f"{row['limit']:.2f}", f"{row['target']:.2f}", mark(row["ok"]))
        console.print(table)
    if result["non_model_overhead"]:
        table = Table(title="Non-model overhead: share of the epoch outside forward/backward passes")
        for column in ("model", "K", "epoch s", "bare passes s", "share"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for row in result["non_model_overhead"]:
            table.add_row(row["model"], str(row["k"]), f"{row['epoch_seconds']:.3f}", f"{row['model_seconds']:.3f}",
                          f"{row['share']:.1%}")
        console.print(table)
    search = result.get("search")
    if search:
        console.print(f"Search overhead ({search['trials']} trials of up to {search['epochs']} epochs): "
                      f"{search['trial_seconds_sum']:.1f} trial s / ({search['wall_seconds']:.1f} wall s "
                      f"x {search['concurrency']} slots) = {search['fraction']:.1%} of slot time in trials "
                      f"(target >= {search['target']:.0%}: {mark(search['ok'])}; start-up before Tune "
                      f"{search['startup_seconds']:.1f} s included)")
        if "in_trial_functions" in search:
            console.print(f"  {search['in_trial_functions']:.1%} of slot time inside trial functions "
                          f"({search['trial_function_seconds_sum']:.1f} s), of which training and evaluation "
                          f"{search['trial_seconds_sum'] / max(search['trial_function_seconds_sum'], 1e-9):.1%}")
    if result.get("trial_overhead"):
        from raysearch.commands.bench_trials import trial_overhead_lines

        for line in trial_overhead_lines(result["trial_overhead"], mark):
            console.print(line)
    gpu = result.get("gpu")
    if gpu:
        table = Table(title=f"{gpu['name']}: preact_resnet18 PGD-10 training")
        for column in ("setting", "images/s", "x 1 process"):
            table.add_column(column, justify="right")
        for row in gpu["precision"]:
            table.add_row(row["precision"], f"{row['images_per_second']:.0f}", "")
        for row in gpu["sharing"]:
            table.add_row(f"{row['processes']} processes", f"{row['images_per_second']:.0f}", f"{row['speedup']:.2f}")
        console.print(table)


__all__ = ["Case", "Settings", "attack_limit", "attack_target", "bench", "non_model_share", "print_report",
           "search_overhead_fraction", "settings"]

