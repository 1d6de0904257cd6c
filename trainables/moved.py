"""0.2's module paths, for one release: ``trainables.engine`` and the other modules that moved
into rooms still import, as the module they became.

Tune pickles a trial's function by its module path into the run directory, and a 0.2 run's
``experiment.yaml`` names its trainable by path: both must resume after the move. Each old
path is one entry of :data:`MOVED`; importing it warns once and hands back the new module
itself, so objects and monkeypatches are shared, not copied."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

MOVED: dict[str, str] = {  # 0.2's path -> where the module lives now
    "trainables.trainable": "trainables.tune.functions",
    "trainables.population": "trainables.tune.pbt_member",
    "trainables.train_workers": "trainables.distributed.workers",
    "trainables.data_parallel": "trainables.distributed.data_parallel",
    "trainables.trial": "trainables.trials.setup",
    "trainables.levels": "trainables.trials.fidelity",
    "trainables.tune_report": "trainables.trials.report",
    "trainables.faults": "trainables.trials.faults",
    "trainables.engine": "trainables.training.engine",
    "trainables.parts": "trainables.training.run_parts",
    "trainables.compiled": "trainables.training.attack_forward",
    "trainables.cost": "trainables.training.cost",
    "trainables.checkpoint": "trainables.training.checkpoint",
    "trainables.memory_estimate": "trainables.training.memory_estimate",
    "trainables.objective": "trainables.evaluation.scoring",
    "trainables.methods.pgd": "trainables.methods.pgd_at",
    "trainables.methods.losses": "trainables.methods.outer_losses",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        warnings.warn(f"{spec.name} moved to {self.new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system has just set the alias's spec on the real module: give it back its own.
        module.__spec__ = self.spec


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(name, _Alias(MOVED[name]))


def current(reference: str) -> str:
    """A ``module:attribute`` reference with a 0.2 module path written as where it lives now."""
    module, colon, attribute = reference.partition(":")
    return f"{MOVED.get(module, module)}{colon}{attribute}"


def install() -> None:
    """Let 0.2's module paths import (once per process)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())  # before any finder that could see a stale copy


__all__ = ["MOVED", "current", "install"]
