"""Per-channel normalization as the model's first layer.

Images stay in [0, 1] everywhere outside the model, so ε and the clip to [0, 1] are in pixel
scale (SPEC §2) and attacks never need to know a dataset's statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from trainables.registry import ConfigError


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, then grayscale repeated to ``out_channels`` if asked.

    ``out_channels`` lets a 1-channel dataset (MNIST) feed a network built for RGB
    (torchvision's classifiers): the normalized channel is expanded, not copied.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float],
                 out_channels: int | None = None) -> None:
        super().__init__()
        if len(std) != len(mean) or min(std) <= 0:
            raise ConfigError("std", tuple(std), f"needs {len(mean)} positive values, one per mean")
        self.out_channels = out_channels or len(mean)
        if self.out_channels != len(mean) and len(mean) != 1:
            raise ConfigError("mean", tuple(mean),
                              f"has {len(mean)} channels; only 1 channel expands to {out_channels}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        if x.shape[1] != self.out_channels:
            x = x.expand(-1, self.out_channels, -1, -1)
        return x

    def extra_repr(self) -> str:
        mean, std = self.mean.flatten().tolist(), self.std.flatten().tolist()
        return f"mean={mean}, std={std}, out_channels={self.out_channels}"
