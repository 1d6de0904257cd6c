"""Giving back the workers of a multi-worker trial that Tune stopped.

A trial on several workers runs Ray Train inside its Tune trial (:mod:`trainables.distributed.workers`);
Ray Train reserves the workers in a placement group of its own. When Tune stops the trial
(ASHA, a budget) while that inner run is active, Ray 2.60 leaves the placement group and its
CPUs/GPUs reserved (its cleaner needs the State API, which a cluster without the dashboard
lacks), and later trials wait for resources that never come back. Rank 0 reports the group's
id as ``worker_pg``; :class:`RemoveTrainGroups` removes the group when the trial ends.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from trainables.distributed.workers import WORKER_PG


def remove_group(group_hex: str) -> bool:
    """Remove the placement group ``group_hex`` if it still exists; whether it did."""
    from ray._raylet import PlacementGroupID
    from ray.util.placement_group import (
        PlacementGroup,
        placement_group_table,
        remove_placement_group,
    )

    if not group_hex or placement_group_table().get(group_hex, {}).get("state") in (None, "REMOVED"):
        return False
    remove_placement_group(PlacementGroup(PlacementGroupID(bytes.fromhex(group_hex))))
    return True


class RemoveTrainGroups(Callback):
    """Removes a finished or stopped trial's Ray Train worker group (see module doc)."""

    def _cleanup(self, trial: Any) -> None:
        group = (trial.last_result or {}).get(WORKER_PG)
        if isinstance(group, str):
            try:
                remove_group(group)
            except Exception:  # the group went with its job already: nothing held
                pass

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._cleanup(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._cleanup(trial)


__all__ = ["RemoveTrainGroups", "remove_group"]
