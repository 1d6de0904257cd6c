"""Contract tests for the define-by-run search spaces and the warm-start points."""

from __future__ import annotations

import pickle
import warnings
from collections import defaultdict
from typing import Any

import optuna
import pytest

from search_spaces import (
    BRANCH_KEY,
    SPACES,
    get_space,
    is_warm_start,
    strip_search_keys,
    warm_start_points,
    warm_starts,
)
from trainables.config import EPS_8, parse_config
from trainables.methods import LOSSES, METHODS
from trainables.registry import ConfigError
from trainables.schedules import SCHEDULES

LOSS_NAMES, METHOD_NAMES, SCHEDULE_NAMES = tuple(LOSSES), tuple(METHODS), tuple(SCHEDULES)
WARM_START = [point for family in ("amata", "mplus", "atas", "baselines") for point in warm_starts(family)]

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_TRIALS = 200
EPSILONS = (EPS_8, 4 / 255, 16 / 255)


def sample(name: str, epsilon: float = EPS_8, n: int = N_TRIALS, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` random trials of space ``name``: each the raw trial config (params + constants)."""
    space = get_space(name, epsilon)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(n):
        trial = study.ask()
        constants = space(trial)  # before reading trial.params: it is a snapshot
        configs.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    return configs


def test_registry_names_and_errors() -> None:
    assert set(SPACES) == {"amata", "mplus", "atas", "baselines", "all"}
    with pytest.raises(ConfigError, match="did you mean 'amata'"):
        get_space("amatta")
    with pytest.raises(ConfigError, match="epsilon"):
        get_space("amata", epsilon=0.0)


@pytest.mark.parametrize("epsilon", EPSILONS)
@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_sample_is_a_valid_config(name: str, epsilon: float) -> None:
    for raw in sample(name, epsilon):
        config = strip_search_keys(raw)
        cfg = parse_config({**config, "epsilon": epsilon})  # raises on any invalid combination
        assert "schedule" in config and ("method" in config)
        if cfg.schedule == "amata":
            assert 1 <= cfg.amata.k_min <= cfg.amata.k_max <= 16
            assert 1.5 * epsilon <= cfg.amata.tau <= 4.0 * epsilon
            assert ("amata.eta" in config) == (cfg.amata.shape == "exp")
            assert ("amata.switch" in config) == (cfg.amata.shape == "step")
        if cfg.method == "free":
            assert config["loss"] == "ce"
        if cfg.schedule == "mplus":
            assert 1.0 <= cfg.mplus.gamma <= 1.2
            assert 0.25 * epsilon <= cfg.alpha <= 2.0 * epsilon
        if cfg.method == "fgsm_rs":
            assert 1.0 * epsilon <= cfg.alpha <= 1.5 * epsilon and cfg.k == 1
        if cfg.method == "atas":
            assert 0.005 * epsilon <= cfg.atas.gamma <= 0.08 * epsilon
            assert 1e-3 <= cfg.atas.c <= 1e-1 and 0.3 <= cfg.atas.beta <= 0.9
        if cfg.schedule == "constant" and cfg.method in ("pgd", "free", "atta"):
            assert 1 <= cfg.k <= {"pgd": 10, "free": 7, "atta": 3}[cfg.method]


def seen(configs: list[dict[str, Any]]) -> dict[str, set[Any]]:
    values: dict[str, set[Any]] = defaultdict(set)
    for config in configs:
        for key, value in config.items():
            values[key].add(value)
    return values


def test_spaces_explore_their_choices() -> None:
    amata = seen(sample("amata"))
    assert amata["amata.shape"] == {"linear", "exp", "cosine", "step"}
    assert amata["method"] == {"pgd", "free", "atta"}
    assert amata["amata.k_min"] == {1, 2, 3, 4} and amata["amata.k_max"] == set(range(4, 17))

    mplus = sample("mplus")
    assert seen(mplus)["method"] == {"free", "pgd"}
    assert seen([c for c in mplus if c["method"] == "pgd"])["loss"] == set(LOSS_NAMES)

    atas = seen(sample("atas"))
    assert atas["atas.reset_every"] == {None, 0, 5, 10, 20} and atas["method"] == {"atas"}

    baselines = sample("baselines")
    assert seen(baselines)["method"] == {"pgd", "fgsm_rs", "free", "atta"}
    assert seen([c for c in baselines if c["method"] == "free"])["k"] == set(range(1, 8))

    joint = seen(sample("all"))
    assert joint[BRANCH_KEY] == {"amata", "mplus", "atas", "baselines"}
    assert joint["method"] == set(METHOD_NAMES)
    assert joint["schedule"] == {"amata", "mplus", "constant"} <= set(SCHEDULE_NAMES)


def test_all_namespaces_top_level_keys_per_family() -> None:
    for raw in sample("all"):
        family = raw[BRANCH_KEY]
        for key, value in raw.items():
            if key.startswith(f"optuna.{family}."):
                assert raw[key.removeprefix(f"optuna.{family}.")] == value
            else:
                assert not key.startswith("optuna.") or key == BRANCH_KEY


@pytest.mark.parametrize("name", ["all", "baselines", "amata"])
def test_multivariate_group_tpe_runs_on_the_conditional_space(name: str) -> None:
    space = get_space(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # group=True
        sampler = optuna.samplers.TPESampler(multivariate=True, group=True, n_startup_trials=5, seed=0)
        study = optuna.create_study(sampler=sampler)
        for i in range(30):
            trial = study.ask()
            constants = space(trial)
            parse_config(strip_search_keys({**trial.params, **constants}))
            study.tell(trial, float(i % 7))


def test_warm_start_defaults_are_the_papers() -> None:
    by_label = {point.label: point.config for point in warm_starts("all")}
    assert [point.label for point in WARM_START] == list(by_label)
    amata, mplus, atas, pgd = by_label.values()
    assert amata == {"schedule": "amata", "method": "pgd", "amata.k_min": 2, "amata.k_max": 10,
                     "amata.shape": "linear", "amata.tau": pytest.approx(20 / 255), "attack_bn": "train"}
    assert mplus == {"schedule": "mplus", "method": "free", "mplus.gamma": 1.01, "loss": "ce",
                     "alpha": pytest.approx(10 / 255), "attack_bn": "train"}
    assert atas["method"] == "atas" and atas["atas.c"] == 0.01 and atas["atas.beta"] == 0.5
    assert atas["atas.gamma"] / atas["atas.c"] == pytest.approx(16 / 255) and atas["attack_bn"] == "eval"
    assert pgd == {"schedule": "constant", "method": "pgd", "k": 10, "attack_bn": "train"}


@pytest.mark.parametrize("epsilon", EPSILONS)
@pytest.mark.parametrize("name", sorted(SPACES))
def test_warm_start_points_replay_exactly(name: str, epsilon: float) -> None:
    points = warm_starts(name, epsilon)
    assert len(points) == (4 if name == "all" else 1)
    assert all(name in ("all", point.space) for point in points)
    space = get_space(name, epsilon)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for point in points:
        study.enqueue_trial(point.params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an out-of-range fixed value only warns in Optuna
        for point in points:
            trial = study.ask()
            constants = space(trial)
            assert trial.params == point.params  # every suggested name, and only those
            assert strip_search_keys({**trial.params, **constants}) == point.config
            parse_config({**point.config, "epsilon": epsilon})
            study.tell(trial, 0.0)


def test_is_warm_start() -> None:
    for point in WARM_START:
        assert is_warm_start(point.config) == point.label
        full = parse_config(point.config).to_flat()  # every key, defaults included
        assert is_warm_start(full) == point.label
        assert is_warm_start({**point.config, "epsilon": "8/255"}) == point.label
    for point in warm_starts("all", 4 / 255):
        assert is_warm_start({**point.params, **point.config, "epsilon": 4 / 255}) == point.label
    amata_at_4 = warm_starts("amata", 4 / 255)[0].config
    assert is_warm_start(amata_at_4) is None  # tau sized for another epsilon
    assert is_warm_start({"schedule": "constant", "method": "pgd", "k": 7}) is None
    assert is_warm_start({"schedule": "amata", "method": "pgd", "k": 10}) is None


def test_ray_optuna_search_suggests_warm_starts_first(tmp_path: Any) -> None:
    """Ray's OptunaSearch, offline: no ray.init, suggest() straight from the searcher."""
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(
        space=get_space("all"), metric="objective", mode="min",
        points_to_evaluate=warm_start_points("all"),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    suggested = [searcher.suggest(f"trial_{i}") for i in range(8)]
    for config, point in zip(suggested[:4], warm_starts("all"), strict=True):
        assert config == {**point.params, **point.config}
        assert strip_search_keys(config) == point.config
    for i, config in enumerate(suggested):
        parse_config(strip_search_keys(config))
        searcher.on_trial_complete(f"trial_{i}", {"objective": 0.5, "training_iteration": 1})

    pickle.dumps(get_space("all"))
    searcher.save(str(tmp_path / "searcher.pkl"))  # Tune checkpoints the searcher by pickling
    restored = OptunaSearch(metric="objective", mode="min")
    restored.restore(str(tmp_path / "searcher.pkl"))
    parse_config(strip_search_keys(restored.suggest("trial_8")))


def test_ray_optuna_search_with_a_family_space() -> None:
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(
        space=get_space("mplus", 4 / 255), metric="objective", mode="min",
        points_to_evaluate=warm_start_points("mplus", 4 / 255),
    )
    (point,) = warm_starts("mplus", 4 / 255)
    assert searcher.suggest("t0") == point.config
    parse_config(strip_search_keys(searcher.suggest("t1")))
