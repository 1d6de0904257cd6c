"""The search's numbers, by hand: ASHA's ``max_t`` and grace period on each time axis, the
costliest branch of every search space, what each recipe costs per fidelity level, the
budget's arithmetic, and the metric and mode the scheduler and the searcher are given.

ASHA is driven through :func:`make_scheduler` with stand-in trials (an id, a config, a last
result, a status), without Ray running. Expected values come from the papers' formulas
(Amata Algorithm 1 and eq. 16, DEAT Algorithm 1 and its K caps, SPEC §8), not from the code.
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace
from typing import Any

import pytest
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

import search_spaces
from raysearch.rundir.experiment import SearchConfig
from raysearch.tuning.budget import Budget, CostModel, branch_configs, max_k, run_backprops
from raysearch.tuning.objective import METRIC, MODE, metric_names, pareto_front, search_metric
from raysearch.tuning.scheduler import (
    FinishWarmStarts,
    KeepBudget,
    grace_t,
    make_scheduler,
    time_budget,
)
from trainables.config import parse_config
from trainables.evaluation.scoring import TARGET_INFEASIBLE, target_objective
from trainables.methods import Plan
from trainables.schedules import SCHEDULES, EpochStats, MPlus, MPlusConfig
from trainables.schedules.mplus import resolved_cap
from trainables.training.run_parts import make_schedule
from trainables.trials.setup import TRIAL_PREFIX

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def _trial(trial_id: str, warm_start: bool = False, status: str = "RUNNING", **config: Any) -> Any:
    """A stand-in for Tune's Trial: what the schedulers read."""
    if warm_start:
        config[f"{TRIAL_PREFIX}warm_start"] = "PGD-10"
    return SimpleNamespace(trial_id=trial_id, config=config, last_result={}, status=status)


class _Controller:
    """A stand-in for Tune's controller: the trials KeepBudget's ledger walks."""

    def __init__(self, trials: list[Any]) -> None:
        self.trials = trials

    def get_trials(self) -> list[Any]:
        return self.trials


def _asha(scheduler: TrialScheduler) -> Any:
    """The ASHA instance inside the wrappers."""
    while hasattr(scheduler, "inner"):
        scheduler = scheduler.inner
    return scheduler


def _rungs(scheduler: TrialScheduler) -> list[float]:
    return sorted(milestone for milestone, _ in _asha(scheduler)._brackets[0]._rungs)


# --- max_t and the grace period on each time axis ---------------------------------------


@pytest.mark.parametrize(("levels", "eta", "expected"), [(1, 3.0, 1), (2, 3.0, 3), (3, 3.0, 9), (3, 2.0, 4),
                                                         (4, 2.0, 8), (2, 2.5, 2.5)])
def test_fidelity_budget_is_eta_to_the_last_level(levels: int, eta: float, expected: float) -> None:
    # The trainable reports fidelity = η^level at the end of level `level`: the full run is η^(L−1).
    budget = time_budget("fidelity", epochs=10, max_t=999, levels=levels, reduction_factor=eta)
    assert budget == expected and (isinstance(budget, int) or budget != int(budget))


def test_defaults_are_one_level_and_eta_3() -> None:
    assert time_budget("fidelity", epochs=10, max_t=999) == 1  # no proxy level: the full run only
    assert time_budget("fidelity", epochs=10, max_t=999, levels=2) == 3
    assert _asha(make_scheduler(SearchConfig(), epochs=4, max_t=999))._max_t == 1
    assert SearchConfig().time_attr == "fidelity" and SearchConfig().reduction_factor == 3.0


def test_epoch_and_backprops_budgets() -> None:
    assert time_budget("epoch", epochs=7, max_t=999) == 7
    assert time_budget("backprops", epochs=7, max_t=1234) == 1234
    assert time_budget("backprops", epochs=7, max_t=12.7) == 12  # type: ignore[arg-type]
    assert time_budget("backprops", epochs=7, max_t=0) == 1


@pytest.mark.parametrize(("grace", "expected"), [
    (1, 55),      # PGD-10 over 4 epochs of 5 batches: max_t = 11·5·4 = 220 backprops, 220 / 4 per epoch
    (0.25, 14),   # ⌈0.25 · 55⌉ = ⌈13.75⌉
    (2.5, 138),   # ⌈137.5⌉
    (0.01, 1),    # ⌈0.55⌉
    (10, 220),    # never beyond max_t
])
def test_backprops_grace_is_grace_epochs_of_the_costliest_recipe(grace: float, expected: int) -> None:
    search = SearchConfig(time_attr="backprops", grace_period=grace)
    assert grace_t(search, epochs=4, max_t=220, levels=1) == expected


@pytest.mark.parametrize(("grace", "epochs", "expected"), [(1, 4, 1), (1.5, 4, 2), (3, 4, 3), (10, 4, 4), (2, 1, 1)])
def test_epoch_grace_is_whole_epochs_at_most_the_run(grace: float, epochs: int, expected: int) -> None:
    assert grace_t(SearchConfig(time_attr="epoch", grace_period=grace), epochs=epochs, max_t=999, levels=1) == expected


@pytest.mark.parametrize("grace", [0.5, 1, 3])
def test_fidelity_grace_is_the_first_level(grace: float) -> None:
    search = SearchConfig(time_attr="fidelity", grace_period=grace)
    assert grace_t(search, epochs=10, max_t=999, levels=3) == 1


@pytest.mark.parametrize(("time_attr", "levels", "eta", "max_t", "budget", "rungs"), [
    ("fidelity", 2, 3.0, 999, 3, [1, 3]),         # rung at level 0's end; the full run ends at 3
    ("fidelity", 3, 3.0, 999, 9, [1, 3, 9]),
    ("fidelity", 3, 2.0, 999, 4, [1, 2, 4]),
    ("backprops", 1, 3.0, 220, 220, [55, 165]),   # grace 55; 55·3 ≤ 220 < 55·9
    ("backprops", 1, 2.0, 220, 220, [55, 110, 220]),
    ("epoch", 1, 2.0, 999, 4, [1, 2, 4]),
])
def test_make_scheduler_hands_asha_the_axis_budget_and_rungs(
        time_attr: str, levels: int, eta: float, max_t: int, budget: int, rungs: list[float]) -> None:
    scheduler = make_scheduler(SearchConfig(time_attr=time_attr, reduction_factor=eta), epochs=4, max_t=max_t,
                               levels=levels)
    asha = _asha(scheduler)
    assert isinstance(scheduler, FinishWarmStarts) and not isinstance(scheduler, KeepBudget)
    assert (asha._time_attr, asha._max_t, asha._reduction_factor) == (time_attr, budget, eta)
    assert _rungs(scheduler) == rungs


# --- what the scheduler and the searcher optimize -------------------------------------------


@pytest.mark.parametrize("objective", ["tradeoff", "target", "pareto"])
def test_the_scheduler_minimizes_the_one_number_objective(objective: str) -> None:
    # A rung compares one number in every mode: `objective`, minimized (SPEC §7).
    asha = _asha(make_scheduler(SearchConfig(time_attr="epoch"), epochs=4, max_t=999))
    assert (METRIC, MODE) == ("objective", "min")
    assert (asha._metric, asha._mode, asha._metric_op) == ("objective", "min", -1.0)
    metric, mode = search_metric(objective)
    expected = {"tradeoff": ("objective", "min"), "target": ("cost_runs", "min"),
                "pareto": (["robust_acc", "backprops"], ["max", "min"])}[objective]
    assert (metric, mode) == expected


def test_metric_names_say_what_is_optimized() -> None:
    assert metric_names("tradeoff", 0.25) == ["objective = 1 - robust acc + 0.25 * cost in reference runs"]
    assert metric_names("tradeoff") == ["objective = 1 - robust acc + 0.1 * cost in reference runs"]  # cost_weight's default
    assert metric_names("target") == ["cost (reference runs), constrained: robust acc >= target"]
    assert metric_names("pareto") == ["robust accuracy (validation)", "backprops"]


def test_target_objective_ranks_every_hit_before_every_miss() -> None:
    # Feasible: the cost in reference runs; infeasible: TARGET_INFEASIBLE + the shortfall.
    hit_dear = target_objective(0.60, cost=4400, reference_cost=1100, target=0.5)
    hit_cheap = target_objective(0.50, cost=110, reference_cost=1100, target=0.5)
    near_miss = target_objective(0.49, cost=11, reference_cost=1100, target=0.5)
    far_miss = target_objective(0.10, cost=11, reference_cost=1100, target=0.5)
    assert (hit_cheap, hit_dear) == (pytest.approx(0.1), pytest.approx(4.0))
    assert (near_miss, far_miss) == (pytest.approx(TARGET_INFEASIBLE + 0.01), pytest.approx(TARGET_INFEASIBLE + 0.4))
    assert hit_cheap < hit_dear < near_miss < far_miss


def test_pareto_front_maximizes_robust_accuracy_and_minimizes_backprops() -> None:
    rows = [{"robust_acc": 0.5, "backprops": 100}, {"robust_acc": 0.4, "backprops": 100},  # 1 dominated by 0
            {"robust_acc": 0.6, "backprops": 300}, {"robust_acc": 0.6, "backprops": 200},  # 2 dominated by 3
            {"robust_acc": 0.3, "backprops": 50}, {"robust_acc": 0.5, "backprops": 100}]   # 5 ties 0: both kept
    assert pareto_front(rows) == [0, 3, 4, 5]
    assert pareto_front(rows, ["backprops"], ["max"]) == [2]
    with pytest.raises(ValueError):  # one mode per metric
        pareto_front(rows, ["robust_acc", "backprops"], ["max"])


# --- ASHA through the wrappers: stopped trials scored worse at their rung -----------------------


def _fidelity_scheduler(**kwargs: Any) -> TrialScheduler:
    return make_scheduler(SearchConfig(time_attr="fidelity", reduction_factor=3.0), epochs=10, max_t=999,
                          levels=2, **kwargs)


def _level_end(objective: float, level: int = 0) -> dict[str, Any]:
    return {"fidelity": 3.0**level, "objective": objective, "level": level, "level_end": True,
            "full_fidelity": level == 1}


def test_asha_stops_exactly_the_trials_worse_than_the_rung_cutoff() -> None:
    # ASHA (Li et al., 2020): stop at a rung unless in the top 1/η of the values recorded there.
    # With η = 3 the bar is the 1/3-quantile (linear interpolation) of the objectives so far:
    # 0.5 (none yet) go; 0.4 vs 0.5 go; 0.9 vs q{.4,.5} = .433 stop; 0.3 vs .467 go;
    # 0.8 vs q{.3,.4,.5,.9} = .4 stop; 0.2 vs .367 go; 0.95 vs .35 stop; 0.1 vs .333 go;
    # 0.85 vs q{.1,.2,.3,.4,.5,.8,.9,.95} = .333 stop.
    scheduler = _fidelity_scheduler()
    values = [0.5, 0.4, 0.9, 0.3, 0.8, 0.2, 0.95, 0.1, 0.85]
    decisions = []
    for i, value in enumerate(values):
        trial = _trial(f"t{i}")
        scheduler.on_trial_add(None, trial)
        decisions.append(scheduler.on_trial_result(None, trial, _level_end(value)))
    assert decisions == [CONTINUE, CONTINUE, STOP, CONTINUE, STOP, CONTINUE, STOP, CONTINUE, STOP]
    stopped = [v for v, d in zip(values, decisions, strict=True) if d == STOP]
    kept = [v for v, d in zip(values, decisions, strict=True) if d == CONTINUE]
    assert min(stopped) > max(kept)  # lower objective is better: the scheduler minimizes


def test_asha_compares_only_at_rungs_and_stops_at_max_t() -> None:
    scheduler = _fidelity_scheduler()
    good, bad = _trial("good"), _trial("bad")
    for trial in (good, bad):
        scheduler.on_trial_add(None, trial)
    mid_level = {"fidelity": 0.0, "objective": 9.0, "level": 0, "level_end": False}
    assert scheduler.on_trial_result(None, good, mid_level) == CONTINUE  # below the first rung
    assert scheduler.on_trial_result(None, good, _level_end(0.2)) == CONTINUE
    assert scheduler.on_trial_result(None, bad, _level_end(0.7)) == STOP
    # Inside level 1 the trial still reports fidelity 1 (its last finished level): no new rung.
    assert scheduler.on_trial_result(None, good, {**_level_end(0.9), "level": 1, "level_end": False}) == CONTINUE
    assert scheduler.on_trial_result(None, good, _level_end(0.1, level=1)) == STOP  # η^1 = max_t: the run ends


def test_paper_defaults_finish_but_set_the_bar() -> None:
    scheduler = _fidelity_scheduler()
    good, bad, sampled = _trial("good", warm_start=True), _trial("bad", warm_start=True), _trial("sampled")
    for trial in (good, bad, sampled):
        scheduler.on_trial_add(None, trial)
    assert scheduler.on_trial_result(None, good, _level_end(0.1)) == CONTINUE
    assert scheduler.on_trial_result(None, bad, _level_end(0.9)) == CONTINUE  # ASHA says stop; it finishes
    # Both values count: the bar is the 1/3-quantile of {0.1, 0.9}, 0.1 + 0.8/3 ≈ 0.367.
    assert scheduler.on_trial_result(None, sampled, _level_end(0.4)) == STOP


# --- the costliest branch of every space --------------------------------------------------


def _amata_top(epochs: int) -> int:
    """Largest K_t, t < T, of Amata at its space's costliest corner (K 4 → 16, η = 5, switch 0.2):
    K_t = 4 + ⌊12·s(t/T)⌋ is non-decreasing in t, so the last epoch decides (Algorithm 1; eq. 16)."""
    u = (epochs - 1) / epochs
    shapes = [u,  # linear
              (1 - math.exp(-5 * (epochs - 1))) / (1 - math.exp(-5 * epochs)),  # exp, eq. 16
              (1 - math.cos(math.pi * u)) / 2,  # cosine
              0.0 if u < 0.2 else 1.0]  # step: the switch at the low end of its range
    return max(4 + math.floor(12 * s + 1e-9) for s in shapes)


EPOCHS = [1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 30]


@pytest.mark.parametrize("epochs", EPOCHS)
def test_costliest_branch_of_every_space(epochs: int) -> None:
    # baselines: PGD-10 (k up to 10); ATAS: K = 1; M+: K_t ≤ min(t, cap), cap 10 with TRADES/MART
    # on the pgd branch (DEAT's --num-steps 10), so min(T − 1, 10); Amata: see _amata_top.
    hand = {"baselines": 10, "atas": 1, "mplus": min(epochs - 1, 10), "amata": _amata_top(epochs)}
    hand["all"] = max(hand.values())
    for name, expected in hand.items():
        configs = branch_configs({"epochs": epochs}, search_spaces.get_space(name))
        assert max_k(configs, epochs) == expected, name


def test_the_costliest_branch_changes_with_the_horizon() -> None:
    assert [_amata_top(t) for t in EPOCHS] == [4, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16]
    # step with switch 0.2 reaches 16 once u = (T − 1)/T ≥ 0.2 (T ≥ 2); exp with η = 5 once
    # 12·e^{−5(T−1)}(1 − e^{−5}) < 1e-9 (T ≥ 6).

    def costliest(epochs: int) -> set[tuple[str, str]]:
        configs = branch_configs({"epochs": epochs}, search_spaces.get_space("all"))
        top = max_k(configs, epochs)
        return {(c.schedule, c.section("amata").shape if c.schedule == "amata" else c.method)
                for c in configs if max_k([c], epochs) == top}

    assert costliest(1) == {("constant", "pgd")}  # PGD-10 while Amata is still at K_min = 4
    assert costliest(4) == {("amata", "step")}  # exp is at 15
    assert costliest(5) == {("amata", "step")}
    assert costliest(11) == {("amata", "exp"), ("amata", "step")}
    mplus = branch_configs({"epochs": 30}, search_spaces.get_space("mplus"))
    assert sorted({(c.method, c.loss, max_k([c], 30)) for c in mplus if c.attack_bn == "train"}) == [
        ("free", "ce", 7), ("pgd", "ce", 7), ("pgd", "mart", 10), ("pgd", "trades", 10)]


def test_no_recipe_of_the_space_has_a_costlier_first_level_than_the_probe() -> None:
    # 100 examples, batch 10, T = 10, levels (½ epochs, ½ data) then the full run: level 0 is
    # 5 epochs of 5 batches. Exp with η = 5 gives K = 4, 15, 15, 15, 15, Σ(K + 1) = 69; step with
    # switch 0.2 (the low end of its range) gives 4, 16, 16, 16, 16: 73, the costliest. A probe
    # taking every float at its upper end (switch 0.8) found 69 and under-planned the budget.
    cost = CostModel(train_size=100, batch_size=10, max_batches=0, epochs=10, levels=((0.5, 0.5), (1.0, 1.0)))
    probed = max(cost.level_backprops(c, 0) for c in branch_configs({"epochs": 10}, search_spaces.get_space("amata")))
    assert probed == 73 * 5
    step = parse_config({"epochs": 10, "schedule": "amata", "amata.k_min": 4, "amata.k_max": 16,
                         "amata.shape": "step", "amata.switch": 0.2})
    assert cost.level_backprops(step, 0) == 73 * 5
    assert probed >= cost.level_backprops(step, 0)


# --- what the searched numbers turn into ---------------------------------------------------


class _LowEnds:
    """A stand-in trial for one branch of a define-by-run space with every range at its low end."""

    def __init__(self, path: list[int]) -> None:
        self.path, self.depth, self.params = list(path), 0, {}
        self.branches: list[tuple[int, int]] = []

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        if self.depth == len(self.path):
            self.path.append(0)
            self.branches.append((self.depth, len(choices)))
        self.params[name] = choices[self.path[self.depth]]
        self.depth += 1
        return self.params[name]

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        self.params[name] = low
        return low

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        self.params[name] = low
        return low


@pytest.mark.parametrize("name", sorted(search_spaces.SPACES))
def test_every_corner_of_every_space_is_a_valid_config(name: str) -> None:
    # The spaces promise that whatever they draw is a valid config: both ends of every range, on
    # every branch (upper ends through the budget's probe, lower ends here), e.g. amata.k_min = 1,
    # mplus.gamma = 1.0 (no relaxation), atas.reset_every = 0 (never).
    space = search_spaces.get_space(name)
    assert branch_configs({"epochs": 10}, space)
    stack: list[list[int]] = [[]]
    seen = 0
    while stack:
        probe = _LowEnds(stack.pop())
        constants = space(probe) or {}
        parse_config({"epochs": 10, **search_spaces.strip_search_keys({**probe.params, **constants})})
        seen += 1
        stack.extend(probe.path[:depth] + [i] for depth, n in probe.branches for i in range(1, n))
    assert seen >= 1


def _mplus(epochs: int = 10, **values: Any) -> Any:
    """An M+ schedule of ``values`` driven so that K = 0, 1, 1, 2, 3, 4, 5 in epochs 0..6
    (DEAT Algorithm 1: +1 after epoch 0, threshold set after epoch 1, then l_X rising by 10%)."""
    schedule = make_schedule(parse_config({"schedule": "mplus", "epsilon": 0.1, "epochs": epochs, **values}))
    for t, l_x in enumerate([1.0, 1.0, 1.1, 1.21, 1.331, 1.4641]):
        schedule.observe(t, EpochStats(0.0, l_x))
    return schedule


def test_mplus_alpha_is_the_floor_of_deat_step_rule_for_pgd() -> None:
    # TrustAI/DEAT final code: when K changes, α = max(ε/K, α₀), α₀ the searched `alpha` (else ε/4).
    eps = 0.1
    schedule = make_schedule(parse_config({"method": "pgd", "schedule": "mplus", "epsilon": eps, "alpha": 0.03}))
    # K = 0: no attack step, but the authors' M+ trains on the uniform start x + U(−ε, ε)
    assert schedule.plan(0) == Plan(0, start_at_k0=True)
    ks, alphas = [], []
    for t, l_x in enumerate([1.0, 1.0, 1.1, 1.21, 1.331, 1.4641]):
        schedule.observe(t, EpochStats(0.0, l_x))
        ks.append(schedule.plan(t + 1).k)
        alphas.append(schedule.plan(t + 1).alpha)
    assert ks == [1, 1, 2, 3, 4, 5]
    assert alphas == pytest.approx([eps, eps, eps / 2, eps / 3, 0.03, 0.03])  # ε/4 = 0.025 < 0.03
    unset = _mplus(method="pgd")
    assert (unset.plan(6).k, unset.plan(6).alpha) == (5, pytest.approx(eps / 4))  # max(ε/5, ε/4)
    assert _mplus(method="pgd", alpha=0.03).plan(6).alpha == pytest.approx(0.03)


@pytest.mark.parametrize("values", [{"method": "free", "alpha": 0.03}, {"method": "pgd", "mplus.step_rule": "fixed"}])
def test_mplus_step_rule_leaves_free_and_fixed_alone(values: dict[str, Any]) -> None:
    # Free's replays step α₀ ≥ ε/K anyway; `fixed` keeps the method's own α (the plan says None).
    assert _mplus(**values).plan(6) == Plan(5)


def test_mplus_numbers_from_the_registry() -> None:
    assert MPlus(1.0, epsilon=0.1).plan(0).alpha is None  # the rule needs both ε and a floor
    assert resolved_cap(MPlusConfig(), "a_plugin_loss") == 0  # a loss DEAT never ran: no cap
    # DEAT's relax γ = 1.01 by default; with γ = 1.2 the thresholds 1.2, 1.452 let K rise twice.
    assert _mplus(10).k == 5 and _mplus(10, **{"mplus.gamma": 1.2}).k == 3
    setup = parse_config({"schedule": "mplus", "loss": "trades"}).schedule_setup()
    assert SCHEDULES.get("mplus").describe(setup) == "M+ γ=1.01 K≤10"  # DEAT's relax and cap


# --- what a recipe costs ----------------------------------------------------------------------


@pytest.mark.parametrize(("values", "epochs", "per_batch"), [
    ({"method": "pgd", "k": 10}, 4, 4 * 11),
    ({"method": "pgd", "schedule": "amata"}, 10, 52 + 10),  # K = 2,2,3,4,5,6,6,7,8,9 (2 + ⌊8t/10⌋)
    # eq. 16 with the default η = 1: 2 + ⌊8(1 − e^{−t})/(1 − e^{−10})⌋ = 2, 7, 8, 9, 9, ..., 9
    ({"method": "pgd", "schedule": "amata", "amata.shape": "exp"}, 10, 80 + 10),
    ({"method": "free", "schedule": "mplus"}, 10, 42 + 10),  # K_t ≤ min(t, 7): 0..7, 7, 7
    ({"method": "free", "schedule": "mplus"}, 30, 28 + 22 * 7 + 30),  # 0..7, then 22 epochs at the cap 7
    ({"method": "pgd", "loss": "trades", "schedule": "mplus"}, 30, 55 + 19 * 10 + 30),  # 0..10, then 19 at 10
    ({"method": "pgd", "schedule": "deat_acc"}, 6, 15 + 6),  # K_t ≤ t: 0..5
    ({"method": "free", "schedule": "deat_every"}, 10, 12 + 10),  # DEAT Table 2: 22 M
])
def test_run_backprops_by_hand(values: dict[str, Any], epochs: int, per_batch: int) -> None:
    cfg = parse_config({**values, "epochs": epochs})
    assert run_backprops(cfg, 7) == 7 * per_batch


def _cost() -> CostModel:
    # 100 examples, batch 10, T = 10: level 0 = 5 epochs on 50 examples (5 batches), then the full run.
    return CostModel(train_size=100, batch_size=10, max_batches=0, epochs=10, levels=((0.5, 0.5), (1.0, 1.0)),
                     base=(("epochs", 10), ("batch_size", 10)))


def test_cost_model_levels_by_hand() -> None:
    cost = _cost()
    assert (cost.level_epochs(0), cost.level_batches(0)) == (5, 5)
    assert (cost.level_epochs(1), cost.level_batches(1)) == (10, 10)
    assert cost.reference_backprops == 11 * 10 * 10  # PGD-10 on the full run
    pgd = {"method": "pgd", "k": 10, f"{TRIAL_PREFIX}family": "baselines"}  # trial.* keys are ignored
    assert [cost.level_backprops(pgd, level) for level in (0, 1)] == [11 * 5 * 5, 11 * 10 * 10]
    assert cost.trial_backprops(pgd) == 275 + 1100 and cost.trial_backprops(pgd, start=1) == 1100
    # Amata re-plans over the level's 5 epochs: K = 2 + ⌊8t/5⌋ = 2, 3, 5, 6, 8.
    amata = {"method": "pgd", "schedule": "amata"}
    assert cost.level_backprops(amata, 0) == (3 + 4 + 6 + 7 + 9) * 5
    capped = CostModel(train_size=100, batch_size=10, max_batches=3, epochs=10, levels=((0.34, 0.05), (1.0, 1.0)))
    assert (capped.level_epochs(0), capped.level_batches(0), capped.level_batches(1)) == (3, 1, 3)
    tiny = CostModel(train_size=100, batch_size=1, max_batches=0, epochs=10, levels=((0.5, 0.001), (1.0, 1.0)))
    assert tiny.level_batches(0) == 1  # ⌈0.1⌉ = 1 example: never an empty level


# --- the budget ---------------------------------------------------------------------------------


def test_budget_limit_in_backprops_and_seconds() -> None:
    cost = _cost()
    assert Budget(cost, 0, limit=5000).limit_backprops(1000, 10) == 5000
    # 60 s at the measured 1000 backprops / 10 s is 6000 backprops; the smaller limit wins.
    assert Budget(cost, 0, seconds=60).limit_backprops(1000, 10) == pytest.approx(6000)
    assert Budget(cost, 0, limit=5000, seconds=60).limit_backprops(1000, 10) == 5000
    assert Budget(cost, 0, limit=7000, seconds=60).limit_backprops(1000, 10) == pytest.approx(6000)
    # Nothing measured yet: no rate, so the seconds budget does not limit.
    assert Budget(cost, 0, seconds=60).limit_backprops(0, 0) == math.inf
    assert Budget(cost, 0, seconds=60).limit_backprops(0, 5) == math.inf
    assert Budget(cost, 0, seconds=60).limit_backprops(1000, 0) == math.inf
    assert Budget(cost, 0, seconds=60).limit_backprops(1, 0.5) == pytest.approx(120)  # any positive rate counts
    assert Budget(cost, 0).limit_backprops(1e9, 1e6) == math.inf


def test_budget_fits_up_to_and_including_the_limit() -> None:
    budget = Budget(_cost(), 0, limit=1000)
    assert budget.fits(600, 0, 300, 100) and not budget.fits(600, 0, 300, 101)
    assert not budget.fits(601, 0, 300, 100) and not budget.fits(600, 0, 301, 100)
    assert Budget(_cost(), 0, seconds=10).fits(500, 5, 400, 100)  # limit 1000 at 100 backprops / s
    assert not Budget(_cost(), 0, seconds=10).fits(500, 5, 400, 101)


def test_sequential_search_never_spends_more_than_the_budget() -> None:
    # A trial starts when spent + the costliest first level (PGD-10's 275) fits; it goes on to
    # the full run only when that fits too. PGD-K costs 25·(K + 1) then 100·(K + 1).
    cost = _cost()
    budget = Budget(cost, limit=4000, first_level=cost.level_backprops({"method": "pgd", "k": 10}, 0))
    spent, started, finished = 0.0, 0, 0
    for k in [10, 1, 5, 3, 10, 2, 7, 1, 1, 4]:
        config = {"method": "pgd", "k": k}
        if not budget.fits(spent, 0, 0, budget.first_level):
            break
        started += 1
        spent += cost.level_backprops(config, 0)
        if budget.fits(spent, 0, 0, cost.level_backprops(config, 1)):
            spent += cost.level_backprops(config, 1)
            finished += 1
    # 1375, 1625, 2375, 2875; PGD-10 stops after level 0 (3150 + 1100 > 4000); 3525; PGD-7
    # stops at 3725; PGD-1 starts because 3725 + 275 = 4000 fits exactly, ends at 3975; then over.
    assert (started, finished, spent) == (8, 6, 3975)
    assert spent <= budget.limit


def _ledger(budget: dict[str, float]) -> tuple[TrialScheduler, dict[str, Any], _Controller]:
    """KeepBudget over five trials; 100 examples, batch 10, T = 2 and three levels (1 epoch on
    half the data: 5 batches; 1 epoch: 10; the full 2-epoch run: 20), so PGD-K costs
    (K + 1)·(5, 10, 20) backprops. ``a`` (PGD-1) has just ended level 0 (spent 10, 1 s) and asks
    for level 1 (20); ``b`` (PGD-3, running) ended level 0 (20, 3 s): committed to 40 + 80;
    ``c`` (PGD-1, pending, no result yet): committed to 10 + 20 + 40; ``d`` (the PGD-10 paper
    default, pending): only its full run, 220; ``e`` (PGD-3, terminated): spent 140 in 6 s.
    Spent 170 in 10 s, committed 410: a's next level fits when the budget is 600 backprops."""
    cost = CostModel(train_size=100, batch_size=10, max_batches=0, epochs=2,
                     levels=((0.5, 0.5), (0.5, 1.0), (1.0, 1.0)), base=(("epochs", 2), ("batch_size", 10)))
    scheduler = make_scheduler(SearchConfig(scheduler="none", time_attr="fidelity"), epochs=2, max_t=999,
                               levels=3, budget=Budget(cost, 0, **budget))
    trials = {
        "a": _trial("a", method="pgd", k=1), "b": _trial("b", method="pgd", k=3),
        "c": _trial("c", status="PENDING", method="pgd", k=1),
        "d": _trial("d", warm_start=True, status="PENDING", method="pgd", k=10),
        "e": _trial("e", status="TERMINATED", method="pgd", k=3),
    }
    trials["a"].last_result = {"level": 0, "level_end": True, "trial_backprops": 10, "trial_train_seconds": 1.0}
    trials["b"].last_result = {"level": 0, "level_end": True, "trial_backprops": 20, "trial_train_seconds": 3.0}
    trials["e"].last_result = {"level": 2, "level_end": True, "trial_backprops": 140, "trial_train_seconds": 6.0}
    return scheduler, trials, _Controller(list(trials.values()))


def _level_0_end() -> dict[str, Any]:
    return {"level": 0, "level_end": True, "full_fidelity": False, "objective": 0.5}


@pytest.mark.parametrize(("budget", "decision"), [
    ({"limit": 600}, CONTINUE), ({"limit": 599}, STOP),
    # 36 s at the measured 170 backprops / 10 s is 612 backprops; 35 s is 595.
    ({"seconds": 36}, CONTINUE), ({"seconds": 35}, STOP),
])
def test_keep_budget_counts_what_is_spent_and_what_trials_are_committed_to(
        budget: dict[str, float], decision: str) -> None:
    scheduler, trials, controller = _ledger(budget)
    assert isinstance(scheduler, KeepBudget) and isinstance(_asha(scheduler), FIFOScheduler)
    assert scheduler.on_trial_result(controller, trials["a"], _level_0_end()) == decision
    no_level = {k: v for k, v in _level_0_end().items() if k != "level"}  # read as level 0
    assert scheduler.on_trial_result(controller, trials["a"], no_level) == decision


def test_keep_budget_stops_only_at_a_level_end_below_the_full_run_and_never_a_default() -> None:
    scheduler, trials, controller = _ledger({"limit": 1})
    a = trials["a"]
    assert scheduler.on_trial_result(controller, a, _level_0_end()) == STOP
    assert scheduler.on_trial_result(controller, a, {**_level_0_end(), "level_end": False}) == CONTINUE
    full_run = {"level": 2, "level_end": True, "full_fidelity": True, "objective": 0.5}
    assert scheduler.on_trial_result(controller, a, full_run) == CONTINUE
    a.config[f"{TRIAL_PREFIX}warm_start"] = "PGD-10"
    assert scheduler.on_trial_result(controller, a, _level_0_end()) == CONTINUE


def test_cost_model_and_budget_are_immutable() -> None:
    budget = Budget(_cost(), 0, limit=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.limit = 20  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.cost.epochs = 20  # type: ignore[misc]
