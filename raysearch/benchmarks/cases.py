"""What the benchmark times and how: the model/dataset cases, the settings per device and mode,
a run of a case, and one training epoch's seconds. Every timing benchmark builds on these."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any


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


def log(message: str) -> None:
    """A progress line of ``raysearch bench`` on standard error (standard output is the figures')."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def make_run(case: Case, k: int, device: str, **overrides: Any) -> Any:
    """A started :class:`~trainables.training.engine.Run` of ``case`` at PGD-``k``."""
    from trainables.config import parse_config
    from trainables.training.engine import start_run

    return start_run(parse_config(case.config(k, device, **overrides)))


def epoch_seconds(run: Any) -> float:
    """Wall seconds of one training epoch of ``run`` (its synchronized ``train_seconds``)."""
    before = run.cost.train_seconds
    run.train_epoch()
    return run.cost.train_seconds - before


__all__ = ["Case", "Settings", "epoch_seconds", "log", "make_run", "settings"]
