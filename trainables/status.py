"""A trial's or run's status: one enum read and written everywhere (engine, trainable, search,
report, TensorBoard, Optuna).

The engine sets ``running`` and its three final states (``completed``, ``diverged``,
``catastrophic_overfitting``); the search adds ``pruned`` (stopped early by the scheduler),
``failed`` (an error after its retry, or files that could not be written) and
``interrupted`` (cut short by Ctrl-C or a killed driver; ``--resume`` continues it). Records
store the plain string (``Status.COMPLETED.value``) so they pickle, JSON- and YAML-encode.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    CO = "catastrophic_overfitting"
    PRUNED = "pruned"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value

    @property
    def final(self) -> bool:
        """The run itself ended (its whole budget, or stopped by its own rule)."""
        return self in (Status.COMPLETED, Status.DIVERGED, Status.CO)

    @property
    def finished(self) -> bool:
        """Nothing more will happen to the trial without the user asking (resume, retry)."""
        return self.final or self in (Status.PRUNED, Status.FAILED)

    @classmethod
    def of(cls, value: object, default: Status | None = None) -> Status:
        """``value`` (a Status or its string) as a Status; ``default`` for anything else."""
        try:
            return cls(value)
        except ValueError:
            if default is None:
                raise
            return default


FINAL_STATUSES = tuple(s.value for s in Status if s.final)

__all__ = ["FINAL_STATUSES", "Status"]
