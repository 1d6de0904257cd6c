"""Known results: every finished confirmation run, kept where any run on the same storage
finds it, so no recipe is trained twice for the same question.

A run's *identity* is its resolved training config with every default filled in, the seed
included and paths left out (:func:`identity`; data, model, epochs, ε, recipe and seed are all
in it), plus the raysearch version that trained it. :func:`config_hash` fingerprints the
config; one rule, used by the confirmation's reuse and by the search's reuse of finished paper
defaults.

The cache is one append-only JSON-lines file, ``<storage>/known_results.jsonl``: each line a
measured row (validation and test scores, cost) with its ``identity`` hash, ``raysearch_version``
and ``source`` (the run directory that trained it). Appending a line is atomic enough for
runs that share a storage folder (each line is written with one ``write``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from raysearch._version import __version__
from trainables.registry import ConfigError

CACHE_FILE = "known_results.jsonl"


def identity(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """A config resolved for comparing runs (every key, defaults filled; paths left out);
    None when it does not parse."""
    from trainables.config import parse_config

    try:
        flat = parse_config(dict(config)).to_flat()
    except ConfigError:
        return None
    flat.pop("data_root", None)
    return flat


def config_hash(config: Mapping[str, Any]) -> str:
    """A fingerprint of a run's resolved config (paths left out), seed included."""
    flat = identity(config) or dict(config)
    return hashlib.sha1(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_file(storage_path: str | os.PathLike[str]) -> Path:
    return Path(storage_path, CACHE_FILE)


def _finite(row: Mapping[str, Any], key: str) -> bool:
    try:
        return math.isfinite(float(row.get(key)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def read_known(storage_path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """identity hash -> the first measured row of this raysearch version (unreadable lines skipped)."""
    path = cache_file(storage_path)
    known: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return known
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("raysearch_version") == __version__ and _finite(row, "robust_acc"):
            known.setdefault(str(row.get("config_hash")), row)
    return known


def add_known(storage_path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]], source: str) -> int:
    """Append the rows ``source`` trained and measured; returns how many were written."""
    have = read_known(storage_path)
    lines = []
    for row in rows:
        if row.get("config_hash") and str(row["config_hash"]) not in have and _finite(row, "robust_acc"):
            lines.append(json.dumps({**row, "source": source, "raysearch_version": __version__}, default=str))
    if lines:
        with cache_file(storage_path).open("a") as f:
            f.write("\n".join(lines) + "\n")
    return len(lines)


__all__ = ["CACHE_FILE", "add_known", "cache_file", "config_hash", "identity", "read_known"]
