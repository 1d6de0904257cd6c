"""``raysearch bench --smoke``: every GPU path once, in a few minutes, with its key figures.

The parts and their runner live in :mod:`raysearch.benchmarks.smoke`; this command runs them
and, asked for JSON, prints their figures as one object on the last line.
"""

from __future__ import annotations

import json
from typing import Any

from raysearch.benchmarks.smoke import PARTS, RUNNERS
from raysearch.benchmarks.smoke import smoke as run_smoke


def smoke(parts: tuple[str, ...] = PARTS, device: str | None = None, json_output: bool = False) -> dict[str, Any]:
    """Run the smoke ``parts`` on ``device`` (default: CUDA when there is one); their figures."""
    figures = run_smoke(parts, device)
    if json_output:
        print(json.dumps(figures, default=str), flush=True)
    return figures


__all__ = ["PARTS", "RUNNERS", "smoke"]
