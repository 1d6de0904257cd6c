"""Import torchvision where its compiled ops cannot load (CPU torch beside a CUDA-built wheel)."""

from __future__ import annotations

import types

import torch

_tv_ops: torch.library.Library | None = None


def import_torchvision() -> types.ModuleType:
    """Import torchvision, also where its compiled ops cannot load.

    PyPI's torchvision wheel is built against CUDA torch; beside the CPU build of torch its
    ``_C`` extension does not load and torchvision 0.28 then fails at import, registering fake
    kernels for the missing ``torchvision::nms``/``qnms``. Declaring those two schemas lets the
    pure-Python parts raysearch uses (datasets, model definitions) import; the detection ops
    stay unusable. Imported lazily: it costs over a second and ``digits`` does not need it.
    """
    global _tv_ops
    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::" not in str(err) or _tv_ops is not None:
            raise
        _tv_ops = torch.library.Library("torchvision", "FRAGMENT")  # kept alive: dropping it undefines
        for op in ("nms", "qnms"):
            _tv_ops.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision
    return torchvision
