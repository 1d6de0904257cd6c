"""Population-based search (``search.algorithm: pbt | pb2``): Ray Tune's
``PopulationBasedTraining`` (Jaderberg et al., 2017) or ``PB2`` (Parker-Holder et al., 2020)
over K and α of a population of ``search.population`` members trained together.

Every ``search.perturbation_interval`` epochs the bottom quarter of the members (by the
cost-aware :data:`~trainables.tune.pbt_member.POPULATION_METRIC`) copy the whole run state of a
top-quarter member and continue with perturbed K and α: PBT moves K to a neighbouring value
and scales α by 0.8 or 1.2 (or resamples either with probability 1/4); PB2 picks them with a
GP bandit within the same bounds. Members wait for each other at each interval (synchronous
PBT), so a population larger than the free slots takes turns instead of racing ahead.

Optuna does not take part (Tune's PBT accepts no searcher): the initial population is drawn
at random from the bounds with ``search.seed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raysearch.rundir.experiment import SearchConfig
from trainables.trials.setup import TRIAL_PREFIX
from trainables.tune.pbt_member import POPULATION_METRIC

K_BOUNDS = (1, 10)  # K per epoch: FGSM-like to PGD-10
ALPHA_BOUNDS = (0.1, 1.25)  # α / ε: from small PGD steps to FGSM-RS's 1.25ε
POPULATION_KEY = TRIAL_PREFIX + "population"


def population_space(train: Mapping[str, Any], epsilon: float) -> dict[str, Any]:
    """Tune's param space of the members: the experiment with K and α drawn uniformly from the
    bounds (Tune's random search, seeded with ``search.seed``)."""
    from ray import tune

    return {**train, "schedule": "constant", "k": tune.randint(K_BOUNDS[0], K_BOUNDS[1] + 1),
            "alpha": tune.uniform(ALPHA_BOUNDS[0] * epsilon, ALPHA_BOUNDS[1] * epsilon), POPULATION_KEY: True}


def make_population_searcher(seed: int) -> Any:
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed)


def clip_member(config: dict[str, Any], epsilon: float) -> dict[str, Any]:
    """PBT's explore step keeps K and α inside the bounds (and K whole)."""
    low, high = K_BOUNDS
    config["k"] = min(max(int(round(float(config["k"]))), low), high)
    config["alpha"] = min(max(float(config["alpha"]), ALPHA_BOUNDS[0] * epsilon), ALPHA_BOUNDS[1] * epsilon)
    return config


class ClipMember:
    """A picklable ``custom_explore_fn`` (Tune saves the scheduler with the run)."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        return clip_member(config, self.epsilon)


def make_population_scheduler(search: SearchConfig, epsilon: float) -> Any:
    """Tune's PBT or PB2 for ``search`` (metric minimized, time in epochs)."""
    common: dict[str, Any] = {"time_attr": "epoch", "metric": POPULATION_METRIC, "mode": "min",
              "perturbation_interval": search.perturbation_interval, "quantile_fraction": 0.25, "synch": True,
              "custom_explore_fn": ClipMember(epsilon)}
    alpha = (ALPHA_BOUNDS[0] * epsilon, ALPHA_BOUNDS[1] * epsilon)
    if search.algorithm == "pb2":
        from ray.tune.schedulers.pb2 import PB2

        return PB2(hyperparam_bounds={"k": list(K_BOUNDS), "alpha": list(alpha)}, **common)
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    return PopulationBasedTraining(
        hyperparam_mutations={"k": list(range(K_BOUNDS[0], K_BOUNDS[1] + 1)), "alpha": tune.uniform(*alpha)},
        resample_probability=0.25, **common)


__all__ = ["ALPHA_BOUNDS", "K_BOUNDS", "POPULATION_KEY", "ClipMember", "clip_member", "make_population_scheduler",
           "make_population_searcher", "population_space"]
