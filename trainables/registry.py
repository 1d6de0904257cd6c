"""Plain name -> constructor registries with a clear error for unknown names.

Every extension point of raysearch (``METHODS``, ``SCHEDULES``, ``MODELS``, ``DATASETS``,
``LOSSES``, ``SPACES``) is a :class:`Registry`: a dict whose ``get`` raises
:class:`ConfigError` listing the valid names and the closest match.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """Bad user input, reported as one line before any work starts (exit code 2)."""

    def __init__(self, key: str, value: object, allowed: str, hint: str = "") -> None:
        self.key, self.value, self.allowed, self.hint = key, value, allowed, hint
        message = f"{key}={value!r}: {allowed}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return "did you mean 'x'?" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


class Registry(dict[str, T], Generic[T]):
    """A ``name -> T`` dict whose ``get`` fails loudly and helpfully."""

    def __init__(self, kind: str, entries: dict[str, T] | None = None) -> None:
        super().__init__(entries or {})
        self.kind = kind

    def get(self, name: str) -> T:  # type: ignore[override]
        if name in self:
            return self[name]
        raise ConfigError(
            self.kind, name, f"unknown {self.kind}; choose one of {', '.join(sorted(self))}",
            did_you_mean(name, self),
        )

    def register(self, name: str) -> object:
        """Decorator: ``@METHODS.register("pgd")``."""

        def wrap(obj: T) -> T:
            self[name] = obj
            return obj

        return wrap
