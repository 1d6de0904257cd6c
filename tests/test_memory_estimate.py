"""The measured per-trial memory estimate and the check of a fractional GPU share (on the CPU)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainables.config import parse_config
from trainables.models import build_model
from trainables.registry import ConfigError
from trainables.training.memory_estimate import (
    GIB,
    MARGIN,
    RUNTIME_BYTES,
    activation_bytes,
    check_gpu_share,
    estimate_memory,
    saved_tensor_bytes,
)

DIGITS = {"dataset": "digits", "model": "small_cnn", "batch_size": 64, "eval.examples": 100}


def test_saved_tensors_of_a_linear_layer() -> None:
    # Linear saves its input (B x 4 floats; the weight is a parameter, not counted),
    # cross-entropy its log-softmax (B x 3 floats) and the labels (B int64, a scalar weight).
    model = nn.Linear(4, 3)
    x, y = torch.rand(5, 4), torch.randint(3, (5,))
    assert 5 * 4 * 4 + 5 * 3 * 4 <= saved_tensor_bytes(model, x, y) <= 5 * 4 * 4 + 5 * 3 * 4 + 5 * 8 + 8


def test_bf16_autocast_about_halves_the_activations_per_example() -> None:
    cfg = parse_config(DIGITS)

    def per_example(bf16: bool) -> float:
        small, large = (activation_bytes(cfg, (1, 8, 8), 10, b, bf16) for b in (64, 512))
        return (large - small) / (512 - 64)

    assert 0.4 < per_example(True) / per_example(False) < 0.8


def test_activations_extrapolate_to_a_measured_batch() -> None:
    cfg = parse_config(DIGITS)
    model = build_model("small_cnn", 10, (1, 8, 8), (0.5,), (0.25,))
    measured = saved_tensor_bytes(model, torch.rand(48, 1, 8, 8), torch.randint(10, (48,)))
    assert activation_bytes(cfg, (1, 8, 8), 10, 48, bf16=False) == pytest.approx(measured, rel=0.01)


def test_estimate_counts_weights_optimizer_data_and_memories(digits) -> None:
    n, image = len(digits.train), 1 * 8 * 8 * 4
    pgd = estimate_memory(DIGITS, digits)
    model = build_model("small_cnn", 10, (1, 8, 8), (0.5,), (0.25,))
    params = sum(p.numel() * 4 for p in model.parameters())
    assert pgd.gradients == params and pgd.optimizer == params  # SGD momentum: one copy
    assert pgd.memories == 0
    # the training split as uint8 on the device, the evaluation subset as float
    assert pgd.dataset == n * (64 + 8) + 100 * (image + 8)
    assert estimate_memory({**DIGITS, "optimizer": "adam"}, digits).optimizer == 2 * params
    assert estimate_memory(DIGITS, digits, method="atta").memories == n * image
    assert estimate_memory(DIGITS, digits, method="atas").memories == n * image + n * 4
    stored = estimate_memory({**DIGITS, "method": "atas", "atas.store_size": 4}, digits)
    assert stored.memories == n * 4 * 4 * 4 + n * 4
    assert pgd.total_bytes == int(pgd.allocated_bytes * (1 + MARGIN) + 0.999) + RUNTIME_BYTES
    # the evaluation batch (PGD needs input gradients there too) counts when it is larger
    bigger_eval = estimate_memory({**DIGITS, "eval.examples": 300, "eval.batch_size": 300}, digits)
    assert bigger_eval.activations > pgd.activations


def test_a_share_that_fits_passes_and_whole_gpus_are_not_checked(digits) -> None:
    assert check_gpu_share(DIGITS, 0.25, 80 * GIB, digits) is not None
    assert check_gpu_share(DIGITS, 1, 1, digits) is None
    assert check_gpu_share(DIGITS, 0, 1, digits) is None


def test_a_share_too_small_is_a_config_error_that_says_what_fits(digits) -> None:
    need = estimate_memory(DIGITS, digits, method="atas").total_bytes
    gpu = 4 * need  # a quarter would fit exactly; a fifth does not
    check_gpu_share(DIGITS, 0.25, gpu, digits, methods=["pgd", "atas"])
    with pytest.raises(ConfigError) as info:
        check_gpu_share(DIGITS, 0.2, gpu, digits, methods=["pgd", "atas"])
    err = info.value
    assert err.key == "gpus_per_trial" and err.value == 0.2
    assert "cannot hold a small_cnn trial on digits with batch 64 and per-example memories" in str(err)
    assert f"needs ~{need / GIB:.1f} GiB" in str(err) and "use at least 0.25 (4 trials per GPU)" in str(err)
    with pytest.raises(ConfigError, match="does not fit even on a whole GPU"):
        check_gpu_share(DIGITS, 0.5, need // 2, digits)

