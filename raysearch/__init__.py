"""raysearch: search efficient adversarial-training recipes with Ray Tune, Optuna and ASHA.

Every command is a function returning a result object: :func:`train`, :func:`search`,
:func:`report`, :func:`evaluate`, :func:`bench`. Importing the package is cheap: the command modules import
torch, Ray and Optuna inside their functions.

The functions are imported eagerly on purpose: a lazy wrapper named like its submodule is
replaced by the module object as soon as the submodule is imported.
"""

from __future__ import annotations

__version__ = "0.1.0"

from raysearch.bench import bench  # noqa: E402
from raysearch.evaluate import evaluate  # noqa: E402
from raysearch.report import report  # noqa: E402
from raysearch.search import search  # noqa: E402
from raysearch.train import train  # noqa: E402

__all__ = ["__version__", "bench", "evaluate", "report", "search", "train"]
