"""raysearch: search efficient adversarial-training recipes with Ray Tune, Optuna and ASHA.

Every command is a function returning a result object: :func:`train`, :func:`search`,
:func:`confirm`, :func:`report`, :func:`evaluate`, :func:`bench`. Importing the package is
cheap: each command's module (and torch, Ray and Optuna) is imported on first use.

Example::

    >>> import raysearch
    >>> result = raysearch.train("demo", ["epochs=1"], progress=False)  # doctest: +SKIP
    >>> result.summary["robust_acc"]  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from raysearch._version import __version__

_COMMANDS = {"train": "train", "search": "search", "confirm": "confirm", "report": "report",
             "evaluate": "evaluate", "bench": "bench"}


def __getattr__(name: str) -> Any:
    if name in _COMMANDS:
        import importlib

        module = importlib.import_module(f"raysearch.commands.{_COMMANDS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'raysearch' has no attribute {name!r}")


__all__ = ["__version__", "bench", "confirm", "evaluate", "report", "search", "train"]
