"""Comma-separated list options shared by `run`, `demo` and `replicate`."""

from __future__ import annotations

from ..errors import ConfigError


def names(text: str | None) -> list[str] | None:
    """"a,b" -> ["a", "b"] (None stays None)."""
    if text is None:
        return None
    out = [t.strip() for t in text.split(",") if t.strip()]
    if not out:
        raise ConfigError(f"empty list {text!r}")
    return out


def ints(text: str | None, option: str) -> list[int] | None:
    """"1,2,4" -> [1, 2, 4]; a clear error for anything else."""
    if text is None:
        return None
    try:
        values = [int(t) for t in names(text) or []]
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise ConfigError(f"{option} takes integers of 0 or more, got {text!r}")
    return values
