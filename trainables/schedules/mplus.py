"""``mplus``: M+, gradient-magnitude guided adversarial training (DEAT Algorithm 1).

K = 0 in epoch 1; after epoch 1, K = 1; after epoch 2 the threshold is initialized to γ·l_X;
after each later epoch, if l_X > threshold then threshold ← γ·l_X and K ← K + 1. l_X is the
epoch's sum over batches of ‖∇x ℓ(x + δ)‖₁; γ > 1 relaxes the threshold.

Where Algorithm 1 is silent, the defaults follow the authors' final code
(``TrustAI/DEAT``, ``standard training/m*_cifar10.py``):

- ``grad_source: final``: l_X from the gradient of the *training* loss at the final δ (the
  paper's box and the 2021 code read the last attack step: ``last_step``). For M+DEAT the two
  are the same tensor.
- ``k_max`` unset: K is capped at 7 with cross-entropy (``--max-iteration`` 8 replays for
  M+DEAT, 7 steps for M+PGD) and 10 with TRADES / MART (``--num-steps 10``); 0: no cap.
- ``start_at_k0: true``: the first epoch (K = 0) trains on x + δ₀, the method's attack start
  (U(−ε, ε)), as both ``mdeat_cifar10.py`` and ``mpgd_cifar10.py`` draw it before their
  replay/attack loops even at K = 0; ``false``: on the clean input, as Algorithm 2 reads.
- ``grad_weight: std``: l_X weights |∇x ℓ| per channel by the dataset's std
  (``grad_mag += torch.sum(grad.abs() * std)``: the gradient at the normalized input, which
  the authors' model sees); ``none``: unweighted.
- ``step_rule: deat``: when K changes, α = max(ε/K, α₀), α₀ the configured ``alpha`` or ε/4
  (2/255 at 8/255). With DEAT's replay step 10/255 this is always 10/255; for M+PGD it is
  ε/K down to 2/255. (The released M+PGD/TRADES/MART crash or ignore the rule at K = 5, see
  the README; raysearch implements the rule as intended.) ``fixed``: the method's own α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from trainables.plan import Plan
from trainables.registry import ConfigError, did_you_mean
from trainables.schedules.base import EpochStats, Schedule, ScheduleSetup, ScheduleSpec

K_CAP = {"ce": 7, "trades": 10, "mart": 10}  # DEAT's caps per outer loss
GRAD_SOURCES, STEP_RULES, GRAD_WEIGHTS = ("final", "last_step"), ("deat", "fixed"), ("std", "none")


@dataclass(frozen=True)
class MPlusConfig:
    """M+ (DEAT Algorithm 1): relax ``gamma`` ≥ 1, a cap ``k_max`` (unset: DEAT's; 0: none),
    where l_X is read (``grad_source``) and how it is weighted (``grad_weight``), how α follows
    K (``step_rule``), and whether the K = 0 epoch trains on the attack's start (``start_at_k0``)."""

    gamma: float = 1.01
    k_max: int | None = None
    grad_source: str = "final"
    step_rule: str = "deat"
    grad_weight: str = "std"
    start_at_k0: bool = True

    def __post_init__(self) -> None:
        if self.gamma < 1.0:
            raise ConfigError("mplus.gamma", self.gamma, "must be >= 1 (the paper's relax parameter)")
        if self.k_max is not None and self.k_max < 0:
            raise ConfigError("mplus.k_max", self.k_max, "must be >= 0 (0: no cap; unset: DEAT's cap)")
        for key, value, choices in (("grad_source", self.grad_source, GRAD_SOURCES),
                                    ("step_rule", self.step_rule, STEP_RULES),
                                    ("grad_weight", self.grad_weight, GRAD_WEIGHTS)):
            if value not in choices:
                raise ConfigError(f"mplus.{key}", value, f"choose one of {', '.join(choices)}",
                                  did_you_mean(value, choices))


class MPlus(Schedule):
    def __init__(self, gamma: float, k_max: int = 0, grad_source: str = "final",
                 epsilon: float | None = None, alpha_floor: float | None = None, *,
                 grad_weight: str = "none", start_at_k0: bool = False) -> None:
        """``epsilon`` and ``alpha_floor`` set: α = max(ε/K, floor) (DEAT's step rule)."""
        self.gamma, self.k_max, self.grad_source = gamma, k_max, grad_source
        self.epsilon, self.alpha_floor = epsilon, alpha_floor
        self.grad_weight: str | None = None if grad_weight == "none" else grad_weight
        self.start_at_k0 = start_at_k0
        self.k = 0
        self.threshold = math.inf

    def plan(self, epoch: int) -> Plan:
        if self.k == 0:
            return Plan(0, start_at_k0=self.start_at_k0)
        if self.epsilon is None or self.alpha_floor is None:
            return Plan(self.k)
        return Plan(self.k, max(self.epsilon / self.k, self.alpha_floor))

    def max_k(self, epochs: int) -> int:
        most = epochs - 1  # K = 0 in epoch 1, then at most one more per epoch
        return min(most, self.k_max) if self.k_max else most

    def observe(self, epoch: int, stats: EpochStats) -> None:
        l_x = stats.grad_magnitude
        if epoch == 0:  # Algorithm 1, t = 1
            self.k += 1
        elif epoch == 1:  # t = 2: initialise the threshold
            self.threshold = self.gamma * l_x
        elif l_x > self.threshold:
            self.threshold = self.gamma * l_x
            self.k += 1
        if self.k_max:
            self.k = min(self.k, self.k_max)

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k, "threshold": self.threshold}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.k, self.threshold = int(state["k"]), float(state["threshold"])


def resolved_cap(options: MPlusConfig, loss: str) -> int:
    return options.k_max if options.k_max is not None else K_CAP.get(loss, 0)


def _build(s: ScheduleSetup) -> MPlus:
    o: MPlusConfig = s.options
    deat = o.step_rule == "deat" and not s.joint_gradient  # Free: α₀ ≥ ε/K, the rule never moves it
    floor = s.alpha if s.alpha is not None else s.epsilon / 4
    return MPlus(o.gamma, resolved_cap(o, s.loss), o.grad_source,
                 s.epsilon if deat else None, floor if deat else None,
                 grad_weight=o.grad_weight, start_at_k0=o.start_at_k0)


def _describe(s: ScheduleSetup) -> str:
    cap = resolved_cap(s.options, s.loss)
    return f"M+ γ={s.options.gamma:.3g}" + (f" K≤{cap}" if cap else "")


MPLUS_SPEC = ScheduleSpec(build=_build, describe=_describe, options=MPlusConfig, reads_grad_norms=True,
                          source="Wang et al., DEAT Algorithm 1; TrustAI/DEAT standard training/m*_cifar10.py")
