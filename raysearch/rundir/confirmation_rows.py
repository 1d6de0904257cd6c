"""``confirmation.csv``: one row per recipe and seed of the confirmation stage, and its reader.

The file is written by the confirmation stage and read by it on resume, by ``raysearch report``
and by the benchmarks; its columns are the contract in SPEC §8.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

CONFIRMATION_CSV = "confirmation.csv"
COLUMNS = ("trial_id", "label", "seed", "clean_acc", "robust_acc", "val_clean_acc", "val_robust_acc",
           "val_objective", "backprops", "train_seconds", "recipe", "warm_start", "source", "dropped", "config_hash")


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("seed", "backprops"):
            if row.get(key) not in (None, ""):
                row[key] = int(float(row[key]))
        for key in ("clean_acc", "robust_acc", "val_clean_acc", "val_robust_acc", "val_objective", "train_seconds"):
            row[key] = float(row[key]) if row.get(key) not in (None, "") else math.nan
    return rows
