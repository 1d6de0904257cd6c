"""Models by name: every built-in model is ``nn.Sequential(Normalize(mean, std), net)`` taking
[0, 1] images (per-dataset normalization is the model's first layer, SPEC §2).

``MODELS`` holds the contract names (SPEC §12). Any other name is, in this order: a user's
model by import path, ``model: "my_pkg.nets:make_net"``, a callable ``(num_classes: int,
input_shape: tuple[int, int, int]) -> nn.Module`` that takes images in [0, 1] and is used as
it is (it normalizes inside if it wants to); an entry of an installed package's entry-point
group ``raysearch.models`` (the same contract); or one of torchvision's classifiers, built
untrained, with grayscale inputs expanded to RGB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch import nn

from trainables._torchvision import import_torchvision
from trainables.models.normalize import Normalize
from trainables.models.preact_resnet import PreActResNet18
from trainables.models.small_cnn import SmallCNN
from trainables.models.wide_resnet import WideResNet
from trainables.registry import ConfigError, Registry, did_you_mean, is_import_path

Builder = Callable[[int, tuple[int, int, int], Sequence[float], Sequence[float]], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: ``build(num_classes, input_shape, mean, std)`` returns the whole model."""

    build: Builder
    label: str


def _builtin(net: Callable[..., nn.Module], label: str) -> ModelSpec:
    def build(num_classes: int, input_shape: tuple[int, int, int], mean: Sequence[float],
              std: Sequence[float]) -> nn.Module:
        return nn.Sequential(Normalize(mean, std), net(num_classes=num_classes, in_channels=input_shape[0]))

    return ModelSpec(build, label)


def plugin_model(path: str, make: Any) -> ModelSpec:
    """A user's ``(num_classes, input_shape) -> nn.Module`` as a registry entry."""
    if not callable(make):
        raise ConfigError("model", path, "must name a callable (num_classes, input_shape) -> torch.nn.Module")

    def build(num_classes: int, input_shape: tuple[int, int, int], mean: Sequence[float],
              std: Sequence[float]) -> nn.Module:
        try:
            model = make(num_classes, tuple(input_shape))
        except Exception as err:
            raise ConfigError("model", path, f"building it failed: {type(err).__name__}: {err}") from None
        if not isinstance(model, nn.Module):
            raise ConfigError("model", path, f"must return a torch.nn.Module, got {type(model).__name__}")
        return model

    return ModelSpec(build, path)


MODELS: Registry[ModelSpec] = Registry("model", {
    "small_cnn": _builtin(SmallCNN, "SmallCNN"),
    "preact_resnet18": _builtin(PreActResNet18, "PreAct ResNet-18"),
    "wrn34_10": _builtin(partial(WideResNet, depth=34, widen_factor=10), "WRN-34-10"),
    "wrn28_10": _builtin(partial(WideResNet, depth=28, widen_factor=10), "WRN-28-10"),
}, imports=True, wrap_import=plugin_model)


def build_model(name: str, num_classes: int, input_shape: tuple[int, int, int],
                mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """Build model ``name`` for ``input_shape`` (C, H, W) images normalized by ``mean``/``std``."""
    if len(mean) != input_shape[0]:
        raise ConfigError("mean", tuple(mean), f"needs {input_shape[0]} values, one per input channel")
    if name in MODELS or is_import_path(name):
        return MODELS.get(name).build(num_classes, input_shape, mean, std)
    MODELS.load_entry_points()
    if name in MODELS:
        return MODELS[name].build(num_classes, input_shape, mean, std)
    tv_models = import_torchvision().models
    tv_names = tv_models.list_models(module=tv_models)
    if name in tv_names:
        net = tv_models.get_model(name, weights=None, num_classes=num_classes)
        return nn.Sequential(Normalize(mean, std, out_channels=3), net)
    raise ConfigError("model", name, f"unknown model; choose one of {', '.join(sorted(MODELS))}, "
                      "a torchvision classifier (torchvision.models.list_models()) or a 'pkg.module:callable'",
                      did_you_mean(name, [*MODELS, *tv_names]))


__all__ = ["MODELS", "ModelSpec", "Normalize", "PreActResNet18", "SmallCNN", "WideResNet", "build_model",
           "plugin_model"]
