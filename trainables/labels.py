"""Short human names for recipes, from the registries (every report and TensorBoard run uses them).

Each registry entry labels its own part: the method (``label``, plus its options'
``describe``), the outer loss and the schedule (``describe``), so a method or schedule
added through the registry alone is labelled correctly.

Example::

    >>> from trainables.labels import describe
    >>> describe({"method": "free", "schedule": "amata", "amata.k_max": 7, "amata.shape": "cosine"})
    'Free, amata 2→7 cosine'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainables.config import parse_config
from trainables.registry import ConfigError

REFERENCE_LABEL = "PGD-10"  # the reference recipe's warm-start label: costs are counted in its runs


def describe(config: Mapping[str, Any]) -> str:
    """A short label for the recipe of ``config`` (flat or nested training keys)."""
    try:
        cfg = parse_config(config)
    except ConfigError:
        return str(config.get("method", "?"))
    method = cfg.method_spec
    parts = [method.label if cfg.loss == "ce" else f"{method.label}+{cfg.loss_spec.label}"]
    parts.append(cfg.schedule_spec.describe(cfg.schedule_setup()))
    if method.describe is not None and cfg.section(cfg.method) is not None:
        extra = method.describe(cfg.section(cfg.method), cfg.epsilon)
        if extra:
            parts.append(extra)
    if cfg.alpha is not None:
        parts.append(f"α={cfg.alpha / cfg.epsilon:.2f}ε")
    return ", ".join(parts)


__all__ = ["describe"]
