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

from trainables.config import TrainConfig, flatten, parse_config, parse_number
from trainables.moved import current
from trainables.registry import ConfigError, did_you_mean

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
DEFAULT_TRAINABLE = "trainables.tune.functions:tune_trainable"


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


def _section(cls: type, key: str, values: Any) -> Any:
    """A nested search section (``confirm``, ``fidelity``) from a mapping; unknown keys refused."""
    if values is None:
        return cls()
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise ConfigError(f"search.{key}", values, f"must be a mapping of {key} keys")
    names = [f.name for f in dataclasses.fields(cls)]
    for name in values:
        if name not in names:
            raise ConfigError(f"search.{key}.{name}", values[name], f"unknown {key} key; choose from {', '.join(names)}",
                              did_you_mean(str(name), names))
    return cls(**{k: _coerce(k, v) for k, v in values.items()})


def _fractions(key: str, values: Any) -> tuple[float, ...]:
    if isinstance(values, (int, float, str)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(key, values, "must be a list of fractions in (0, 1], e.g. [0.34, 1]")
    out = []
    for value in values:
        try:
            number = float(parse_number(value) if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ConfigError(key, values, "must be a list of fractions in (0, 1], e.g. [0.34, 1]") from None
        if isinstance(value, bool) or not 0 < number <= 1:
            raise ConfigError(key, values, "every level must be a fraction in (0, 1] of the full run")
        out.append(number)
    return tuple(out)


@dataclass(frozen=True)
class FidelityConfig:
    """Low-fidelity proxies as complete, shorter runs (``time_attr: fidelity``).

    Level i trains ``epochs[i]`` of the run's epochs (rounded, at least one) on ``data_fraction[i]`` of
    its training split, each with its own full learning-rate and K schedule; the full run is
    always the last level (added when the lists do not end with it). A list of one value
    applies to every level.
    """

    epochs: tuple[float, ...] = (0.5,)
    data_fraction: tuple[float, ...] = (0.5,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "epochs", _fractions("search.fidelity.epochs", self.epochs))
        object.__setattr__(self, "data_fraction", _fractions("search.fidelity.data_fraction", self.data_fraction))
        n, m = len(self.epochs), len(self.data_fraction)
        if n != m and 1 not in (n, m):
            raise ConfigError("search.fidelity.data_fraction", list(self.data_fraction),
                              f"needs one value per level ({n}, like fidelity.epochs) or a single value")

    def levels(self) -> list[tuple[float, float]]:
        """(epoch fraction, data fraction) per level, cheapest first, the full run last."""
        n = max(len(self.epochs), len(self.data_fraction))
        pairs = [(self.epochs[min(i, len(self.epochs) - 1)], self.data_fraction[min(i, len(self.data_fraction) - 1)])
                 for i in range(n)]
        pairs = [p for p in pairs if p != (1.0, 1.0)]
        return [*pairs, (1.0, 1.0)]

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": list(self.epochs), "data_fraction": list(self.data_fraction)}


@dataclass(frozen=True)
class ConfirmConfig:
    """Confirmation: the ``top`` finished recipes by validation objective (paper defaults among
    them) re-trained with up to ``seeds`` seeds in all (the search's own run is one), each run
    scored on the validation split (which chooses) and the test split with ``attacks`` (which
    measures; ``examples``: the first N test examples; None: all). ``top: 0`` turns it off.
    ``racing``: seeds are added in rounds and a candidate clearly worse than the leader on
    validation is dropped (:mod:`raysearch.reporting.racing`); False: every candidate gets every
    seed. ``defaults``: confirm every finished paper default too (0.2's design). ``margin``:
    how close "as robust as" means."""

    top: int = 3
    seeds: int = 3
    attacks: str = "pgd50x10"
    examples: int | None = None
    margin: float = 0.02  # "as robust as the reference" needs the difference's interval inside ±margin
    racing: bool = True
    defaults: bool = False

    def __post_init__(self) -> None:
        if _number("search.confirm.top", self.top, whole=True) < 0:
            raise ConfigError("search.confirm.top", self.top, "must be >= 0 (0: no confirmation)")
        if _number("search.confirm.seeds", self.seeds, whole=True) < 1:
            raise ConfigError("search.confirm.seeds", self.seeds, "must be >= 1 (the search's own run counts as one)")
        if self.examples is not None and _number("search.confirm.examples", self.examples, whole=True) < 1:
            raise ConfigError("search.confirm.examples", self.examples, "must be >= 1 (or null: the whole test split)")
        if not 0 <= _number("search.confirm.margin", self.margin) < 1:
            raise ConfigError("search.confirm.margin", self.margin, "must be in [0, 1) (robust accuracy, 0.02 = 2 points)")
        for key in ("racing", "defaults"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"search.confirm.{key}", getattr(self, key), "must be true or false")
        if not isinstance(self.attacks, str) or not self.attacks.strip():
            raise ConfigError("search.confirm.attacks", self.attacks, "must name attacks, e.g. pgd50x10 or pgd20,cw20")
        from trainables.evaluation.attack_names import parse_attacks

        try:
            parse_attacks(self.attacks, allow_autoattack=False)
        except ConfigError as err:
            raise ConfigError("search.confirm.attacks", self.attacks, err.allowed, err.hint) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TIME_ATTRS = ("fidelity", "backprops", "epoch")
ALGORITHMS = ("tpe", "nsga2", "random", "pbt", "pb2")
_SECTIONS = {"confirm": ConfirmConfig, "fidelity": FidelityConfig}


@dataclass(frozen=True)
class SearchConfig:
    """The ``search:`` section of an experiment: what to search and how to schedule it.

    ``time_attr``: what ASHA's rungs compare at. ``fidelity`` (default): complete runs at the
    levels of ``fidelity`` (see :class:`FidelityConfig`), promoted to the next level by ASHA;
    ``backprops``: one run per trial, rungs at equal attack compute (the grace period is the
    backprops the costliest configuration spends in ``grace_period`` epochs; a fraction is
    allowed there); ``epoch``: the classic. ``budget``: the most compute the search may spend,
    in reference runs (PGD-10 of this experiment); ``budget_seconds``: in training seconds.
    ``algorithm`` None picks multivariate TPE, or NSGA-II for ``objective: pareto``; TPE models
    after ``startup_trials`` random trials (None: a third of ``samples``, 4 to 10) drawn after
    the paper defaults; ``pbt`` /
    ``pb2`` train a population that learns K(t) and α(t). ``gpus_per_trial`` None: one GPU per
    trial where the cluster has GPUs, none otherwise; ``workers_per_trial``: data-parallel
    workers per trial (GPUs per trial ≥ 2 implies one worker per GPU). ``max_concurrent``
    None: as many trials at once as the resources allow. ``reuse``: take finished paper
    defaults and confirmed rows of the same experiment from earlier runs on the same storage.
    ``reference``: train the PGD-10 reference as a paper default and confirm it with every
    seed, so the headline can compare with it; False (default): its cost is known without
    training it, so it is trained only when a claim needs it (``target_robust_acc:
    reference``) or taken from earlier runs when they measured it. ``study_storage``: the Optuna
    storage URL of the study (:mod:`raysearch.rundir.study_store`; None: ``optuna.db`` in the
    run directory). ``warm_start_from``: earlier studies (names in ``study_storage``) or run
    directories this search starts from (:mod:`raysearch.rundir.warm_sources`): on an identical
    problem their finished recipes are told with their results, on a related one their best
    ``warm_start_best`` recipes are tried first.
    """

    space: str = "all"
    samples: int = 16
    algorithm: str | None = None
    startup_trials: int | None = None
    scheduler: str = "asha"
    time_attr: str = "fidelity"
    grace_period: float = 1
    reduction_factor: float = 3.0
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    budget: float | None = None
    budget_seconds: float | None = None
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)
    reuse: bool = True
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    workers_per_trial: int = 1
    population: int = 4
    perturbation_interval: int = 1
    seed: int = 0
    warm_start: bool = True
    reference: bool = False
    study_storage: str | None = None
    warm_start_from: tuple[str, ...] = ()
    warm_start_best: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.space, str) or not self.space:
            raise ConfigError("search.space", self.space, "must be the name of a search space")
        if _number("search.samples", self.samples, whole=True) < 1:
            raise ConfigError("search.samples", self.samples, "must be >= 1")
        if self.algorithm is not None:
            _choice("search.algorithm", self.algorithm, ALGORITHMS)
        if self.startup_trials is not None and _number("search.startup_trials", self.startup_trials, whole=True) < 0:
            raise ConfigError("search.startup_trials", self.startup_trials, "must be >= 0 (or null: a third of samples)")
        _choice("search.scheduler", self.scheduler, ("asha", "none"))
        _choice("search.time_attr", self.time_attr, TIME_ATTRS)
        if _number("search.grace_period", self.grace_period) <= 0:
            raise ConfigError("search.grace_period", self.grace_period, "must be > 0 (epochs)")
        if _number("search.reduction_factor", self.reduction_factor) <= 1:
            raise ConfigError("search.reduction_factor", self.reduction_factor, "must be > 1")
        for key, cls in _SECTIONS.items():
            object.__setattr__(self, key, _section(cls, key, getattr(self, key)))
        if self.budget is not None and _number("search.budget", self.budget) <= 0:
            raise ConfigError("search.budget", self.budget, "must be > 0 (reference runs: PGD-10 of this experiment)")
        if self.budget_seconds is not None and _number("search.budget_seconds", self.budget_seconds) <= 0:
            raise ConfigError("search.budget_seconds", self.budget_seconds, "must be > 0 (training seconds)")
        if not isinstance(self.reuse, bool):
            raise ConfigError("search.reuse", self.reuse, "must be true or false")
        if self.max_concurrent is not None and _number("search.max_concurrent", self.max_concurrent, whole=True) < 1:
            raise ConfigError("search.max_concurrent", self.max_concurrent, "must be >= 1 (or null: as resources allow)")
        if _number("search.cpus_per_trial", self.cpus_per_trial) <= 0:
            raise ConfigError("search.cpus_per_trial", self.cpus_per_trial, "must be > 0")
        if self.gpus_per_trial is not None:
            gpus = _number("search.gpus_per_trial", self.gpus_per_trial)
            if gpus < 0:
                raise ConfigError("search.gpus_per_trial", gpus, "must be >= 0")
            if gpus > 1 and gpus != int(gpus):
                raise ConfigError("search.gpus_per_trial", gpus, "above 1 must be a whole number of GPUs (a fraction "
                                  "shares one GPU; 2, 3, ... span several with data-parallel workers)")
        if _number("search.workers_per_trial", self.workers_per_trial, whole=True) < 1:
            raise ConfigError("search.workers_per_trial", self.workers_per_trial, "must be >= 1")
        if _number("search.population", self.population, whole=True) < 2:
            raise ConfigError("search.population", self.population, "must be >= 2 (members trained together)")
        if _number("search.perturbation_interval", self.perturbation_interval, whole=True) < 1:
            raise ConfigError("search.perturbation_interval", self.perturbation_interval, "must be >= 1 (epochs)")
        _number("search.seed", self.seed, whole=True)
        for key in ("warm_start", "reference"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"search.{key}", getattr(self, key), "must be true or false")
        if self.study_storage is not None and (not isinstance(self.study_storage, str) or not self.study_storage):
            raise ConfigError("search.study_storage", self.study_storage, "must be an Optuna storage URL or "
                                                                          "journal:<file> (or null: the run directory)")
        sources = self.warm_start_from
        if isinstance(sources, str):
            sources = tuple(part.strip() for part in sources.split(",") if part.strip())
        if not isinstance(sources, (list, tuple)) or not all(isinstance(x, str) and x for x in sources):
            raise ConfigError("search.warm_start_from", sources, "must be a list of study names or run directories")
        object.__setattr__(self, "warm_start_from", tuple(sources))
        if _number("search.warm_start_best", self.warm_start_best, whole=True) < 0:
            raise ConfigError("search.warm_start_best", self.warm_start_best, "must be >= 0 (recipes per earlier study)")

    @property
    def population_based(self) -> bool:
        return self.algorithm in ("pbt", "pb2")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SearchConfig:
        """Build from a ``search:`` mapping (dotted ``confirm.top`` keys allowed); unknown keys
        raise ConfigError with a did-you-mean."""
        names = [f.name for f in dataclasses.fields(cls)]
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            section, dot, rest = str(key).partition(".")
            if dot and section in _SECTIONS:
                kwargs.setdefault(section, {})[rest] = value
            elif key not in names:
                raise ConfigError(f"search.{key}", value, f"unknown search key; choose from {', '.join(names)}",
                                  did_you_mean(str(key), names))
            elif key in _SECTIONS:
                if value is not None and not isinstance(value, Mapping):
                    raise ConfigError(f"search.{key}", value, f"must be a mapping of {key} keys")
                kwargs[key] = {**dict(value or {}), **kwargs.get(key, {})}
            else:
                kwargs[key] = _coerce(key, value)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["fidelity"], data["confirm"] = self.fidelity.to_dict(), self.confirm.to_dict()
        data["warm_start_from"] = list(self.warm_start_from)
        if self.study_storage is not None:  # run files never hold the password
            from raysearch.rundir.study_store import redact

            data["study_storage"] = redact(self.study_storage)
        return data


def _coerce(key: str, value: Any) -> Any:
    """Light conversions for values typed on a command line (``--set search.samples=8``)."""
    if isinstance(value, str) and key in ("study_storage", "warm_start_from"):
        return None if value.strip().lower() in ("null", "none", "") else value
    if isinstance(value, str) and key not in ("space", "algorithm", "scheduler", "time_attr", "attacks"):
        text = value.strip().lower()
        if text in ("null", "none", ""):
            return None
        if text in ("true", "false"):
            return text == "true"
        try:
            number = parse_number(text)
        except ValueError:
            return value
        floats = ("gpus_per_trial", "grace_period", "budget", "budget_seconds", "reduction_factor")
        return int(number) if number.is_integer() and key not in floats else number
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
    if path.is_dir():
        raise ConfigError("experiment", text, "is a directory, not a YAML file (did you mean raysearch report/evaluate?)")
    if looks_like_path:
        raise ConfigError("experiment", text, f"no such file; built-in experiments: {', '.join(builtins)}")
    raise ConfigError("experiment", text, f"not a file nor a built-in experiment; built-ins: {', '.join(builtins)}",
                      did_you_mean(text, builtins))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError("experiment", str(path), f"not valid YAML ({str(err).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise ConfigError("experiment", str(path), "is not UTF-8 text (an experiment is a YAML file)") from None
    except IsADirectoryError:
        raise ConfigError("experiment", str(path), "is a directory, not a YAML file") from None
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
    trainable = current(str(data.pop("trainable", None) or DEFAULT_TRAINABLE))  # 0.2's paths read as today's
    search = data.pop("search", None) or {}
    if not isinstance(search, Mapping):
        raise ConfigError("search", search, "must be a mapping of search keys")
    train = flatten(data)
    parse_config(train)  # raises ConfigError on unknown keys and bad values
    return Experiment(name=name, train=train, search=SearchConfig.from_dict(search), trainable=trainable)


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
