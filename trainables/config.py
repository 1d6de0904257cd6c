"""Typed, frozen run configuration built once from a flat dict, YAML or ``--set`` overrides.

Ray hands a trial a flat dict of dotted keys (``amata.k_max``); the CLI and YAML files give
nested dicts. :func:`parse_config` accepts either, rejects unknown keys with a "did you
mean", converts values (``epsilon: 8/255`` is a fraction string) and validates ranges in
``__post_init__``. Everything below the trainable's edge sees only these dataclasses.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from trainables.registry import ConfigError, did_you_mean

EPS_8 = 8 / 255


def _check(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(key, value, f"choose one of {', '.join(choices)}", did_you_mean(value, choices))


@dataclass(frozen=True)
class AmataConfig:
    """Amata Algorithm 1: K anneals from ``k_min`` to ``k_max``; alpha_t = tau / K_t."""

    k_min: int = 2
    k_max: int = 10
    shape: str = "linear"
    eta: float = 1.0
    tau: float | None = None  # None: 2.5 * epsilon (20/255 at epsilon = 8/255)
    switch: float = 0.5

    def __post_init__(self) -> None:
        _check(self.k_min >= 1, "amata.k_min", self.k_min, "must be >= 1 (alpha_t = tau / K_t)")
        _check(self.k_max >= self.k_min, "amata.k_max", self.k_max, f"must be >= amata.k_min ({self.k_min})")
        _choice("amata.shape", self.shape, ("linear", "exp", "cosine", "step"))
        _check(self.eta > 0, "amata.eta", self.eta, "must be > 0")
        _check(self.tau is None or self.tau > 0, "amata.tau", self.tau, "must be > 0")
        _check(0 <= self.switch <= 1, "amata.switch", self.switch, "must be in [0, 1]")


@dataclass(frozen=True)
class DeatEveryConfig:
    """DEAT-d: K grows by one every ``every`` epochs."""

    every: int = 3

    def __post_init__(self) -> None:
        _check(self.every >= 1, "deat_every.every", self.every, "must be >= 1")


@dataclass(frozen=True)
class DeatAccConfig:
    """DEAT-acc: K grows by one after an epoch whose training accuracy exceeds ``threshold``."""

    threshold: float = 0.40

    def __post_init__(self) -> None:
        _check(0 <= self.threshold <= 1, "deat_acc.threshold", self.threshold, "must be in [0, 1]")


@dataclass(frozen=True)
class MPlusConfig:
    """M+ (DEAT Algorithm 1): relax ``gamma`` > 1 and an optional cap ``k_max`` (0: none)."""

    gamma: float = 1.01
    k_max: int = 0

    def __post_init__(self) -> None:
        _check(self.gamma >= 1.0, "mplus.gamma", self.gamma, "must be >= 1 (the paper's relax parameter)")
        _check(self.k_max >= 0, "mplus.k_max", self.k_max, "must be >= 0 (0: no cap)")


@dataclass(frozen=True)
class FreeConfig:
    """Free / DEAT batch replay: ``carry_delta`` keeps delta across batches (original Free)."""

    carry_delta: bool = False


@dataclass(frozen=True)
class AttaConfig:
    """ATTA: per-example perturbation memory, reset to U(-eps, eps) every ``reset_every`` epochs."""

    reset_every: int = 0  # 0: never

    def __post_init__(self) -> None:
        _check(self.reset_every >= 0, "atta.reset_every", self.reset_every, "must be >= 0 (0: never)")


@dataclass(frozen=True)
class AtasConfig:
    """ATAS Algorithm 1: alpha_i = gamma / (c + sqrt(v_i)), clipped to [min_step, max_step].

    ``gamma`` is the paper's γ. Unset step-size keys scale with epsilon so that they equal the
    paper's values at ε = 8/255 and mean the same at any ε: γ = 2ε·c (γ/c = 16/255),
    min_step = ε/2 (4/255), max_step = 1.75ε (14/255). ``reference_batch`` is the batch size
    at which c means what it means in the paper (128).
    """

    gamma: float | None = None
    c: float = 0.01
    beta: float = 0.5
    min_step: float | None = None
    max_step: float | None = None
    reset_every: int = 0
    store_size: int = 0  # 0: store delta at full resolution; 32: the paper's ImageNet variant
    reference_batch: int = 128

    def __post_init__(self) -> None:
        _check(self.gamma is None or self.gamma > 0, "atas.gamma", self.gamma, "must be > 0")
        _check(self.c > 0, "atas.c", self.c, "must be > 0")
        _check(0 <= self.beta < 1, "atas.beta", self.beta, "must be in [0, 1)")
        _check(self.min_step is None or self.min_step > 0, "atas.min_step", self.min_step, "must be > 0")
        _check(self.min_step is None or self.max_step is None or self.min_step <= self.max_step,
               "atas.max_step", self.max_step, f"must be >= atas.min_step ({self.min_step})")
        _check(self.reset_every >= 0, "atas.reset_every", self.reset_every, "must be >= 0 (0: never)")
        _check(self.store_size >= 0, "atas.store_size", self.store_size, "must be >= 0 (0: full size)")
        _check(self.reference_batch >= 1, "atas.reference_batch", self.reference_batch, "must be >= 1")

    def step_gamma(self, epsilon: float) -> float:
        """γ, the initial step size: 2ε·c unless set (the paper's 16/255·c at 8/255)."""
        return self.gamma if self.gamma is not None else 2 * epsilon * self.c

    def resolved(self, epsilon: float) -> tuple[float, float, float]:
        """(γ, min_step, max_step) with unset values derived from ε (the paper's at 8/255)."""
        gamma = self.step_gamma(epsilon)
        min_step = self.min_step if self.min_step is not None else epsilon / 2
        max_step = self.max_step if self.max_step is not None else 1.75 * epsilon
        if min_step > max_step:
            raise ConfigError("atas.max_step", max_step, f"must be >= atas.min_step ({min_step})")
        return gamma, min_step, max_step


@dataclass(frozen=True)
class LossBetaConfig:
    """Weight of the robust term of TRADES / MART."""

    beta: float = 6.0

    def __post_init__(self) -> None:
        _check(self.beta >= 0, "beta", self.beta, "must be >= 0")


@dataclass(frozen=True)
class EvalConfig:
    """In-loop evaluation on a fixed validation subset (SPEC section 6)."""

    every: int = 1
    examples: int = 1000
    steps: int = 10
    alpha: float | None = None  # None: epsilon / 4
    restarts: int = 1
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


METHOD_NAMES = ("pgd", "fgsm_rs", "free", "atta", "atas")
SCHEDULE_NAMES = ("constant", "amata", "deat_every", "deat_acc", "mplus")
LOSS_NAMES = ("ce", "trades", "mart")
# K used by the constant schedule when ``k`` is not given.
DEFAULT_K = {"pgd": 10, "fgsm_rs": 1, "free": 3, "atta": 1, "atas": 1}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides one adversarial-training run. Units: epsilon and alpha in
    pixel scale of images in [0, 1]."""

    dataset: str = "digits"
    data_root: str = "data"
    download: bool = False
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
    init: str = "uniform"
    attack_bn: str = "train"  # batch-norm mode during training attacks: "train" (as fast_adversarial) or "eval"
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
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    channels_last: bool | None = None  # None: on for CUDA convnets
    compile: bool = False
    objective: str = "tradeoff"
    cost: str = "backprops"
    cost_weight: float = 0.1
    reference_seconds: float = 0.0  # measured PGD-10 seconds for cost: seconds; 0: estimate
    amata: AmataConfig = field(default_factory=AmataConfig)
    deat_every: DeatEveryConfig = field(default_factory=DeatEveryConfig)
    deat_acc: DeatAccConfig = field(default_factory=DeatAccConfig)
    mplus: MPlusConfig = field(default_factory=MPlusConfig)
    free: FreeConfig = field(default_factory=FreeConfig)
    atta: AttaConfig = field(default_factory=AttaConfig)
    atas: AtasConfig = field(default_factory=AtasConfig)
    trades: LossBetaConfig = field(default_factory=lambda: LossBetaConfig(6.0))
    mart: LossBetaConfig = field(default_factory=lambda: LossBetaConfig(5.0))
    eval: EvalConfig = field(default_factory=EvalConfig)
    co: COConfig = field(default_factory=COConfig)

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs", self.epochs, "must be a positive whole number")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "must be a positive whole number")
        _check(0 < self.epsilon <= 1, "epsilon", self.epsilon, "must be in (0, 1] (pixel scale, e.g. 8/255)")
        _choice("method", self.method, METHOD_NAMES)
        _choice("loss", self.loss, LOSS_NAMES)
        _choice("schedule", self.schedule, SCHEDULE_NAMES)
        _check(self.k is None or self.k >= 0, "k", self.k, "must be >= 0 (adversarial backprops per batch)")
        _check(self.alpha is None or self.alpha > 0, "alpha", self.alpha, "must be > 0")
        _choice("init", self.init, ("uniform", "zero"))
        _choice("attack_bn", self.attack_bn, ("train", "eval"))
        _choice("optimizer", self.optimizer, ("sgd", "adam"))
        _check(self.lr > 0, "lr", self.lr, "must be > 0")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "must be >= 0")
        _choice("lr_schedule", self.lr_schedule, ("constant", "cosine", "cyclic", "multistep"))
        _check(self.max_batches >= 0, "max_batches", self.max_batches, "must be >= 0 (0: whole epoch)")
        _check(self.threads >= 0, "threads", self.threads, "must be >= 0 (0: torch's default)")
        _check(self.synthetic_size >= 1, "synthetic_size", self.synthetic_size, "must be >= 1")
        _choice("precision", self.precision, ("auto", "fp32", "bf16"))
        _choice("objective", self.objective, ("tradeoff", "pareto"))
        _choice("cost", self.cost, ("backprops", "seconds"))
        _check(self.cost_weight >= 0, "cost_weight", self.cost_weight, "must be >= 0")
        _check(self.reference_seconds >= 0, "reference_seconds", self.reference_seconds, "must be >= 0")
        if self.method == "free" and self.loss != "ce":
            raise ConfigError("loss", self.loss, "method free supports only loss ce (its replays update weights on the attack's own loss)")

    @property
    def constant_k(self) -> int:
        return DEFAULT_K[self.method] if self.k is None else self.k

    def to_flat(self) -> dict[str, Any]:
        """The config as a flat ``{dotted.key: value}`` dict (round-trips through parse_config)."""
        return flatten(dataclasses.asdict(self))


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
    """``"8/255"`` -> 0.0313..., ``"0.1"`` -> 0.1. Raises ValueError."""
    text = str(text).strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return float(num) / float(den)
    return float(text)


def _convert(key: str, value: Any, annotation: Any) -> Any:
    """Convert ``value`` to the field type ``annotation`` or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        annotation = args[0]
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(key, value, "must be true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(key, value, "must be a whole number")
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
        if not isinstance(value, str):
            raise ConfigError(key, value, "must be a string")
        return value
    raise TypeError(f"unsupported config field type {annotation!r}")


def config_keys(cls: type = TrainConfig, prefix: str = "") -> dict[str, Any]:
    """All valid dotted keys of a config dataclass, mapped to their types."""
    keys: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            keys.update(config_keys(hint, f"{prefix}{f.name}."))  # type: ignore[arg-type]
        else:
            keys[f"{prefix}{f.name}"] = hint
    return keys


_KEYS = config_keys()


def parse_config(values: Mapping[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Build a :class:`TrainConfig` from nested or dotted keys; raise ConfigError on bad input."""
    flat = flatten(dict(values or {}))
    flat.update(flatten(overrides))
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in _KEYS:
            raise ConfigError(key, value, "unknown config key", did_you_mean(key, _KEYS))
        converted = _convert(key, value, _KEYS[key])
        if "." in key:
            section, name = key.split(".", 1)
            sections.setdefault(section, {})[name] = converted
        else:
            top[key] = converted
    defaults = TrainConfig()
    for section, kwargs in sections.items():
        base = getattr(defaults, section)
        try:
            top[section] = dataclasses.replace(base, **kwargs)
        except ConfigError as err:
            if not err.key.startswith(section + "."):  # LossBetaConfig reports a bare key
                err = ConfigError(f"{section}.{err.key}", err.value, err.allowed, err.hint)
            raise err from None
    return TrainConfig(**top)
