"""A small, fast convolutional net for digits- and MNIST-scale data.

It has batch normalization on purpose: whether an attack runs with BN in train or eval mode
(``attack_bn``) must make a difference on the default dataset too. Adaptive pooling makes it
work for any input of at least 2x2 pixels.
"""

from __future__ import annotations

from torch import nn


def _conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SmallCNN(nn.Sequential):
    """conv 32 -> conv 64 -> max-pool -> conv 128 -> global average -> linear 128 -> classes."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__(
            _conv_bn(in_channels, 32), _conv_bn(32, 64), nn.MaxPool2d(2),
            _conv_bn(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(128, 128), nn.ReLU(inplace=True), nn.Linear(128, num_classes),
        )
