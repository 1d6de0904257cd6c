"""Tests for trainables.models: registry, Normalize, the reference architectures, torchvision names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables.data import BatchLoader, load_dataset
from trainables.models import MODELS, Normalize, build_model
from trainables.registry import ConfigError

# Parameters with 10 classes: WRN-34-10 and WRN-28-10 as in TRADES; PreAct ResNet-18 as in
# fast_adversarial (kuangliu's 11,171,146 plus the final 512-channel BatchNorm).
PARAMS = {"small_cnn": 110_698, "preact_resnet18": 11_172_170, "wrn34_10": 46_160_474, "wrn28_10": 36_479_194}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_builds_and_classifies(name: str) -> None:
    channels = 1 if name == "small_cnn" else 3
    model = build_model(name, 10, (channels, 32, 32), [0.5] * channels, [0.25] * channels).eval()
    assert isinstance(model, nn.Sequential) and isinstance(model[0], Normalize)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    with torch.no_grad():  # 8x8 inputs keep the wide nets fast; global pooling takes any size
        out = model(torch.rand(2, channels, 8, 8))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_models_follow_input_channels_and_classes() -> None:
    model = build_model("preact_resnet18", 7, (1, 16, 16), [0.1307], [0.3081]).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 16, 16)).shape == (2, 7)
    assert "0.mean" in model.state_dict() and "0.std" in model.state_dict()


def test_normalize_math() -> None:
    norm = Normalize([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])
    x = torch.tensor([1.0, 0.5, 1.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    assert torch.equal(norm(x), torch.tensor([1.0, 1.0, 0.5]).view(1, 3, 1, 1).expand(2, 3, 2, 2))
    gray = Normalize([0.5], [0.5], out_channels=3)
    out = gray(torch.full((2, 1, 4, 4), 0.75))
    assert out.shape == (2, 3, 4, 4) and torch.all(out == 0.5)


def test_normalize_rejects_bad_statistics() -> None:
    with pytest.raises(ConfigError, match="std"):
        Normalize([0.5, 0.5], [0.5])
    with pytest.raises(ConfigError, match="std"):
        Normalize([0.5], [0.0])
    with pytest.raises(ConfigError, match="mean"):
        Normalize([0.5, 0.5], [0.5, 0.5], out_channels=3)
    with pytest.raises(ConfigError, match="mean"):
        build_model("small_cnn", 10, (3, 8, 8), [0.5], [0.5])


def test_torchvision_classifier_by_name_takes_grayscale() -> None:
    model = build_model("resnet18", 7, (1, 32, 32), [0.5], [0.5]).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("name, suggestion", [("wrn34-10", "wrn34_10"), ("smallcnn", "small_cnn")])
def test_misspelt_model_suggests_the_closest_name(name: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=f"did you mean '{suggestion}'") as info:
        build_model(name, 10, (1, 8, 8), [0.5], [0.5])
    assert str(info.value).startswith(f"model={name!r}: unknown model; choose one of preact_resnet18, small_cnn")


def test_small_cnn_learns_digits(one_thread) -> None:
    """The embedded default must be worth searching on: >90% clean accuracy in 10 SGD epochs."""
    torch.manual_seed(0)
    data = load_dataset("digits")
    model = build_model("small_cnn", data.num_classes, data.input_shape, data.mean, data.std)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(10):
        for batch in BatchLoader(data.train, batch_size=128, shuffle=True):
            optimizer.zero_grad()
            F.cross_entropy(model(batch.x), batch.y).backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = (model.eval()(data.val.images()).argmax(1) == data.val.y).float().mean().item()
    assert accuracy > 0.9
