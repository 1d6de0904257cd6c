"""What a trial's process knows before it trains: its config split into training keys and the
search's ``trial.*`` controls, the :class:`TrialSetup` every trial of a search shares, the
plug-ins to register, and the device and memory cap its Ray resources give it.

Used by the Tune trainables (one process) and by Ray Train's workers alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

TRIAL_PREFIX = "trial."
CUDA_RESERVE_BYTES = 768 * 1024**2  # CUDA context and library workspaces, outside the allocator's cap


def split_trial_config(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training keys, the search's ``trial.*`` controls without the prefix) of a Tune config."""
    train = {k: v for k, v in config.items() if not k.startswith(TRIAL_PREFIX)}
    controls = {k[len(TRIAL_PREFIX):]: v for k, v in config.items() if k.startswith(TRIAL_PREFIX)}
    return train, controls


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a search shares (handed over with ``tune.with_parameters``).

    ``levels``: (fraction of the epochs, fraction of the training data) per fidelity level,
    the full run last; ``reduction_factor``: ASHA's η, whose powers are the levels' values of
    the ``fidelity`` time attribute; ``plugins``: (kind, name, object) entries to register in
    the trial's process (a model or dataset callable given to the Python API);
    ``workers``: Ray Train workers per trial (:mod:`trainables.distributed.workers`), which share
    the trial's ``cpus_per_trial`` and ``gpus_per_trial`` and keep their Ray Train runs in
    ``train_storage``.
    """

    gpus_per_trial: float = 0.0
    workers: int = 1
    levels: tuple[tuple[float, float], ...] = ((1.0, 1.0),)
    reduction_factor: float = 3.0
    plugins: tuple[tuple[str, str, Any], ...] = ()
    cpus_per_trial: float = 1.0
    train_storage: str | None = None  # where a multi-worker trial's Ray Train runs live (<run dir>/train)


def plugin_reference(kind: str, value: Any) -> tuple[str, tuple[tuple[str, str, Any], ...]]:
    """A model or dataset given to the Python API as a callable: (its config value, plug-ins to
    register). Its import path when every process can import it; else a name registered in
    each trial's process (the object travels with the trial's setup)."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if module and qualname and module != "__main__" and "<" not in qualname:
        return f"{module}:{qualname}", ()
    name = f"{kind}:{qualname or id(value)}"
    return name, ((kind, name, value),)


def plugin_overrides(model: Any, dataset: Any) -> tuple[list[str], tuple[tuple[str, str, Any], ...]]:
    """The API's own model and dataset as ``--set`` overrides (``model=…``, ``dataset=…``) and
    the plug-ins to register for the callables among them (:func:`plugin_reference`)."""
    extra: list[str] = []
    plugins: tuple[tuple[str, str, Any], ...] = ()
    for kind, value in (("model", model), ("dataset", dataset)):
        if value is None:
            continue
        if callable(value):
            value, registered = plugin_reference(kind, value)
            plugins += registered
        extra.append(f"{kind}={value}")
    return extra, plugins


def enter_trial(config: dict[str, Any], setup: TrialSetup | None) -> tuple[TrialSetup, dict[str, Any], dict[str, Any]]:
    """What every trial function does first: its setup (default: one CPU process), the API's
    plug-ins registered in this process, and the config split into training keys and controls."""
    setup = setup or TrialSetup()
    register_plugins(setup.plugins)
    train_keys, controls = split_trial_config(config)
    return setup, train_keys, controls


def register_plugins(plugins: tuple[tuple[str, str, Any], ...]) -> None:
    """Put the API's plug-in objects into this process's registries."""
    if not plugins:
        return
    from trainables.data.datasets import DATASETS, plugin_dataset
    from trainables.models import MODELS, plugin_model

    for kind, name, obj in plugins:
        if kind == "model":
            MODELS[name] = plugin_model(name, obj)
        elif kind == "dataset":
            DATASETS[name] = plugin_dataset(name, obj)


def apply_resources(setup: TrialSetup) -> torch.device | None:
    """This trial's device and memory cap, from what it asked Ray for.

    A trial that asked for no GPU trains on the CPU even on a GPU node (Ray 2.60 no longer
    hides the GPUs from it). With a fractional GPU the CUDA allocator is capped to the share
    minus the CUDA context, which the cap does not cover, so a neighbour on the same GPU
    cannot be pushed out of memory. Returns the device to use (None: the config's own).
    """
    gpus = float(setup.gpus_per_trial or 0)
    if gpus <= 0:
        return torch.device("cpu")
    if 0 < gpus < 1 and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(max(0.01, gpus - CUDA_RESERVE_BYTES / total))
    return None


__all__ = ["CUDA_RESERVE_BYTES", "TRIAL_PREFIX", "TrialSetup", "apply_resources", "enter_trial", "plugin_reference",
           "register_plugins", "split_trial_config"]
