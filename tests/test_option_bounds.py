"""Every option's allowed range, at its edges: the last allowed value passes and the first
refused one is a ConfigError naming the key; the registries' entries and option sections are
immutable (a config shared by every trial of a search cannot be changed by one of them)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from trainables.config import parse_config
from trainables.methods import LOSSES, METHODS, build_method
from trainables.registry import ConfigError
from trainables.schedules import SCHEDULES
from trainables.schedules.mplus import MPlus

ALLOWED = [
    {"schedule": "amata", "amata.switch": 0.0},
    {"schedule": "amata", "amata.switch": 1.0},
    {"schedule": "amata", "amata.k_min": 1, "amata.k_max": 1},
    {"method": "atas", "atas.beta": 0.0},
    {"method": "atas", "atas.beta": 0.99},
    {"method": "atas", "atas.min_step": 0.01},  # no max_step: only the lower clip is the user's
    {"method": "atas", "atas.max_step": 0.05},
    {"method": "atas", "atas.min_step": 0.02, "atas.max_step": 0.02},
    {"method": "atas", "atas.reset_every": 0},  # 0: never
    {"method": "atas", "atas.warmup_epochs": 0},  # 0: no warm-up
    {"method": "atas", "atas.reference_batch": 1},
    {"loss": "trades", "trades.beta": 0.0},
]

REFUSED = [
    ({"schedule": "amata", "amata.eta": 0.0}, "amata.eta"),
    ({"schedule": "amata", "amata.tau": 0.0}, "amata.tau"),
    ({"schedule": "amata", "amata.switch": -0.01}, "amata.switch"),
    ({"schedule": "amata", "amata.switch": 1.5}, "amata.switch"),
    ({"method": "atas", "atas.gamma": 0.0}, "atas.gamma"),
    ({"method": "atas", "atas.c": 0.0}, "atas.c"),
    ({"method": "atas", "atas.beta": 1.0}, "atas.beta"),
    ({"method": "atas", "atas.beta": 1.5}, "atas.beta"),
    ({"method": "atas", "atas.beta": -0.1}, "atas.beta"),
    ({"method": "atas", "atas.min_step": 0.0}, "atas.min_step"),
    ({"method": "atas", "atas.min_step": 0.03, "atas.max_step": 0.02}, "atas.max_step"),
    ({"method": "atas", "atas.reset_every": -1}, "atas.reset_every"),
    ({"method": "atas", "atas.warmup_epochs": -1}, "atas.warmup_epochs"),
    ({"method": "atas", "atas.reference_batch": 0}, "atas.reference_batch"),
]


@pytest.mark.parametrize("values", ALLOWED, ids=[str(v) for v in ALLOWED])
def test_the_edge_of_each_range_is_allowed(values: dict[str, Any]) -> None:
    parse_config(values)


@pytest.mark.parametrize(("values", "key"), REFUSED, ids=[str(v) for v, _ in REFUSED])
def test_just_outside_each_range_is_refused_naming_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(values)
    assert caught.value.key == key


def _options(registry: Any) -> list[Any]:
    return [spec.options for spec in registry.values() if spec.options is not None]


@pytest.mark.parametrize("options", [*_options(METHODS), *_options(SCHEDULES), *_options(LOSSES)],
                         ids=lambda c: c.__name__)
def test_option_sections_are_immutable(options: type) -> None:
    instance = options()
    field = dataclasses.fields(instance)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(instance, field, getattr(instance, field))


@pytest.mark.parametrize("registry", [METHODS, SCHEDULES, LOSSES], ids=["methods", "schedules", "losses"])
def test_registry_entries_are_immutable(registry: Any) -> None:
    for spec in registry.values():
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.source = "changed"


def test_atas_warms_up_from_its_first_epoch_before_any_epoch_started() -> None:
    for warmup, expected in ((0, False), (1, True)):
        cfg = parse_config({"method": "atas", "atas.warmup_epochs": warmup, "epochs": 4})
        method = build_method("atas", cfg.method_setup(8, (1, 4, 4), torch.device("cpu"), None))
        assert method.warming_up is expected


def test_mplus_without_a_step_floor_leaves_alpha_to_the_method() -> None:
    # ε known but no floor (a method with its own step): K grows, α stays the method's (None)
    schedule = MPlus(gamma=1.01, epsilon=0.1, alpha_floor=None)
    schedule.k = 3
    assert schedule.plan(5).k == 3 and schedule.plan(5).alpha is None
    schedule.alpha_floor = 0.02
    assert schedule.plan(5).alpha == pytest.approx(max(0.1 / 3, 0.02))
