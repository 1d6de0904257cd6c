"""PreAct ResNet-18 (He et al., 2016, "Identity Mappings in Deep Residual Networks").

The CIFAR definition used by fast_adversarial (Wong et al., 2020) and Rice et al. (2020):
a 3x3 stem with 64 channels, four stages of two pre-activation blocks (64, 128, 256, 512
channels, strides 1, 2, 2, 2), a final BN-ReLU, global average pooling and a linear layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3 twice around an identity shortcut.

    When the shape changes, the shortcut is a strided 1x1 convolution of the *pre-activated*
    input, as in the reference code. With dropout 0 this is also WideResNet's block (TRADES).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


def stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` PreActBlocks; the first one changes width and stride."""
    return nn.Sequential(PreActBlock(in_planes, planes, stride),
                         *(PreActBlock(planes, planes) for _ in range(blocks - 1)))


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 for CIFAR-sized inputs (any size works: the pooling is global)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, padding=1, bias=False)
        self.layers = nn.Sequential(stage(64, 64, 2, 1), stage(64, 128, 2, 2),
                                    stage(128, 256, 2, 2), stage(256, 512, 2, 2))
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))
