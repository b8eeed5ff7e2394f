"""One small registry for everything vlprompt looks up by name (methods, datasets, protocols,
backbone prefixes), after timm's `_registry.py`: register once, list in registration order,
look up with an error that names what is known and the closest spelling.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ..errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry (a class, a loader function, ...) of one `kind` ("method", "protocol")."""

    def __init__(self, kind: str, hint: str = ""):
        self.kind = kind
        self.hint = hint  # appended to unknown-name errors, e.g. where plugins come from
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, entry: T, aliases: tuple[str, ...] = ()) -> T:
        """Add `entry` under `name` (and other spellings); a name taken by another entry is an error."""
        if not name:
            raise ValueError(f"a {self.kind} needs a name")
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """`@registry.decorator("name")` registers the decorated object."""
        return lambda entry: self.register(name, entry)

    def names(self) -> list[str]:
        return list(self._entries)

    def canonical(self, name: str) -> str:
        return self._aliases.get(name, name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.canonical(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def copy(self) -> Registry[T]:
        """An independent registry with the same entries (tests register into a copy)."""
        other: Registry[T] = Registry(self.kind, self.hint)
        other._entries = dict(self._entries)
        other._aliases = dict(self._aliases)
        return other

    def get(self, name: str) -> T:
        """The entry of `name`; unknown names are a `ConfigError` with the known ones and the
        closest match."""
        key = self.canonical(name)
        if key in self._entries:
            return self._entries[key]
        raise ConfigError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        known = list(self._entries) + list(self._aliases)
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        hint = f" {self.hint}" if self.hint else ""
        return f"unknown {self.kind} {name!r}{guess}; known: {', '.join(self._entries)}{hint}"
