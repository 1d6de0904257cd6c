"""The parts of one training run, built from its config and handed to :class:`~trainables.training.engine.Run`.

:func:`build_parts` makes the single-process parts; a data-parallel worker builds the same
parts with its own loader (its shard), method (memories sized to the shard), forward
function (through DDP) and reducer (an all-reduce), using the ``make_*`` helpers here.
Nothing here touches global state: seeding and threads are set at the process edge
(:func:`trainables.training.engine.start_run`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sized
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from trainables.config import TrainConfig
from trainables.data import Augment, Batch, Dataset, load_config_dataset, make_loader
from trainables.devices import resolve_device
from trainables.methods import Method, StepContext, build_loss, build_method
from trainables.models import build_model
from trainables.schedules import Schedule, build_schedule
from trainables.training.attack_forward import forward_model


class Loader(Iterable[Batch], Sized, Protocol):
    """What the engine needs of a loader: one epoch of batches per iteration, and its length."""


def _identity(sums: torch.Tensor) -> torch.Tensor:
    return sums


@dataclass
class RunParts:
    """Everything a :class:`~trainables.training.engine.Run` trains with.

    ``forward``: the model as methods call it (possibly compiled or DDP-wrapped);
    ``reduce_sums``: the epoch's statistics over every process of the run (identity for one).
    """

    data: Dataset
    loader: Loader
    model: nn.Module
    optimizer: torch.optim.Optimizer
    method: Method
    schedule: Schedule
    forward: nn.Module
    ctx: StepContext
    reduce_sums: Callable[[torch.Tensor], torch.Tensor] = _identity


def uses_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.uses_bf16(device.type)


def autocast_factory(cfg: TrainConfig, device: torch.device) -> Callable[[], AbstractContextManager[Any]]:
    """A no-argument context factory for the run's autocast (:meth:`TrainConfig.uses_bf16`). A
    ``partial`` rather than a bound method: it holds no reference back to the run, so dropping
    a run frees its memory at once (no reference cycle waiting for the collector)."""
    return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16, enabled=uses_bf16(cfg, device))


def make_model(cfg: TrainConfig, data: Dataset, device: torch.device) -> nn.Module:
    model = build_model(cfg.model, data.num_classes, data.input_shape, data.mean, data.std).to(device)
    wanted = cfg.channels_last
    if (device.type == "cuda" and min(data.input_shape[1:]) >= 16) if wanted is None else wanted:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_method(cfg: TrainConfig, train_size: int, data: Dataset, device: torch.device,
                augment: Augment | None) -> Method:
    return build_method(cfg.method, cfg.method_setup(train_size, data.input_shape, device, augment))


def make_schedule(cfg: TrainConfig) -> Schedule:
    return build_schedule(cfg.schedule, cfg.schedule_setup())


def make_forward(cfg: TrainConfig, model: nn.Module, schedule: Schedule, full: nn.Module | None = None) -> nn.Module:
    """The model as methods call it. Attack passes go to an input-gradient-only graph unless one
    backward must give weight and input gradients together (Free's replays, or a controller
    that reads the training loss's input gradient)."""
    joint = cfg.method_spec.joint_gradient or schedule.grad_source == "final"
    return forward_model(model, cfg.compile, split=not joint, full=full)


def make_context(cfg: TrainConfig, forward: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule,
                 device: torch.device, std: tuple[float, ...] | None = None) -> StepContext:
    """The methods' step context; ``std``: the dataset's per-channel std, the weight of
    |∇x ℓ| in l_X when the schedule asks for it (M+'s ``grad_weight: std``)."""
    weight = None
    if schedule.grad_weight == "std" and std is not None:
        weight = torch.tensor(std, dtype=torch.float32, device=device).view(-1, 1, 1)
    return StepContext(forward, optimizer, cfg.epsilon, build_loss(cfg.loss, cfg.loss_beta),
                       autocast_factory(cfg, device), cfg.attack_bn_mode,
                       final_grad=schedule.grad_source == "final", grad_weight=weight)


def build_parts(cfg: TrainConfig, device: torch.device, data: Dataset | None = None,
                gpu_share: float = 1.0) -> RunParts:
    """The parts of a single-process run of ``cfg`` on ``device`` (``data``: already loaded;
    ``gpu_share``: the run's share of its GPU, which decides whether data stays there)."""
    data = data if data is not None else load_config_dataset(cfg)
    loader = make_loader(cfg, data, device, gpu_share)
    model = make_model(cfg, data, device)
    optimizer = make_optimizer(cfg, model)
    schedule = make_schedule(cfg)
    method = make_method(cfg, loader.train_size, data, device, loader.augment)
    forward = make_forward(cfg, model, schedule)
    return RunParts(data, loader, model, optimizer, method, schedule, forward,
                    make_context(cfg, forward, optimizer, schedule, device, data.std))


__all__ = ["Loader", "RunParts", "autocast_factory", "build_parts", "make_context", "make_forward", "make_method",
           "make_model", "make_optimizer", "make_schedule", "resolve_device", "uses_bf16"]
