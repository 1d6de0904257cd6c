"""Tests for trainables.config: parsing nested / dotted / ``--set``-style values, the flat
round-trip, and one clear ConfigError (key, value, what is allowed, did-you-mean) per bad input."""

from __future__ import annotations

import dataclasses

import pytest

from trainables.config import TrainConfig, config_keys, parse_config, parse_number
from trainables.registry import ConfigError


def _error(values: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(values)
    return info.value


# --- parsing -------------------------------------------------------------------------


def test_set_style_strings_are_converted() -> None:
    cfg = parse_config({"epsilon": "8/255", "augment": "false", "epochs": "10", "amata.tau": "20/255",
                        "schedule": "amata", "amata.k_max": "12", "lr": "0.05", "k": "none"})
    assert cfg.epsilon == 8 / 255 and isinstance(cfg.epsilon, float)
    assert cfg.augment is False
    assert cfg.epochs == 10 and isinstance(cfg.epochs, int)
    assert cfg.amata.tau == 20 / 255 and cfg.amata.k_max == 12 and cfg.schedule == "amata"
    assert cfg.lr == 0.05 and cfg.k is None


@pytest.mark.parametrize(("text", "value"), [("true", True), ("True", True), ("yes", True), ("1", True),
                                             ("false", False), ("no", False), ("0", False)])
def test_bool_strings(text: str, value: bool) -> None:
    assert parse_config({"augment": text}).augment is value


def test_whole_numbers_accept_integral_floats_and_strings() -> None:
    assert parse_config({"epochs": 4.0}).epochs == 4
    assert parse_config({"epochs": "4.0"}).epochs == 4
    assert parse_config({"batch_size": "64"}).batch_size == 64


def test_nested_dotted_and_keyword_forms_agree() -> None:
    nested = parse_config({"schedule": "amata", "amata": {"k_min": 3, "k_max": 7, "shape": "exp"},
                           "eval": {"steps": 5}})
    dotted = parse_config({"schedule": "amata", "amata.k_min": 3, "amata.k_max": "7",
                           "amata.shape": "exp", "eval.steps": "5"})
    mixed = parse_config({"schedule": "amata", "amata": {"k_min": 3}}, **{"amata.k_max": 7},
                         amata={"shape": "exp"}, eval={"steps": 5})
    assert nested == dotted == mixed
    assert (nested.amata.k_min, nested.amata.k_max, nested.amata.shape, nested.eval.steps) == (3, 7, "exp", 5)
    assert nested.amata.eta == 1.0  # untouched fields keep their defaults


def test_keyword_overrides_win_over_values() -> None:
    assert parse_config({"epochs": 3}, epochs=5).epochs == 5


def test_parse_number() -> None:
    assert parse_number("8/255") == 8 / 255
    assert parse_number(" 0.25 ") == 0.25
    assert parse_number("3") == 3.0
    with pytest.raises(ValueError):
        parse_number("eight")


def test_defaults() -> None:
    cfg = parse_config()
    assert cfg == TrainConfig()
    assert cfg.epsilon == 8 / 255 and cfg.method == "pgd" and cfg.constant_k == 10
    assert cfg.trades.beta == 6.0 and cfg.mart.beta == 5.0
    gamma, min_step, max_step = cfg.atas.resolved(cfg.epsilon)  # the paper's values at 8/255
    assert gamma / cfg.atas.c == pytest.approx(16 / 255)
    assert (min_step, max_step) == pytest.approx((4 / 255, 14 / 255))
    assert parse_config({"epsilon": 0.1}).atas.resolved(0.1) == pytest.approx((0.002, 0.05, 0.175))
    assert parse_config({"method": "free"}).constant_k == 3
    assert parse_config({"method": "fgsm_rs"}).constant_k == 1
    assert parse_config({"method": "atas", "k": 2}).constant_k == 2


def test_to_flat_round_trips() -> None:
    cfg = parse_config({"method": "atas", "schedule": "mplus", "epsilon": "4/255", "mplus.gamma": 1.05,
                        "atas.c": 0.1, "amata.tau": 0.05, "eval.alpha": 0.01, "k": 2, "channels_last": "true",
                        "free.carry_delta": True, "trades.beta": 3})
    flat = cfg.to_flat()
    assert flat["mplus.gamma"] == 1.05 and flat["atas.c"] == 0.1 and flat["eval.alpha"] == 0.01
    assert flat["trades.beta"] == 3.0 and flat["k"] == 2 and flat["amata.k_min"] == 2
    assert all(not isinstance(v, dict) for v in flat.values())
    assert parse_config(flat) == cfg
    default = TrainConfig()
    assert parse_config(default.to_flat()) == default
    assert default.to_flat()["amata.tau"] is None  # None survives the trip too
    # Every field (nested and registry sections included) appears exactly once as a dotted key.
    sections = [options for _, options in default.sections]
    fields = [f for f in dataclasses.fields(default) if f.name != "sections"]
    nested = sum(len(dataclasses.fields(getattr(default, f.name))) if dataclasses.is_dataclass(getattr(default, f.name))
                 else 1 for f in fields) + sum(len(dataclasses.fields(o)) for o in sections)
    assert len(flat) == nested == len(config_keys())


def test_config_is_frozen() -> None:
    cfg = parse_config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]


# --- bad input: one error naming key, value and what is allowed -------------------------


@pytest.mark.parametrize(("key", "suggestion"), [
    ("epsilom", "epsilon"), ("amata.kmax", "amata.k_max"), ("batchsize", "batch_size"),
    ("mplus.gama", "mplus.gamma"), ("eval.step", "eval.steps"),
])
def test_unknown_key_did_you_mean(key: str, suggestion: str) -> None:
    err = _error({key: 1})
    assert err.key == key and err.value == 1
    assert "unknown config key" in err.allowed
    assert err.hint == f"did you mean {suggestion!r}?"
    assert str(err) == f"{key}=1: unknown config key (did you mean {suggestion!r}?)"


def test_unknown_key_far_from_everything_has_no_hint() -> None:
    err = _error({"zzzzqqq": 1})
    assert err.hint == "" and "did you mean" not in str(err)


def test_unknown_nested_key() -> None:
    err = _error({"amata": {"kmax": 10}})
    assert err.key == "amata.kmax" and err.hint == "did you mean 'amata.k_max'?"


@pytest.mark.parametrize(("key", "value", "suggestion", "choices"), [
    ("method", "pgdd", "pgd", "pgd, fgsm_rs, free, atta, atas"),
    ("method", "atass", "atas", "pgd, fgsm_rs, free, atta, atas"),
    ("schedule", "amatta", "amata", "constant, amata, deat_every, deat_acc, mplus, piecewise"),
    ("schedule", "mplu", "mplus", "constant, amata, deat_every, deat_acc, mplus, piecewise"),
    ("loss", "trade", "trades", "ce, trades, mart"),
    ("amata.shape", "cosin", "cosine", "linear, exp, cosine, step"),
])
def test_unknown_names_did_you_mean(key: str, value: str, suggestion: str, choices: str) -> None:
    err = _error({key: value})
    assert (err.key, err.value) == (key, value)
    assert err.allowed == f"choose one of {choices}"
    assert err.hint == f"did you mean {suggestion!r}?"
    assert str(err).startswith(f"{key}={value!r}: choose one of")


@pytest.mark.parametrize("value", [0, 0.0, "0", -0.1, "-8/255", 1.0001, "2", 255])
def test_epsilon_outside_unit_interval(value: object) -> None:
    err = _error({"epsilon": value})
    assert err.key == "epsilon" and "(0, 1]" in err.allowed
    assert str(err).startswith("epsilon=")


@pytest.mark.parametrize("value", [1, "1", "1/1", 1e-6])
def test_epsilon_edges_allowed(value: object) -> None:
    assert 0 < parse_config({"epsilon": value}).epsilon <= 1


def test_k_min_above_k_max() -> None:
    err = _error({"amata.k_min": 5, "amata.k_max": 3})
    assert (err.key, err.value) == ("amata.k_max", 3)
    assert "amata.k_min (5)" in err.allowed
    assert parse_config({"amata.k_min": 4, "amata.k_max": 4}).amata.k_max == 4


def test_k_min_zero_rejected() -> None:
    err = _error({"amata.k_min": 0})
    assert err.key == "amata.k_min" and err.value == 0 and ">= 1" in err.allowed


@pytest.mark.parametrize("value", [0, -1, "0", "-3"])
def test_non_positive_epochs(value: object) -> None:
    err = _error({"epochs": value})
    assert err.key == "epochs" and "positive" in err.allowed
    assert err.value == int(value)


@pytest.mark.parametrize("value", [0, -2])
def test_non_positive_batch_size(value: int) -> None:
    err = _error({"batch_size": value})
    assert (err.key, err.value) == ("batch_size", value) and "positive" in err.allowed


@pytest.mark.parametrize("value", ["2.5", 2.5, "ten", "5/2", True, "inf"])
def test_fractional_or_non_numeric_epochs(value: object) -> None:
    err = _error({"epochs": value})
    assert (err.key, err.value) == ("epochs", value) and err.allowed == "must be a whole number"


@pytest.mark.parametrize("value", ["maybe", "2", "on?", 3, 0.5])
def test_bool_parse_errors(value: object) -> None:
    err = _error({"augment": value})
    assert (err.key, err.value) == ("augment", value) and err.allowed == "must be true or false"


@pytest.mark.parametrize("value", ["fast", "nan", True])
def test_float_parse_errors(value: object) -> None:
    err = _error({"lr": value})
    assert err.key == "lr" and err.value == value


def test_string_field_rejects_non_string() -> None:
    err = _error({"method": 3})
    assert (err.key, err.value, err.allowed) == ("method", 3, "must be a string")


@pytest.mark.parametrize("loss", ["trades", "mart"])
def test_free_with_non_ce_loss_rejected(loss: str) -> None:
    err = _error({"method": "free", "loss": loss})
    assert (err.key, err.value) == ("loss", loss) and "free" in err.allowed and "ce" in err.allowed


@pytest.mark.parametrize(("values", "key", "value"), [
    ({"mplus.gamma": 0.99}, "mplus.gamma", 0.99),
    ({"atas.beta": 1.0}, "atas.beta", 1.0),
    ({"atas.min_step": 0.1, "atas.max_step": 0.05}, "atas.max_step", 0.05),
    ({"trades.beta": -1}, "trades.beta", -1.0),  # LossBetaConfig's bare "beta" gets its section
    ({"mart.beta": "-0.5"}, "mart.beta", -0.5),
    ({"eval.steps": 0}, "eval.steps", 0),
    ({"co.drop": 0}, "co.drop", 0.0),
    ({"deat_every.every": 0}, "deat_every.every", 0),
    ({"deat_acc.threshold": 1.5}, "deat_acc.threshold", 1.5),
    ({"k": -1}, "k", -1),
    ({"alpha": 0}, "alpha", 0.0),
])
def test_range_errors_name_the_dotted_key(values: dict, key: str, value: object) -> None:
    err = _error(values)
    assert (err.key, err.value) == (key, value)
    assert str(err).startswith(f"{key}={value!r}: ") and err.allowed


def test_a_config_error_survives_copy_and_pickle_whole() -> None:
    # Ray copies a trial's exception to report it: a ConfigError that cannot be rebuilt from
    # its args hid the real message behind "missing 2 required positional arguments"
    import copy
    import pickle

    from trainables.registry import ConfigError

    err = ConfigError("target_robust_acc", "reference", "needs a number", "hint")
    for clone in (copy.copy(err), pickle.loads(pickle.dumps(err))):
        assert (clone.key, clone.value, clone.allowed, clone.hint) == (err.key, err.value, err.allowed, err.hint)
        assert str(clone) == str(err)


@pytest.mark.parametrize(("values", "cuda_bf16"), [
    ({}, True),  # auto: bf16 autocast on CUDA for a recipe that reads no gradient norm
    ({"method": "atas"}, False),  # auto keeps fp32 where gradient norms steer: ATAS's v
    ({"schedule": "mplus", "method": "free"}, False),  # and M+'s l_X
    ({"precision": "authors"}, False),
    ({"precision": "fp32", "method": "pgd"}, False),
    ({"precision": "bf16", "method": "atas"}, True),
])
def test_precision_follows_the_recipe(values: dict[str, object], cuda_bf16: bool) -> None:
    cfg = parse_config(values)
    assert cfg.uses_bf16("cuda") is cuda_bf16
    assert cfg.uses_bf16("cpu") is (cfg.precision == "bf16")


def test_precision_and_checkpoint_reject_unknown_values() -> None:
    with pytest.raises(ConfigError, match="precision.*authors"):
        parse_config({"precision": "fp16"})
    with pytest.raises(ConfigError, match="checkpoint"):
        parse_config({"checkpoint": "final"})
