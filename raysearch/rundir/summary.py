"""``search_summary.json``: what a search cost and how it ended, one small file per run directory.

Written when a search starts (``state: running``), rewritten when it ends (``finished`` or
``interrupted``) and after confirmation. Contract keys (SPEC §9): ``trials``,
``search_backprops`` (every trial of the search, all fidelity levels, not counting
confirmation), ``confirm_backprops``, ``reference_backprops`` (one reference run: PGD-10 for
the experiment's epochs and data) and ``search_cost_runs`` (= search_backprops /
reference_backprops). Beside them: the same costs in seconds, the budget and what was spent of
it, the paper defaults reused from earlier runs, the statuses and the headline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SUMMARY_FILE = "search_summary.json"


def read_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's summary ({} when there is none or it cannot be read)."""
    path = Path(run_dir, SUMMARY_FILE)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_summary(run_dir: str | os.PathLike[str], updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the run's summary and write it atomically (a full disk leaves
    the previous file intact); returns the merged summary."""
    path = Path(run_dir, SUMMARY_FILE)
    summary = {**read_summary(run_dir), **updates}
    reference = summary.get("reference_backprops")
    if reference:
        for key in ("search", "confirm"):
            if summary.get(f"{key}_backprops") is not None:
                summary[f"{key}_cost_runs"] = round(summary[f"{key}_backprops"] / reference, 4)
    if summary.get("search_cost_runs") is not None:
        summary["total_cost_runs"] = round(summary["search_cost_runs"] + (summary.get("confirm_cost_runs") or 0.0), 4)
        ratio = summary.get("chosen_cost_ratio")
        saved = 1.0 - ratio if isinstance(ratio, (int, float)) else 0.0
        summary["payback_trainings"] = round(summary["total_cost_runs"] / saved, 2) if saved > 0 else None
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=False, default=str))
        os.replace(tmp, path)
    except OSError as err:
        from raysearch.rundir.storage import StorageError

        raise StorageError.of(str(path), err, "writing") from None
    return summary


__all__ = ["SUMMARY_FILE", "read_summary", "write_summary"]
