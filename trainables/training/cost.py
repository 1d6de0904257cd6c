"""Cost accounting (SPEC §5): backprops, forwards, train and eval seconds, cumulative.

Backprops and forwards are exact counts reported by the methods (plain integers, no device
sync). Seconds are wall time measured around training only and around evaluation only; on
CUDA the clock is read after ``torch.cuda.synchronize`` so queued kernels are counted.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Cost:
    backprops: int = 0
    forwards: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    compile_seconds: float = 0.0  # torch.compile's graph building, kept out of train_seconds

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if hasattr(self, key):
                setattr(self, key, type(getattr(self, key))(value))


class Stopwatch:
    """``with Stopwatch(device) as sw: ...`` then ``sw.seconds`` (synchronized on CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


def table2_backprops(ks: list[int], batches_per_epoch: int) -> int:
    """Σ_t (K_t + 1)·M: the backprop count of a run with per-epoch K values ``ks`` (SPEC §2)."""
    return sum((k + 1) * batches_per_epoch for k in ks)
