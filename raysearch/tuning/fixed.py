"""A searcher that hands Tune a fixed list of trial configs, in order (the confirmation runs).

Unlike ``BasicVariantGenerator(points_to_evaluate=...)`` it needs no parameter space to
match the points' keys, and its position survives Tune's experiment checkpoint, so a resumed
stage neither repeats nor skips a config.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

from ray.tune.search import Searcher


class FixedConfigs(Searcher):
    """Suggests ``configs[0]``, ``configs[1]``, … then FINISHED."""

    def __init__(self, configs: Sequence[dict[str, Any]]) -> None:
        super().__init__(metric=None, mode=None)
        self.configs = [dict(c) for c in configs]
        self.handed: dict[str, int] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any],
                              **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # FINISHED is a str
        if trial_id in self.handed:
            return dict(self.configs[self.handed[trial_id]])
        if len(self.handed) >= len(self.configs):
            return Searcher.FINISHED
        self.handed[trial_id] = len(self.handed)
        return dict(self.configs[self.handed[trial_id]])

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        return None

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


__all__ = ["FixedConfigs"]
