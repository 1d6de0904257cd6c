"""Typed, frozen run configuration built once from a flat dict, YAML or ``--set`` overrides.

Ray hands a trial a flat dict of dotted keys (``amata.k_max``); the CLI and YAML files give
nested dicts. :func:`parse_config` accepts either, rejects unknown keys with a "did you
mean", converts values (``epsilon: 8/255`` is a fraction string) and validates ranges in
``__post_init__``. Everything below the trainable's edge sees only these dataclasses.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from trainables.attacks import INITS
from trainables.devices import check_device_name
from trainables.methods import LOSSES, METHODS, LossSpec, MethodSetup, MethodSpec
from trainables.registry import ConfigError, did_you_mean
from trainables.schedules import SCHEDULES, ScheduleSetup, ScheduleSpec
from trainables.weights import CHECKPOINT_RULES, DEFAULT_CHECKPOINT

EPS_8 = 8 / 255


def _check(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(key, value, f"choose one of {', '.join(choices)}", did_you_mean(value, choices))


@dataclass(frozen=True)
class EvalConfig:
    """In-loop evaluation on a fixed validation subset (SPEC section 6)."""

    every: int = 1
    examples: int = 1000
    steps: int = 10
    alpha: float | None = None  # None: epsilon / 4
    restarts: int = 1
    early_stop: bool = False  # stop moving an example once misclassified (DEAT's attack_pgd)
    fgsm: bool = True
    pmp: bool = False  # Amata's PMP criterion C (eq. 14) on one batch per evaluation
    pmp_gamma: float = 0.04  # the γ of eq. 14 (the paper's MNIST value)
    batch_size: int = 500

    def __post_init__(self) -> None:
        _check(self.every >= 1, "eval.every", self.every, "must be >= 1")
        _check(self.examples >= 1, "eval.examples", self.examples, "must be >= 1")
        _check(self.steps >= 1, "eval.steps", self.steps, "must be >= 1")
        _check(self.alpha is None or self.alpha > 0, "eval.alpha", self.alpha, "must be > 0")
        _check(self.restarts >= 1, "eval.restarts", self.restarts, "must be >= 1")
        _check(self.batch_size >= 1, "eval.batch_size", self.batch_size, "must be >= 1")


@dataclass(frozen=True)
class COConfig:
    """Catastrophic-overfitting rule: PGD accuracy drops by more than ``drop`` below its best
    while FGSM accuracy does not."""

    enabled: bool = True
    drop: float = 0.2

    def __post_init__(self) -> None:
        _check(0 < self.drop <= 1, "co.drop", self.drop, "must be in (0, 1]")


TARGET_REFERENCE = "reference"
OBJECTIVES = ("tradeoff", "pareto", "target")
INIT_CHOICES = ("auto", *INITS)
BN_CHOICES = ("auto", "train", "eval")
DATA_ON_DEVICE = ("auto", "true", "false")
# authors: fp32 as every authors' code trains; auto: the same where the method or schedule reads
# gradient norms (ATAS's v, M+'s l_X), bf16 autocast on CUDA elsewhere; fp32 / bf16: always.
PRECISIONS = ("auto", "authors", "fp32", "bf16")


def _sections() -> dict[str, type]:
    """Option sections by name, from the registries: each method, schedule and loss with
    options owns the config keys ``<name>.*``."""
    found: dict[str, type] = {}
    for registry in (METHODS, SCHEDULES, LOSSES):
        for name in registry.names():
            options = registry[name].options
            if options is None:
                continue
            if name in found or name in ("eval", "co"):
                raise TypeError(f"two registry entries own the config section {name!r}")
            found[name] = options
    return found


def default_sections() -> tuple[tuple[str, Any], ...]:
    return tuple((name, cls()) for name, cls in _sections().items())


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides one adversarial-training run. Units: epsilon and alpha in
    pixel scale of images in [0, 1].

    The option sections of methods, schedules and losses (``cfg.amata``, ``cfg.atas``, ...)
    come from their registries (``sections``) and read as attributes. ``init`` and
    ``attack_bn`` ``auto`` follow the registries too: the start and batch-norm mode the
    authors' code of the schedule, the loss or the method uses (:attr:`attack_init`,
    :attr:`attack_bn_mode`).

    Example::

        >>> from trainables.config import parse_config
        >>> cfg = parse_config({"method": "atas", "epsilon": "8/255", "atas.c": 0.02})
        >>> cfg.atas.c, cfg.constant_k, cfg.attack_bn_mode
        (0.02, 1, 'eval')
    """

    dataset: str = "digits"
    data_root: str = "data"
    download: bool = False
    data_fraction: float = 1.0  # a fixed subset of the training split (low-fidelity proxies)
    data_on_device: str = "auto"
    image_size: int = 0  # imagefolder: resize to this size (0: 224 for ImageFolder)
    model: str = "small_cnn"
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    epsilon: float = EPS_8
    method: str = "pgd"
    loss: str = "ce"
    schedule: str = "constant"
    k: int | None = None  # None: the method's default (PGD-10, FGSM-RS 1, Free-4 = K 3, ATTA/ATAS 1)
    alpha: float | None = None  # None: the method's default step size
    init: str = "auto"  # where attacks start: auto (the authors'), uniform, zero, normal
    attack_bn: str = "auto"  # batch-norm mode during training attacks: auto (the authors'), train, eval
    augment: bool = True
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"
    max_batches: int = 0  # 0: whole epoch; >0: cap batches per epoch (benchmarks)
    synthetic_size: int = 2048
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0: torch's default. CPU results depend on it.
    precision: str = "auto"  # auto: fp32 where gradient norms steer (ATAS, M+), else bf16 on CUDA; see PRECISIONS
    checkpoint: str = DEFAULT_CHECKPOINT  # which weights count: last or best (trainables.weights)
    channels_last: bool | None = None  # None: on for CUDA convnets
    compile: bool = False
    objective: str = "tradeoff"
    target_robust_acc: float | str | None = None  # objective: target; a number or "reference"
    cost: str = "backprops"
    cost_weight: float = 0.1
    reference_seconds: float = 0.0  # measured PGD-10 seconds for cost: seconds; 0: estimate
    eval: EvalConfig = field(default_factory=EvalConfig)
    co: COConfig = field(default_factory=COConfig)
    sections: tuple[tuple[str, Any], ...] = field(default_factory=default_sections)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: the registries' option sections.
        for section, options in self.__dict__.get("sections", ()):
            if section == name:
                return options
        raise AttributeError(f"{type(self).__name__} has no attribute or option section {name!r}")

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs", self.epochs, "must be a positive whole number")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be a positive whole number")
        _check(0 < self.epsilon <= 1, "epsilon", self.epsilon, "must be in (0, 1] (pixel scale, e.g. 8/255)")
        _check(0 < self.data_fraction <= 1, "data_fraction", self.data_fraction, "must be in (0, 1]")
        _choice("data_on_device", self.data_on_device, DATA_ON_DEVICE)
        _check(self.image_size >= 0, "image_size", self.image_size, "must be >= 0 (0: the dataset's own)")
        _choice("method", self.method, tuple(METHODS.names()))
        _choice("loss", self.loss, tuple(LOSSES.names()))
        _choice("schedule", self.schedule, tuple(SCHEDULES.names()))
        _check(self.k is None or self.k >= 0, "k", self.k, "must be >= 0 (adversarial backprops per batch)")
        _check(self.alpha is None or self.alpha > 0, "alpha", self.alpha, "must be > 0")
        _choice("init", self.init, INIT_CHOICES)
        _choice("attack_bn", self.attack_bn, BN_CHOICES)
        _choice("optimizer", self.optimizer, ("sgd", "adam"))
        # torch.manual_seed takes a signed or unsigned 64-bit seed; a larger one overflows in torch
        _check(-2**63 <= self.seed < 2**64, "seed", self.seed, "must be a whole number in [-2**63, 2**64)")
        _check(self.lr > 0, "lr", self.lr, "must be > 0")
        _check(self.momentum >= 0, "momentum", self.momentum, "must be >= 0")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        _choice("lr_schedule", self.lr_schedule, ("constant", "cosine", "cyclic", "multistep"))
        _check(self.max_batches >= 0, "max_batches", self.max_batches, "must be >= 0 (0: whole epoch)")
        _check(self.threads >= 0, "threads", self.threads, "must be >= 0 (0: torch's default)")
        _check(self.synthetic_size >= 1, "synthetic_size", self.synthetic_size, "must be >= 1")
        check_device_name(self.device)
        _choice("precision", self.precision, PRECISIONS)
        _choice("checkpoint", self.checkpoint, CHECKPOINT_RULES)
        _choice("objective", self.objective, OBJECTIVES)
        target = self.target_robust_acc
        if isinstance(target, str):
            _check(target == TARGET_REFERENCE, "target_robust_acc", target,
                   "must be a number in (0, 1] or 'reference' (the finished PGD-10 reference's robust accuracy)")
        elif target is not None:
            _check(0 < target <= 1, "target_robust_acc", target, "must be in (0, 1] or 'reference'")
        _check(self.objective != "target" or target is not None, "target_robust_acc", target,
               "objective: target needs a target robust accuracy: a number in (0, 1] or 'reference'")
        _choice("cost", self.cost, ("backprops", "seconds"))
        _check(self.cost_weight >= 0, "cost_weight", self.cost_weight, "must be >= 0")
        _check(self.reference_seconds >= 0, "reference_seconds", self.reference_seconds, "must be >= 0")
        supported = self.method_spec.losses
        if supported is not None and self.loss not in supported:
            raise ConfigError("loss", self.loss, f"method {self.method} supports only loss {', '.join(supported)} "
                                                 "(its replays update weights on the attack's own loss)")

    # -- what the registries say about this config ------------------------------------------
    @property
    def method_spec(self) -> MethodSpec:
        return METHODS.get(self.method)

    @property
    def schedule_spec(self) -> ScheduleSpec:
        return SCHEDULES.get(self.schedule)

    @property
    def loss_spec(self) -> LossSpec:
        return LOSSES.get(self.loss)

    def section(self, name: str) -> Any:
        """The options section ``name`` (None when no registry entry of that name has one)."""
        return dict(self.sections).get(name)

    @property
    def constant_k(self) -> int:
        return self.method_spec.default_k if self.k is None else self.k

    @property
    def attack_init(self) -> str:
        """Where attacks start: ``init`` unless auto; else what the loss's authors, then the
        schedule's paper, then the method's code prescribes (TRADES/MART: 0.001·N(0, 1);
        Amata: zero). The loss comes first: TRADES' KL attack has a zero gradient at δ = 0, so
        a zero start would make its first sign step follow round-off."""
        if self.init != "auto":
            return self.init
        return self.loss_spec.init or self.schedule_spec.init or self.method_spec.init

    @property
    def attack_bn_mode(self) -> str:
        """Batch-norm mode during training attacks: ``attack_bn`` unless auto; else eval when the
        method's or the loss's authors attack in eval mode (ATTA, ATAS, TRADES, MART), else train."""
        if self.attack_bn != "auto":
            return self.attack_bn
        return "eval" if "eval" in (self.method_spec.attack_bn, self.loss_spec.attack_bn) else "train"

    @property
    def reads_grad_norms(self) -> bool:
        """The method or schedule steers by gradient norms (ATAS's v, M+'s l_X)."""
        return self.method_spec.reads_grad_norms or self.schedule_spec.reads_grad_norms

    def uses_bf16(self, device_type: str) -> bool:
        """bf16 autocast on a ``device_type`` device? ``bf16``: yes; ``fp32``/``authors``: no;
        ``auto``: on CUDA unless the recipe reads gradient norms (their authors trained in fp32,
        and bf16 rounding moves the norms a γ = 1.01 threshold or ATAS's c compares)."""
        if self.precision == "auto":
            return device_type == "cuda" and not self.reads_grad_norms
        return self.precision == "bf16"

    @property
    def loss_beta(self) -> float | None:
        options = self.section(self.loss)
        return getattr(options, "beta", None)

    @property
    def numeric_target(self) -> float | None:
        """``target_robust_acc`` when it is a number (``reference`` is resolved by a search)."""
        target = self.target_robust_acc
        return float(target) if isinstance(target, (int, float)) else None

    def method_setup(self, train_size: int, input_shape: tuple[int, int, int], device: Any,
                     augment: Any) -> MethodSetup:
        loss_alpha = self.loss_spec.default_alpha if self.method_spec.loss_step else None
        return MethodSetup(self.epsilon, self.alpha, self.attack_init, self.section(self.method), train_size,
                           input_shape, device, augment, self.epochs, loss_alpha)

    def schedule_setup(self) -> ScheduleSetup:
        return ScheduleSetup(self.epochs, self.epsilon, self.constant_k, self.alpha,
                             self.method_spec.joint_gradient, self.loss, self.section(self.schedule))

    def to_flat(self) -> dict[str, Any]:
        """The config as a flat ``{dotted.key: value}`` dict (round-trips through parse_config)."""
        nested = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sections"}
        nested.update(dict(self.sections))
        flat = flatten({k: _as_dict(v) for k, v in nested.items()})
        return {k: list(v) if isinstance(v, tuple) else v for k, v in flat.items()}


def _as_dict(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"amata": {"k_max": 10}}`` -> ``{"amata.k_max": 10}``."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def parse_number(text: str) -> float:
    """``"8/255"`` -> 0.0313..., ``"0.1"`` -> 0.1. Raises ValueError for anything else, a
    zero denominator included (``"8/0"``): no expression is evaluated."""
    text = str(text).strip()
    if "/" in text:
        num, den = text.split("/", 1)
        if float(den) == 0:
            raise ValueError(f"{text!r} divides by zero")
        return float(num) / float(den)
    return float(text)


def _convert(key: str, value: Any, annotation: Any) -> Any:
    """Convert ``value`` to the field type ``annotation`` or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        if float in args and str in args:  # a number, or a word such as "reference"
            try:
                return _convert(key, value, float)
            except ConfigError:
                if isinstance(value, str):
                    return value
                raise
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if origin is tuple:
        (item, _) = typing.get_args(annotation)
        if isinstance(value, str):
            value = [v for v in value.strip("[]() ").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, value, "must be a list, e.g. [1, 1, 2, 3]")
        return tuple(_convert(key, v, item) for v in value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(key, value, "must be true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(key, value, "must be a whole number")
        if isinstance(value, int) or isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)  # exactly, however long (a float would round a 20-digit seed)
        try:
            number = parse_number(value) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, value, "must be a whole number") from None
        if not math.isfinite(number) or number != int(number):
            raise ConfigError(key, value, "must be a whole number")
        return int(number)
    if annotation is float:
        try:
            number = parse_number(value) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, value, "must be a number or a fraction such as 8/255") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise ConfigError(key, value, "must be a finite number")
        return number
    if annotation is str:
        if isinstance(value, bool):
            return "true" if value else "false"  # YAML reads data_on_device: true as a bool
        if not isinstance(value, str):
            raise ConfigError(key, value, "must be a string")
        return value
    raise TypeError(f"unsupported config field type {annotation!r}")


@functools.cache  # a dataclass's fields do not change; get_type_hints costs ~0.1 ms a call
def _fields(cls: type, prefix: str) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f"{prefix}{f.name}": hints[f.name] for f in dataclasses.fields(cls)}


def config_keys() -> dict[str, Any]:
    """All valid dotted keys, mapped to their types: TrainConfig's own, ``eval.*``, ``co.*``
    and every registry section's (``amata.k_max``, ``atas.c``, ...)."""
    keys: dict[str, Any] = {}
    for name, hint in _fields(TrainConfig, "").items():
        if name == "sections":
            continue
        if dataclasses.is_dataclass(hint):
            keys.update(_fields(hint, f"{name}."))  # type: ignore[arg-type]
        else:
            keys[name] = hint
    for name, options in _sections().items():
        keys.update(_fields(options, f"{name}."))
    return keys


def parse_config(values: Mapping[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested or dotted keys; raise ConfigError on bad input.

    Example::

        >>> parse_config({"schedule": "amata", "amata": {"k_max": 8}}, epsilon="8/255").amata.k_max
        8
    """
    flat = flatten(dict(values or {}))
    flat.update(flatten(overrides))
    keys = config_keys()
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in keys:
            raise ConfigError(key, value, "unknown config key", did_you_mean(key, keys))
        converted = _convert(key, value, keys[key])
        if "." in key:
            section, name = key.split(".", 1)
            sections.setdefault(section, {})[name] = converted
        else:
            top[key] = converted
    options = dict(default_sections())
    fixed = {"eval": EvalConfig(), "co": COConfig()}
    for section, kwargs in sections.items():
        base: Any = fixed[section] if section in fixed else options[section]
        try:
            value = dataclasses.replace(base, **kwargs)
        except ConfigError as err:
            if not err.key.startswith(section + "."):  # a shared options class reports a bare key
                err = ConfigError(f"{section}.{err.key}", err.value, err.allowed, err.hint)
            raise err from None
        if section in fixed:
            top[section] = value
        else:
            options[section] = value
    return TrainConfig(**top, sections=tuple(options.items()))
