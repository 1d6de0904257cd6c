"""Plain name -> entry registries with a clear error for unknown names, and plug-ins.

Every extension point of raysearch (``METHODS``, ``SCHEDULES``, ``LOSSES``, ``MODELS``,
``DATASETS``, ``SPACES``) is a :class:`Registry`: a dict whose ``get`` raises
:class:`ConfigError` listing the valid names and the closest match. An entry carries what
belongs to it (its options dataclass, paper defaults, flags, report label), so config
validation, error messages, search spaces and reports all read the registry.

Entries come from three places:

- the built-in ones, one line each in the registry's dict;
- installed packages, through the entry-point group ``raysearch.<kind>s`` (for example
  ``[project.entry-points."raysearch.models"] my_net = "my_pkg.nets:make_net"``), loaded on
  the first lookup of a name that is not built in;
- ``"pkg.module:attribute"`` import paths, resolved where the registry allows them
  (models and datasets: ``model: "my_pkg.nets:make_net"``) in every process that looks
  the name up.

Example::

    >>> from trainables.registry import Registry
    >>> COLORS = Registry("color", {"red": 1, "green": 2})
    >>> COLORS.get("gren")
    Traceback (most recent call last):
    ...
    trainables.registry.ConfigError: color='gren': unknown color; choose one of green, red (did you mean 'green'?)
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """Bad user input, reported as one line before any work starts (exit code 2)."""

    def __init__(self, key: str, value: object, allowed: str, hint: str = "") -> None:
        self.key, self.value, self.allowed, self.hint = key, value, allowed, hint
        message = f"{key}={value!r}: {allowed}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # copied and pickled whole (Ray copies a trial's exception to report it)
        return type(self), (self.key, self.value, self.allowed, self.hint)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return "did you mean 'x'?" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def is_import_path(name: str) -> bool:
    """``"pkg.module:attribute"``: a plug-in named by where it lives."""
    module, sep, attribute = str(name).partition(":")
    return bool(sep and module and attribute) and " " not in name


def import_object(path: str, key: str = "import") -> Any:
    """The object at ``"pkg.module:attribute"`` (dots allowed in the attribute), or a
    ConfigError naming ``key`` and what went wrong."""
    module_name, _, attribute = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(key, path, f"cannot import module {module_name!r} ({err})",
                          "is its package installed or on PYTHONPATH?") from None
    except Exception as err:  # the user's module raised while importing
        raise ConfigError(key, path, f"importing {module_name!r} failed: {type(err).__name__}: {err}") from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(key, path, f"module {module_name!r} has no attribute {attribute!r}") from None
    return obj


class Registry(dict[str, T], Generic[T]):
    """A ``name -> T`` dict whose ``get`` fails loudly and helpfully.

    ``entry_points``: also look names up in the installed packages' entry-point group
    ``raysearch.<kind>s``. ``imports``: accept ``"pkg.module:attribute"`` names, turned into
    entries by ``wrap_import`` (identity by default).
    """

    def __init__(self, kind: str, entries: dict[str, T] | None = None, *, entry_points: bool = True,
                 imports: bool = False, wrap_import: Callable[[str, Any], T] | None = None) -> None:
        super().__init__(entries or {})
        self.kind = kind
        self.entry_points, self.imports = entry_points, imports
        self._wrap = wrap_import
        self._loaded_entry_points = False
        self._imported: dict[str, T] = {}  # import-path entries, kept apart from the named ones

    @property
    def group(self) -> str:
        """The entry-point group installed packages register under."""
        return f"raysearch.{self.kind}s"

    def load_entry_points(self) -> None:
        """Add every entry of the installed packages' entry-point group (once)."""
        if self._loaded_entry_points or not self.entry_points:
            return
        self._loaded_entry_points = True
        from importlib.metadata import entry_points

        for point in entry_points(group=self.group):
            if point.name not in self:
                self[point.name] = self._entry(point.value, point.load())

    def _entry(self, path: str, obj: Any) -> T:
        return self._wrap(path, obj) if self._wrap is not None else obj  # type: ignore[no-any-return]

    def names(self) -> list[str]:
        """Every valid name: built-in ones first, then the installed plug-ins."""
        self.load_entry_points()
        return list(self)

    def get(self, name: str) -> T:  # type: ignore[override]
        if name in self:
            return self[name]
        if self.imports and is_import_path(name):
            if name not in self._imported:
                self._imported[name] = self._entry(name, import_object(name, self.kind))
            return self._imported[name]
        self.load_entry_points()
        if name in self:
            return self[name]
        allowed = f"unknown {self.kind}; choose one of {', '.join(self)}"
        if self.imports:
            allowed += " or a 'pkg.module:callable' import path"
        raise ConfigError(self.kind, name, allowed, did_you_mean(name, self))

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@METHODS.register("pgd")``."""

        def wrap(obj: T) -> T:
            self[name] = obj
            return obj

        return wrap
