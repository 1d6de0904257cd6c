"""WideResNet (Zagoruyko & Komodakis, 2016) as defined in TRADES (Zhang et al., 2019).

WRN-d-k: a 3x3 stem with 16 channels, three stages of (d - 4) / 6 pre-activation blocks with
16k, 32k and 64k channels (strides 1, 2, 2), a final BN-ReLU, global average pooling and a
linear layer. Dropout is 0, as in TRADES, so the block is :class:`PreActBlock`. Convolutions
get TRADES' He initialization (normal, fan-out); linear biases start at zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.models.preact_resnet import stage
from trainables.registry import ConfigError


class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor``: WRN-34-10 and WRN-28-10 are the adversarial-training standards."""

    def __init__(self, depth: int = 34, widen_factor: int = 10, num_classes: int = 10,
                 in_channels: int = 3) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ConfigError("depth", depth, "WideResNet depth must be 6n + 4 with n >= 1")
        n, widths = (depth - 4) // 6, [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, padding=1, bias=False)
        self.blocks = nn.Sequential(stage(16, widths[0], n, 1), stage(widths[0], widths[1], n, 2),
                                    stage(widths[1], widths[2], n, 2))
        self.bn = nn.BatchNorm2d(widths[2])
        self.fc = nn.Linear(widths[2], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))
