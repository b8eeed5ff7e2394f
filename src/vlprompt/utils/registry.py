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
    """Name -> entry (a class, a loader function, ...) of one `kind` ("method", "protocol").

    `error` is the exception type of unknown names (a `UserError`, so the CLI prints one line;
    datasets raise `DatasetError`, backbones `BackboneError`); `normalize` maps a looked-up
    name to its registered spelling (e.g. `str.lower` for case-insensitive dataset names).
    """

    def __init__(self, kind: str, hint: str = "", *, error: type[Exception] = ConfigError,
                 normalize: Callable[[str], str] | None = None):
        self.kind = kind
        self.hint = hint  # appended to unknown-name errors, e.g. where plugins come from
        self.error = error
        self.normalize = normalize
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
        if self.normalize is not None and isinstance(name, str):
            name = self.normalize(name)
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
        other: Registry[T] = Registry(self.kind, self.hint, error=self.error, normalize=self.normalize)
        other._entries = dict(self._entries)
        other._aliases = dict(self._aliases)
        return other

    def get(self, name: str) -> T:
        """The entry of `name`; unknown names raise `self.error` (`ConfigError` by default)
        with the known ones and the closest match."""
        key = self.canonical(name)
        if key in self._entries:
            return self._entries[key]
        raise self.error(self.unknown_message(name))

    def unknown_message(self, name: str, match: str | None = None) -> str:
        """One line: `unknown <kind> '<name>' (did you mean '<closest>'?); known: ...<hint>`.

        `match` is what is compared with the known names when it is not all of `name` (the
        prefix of a prefixed spec such as `openclp:ViT-B-16`)."""
        known = list(self._entries) + list(self._aliases)
        probe = str(name if match is None else match)
        if self.normalize is not None:
            probe = self.normalize(probe)
        close = difflib.get_close_matches(probe, known, n=1, cutoff=0.6)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        hint = f" {self.hint}" if self.hint else ""
        return f"unknown {self.kind} {name!r}{guess}; known: {', '.join(self._entries)}{hint}"
