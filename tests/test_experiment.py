"""Experiment files: YAML, --set overrides and bad input (ConfigError, before Ray starts)."""

from __future__ import annotations

import math

import pytest

from raysearch.rundir.experiment import (
    SearchConfig,
    builtin_experiments,
    load_experiment,
    parse_overrides,
)
from trainables.registry import ConfigError


def test_demo_is_builtin_and_valid() -> None:
    assert "demo" in builtin_experiments()
    exp = load_experiment("demo")
    assert exp.name == "demo"
    assert exp.train["dataset"] == "digits" and exp.train["model"] == "small_cnn"
    assert exp.search.space == "all" and exp.search.scheduler == "asha" and exp.search.time_attr == "fidelity"
    assert exp.search.fidelity.levels() == [(0.5, 0.5), (1.0, 1.0)] and exp.search.budget == 3
    assert exp.search.confirm.top == 2 and exp.search.confirm.seeds == 3 and exp.search.confirm.attacks == "pgd20"
    assert exp.train_config.epochs <= 6


def test_yaml_file_nested_and_dotted_keys(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("dataset: digits\namata:\n  k_max: 8\nschedule: amata\neval.steps: 5\n"
                    "epsilon: 8/255\nsearch:\n  space: amata\n  samples: 3\n")
    exp = load_experiment(str(path))
    assert exp.name == "mine"
    assert exp.train["amata.k_max"] == 8 and exp.train["eval.steps"] == 5
    assert math.isclose(exp.train_config.epsilon, 8 / 255)
    assert exp.search == SearchConfig(space="amata", samples=3)


def test_set_overrides_reach_train_and_search() -> None:
    exp = load_experiment("demo", ["epochs=2", "epsilon=8/255", "search.samples=5", "search.time_attr=epoch",
                                   "search.gpus_per_trial=0.25", "name=other"])
    assert exp.name == "other"
    assert exp.train["epochs"] == 2 and exp.train["epsilon"] == "8/255"  # parse_config reads the fraction
    assert exp.search.samples == 5 and exp.search.time_attr == "epoch" and exp.search.gpus_per_trial == 0.25


def test_parse_overrides_uses_yaml_values() -> None:
    assert parse_overrides(["a=1", "b=0.5", "c=true", "d=8/255", "e=pgd", "f="]) == {
        "a": 1, "b": 0.5, "c": True, "d": "8/255", "e": "pgd", "f": None}


@pytest.mark.parametrize(("overrides", "key", "hint"), [
    (["epochz=3"], "epochz", "did you mean 'epochs'"),
    (["search.sample=3"], "search.sample", "did you mean 'samples'"),
    (["epochs=0"], "epochs", None),
    (["amata.k_min=5", "amata.k_max=3"], "amata.k_max", None),
    (["search.gpus_per_trial=1.5"], "search.gpus_per_trial", None),
    (["search.algorithm=tpee"], "search.algorithm", "did you mean 'tpe'"),
    (["search.time_attr=steps"], "search.time_attr", None),
    (["search.reduction_factor=1"], "search.reduction_factor", None),
    (["search.samples=0"], "search.samples", None),
    (["search.startup_trials=-1"], "search.startup_trials", ">= 0"),
    (["search.startup_trials=2.5"], "search.startup_trials", "whole number"),
    (["noequals"], "--set", None),
])
def test_bad_values_name_the_key(overrides: list[str], key: str, hint: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        load_experiment("demo", overrides)
    assert info.value.key == key
    if hint is not None:
        assert hint in str(info.value)


def test_unknown_experiment_lists_builtins(tmp_path) -> None:
    with pytest.raises(ConfigError, match="demo") as info:
        load_experiment("dmeo")
    assert "did you mean 'demo'" in str(info.value)
    with pytest.raises(ConfigError, match="no such file"):
        load_experiment(str(tmp_path / "missing.yaml"))


def test_bad_yaml(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_experiment(str(path))
    path.write_text("search: [1, 2]\n")
    with pytest.raises(ConfigError, match="search"):
        load_experiment(str(path))


def test_to_dict_round_trips(tmp_path) -> None:
    import yaml

    exp = load_experiment("demo", ["search.samples=3"])
    path = tmp_path / "again.yaml"
    path.write_text(yaml.safe_dump(exp.to_dict()))
    assert load_experiment(str(path)) == exp
