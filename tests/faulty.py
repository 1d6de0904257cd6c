"""Trainables and models that fail on purpose, for the fault tests (imported by Ray's workers by name)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from trainables.trials.setup import TrialSetup
from trainables.tune.functions import guard_failed, tune_trainable


@guard_failed
def fails_on_pgd10(config: dict[str, Any], setup: TrialSetup | None = None) -> None:
    """The real trainable, except that the PGD-10 paper default crashes every time it starts."""
    if config.get("trial.warm_start") == "PGD-10":
        raise RuntimeError("injected failure: this trial crashes every time")
    tune_trainable(config, setup)


class CrashOnce(torch.nn.Module):
    """The demo's small CNN, except that rank 1 of a data-parallel run exits at its first weight
    update of epoch 2, once per marker file (``RAYSEARCH_TEST_CRASH_MARKER``): a worker process
    killed mid-run, as a lost node would be."""

    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], updates_per_epoch: int) -> None:
        super().__init__()
        from trainables.models import build_model

        channels = input_shape[0]
        self.model = build_model("small_cnn", num_classes, input_shape, (0.5,) * channels, (0.25,) * channels)
        self.updates, self.per_epoch = 0, updates_per_epoch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled() and not x.requires_grad:  # a weight update's forward
            self.updates += 1
            marker = Path(os.environ.get("RAYSEARCH_TEST_CRASH_MARKER", "/nonexistent/marker"))
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            if rank == 1 and self.updates == self.per_epoch + 1 and marker.parent.exists() and not marker.exists():
                marker.write_text("crashed")
                os._exit(1)
        return self.model(x)  # type: ignore[no-any-return]


def crash_once_cnn(num_classes: int, input_shape: tuple[int, int, int]) -> torch.nn.Module:
    return CrashOnce(num_classes, input_shape, updates_per_epoch=4)
