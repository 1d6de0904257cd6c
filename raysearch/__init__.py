"""raysearch: search efficient adversarial-training recipes with Ray Tune, Optuna and ASHA.

Every command is a function returning a result object (``raysearch.search(...)``). Nothing
heavy is imported here: Ray, Optuna and torch load when a function is first called.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["search", "train"]


def search(*args: Any, **kwargs: Any) -> Any:
    """Run a search; see :func:`raysearch.search.search`."""
    from raysearch.search import search as _search

    return _search(*args, **kwargs)


def train(*args: Any, **kwargs: Any) -> Any:
    """Run one adversarial training; see :func:`raysearch.train.train`."""
    from raysearch.train import train as _train

    return _train(*args, **kwargs)
