"""Method registry: `@register_method` on a `Method` subclass, `create_method(name, ...)`.

Modules are imported from one explicit list on first use (no star-import side effects),
then the plugins: the modules named in `$VLPROMPT_METHODS` (comma-separated) and the
`vlprompt.methods` entry points of installed packages, so a method written outside
vlprompt runs under `vlprompt train --method` and every protocol (docs/new-method.md).
Registering a name twice is an error.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from importlib.metadata import entry_points

import torch

from ..backbones.base import VLBackbone
from ..config import from_dict
from ..errors import ConfigError
from ..utils.registry import Registry
from .base import Method

#: Modules whose import registers the built-in methods, in `list methods` order.
BUILTIN_MODULES = ("zeroshot", "prompt_baselines", "linear_probe", "classifier_ft", "coop",
                   "cocoop", "prograd", "kgcoop", "vpt", "upt", "variational",
                   "maple", "ivlp", "promptsrc", "clip_adapter", "tip_adapter", "taskres",
                   "clap", "lpp", "cross_modal_lp")
#: Environment variable naming extra modules to import for their methods.
PLUGINS_ENV = "VLPROMPT_METHODS"
#: Entry-point group of installed packages that bring methods.
ENTRY_POINT_GROUP = "vlprompt.methods"
_METHODS: Registry[type[Method]] = Registry(
    "method", f"(a method from another package is found through ${PLUGINS_ENV} or its entry point)")
_loaded = False


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    return _METHODS.register(cls.name, cls)


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True  # first: a plugin importing this registry must not recurse
        for module in BUILTIN_MODULES:
            importlib.import_module(f"{__package__}.{module}")
        _load_plugins()


def _load_plugins() -> None:
    """Import `$VLPROMPT_METHODS`' modules and the `vlprompt.methods` entry points."""
    for name in (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",")):
        if name:
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - any failure of a user's module
                raise ConfigError(f"method plugin {name!r} (from ${PLUGINS_ENV}) failed to import: "
                                  f"{type(exc).__name__}: {exc}") from None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"method plugin {ep.value!r} (entry point {ep.name!r} of group "
                              f"{ENTRY_POINT_GROUP}) failed to import: {type(exc).__name__}: {exc}") from None


def list_methods() -> list[str]:
    _ensure_loaded()
    return _METHODS.names()


def get_method_class(name: str) -> type[Method]:
    _ensure_loaded()
    return _METHODS.get(name)


def create_method(name: str, backbone: VLBackbone, classnames: Sequence[str], *,
                  dataset_templates: Sequence[str] | None = None,
                  generator: torch.Generator | None = None, **config) -> Method:
    """Build method `name` with its preset, changed by `config` (field=value; or config=<Config>)."""
    cls = get_method_class(name)
    cfg = config.pop("config", None)
    if cfg is None:
        cfg = from_dict(cls.Config, config, where="method")
    elif config:
        raise ConfigError("pass either config=<Config> or individual options, not both")
    elif not isinstance(cfg, cls.Config):
        cfg = from_dict(cls.Config, cfg, where="method")
    return cls(backbone, classnames, cfg, dataset_templates=dataset_templates, generator=generator)
