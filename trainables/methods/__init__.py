"""Inner-maximization methods (contract names): ``pgd``, ``fgsm_rs``, ``free``, ``atta``, ``atas``.

``METHODS`` is the one source of truth: each entry (:class:`MethodSpec`) carries the method's
builder, options section, default K and step size, the batch-norm mode and start of its
authors' code, and its report label. Adding a method = one file with its class and spec +
one line here; config validation, search spaces and reports pick it up.
"""

from __future__ import annotations

from trainables.methods.atas import (
    ATAS,
    ATAS_SPEC,
    AtasConfig,
    atas_step_size,
    update_second_moment,
)
from trainables.methods.atta import ATTA, ATTA_SPEC, AttaConfig
from trainables.methods.base import (
    BatchStats,
    Method,
    MethodSetup,
    MethodSpec,
    StepContext,
)
from trainables.methods.free import FREE_SPEC, Free, FreeConfig
from trainables.methods.memory import PerturbationMemory
from trainables.methods.outer_losses import LOSSES, LossSpec, OuterLoss, build_loss
from trainables.methods.pgd_at import FGSM_RS_SPEC, PGD, PGD_SPEC
from trainables.plan import Plan
from trainables.registry import Registry

METHODS: Registry[MethodSpec] = Registry("method", {
    "pgd": PGD_SPEC,
    "fgsm_rs": FGSM_RS_SPEC,
    "free": FREE_SPEC,
    "atta": ATTA_SPEC,
    "atas": ATAS_SPEC,
})


def build_method(name: str, setup: MethodSetup) -> Method:
    """Method ``name`` built from ``setup`` (see :class:`MethodSetup`)."""
    return METHODS.get(name).build(setup)


def default_alpha(method: str, k: int, epsilon: float, loss: str = "ce") -> float:
    """The step size ``method`` uses at K = ``k`` with outer loss ``loss`` when neither schedule
    nor config sets one (the loss's authors' step where the method takes it)."""
    spec, loss_alpha = METHODS.get(method), LOSSES.get(loss).default_alpha
    return (loss_alpha if spec.loss_step and loss_alpha else spec.default_alpha)(k, epsilon)


__all__ = [
    "ATAS", "ATTA", "LOSSES", "METHODS", "PGD", "AtasConfig", "AttaConfig", "BatchStats", "Free", "FreeConfig",
    "LossSpec", "Method", "MethodSetup", "MethodSpec", "OuterLoss", "PerturbationMemory", "Plan", "StepContext",
    "atas_step_size", "build_loss", "build_method", "default_alpha", "update_second_moment",
]
