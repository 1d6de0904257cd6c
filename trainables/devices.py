"""Which device a run trains on: the ``device`` setting checked against the machine.

``device`` is ``auto`` (the first CUDA GPU when there is one, else the CPU), ``cpu``,
``cuda``, ``cuda:N`` or ``mps``. A device this machine does not have is bad input: a
:class:`~trainables.registry.ConfigError` before any data is loaded, not a traceback from
deep inside torch.

Example::

    >>> check_device_name("cuda:1")
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from trainables.registry import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"
_NAME = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device_name(name: str, key: str = "device") -> None:
    """Reject a device name of no form raysearch trains on (no torch needed)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(key, name, f"must be {DEVICE_FORMS}")


def cuda_count() -> int:
    """CUDA GPUs this process sees (0 with a CPU-only torch or a broken CUDA install)."""
    import torch

    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken driver means no usable GPU, not a traceback
        return 0


def check_cuda_index(name: str, count: int, key: str = "device", where: str = "this machine has") -> None:
    """``cuda`` / ``cuda:N`` must name one of ``count`` visible GPUs."""
    index = int(name.partition(":")[2] or 0)
    if count == 0:
        raise ConfigError(key, name, f"{where} no CUDA GPU; use auto or cpu")
    if index >= count:
        gpus = "cuda:0" if count == 1 else f"cuda:0 ... cuda:{count - 1}"
        raise ConfigError(key, name, f"{where} {count} CUDA GPU{'s' if count > 1 else ''} ({gpus})")


def resolve_device(name: str, key: str = "device") -> torch.device:
    """The torch device ``name`` stands for on this machine; ConfigError when it has none such."""
    import torch

    check_device_name(name, key)
    if name == "auto":
        return torch.device("cuda" if cuda_count() else "cpu")
    if name.startswith("cuda"):
        check_cuda_index(name, cuda_count(), key)
    elif name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(key, name, "this machine has no MPS device (Apple silicon GPU); use auto or cpu")
    return torch.device(name)


__all__ = ["DEVICE_FORMS", "check_cuda_index", "check_device_name", "cuda_count", "resolve_device"]
