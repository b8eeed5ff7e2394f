"""Configuration dataclasses <-> JSON, and dotted `section.key=value` overrides.

Every method and the engine describe their options as a dataclass whose fields carry
help text (`option(default, "help")`). A run's configuration is a few named sections
(`method`, `train`); `--set method.n_ctx=4` converts the text to the field's type.
Unknown keys and values of the wrong type are `ConfigError`s, never silently ignored;
floats must be finite (`nan` or `inf` as a learning rate would only surface as a NaN loss).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from .errors import ConfigError

T = TypeVar("T")


#: The source shown for options vlprompt adds itself (speed, memory, comparisons): they do
#: not change what a run computes, or they are off by default.
OWN_OPTION = "vlprompt"


def option(default: Any, help: str, source: str = OWN_OPTION) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field with help text and where its default comes from (a paper table or a
    reference file, docs/methods.md); lists get a default factory."""
    metadata = {"help": help, "source": source}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_help(cls: type) -> dict[str, str]:
    """Field name -> help text of a config dataclass."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def field_sources(cls: type) -> dict[str, str]:
    """Field name -> the source of its default."""
    return {f.name: f.metadata.get("source", OWN_OPTION) for f in dataclasses.fields(cls)}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(hint))
    if hint is type(None):
        return "none"
    return getattr(hint, "__name__", str(hint))


def check_value(value: Any, hint: Any, key: str) -> Any:
    """A JSON-like value checked (and lightly converted) against a type hint."""
    origin = get_origin(hint)
    bad = ConfigError(f"{key}: expected {_type_name(hint)}, got {value!r}")
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        for arg in get_args(hint):
            try:
                return check_value(value, arg, key)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in get_args(hint)):
            return value
        raise bad
    if hint is type(None):
        if value is None:
            return None
        raise bad
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond the float range
                raise bad from None
            if math.isfinite(number):
                return number
        raise bad
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise bad
        args = get_args(hint)
        inner = args[0] if args else Any
        items = [check_value(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    raise ConfigError(f"{key}: unsupported option type {hint!r}")


def parse_text(text: str, hint: Any, key: str) -> Any:
    """Command-line text -> a value of the field's type (`none`/`null` for optional fields)."""
    origin = get_origin(hint)
    options = get_args(hint) if origin in (Union, types.UnionType) else (hint,)
    if text.strip().lower() in ("none", "null") and type(None) in options:
        return None
    for option_hint in options:
        if option_hint is type(None):
            continue
        try:
            return check_value(_convert(text, option_hint), option_hint, key)
        except (ConfigError, ValueError):
            continue
    raise ConfigError(f"{key}: cannot read {text!r} as {_type_name(hint)}")


def _convert(text: str, hint: Any) -> Any:
    origin = get_origin(hint)
    if hint is bool:
        low = text.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ValueError(text)
    if hint is int:
        return int(text)
    if hint is float:
        return float(text)
    if hint is str:
        return text
    if origin is Literal:
        for arg in get_args(hint):
            if str(arg) == text:
                return arg
        raise ValueError(text)
    if origin in (list, tuple):
        stripped = text.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        inner = get_args(hint)[0] if get_args(hint) else str
        return [_convert(part.strip(), inner) for part in stripped.split(",") if part.strip()]
    raise ValueError(text)


def to_dict(cfg: Any) -> dict:
    """A config dataclass -> plain JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "config") -> T:
    """A config dataclass from a dict; unknown keys and wrong types are ConfigErrors."""
    data = dict(data or {})
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
                          f"known: {', '.join(names) or 'none'}")
    values = {k: check_value(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: {exc}") from None


def replace(cfg: T, where: str = "config", **changes: Any) -> T:
    """A copy of `cfg` with checked changes."""
    return from_dict(type(cfg), {**to_dict(cfg), **changes}, where)


def parse_overrides(pairs: Iterable[str]) -> dict[str, dict[str, str]]:
    """`["method.n_ctx=4", "train.lr=0.01"]` -> {"method": {"n_ctx": "4"}, "train": {"lr": "0.01"}}."""
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not section or not name:
            raise ConfigError(f"--set {pair!r}: expected section.key=value, e.g. method.n_ctx=4")
        out.setdefault(section, {})[name] = value
    return out


def apply_text_overrides(cfg: T, overrides: Mapping[str, str], where: str) -> T:
    """A copy of `cfg` with text values (from `--set`) converted to each field's type."""
    hints = _hints(type(cfg))
    names = [f.name for f in dataclasses.fields(cfg)]
    changes = {}
    for key, text in overrides.items():
        if key not in hints or key not in names:
            raise ConfigError(f"unknown option {where}.{key}; known: {', '.join(names)}")
        changes[key] = parse_text(text, hints[key], f"{where}.{key}")
    return replace(cfg, where, **changes)


def describe(cls: type) -> list[str]:
    """`name: type = default  # help [source]` lines, for `vlprompt list methods --options`."""
    hints = _hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"{f.name}: {_type_name(hints[f.name])} = {default!r}  # {f.metadata.get('help', '')} "
                     f"[default from: {f.metadata.get('source', OWN_OPTION)}]")
    return lines


CONFIG_SECTIONS = ("method", "train", "data")
#: Keys of a run config that hold one choice rather than a section of options.
CONFIG_CHOICES = ("protocol",)


def read_config_file(path: str | Path) -> dict:
    """A `--config` file: JSON, or YAML for `.yaml`/`.yml`, holding the sections `method`,
    `train` and `data` with the option names `--set` takes, e.g. `{"train": {"lr": 0.01}}`,
    and optionally `protocol` (whose reference preset to start from)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"--config {path}: reading YAML needs PyYAML (pip install pyyaml), "
                              "or write the file as JSON") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config {path} is not valid JSON (line {exc.lineno}: {exc.msg}); "
                              "YAML files need a .yaml or .yml name") from None
    return check_sections(data, f"--config {path}")


def check_sections(data: Any, where: str = "config") -> dict[str, Any]:
    """A run's option values by section, `{"method": {...}, "train": {...}, "data": {...}}`,
    plus an optional `"protocol": "base2new"` (what a `--config` file and the API's `config=`
    hold), checked: other keys or values are ConfigErrors."""
    data = data or {}
    allowed = set(CONFIG_SECTIONS) | set(CONFIG_CHOICES)
    if not isinstance(data, dict) or set(data) - allowed:
        keys = sorted(map(str, data)) if isinstance(data, dict) else [type(data).__name__]
        raise ConfigError(f"{where} must hold the sections method, train and/or data (the keys of "
                          f"--set) and optionally protocol, found {', '.join(keys)}")
    out: dict[str, Any] = {}
    for key, values in data.items():
        if key in CONFIG_CHOICES:
            if not isinstance(values, str):
                raise ConfigError(f"{where}: {key} must be a name, got {values!r}")
            out[key] = values
            continue
        if not isinstance(values or {}, dict):
            raise ConfigError(f"{where}: section {key} must map option names to values")
        out[key] = dict(values or {})
    return out


def config_to_overrides(config: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The `--set` texts of a config mapping (lists as JSON), for commands that take texts."""
    out = []
    for section, values in config.items():
        if section in CONFIG_CHOICES:
            continue
        for key, value in values.items():
            text = json.dumps(value) if isinstance(value, list | dict) else \
                "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            out.append(f"{section}.{key}={text}")
    return out
