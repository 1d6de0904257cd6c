"""A measured estimate of one trial's GPU memory, so trials that share a GPU are checked first.

With ``gpus_per_trial`` = 0.25 four trials share a GPU and each caps its CUDA allocator to a
quarter of it (``torch.cuda.set_per_process_memory_fraction``). A trial that needs more
than its share would die with an out-of-memory error minutes into the search; this module
says so before anything starts. The estimate is device-agnostic (it runs on the CPU) and
*measured* where it can be:

- weights, their gradients and the optimizer state (SGD momentum: one copy, Adam: two);
- activations: the bytes of the tensors autograd saves for backward during one forward of
  the model, counted with :func:`torch.autograd.graph.saved_tensors_hooks` at two small
  batch sizes and extrapolated linearly to the largest batch the run pushes through the
  model (the training batch, or the evaluation batch whose PGD needs input gradients too),
  under bf16 autocast when the run would use it on a GPU;
- the attack's working set: about six input-sized tensors per batch (the gathered and
  augmented batch, δ, ∇δ, sign and projection temporaries);
- the dataset held on the device (train and validation splits);
- per-example memories: the bytes of the method's state (ATTA and ATAS keep one δ per
  training example, ATAS also v), counted from the method built on the meta device;
- a margin (allocator fragmentation, gradient buffers alive during backward) and a fixed
  allowance outside the allocator's cap (CUDA context, cuDNN/cuBLAS workspaces).

Only the memories depend on the method: :func:`check_gpu_share` builds and measures the model
once and varies the method's part alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from trainables.config import TrainConfig, parse_config
from trainables.data import train_subset
from trainables.registry import ConfigError

GIB = 1024**3
MARGIN = 0.25
RUNTIME_BYTES = 768 * 1024**2  # CUDA context + library workspaces, outside the allocator cap
ATTACK_TENSORS = 6  # input-sized tensors alive during an attack step besides the saved ones
PROBE_BATCHES = (2, 4)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one trial needs on its GPU, by kind; :attr:`total_bytes` adds margin and runtime."""

    parameters: int
    gradients: int
    optimizer: int
    activations: int
    attack: int
    dataset: int
    memories: int
    margin: float = MARGIN
    runtime: int = RUNTIME_BYTES

    @property
    def allocated_bytes(self) -> int:
        return (self.parameters + self.gradients + self.optimizer + self.activations + self.attack
                + self.dataset + self.memories)

    @property
    def total_bytes(self) -> int:
        return math.ceil(self.allocated_bytes * (1 + self.margin)) + self.runtime

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "allocated_bytes": self.allocated_bytes, "total_bytes": self.total_bytes}


def saved_tensor_bytes(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                       bf16: bool = False, loss: str = "ce") -> int:
    """Bytes of the tensors autograd saves in one training step's forward of ``model`` on
    (x, y) with outer loss ``loss``: TRADES and MART run two forwards (clean and adversarial)
    whose saved tensors are alive together until the backward.

    Each storage counts once (a ReLU's output saved again as the next layer's input) and the
    weights themselves are not counted (they are the parameters)."""
    from trainables.methods import build_loss

    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights and storage.device.type != "meta":
            storages[storage.data_ptr()] = max(storages.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    model.train(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        delta = torch.zeros_like(x, requires_grad=True)  # the attack's input needs a gradient too
        build_loss(loss).train_loss(model, x, x + delta, y)
    return sum(storages.values())


def probe_model(cfg: TrainConfig, input_shape: tuple[int, int, int], num_classes: int) -> torch.nn.Module:
    """``cfg.model`` for ``input_shape`` images; its normalization is made up (bytes do not depend on it)."""
    from trainables.models import build_model

    channels = input_shape[0]
    return build_model(cfg.model, num_classes, input_shape, (0.5,) * channels, (0.25,) * channels)


def activation_bytes(cfg: TrainConfig, input_shape: tuple[int, int, int], num_classes: int,
                     batch: int, bf16: bool, model: torch.nn.Module | None = None) -> int:
    """Saved-for-backward bytes at ``batch``, extrapolated from two small measured batches.

    ``model``: the :func:`probe_model` to measure (built here when None)."""
    if model is None:
        model = probe_model(cfg, input_shape, num_classes)
    measured = [saved_tensor_bytes(model, torch.rand(b, *input_shape), torch.randint(num_classes, (b,)), bf16,
                                   cfg.loss) for b in PROBE_BATCHES]
    (b1, b2), (m1, m2) = PROBE_BATCHES, measured
    per_example = max(0.0, (m2 - m1) / (b2 - b1))
    fixed = max(0.0, m1 - per_example * b1)
    return math.ceil(fixed + per_example * batch)


def _state_bytes(state: Any) -> int:
    if isinstance(state, torch.Tensor):
        return state.nbytes
    if isinstance(state, Mapping):
        return sum(_state_bytes(value) for value in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_state_bytes(value) for value in state)
    return 0


def method_state_bytes(cfg: TrainConfig, data: Any) -> int:
    """Bytes of ``cfg.method``'s state across batches (ATTA/ATAS: the per-example memories),
    summed over its ``state_dict`` with the method built on the meta device (nothing allocated)."""
    from trainables.methods import build_method

    setup = cfg.method_setup(len(data.train), data.input_shape, torch.device("meta"), None)
    method = build_method(cfg.method, setup)
    return _state_bytes(method.state_dict())


def _load_data(cfg: TrainConfig) -> Any:
    from trainables.data import load_config_dataset

    return load_config_dataset(cfg)


def _shared_estimate(cfg: TrainConfig, data: Any) -> MemoryEstimate:
    """Everything but the method's memories (0 here): weights, optimizer, activations, attack, data."""
    model = probe_model(cfg, data.input_shape, data.num_classes)
    params = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    optimizer_copies = 2 if cfg.optimizer == "adam" else (1 if cfg.momentum > 0 else 0)
    bf16 = cfg.uses_bf16("cuda")  # the precision the run would train in on a GPU
    eval_batch = min(cfg.eval.batch_size, cfg.eval.examples, len(data.val))
    batch = max(cfg.batch_size, eval_batch)
    image = math.prod(data.input_shape) * 4
    train = train_subset(data.train, cfg.data_fraction)
    # The training split on the device as uint8 unless told to stream (auto streams only what
    # would not fit, so this is the upper bound); the evaluation subset as float.
    held = 0 if cfg.data_on_device == "false" else train.nbytes
    eval_examples = min(cfg.eval.examples, len(data.val))
    split_bytes = held + eval_examples * (math.prod(data.input_shape) * 4 + 8)
    return MemoryEstimate(
        parameters=params + buffers, gradients=params, optimizer=optimizer_copies * params,
        activations=activation_bytes(cfg, data.input_shape, data.num_classes, batch, bf16, model),
        attack=ATTACK_TENSORS * batch * image, dataset=split_bytes, memories=0)


def _with_method(cfg: TrainConfig, method: str | None) -> TrainConfig:
    return replace(cfg, method=method) if method is not None and method != cfg.method else cfg


def estimate_memory(config: TrainConfig | Mapping[str, Any], data: Any = None,
                    method: str | None = None) -> MemoryEstimate:
    """Measure the GPU memory of one trial of ``config`` (``method`` overrides its method).

    ``data``: the loaded :class:`~trainables.data.Dataset` (loaded here when None)."""
    cfg = _with_method(config if isinstance(config, TrainConfig) else parse_config(config), method)
    if data is None:
        data = _load_data(cfg)
    return replace(_shared_estimate(cfg, data), memories=method_state_bytes(cfg, data))


def checkpoint_bytes(config: TrainConfig | Mapping[str, Any], data: Any = None) -> int:
    """Bytes of one checkpoint of a run (``state.pt`` + ``best.pt``): the weights three times
    (model, best model, their copy in ``best.pt``), the optimizer state and the method's
    per-example memories. Used to warn when a search's storage is too small."""
    cfg = config if isinstance(config, TrainConfig) else parse_config(config)
    if data is None:
        data = _load_data(cfg)
    model = probe_model(cfg, data.input_shape, data.num_classes)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    optimizer_copies = 2 if cfg.optimizer == "adam" else (1 if cfg.momentum > 0 else 0)
    return 3 * weights + optimizer_copies * weights + method_state_bytes(cfg, data)


def check_gpu_share(config: TrainConfig | Mapping[str, Any], gpus_per_trial: float, gpu_total_bytes: int,
                    data: Any = None, methods: Iterable[str] | None = None) -> MemoryEstimate | None:
    """Raise :class:`ConfigError` when a ``gpus_per_trial`` share of a ``gpu_total_bytes`` GPU
    cannot hold one trial of ``config``; return the (largest) estimate, or None when the trial
    does not share a GPU. ``methods``: check the largest of these (a search space's methods)."""
    if not 0 < gpus_per_trial < 1:
        return None
    cfg = config if isinstance(config, TrainConfig) else parse_config(config)
    if data is None:
        data = _load_data(cfg)
    configs = [_with_method(cfg, m) for m in (list(methods) if methods else [cfg.method])]
    shared = _shared_estimate(cfg, data)  # the same for every method
    candidates = [replace(shared, memories=method_state_bytes(c, data)) for c in configs]
    estimate = max(candidates, key=lambda e: e.total_bytes)
    need, share = estimate.total_bytes, gpus_per_trial * gpu_total_bytes
    if need <= share:
        return estimate
    what = (f"a {cfg.model} trial on {cfg.dataset} with batch {cfg.batch_size}"
            + (" and per-example memories" if estimate.memories else ""))
    if need > gpu_total_bytes:
        advice = "it does not fit even on a whole GPU; lower batch_size or eval.batch_size"
    else:
        least = math.ceil(need / gpu_total_bytes * 100) / 100
        advice = f"use at least {least:g} ({math.floor(1 / least)} trials per GPU)"
    raise ConfigError("gpus_per_trial", gpus_per_trial,
                      f"a share of {share / GIB:.1f} GiB (of {gpu_total_bytes / GIB:.0f} GiB) cannot hold {what} "
                      f"(needs ~{need / GIB:.1f} GiB); {advice}")


__all__ = ["MemoryEstimate", "activation_bytes", "check_gpu_share", "checkpoint_bytes", "estimate_memory", "method_state_bytes",
           "probe_model", "saved_tensor_bytes"]
