"""Per-trial resource requests, checked against what the machine or cluster has.

``gpus_per_trial`` may be a fraction (0.25: four trials share one GPU; each trial caps its
own CUDA memory to its share, reading ``search.gpus_per_trial`` from its config) or a whole
number above 1 (one trial spans several GPUs with DDP). On a machine without GPUs a request
for GPUs is dropped so that the same experiment file runs on a laptop: trials get CPUs
only. Asking for more GPUs or CPUs per trial than the cluster has is a ConfigError, raised
before any trial starts (Ray would otherwise wait forever for resources that never come).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

from trainables.registry import ConfigError


def local_resources() -> dict[str, float]:
    """CPUs and GPUs of this machine, found without starting Ray."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus = 0
    try:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA install means no usable GPU, not a failed search
        gpus = 0
    return {"CPU": float(cpus), "GPU": float(gpus)}


# Every task and actor of a raysearch job: one that asked for no GPU gets CUDA_VISIBLE_DEVICES=""
# (Ray 2.60 otherwise leaves the variable alone, and a CPU trial on a GPU node sees every GPU).
RAY_RUNTIME_ENV = {"env_vars": {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1"}}


def init_ray(address: str | None = None, available: Mapping[str, float] | None = None) -> None:
    """Start Ray for a raysearch job: a local instance with ``available`` CPUs and GPUs (this
    machine's by default), or join the cluster at ``address`` (else ``$RAY_ADDRESS``); quiet, without a
    dashboard."""
    import logging

    import ray

    if ray.is_initialized():
        return
    common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                              "runtime_env": RAY_RUNTIME_ENV}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        ray.init(address=address, **common)
        return
    have = available or local_resources()
    # A local instance raysearch starts for itself: Ray's notice that it enabled token
    # authentication is about Ray's defaults, not this run, and would be the first line printed.
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = notice.level
    notice.setLevel(logging.ERROR)
    try:
        # "local": a new instance even when another one runs on this machine (a `ray start`, a
        # crashed job's leftovers); Ray's default would join that one and then refuse num_cpus.
        ray.init(address="local", num_cpus=int(have["CPU"]), num_gpus=int(have["GPU"]), **common)
    finally:
        notice.setLevel(level)


@contextlib.contextmanager
def ray_session(address: str | None = None, available: Mapping[str, float] | None = None) -> Iterator[None]:
    """:func:`init_ray` for the ``with`` block; Ray is shut down after it when the block started
    it (a caller's own Ray session stays up)."""
    import ray

    started = not ray.is_initialized()
    init_ray(address, available)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def trial_resources(cpus_per_trial: float, gpus_per_trial: float | None,
                    available: Mapping[str, float]) -> dict[str, float]:
    """The ``tune.with_resources`` request for one trial: ``{"cpu": c, "gpu": g}``.

    ``gpus_per_trial`` None means one GPU per trial where there are GPUs and none otherwise.
    ``available`` maps "CPU"/"GPU" to the cluster's totals (``ray.cluster_resources()``).
    """
    if isinstance(cpus_per_trial, bool) or not cpus_per_trial > 0:
        raise ConfigError("cpus_per_trial", cpus_per_trial, "must be > 0")
    have_cpus = float(available.get("CPU", 0))
    have_gpus = float(available.get("GPU", 0))
    if cpus_per_trial > have_cpus:
        raise ConfigError("cpus_per_trial", cpus_per_trial, f"more CPUs per trial than the cluster has ({have_cpus:g})")
    if gpus_per_trial is None:
        gpus = 1.0 if have_gpus >= 1 else 0.0
    else:
        gpus = float(gpus_per_trial)
        if isinstance(gpus_per_trial, bool) or not math.isfinite(gpus) or gpus < 0:
            raise ConfigError("gpus_per_trial", gpus_per_trial, "must be >= 0")
        if gpus > 1 and not gpus.is_integer():
            raise ConfigError("gpus_per_trial", gpus_per_trial,
                              "above 1 must be a whole number of GPUs (fractions up to 1 share a GPU)")
        if have_gpus == 0:
            gpus = 0.0  # CPU-only machine: run the same experiment on CPUs
        elif gpus > have_gpus:
            raise ConfigError("gpus_per_trial", gpus_per_trial,
                              f"more GPUs per trial than the cluster has ({have_gpus:g})")
    request = {"cpu": float(cpus_per_trial)}
    if gpus > 0:
        request["gpu"] = gpus
    return request


def check_trial_device(device: str, request: Mapping[str, float]) -> None:
    """A search's trials train on the CUDA GPUs Ray gives each of them (numbered from
    ``cuda:0`` inside the trial) or, with none, on CPUs: a ``device`` naming a GPU the
    trials will not get is bad input, before any trial starts (not a crash in every trial,
    nor a silent CPU run)."""
    if device in ("auto", "cpu"):
        return
    gpus = request.get("gpu", 0.0)
    if device == "mps":
        raise ConfigError("device", device, "a search's trials train on the CUDA GPUs Ray gives them or on "
                                            "CPUs; use auto, cpu or cuda (mps is for raysearch train)")
    index = int(device.partition(":")[2] or 0)
    if gpus == 0:
        raise ConfigError("device", device, "the trials get no GPU (none on this machine or cluster, or "
                                            "gpus_per_trial is 0); use auto or cpu")
    if index >= math.ceil(gpus):
        raise ConfigError("device", device, f"each trial sees only the {math.ceil(gpus)} GPU(s) Ray gives it, "
                                            "numbered from cuda:0; use auto or cuda")


def concurrent_slots(request: Mapping[str, float], available: Mapping[str, float],
                     max_concurrent: int | None = None) -> int:
    """How many trials with ``request`` fit at once (the denominator of search overhead)."""
    slots = math.floor(float(available.get("CPU", 0)) / request["cpu"] + 1e-9)
    if request.get("gpu"):
        slots = min(slots, math.floor(float(available.get("GPU", 0)) / request["gpu"] + 1e-9))
    if max_concurrent:
        slots = min(slots, max_concurrent)
    return max(1, slots)
