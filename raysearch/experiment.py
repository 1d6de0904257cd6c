"""Experiment files: one YAML file names a run's training config and its search.

An experiment file holds training keys (any :mod:`trainables.config` key, nested or dotted),
an optional ``name`` and a ``search:`` section::

    name: demo
    dataset: digits
    model: small_cnn
    epochs: 6
    search: {space: all, samples: 16, scheduler: asha, time_attr: backprops}

Built-in experiments are the YAML files in ``raysearch/experiments/``; a name that is not a
file is looked up there. ``--set KEY=VALUE`` overrides are parsed with ``yaml.safe_load``
(``8/255`` stays a string, which :func:`trainables.config.parse_config` reads as a fraction);
``--set search.samples=8`` reaches the search section. Everything is validated here, before
Ray starts: unknown keys get a "did you mean", bad values one line naming key and value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainables.config import TrainConfig, flatten, parse_config
from trainables.registry import ConfigError, did_you_mean

EXPERIMENTS_DIR = Path(__file__).with_name("experiments")
DEFAULT_TRAINABLE = "trainables.trainable:tune_trainable"


def builtin_experiments() -> list[str]:
    """Names of the built-in experiments (``raysearch/experiments/*.yaml``)."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def _choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(key, value, f"choose one of {', '.join(choices)}", did_you_mean(str(value), choices))


def _number(key: str, value: object, *, whole: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(key, value, "must be a whole number" if whole else "must be a number")
    if whole and value != int(value):
        raise ConfigError(key, value, "must be a whole number")
    return value


@dataclass(frozen=True)
class SearchConfig:
    """The ``search:`` section of an experiment: what to search and how to schedule it.

    ``grace_period`` is counted in epochs. With ``time_attr: backprops`` ASHA compares trials
    at equal attack compute, and the grace period becomes the backprops the costliest
    configuration of the space spends in that many epochs (see :mod:`raysearch.scheduler`);
    there it may be a fraction (0.25: a quarter of the costliest epoch).
    ``algorithm`` None picks multivariate TPE, or NSGA-II for ``objective: pareto``.
    ``gpus_per_trial`` None: one GPU per trial where the cluster has GPUs, none otherwise.
    ``max_concurrent`` None: as many trials at once as the resources allow.
    """

    space: str = "all"
    samples: int = 16
    algorithm: str | None = None
    scheduler: str = "asha"
    time_attr: str = "backprops"
    grace_period: float = 1
    reduction_factor: float = 3.0
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    seed: int = 0
    warm_start: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.space, str) or not self.space:
            raise ConfigError("search.space", self.space, "must be the name of a search space")
        if _number("search.samples", self.samples, whole=True) < 1:
            raise ConfigError("search.samples", self.samples, "must be >= 1")
        if self.algorithm is not None:
            _choice("search.algorithm", self.algorithm, ("tpe", "nsga2", "random"))
        _choice("search.scheduler", self.scheduler, ("asha", "none"))
        _choice("search.time_attr", self.time_attr, ("backprops", "epoch"))
        if _number("search.grace_period", self.grace_period) <= 0:
            raise ConfigError("search.grace_period", self.grace_period, "must be > 0 (epochs)")
        if _number("search.reduction_factor", self.reduction_factor) <= 1:
            raise ConfigError("search.reduction_factor", self.reduction_factor, "must be > 1")
        if self.max_concurrent is not None and _number("search.max_concurrent", self.max_concurrent, whole=True) < 1:
            raise ConfigError("search.max_concurrent", self.max_concurrent, "must be >= 1 (or null: as resources allow)")
        if _number("search.cpus_per_trial", self.cpus_per_trial) <= 0:
            raise ConfigError("search.cpus_per_trial", self.cpus_per_trial, "must be > 0")
        if self.gpus_per_trial is not None:
            gpus = _number("search.gpus_per_trial", self.gpus_per_trial)
            if gpus < 0:
                raise ConfigError("search.gpus_per_trial", gpus, "must be >= 0")
            if gpus > 1 and gpus != int(gpus):
                raise ConfigError("search.gpus_per_trial", gpus, "above 1 must be a whole number of GPUs (a fraction shares one GPU; 2, 3, ... span several with DDP)")
        _number("search.seed", self.seed, whole=True)
        if not isinstance(self.warm_start, bool):
            raise ConfigError("search.warm_start", self.warm_start, "must be true or false")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SearchConfig:
        """Build from a ``search:`` mapping; unknown keys raise ConfigError with a did-you-mean."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                raise ConfigError(f"search.{key}", values[key], f"unknown search key; choose from {', '.join(names)}",
                                  did_you_mean(str(key), names))
        kwargs = {k: _coerce(k, v) for k, v in values.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(key: str, value: Any) -> Any:
    """Light conversions for values typed on a command line (``--set search.samples=8``)."""
    if isinstance(value, str) and key not in ("space", "algorithm", "scheduler", "time_attr"):
        text = value.strip().lower()
        if text in ("null", "none", ""):
            return None
        if text in ("true", "false"):
            return text == "true"
        try:
            number = float(text)
        except ValueError:
            return value
        return int(number) if number.is_integer() and key not in ("gpus_per_trial", "grace_period") else number
    return value


@dataclass(frozen=True)
class Experiment:
    """A resolved experiment: its name, the training keys (flat, dotted) and its search."""

    name: str
    train: dict[str, Any]
    search: SearchConfig = field(default_factory=SearchConfig)
    trainable: str = DEFAULT_TRAINABLE

    @property
    def train_config(self) -> TrainConfig:
        return parse_config(self.train)

    def to_dict(self) -> dict[str, Any]:
        """The experiment as a YAML-ready mapping (what ``experiment.yaml`` holds)."""
        data: dict[str, Any] = {"name": self.name, **self.train, "search": self.search.to_dict()}
        if self.trainable != DEFAULT_TRAINABLE:
            data["trainable"] = self.trainable
        return data

    def replace_search(self, **changes: Any) -> Experiment:
        """A copy with search fields changed (None values are ignored), validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, search=dataclasses.replace(self.search, **changes)) if changes else self


def _resolve_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    text = str(name_or_path)
    builtins = builtin_experiments()
    if text in builtins:
        return EXPERIMENTS_DIR / f"{text}.yaml"
    looks_like_path = text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text
    if looks_like_path:
        raise ConfigError("experiment", text, f"no such file; built-in experiments: {', '.join(builtins)}")
    raise ConfigError("experiment", text, f"not a file nor a built-in experiment; built-ins: {', '.join(builtins)}",
                      did_you_mean(text, builtins))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError("experiment", str(path), f"not valid YAML ({str(err).splitlines()[0]})") from None
    except OSError as err:
        raise ConfigError("experiment", str(path), f"cannot be read ({err.strerror})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("experiment", str(path), "must be a YAML mapping of config keys")
    return data


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["epochs=4", "epsilon=8/255"]`` -> ``{"epochs": 4, "epsilon": "8/255"}`` (yaml.safe_load values)."""
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("--set", item, "expected KEY=VALUE, e.g. --set amata.k_max=10")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        parsed[key] = value
    return parsed


def experiment_from_dict(data: Mapping[str, Any], default_name: str) -> Experiment:
    """Split a mapping into name, training keys and search section, and validate all three."""
    data = dict(data)
    name = data.pop("name", None) or default_name
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise ConfigError("name", name, "must be a non-empty name without '/'")
    trainable = data.pop("trainable", None) or DEFAULT_TRAINABLE
    search = data.pop("search", None) or {}
    if not isinstance(search, Mapping):
        raise ConfigError("search", search, "must be a mapping of search keys")
    train = flatten(data)
    parse_config(train)  # raises ConfigError on unknown keys and bad values
    return Experiment(name=name, train=train, search=SearchConfig.from_dict(search), trainable=str(trainable))


def load_experiment(name_or_path: str | Path = "demo", overrides: Iterable[str] = ()) -> Experiment:
    """Load a YAML experiment (file or built-in name), apply ``--set`` overrides, validate.

    Raises :class:`ConfigError` for a missing file or unknown name (listing the built-ins),
    unknown keys (with "did you mean") and bad values, before anything is started.
    """
    path = _resolve_path(name_or_path)
    data = _read_yaml(path)
    search = dict(data.get("search") or {}) if isinstance(data.get("search"), Mapping) else data.get("search")
    data = {k: v for k, v in data.items() if k != "search"}
    nested_train = flatten(data)
    for key, value in parse_overrides(overrides).items():
        if key.startswith("search."):
            if not isinstance(search, dict):
                search = {}
            search[key.removeprefix("search.")] = value
        else:
            nested_train[key] = value
    nested_train["search"] = search
    return experiment_from_dict(nested_train, default_name=path.stem)
