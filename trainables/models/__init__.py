"""Models by name: every model is ``nn.Sequential(Normalize(mean, std), net)`` taking [0, 1] images.

``MODELS`` holds the contract names (SPEC §12); any other name is looked up among
torchvision's classifiers and built untrained, with grayscale inputs expanded to RGB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from torch import nn

from trainables._torchvision import import_torchvision
from trainables.models.normalize import Normalize
from trainables.models.preact_resnet import PreActResNet18
from trainables.models.small_cnn import SmallCNN
from trainables.models.wide_resnet import WideResNet
from trainables.registry import ConfigError, Registry, did_you_mean

# Each entry is called as ``entry(num_classes=..., in_channels=...)`` and returns the bare net.
MODELS: Registry[Callable[..., nn.Module]] = Registry("model", {
    "small_cnn": SmallCNN,
    "preact_resnet18": PreActResNet18,
    "wrn34_10": partial(WideResNet, depth=34, widen_factor=10),
    "wrn28_10": partial(WideResNet, depth=28, widen_factor=10),
})


def build_model(name: str, num_classes: int, input_shape: tuple[int, int, int],
                mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """Build model ``name`` for ``input_shape`` (C, H, W) images normalized by ``mean``/``std``."""
    in_channels = input_shape[0]
    if len(mean) != in_channels:
        raise ConfigError("mean", tuple(mean), f"needs {in_channels} values, one per input channel")
    if name in MODELS:
        net = MODELS[name](num_classes=num_classes, in_channels=in_channels)
        return nn.Sequential(Normalize(mean, std), net)
    tv_models = import_torchvision().models
    tv_names = tv_models.list_models(module=tv_models)
    if name in tv_names:
        net = tv_models.get_model(name, weights=None, num_classes=num_classes)
        return nn.Sequential(Normalize(mean, std, out_channels=3), net)
    raise ConfigError("model", name, f"unknown model; choose one of {', '.join(sorted(MODELS))} "
                      "or a torchvision classifier (torchvision.models.list_models())",
                      did_you_mean(name, [*MODELS, *tv_names]))


__all__ = ["MODELS", "Normalize", "PreActResNet18", "SmallCNN", "WideResNet", "build_model"]
