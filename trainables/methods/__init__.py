"""Inner-maximization methods (contract names): ``pgd``, ``fgsm_rs``, ``free``, ``atta``, ``atas``.

Adding a method = one file + one line in ``METHODS`` + its name in ``trainables.config``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainables.config import TrainConfig
from trainables.data import Augment
from trainables.methods.atas import ATAS, atas_step_size, update_second_moment
from trainables.methods.atta import ATTA
from trainables.methods.base import BatchStats, Method, Plan, StepContext, default_alpha
from trainables.methods.free import Free
from trainables.methods.losses import LOSSES, OuterLoss, build_loss
from trainables.methods.memory import PerturbationMemory
from trainables.methods.pgd import FGSMRS, PGD
from trainables.registry import Registry

MethodFactory = Callable[[TrainConfig, int, tuple[int, int, int], torch.device, "Augment | None"], Method]


def _memory(cfg: TrainConfig, n: int, shape: tuple[int, int, int], device: torch.device,
            augment: Augment | None, store_size: int = 0) -> PerturbationMemory:
    return PerturbationMemory(n, shape, cfg.epsilon, device, augment, store_size)


METHODS: Registry[MethodFactory] = Registry("method", {
    "pgd": lambda cfg, n, shape, dev, aug: PGD(cfg.alpha, cfg.init),
    "fgsm_rs": lambda cfg, n, shape, dev, aug: FGSMRS(cfg.alpha, cfg.init),
    "free": lambda cfg, n, shape, dev, aug: Free(cfg.alpha, cfg.init, cfg.free.carry_delta),
    "atta": lambda cfg, n, shape, dev, aug: ATTA(
        _memory(cfg, n, shape, dev, aug), cfg.alpha, cfg.atta.reset_every),
    "atas": lambda cfg, n, shape, dev, aug: ATAS(
        _memory(cfg, n, shape, dev, aug, cfg.atas.store_size), n, cfg.atas.c, cfg.atas.beta,
        *cfg.atas.resolved(cfg.epsilon), cfg.atas.reset_every, cfg.atas.reference_batch),
})


def build_method(cfg: TrainConfig, train_size: int, input_shape: tuple[int, int, int],
                 device: torch.device, augment: Augment | None) -> Method:
    return METHODS.get(cfg.method)(cfg, train_size, input_shape, device, augment)


__all__ = [
    "ATAS", "ATTA", "FGSMRS", "LOSSES", "METHODS", "PGD", "BatchStats", "Free", "Method",
    "OuterLoss", "PerturbationMemory", "Plan", "StepContext", "atas_step_size", "build_loss",
    "build_method", "default_alpha", "update_second_moment",
]
