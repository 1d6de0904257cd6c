"""The GPU smoke check (``raysearch bench --smoke``): every GPU path once, in a few minutes,
with its key figures.

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

The parts live in :mod:`raysearch.benchmarks.smoke_engine` (one process) and
:mod:`raysearch.benchmarks.smoke_ray` (through Ray); this module runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from raysearch.benchmarks.smoke_engine import compiled, layouts, memory, precision, say, syncs
from raysearch.benchmarks.smoke_ray import ddp, ray_trials

PARTS = ("layouts", "syncs", "precision", "memory", "compile", "ddp", "ray", "bench")


def quick_bench(device: str) -> dict[str, Any]:
    """The quick benchmark's epoch and GPU parts, printed as ``raysearch bench --quick`` prints them."""
    from raysearch.benchmarks.suite import measure
    from raysearch.benchmarks.tables import print_report

    figures = measure(quick=True, parts=("attack", "overhead", "gpu"), device=device)
    print_report(figures)
    return figures


RUNNERS: dict[str, Callable[[str], Any]] = {
    "layouts": layouts, "syncs": syncs, "precision": precision, "memory": memory, "compile": compiled,
    "ddp": ddp, "ray": ray_trials, "bench": quick_bench,
}


def failure_line(err: BaseException, limit: int = 600) -> str:
    """``err`` on one line: its type and every line of its message (Ray's errors put the cause
    after a header line, e.g. "Training failed due to controller error:")."""
    text = " / ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return f"{type(err).__name__}: {text[:limit]}"


def smoke(parts: tuple[str, ...] = PARTS, device: str | None = None) -> dict[str, Any]:
    """Run the smoke ``parts`` on ``device`` (default: CUDA when there is one); their figures."""
    import torch

    from raysearch.benchmarks.gpu import device_state

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    state = device_state()
    say(f"torch {torch.__version__} on {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}; "
        + ", ".join(f"{k} {v}" for k, v in state.items()))
    out: dict[str, Any] = {"device": device, "state": state}
    for name in parts:
        start = time.monotonic()
        try:
            out[name] = RUNNERS[name](device)
        except Exception as err:  # one failed path must not hide the others
            out[name] = {"failed": failure_line(err)}
            say(f"{name} FAILED: {out[name]['failed']}")
        say(f"-- {name}: {time.monotonic() - start:.0f}s")
    return out


__all__ = ["PARTS", "RUNNERS", "failure_line", "quick_bench", "smoke"]
