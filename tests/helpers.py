"""Small helpers shared by several test modules (imported as ``from helpers import ...``)."""

from __future__ import annotations

import io
from typing import Any

import torch


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` after a torch.save / torch.load(weights_only=True) round trip through memory."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def f32(value: float) -> torch.Tensor:
    """``value`` as a float32 scalar tensor (what float32 tensors are compared against)."""
    return torch.tensor(value, dtype=torch.float32)


def own_ray_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the session's shared Ray head (``$RAY_ADDRESS``, see conftest's
    ``ray_head``): a driver given it starts and owns a local Ray, as on a user's machine."""
    return {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
