"""Dataset registry: `load_dataset(name, root=...)` for every dataset vlprompt knows.

Plain names (`eurosat`) map to a loader taking the data root; prefixed names
(`folder:<path>`, `csv:<path>`, `hfds:<dir|id>`, `wds:<dir>`, `synthetic:<task>`) map to a family loader taking the
part after the colon. Both are `utils.registry.Registry`s: registering a name twice is an
error, and an unknown name or prefix is one line naming the closest known one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..utils.registry import Registry
from .types import DatasetSplits


class DatasetError(UserError, ValueError):
    """A dataset cannot be found or read; the message names the file and the remedy."""


Loader = Callable[..., DatasetSplits]
#: A status check: the first problem found under the data root, or None when complete.
Check = Callable[[Path], str | None]


@dataclass(frozen=True)
class DatasetEntry:
    """A plain dataset: `loader(root, **options)`, its folder under the data root, its check."""
    loader: Loader
    folder: str | None = None
    check: Check | None = None


@dataclass(frozen=True)
class FamilyEntry:
    """A prefixed family: `loader(arg, root, **options)`, its built-in members, its status."""
    loader: Loader
    lister: Callable[[], list[str]] | None = None
    status: Callable[[str, Path | None], str] | None = None


LIST_HINT = ("(see `vlprompt list datasets`; custom data: folder:<dir>, csv:<file>, hfds:<dir|hub id>, "
             "wds:<dir>)")
#: Plain names (`eurosat`), looked up case-insensitively.
_DATASETS: Registry[DatasetEntry] = Registry("dataset", LIST_HINT, error=DatasetError, normalize=str.lower)
#: Family prefixes, registered with their colon (`folder:`), so errors show them as typed.
_FAMILIES: Registry[FamilyEntry] = Registry("dataset", LIST_HINT, error=DatasetError)


def register_dataset(name: str, *, folder: str | None = None,
                     check: Check | None = None) -> Callable[[Loader], Loader]:
    """Decorator: `loader(root: Path, **options) -> DatasetSplits` under `name`.

    `folder` is the dataset's folder under the data root and `check(root)` reports what is
    missing; both serve `dataset_status` (so `vlprompt list datasets --root` stays cheap).
    """

    def wrap(fn: Loader) -> Loader:
        _DATASETS.register(name, DatasetEntry(fn, folder, check))
        return fn

    return wrap


def register_family(prefix: str, lister: Callable[[], list[str]] | None = None,
                    status: Callable[[str, Path | None], str] | None = None) -> Callable[[Loader], Loader]:
    """Decorator: `loader(arg: str, root: Path | None, **options)` for names `prefix:arg`.

    `lister` names the family's built-in members; `status(arg, root)` answers like
    `dataset_status` for one member.
    """

    def wrap(fn: Loader) -> Loader:
        _FAMILIES.register(f"{prefix}:", FamilyEntry(fn, lister, status))
        return fn

    return wrap


def _family(name: str) -> tuple[FamilyEntry, str] | None:
    """(family, the part after the colon) of a prefixed name, None for a plain name; an
    unknown prefix is a `DatasetError` with the closest known one."""
    if ":" not in name:
        return None
    prefix, arg = name.split(":", 1)
    if f"{prefix}:" not in _FAMILIES:
        raise DatasetError(_FAMILIES.unknown_message(name, match=f"{prefix}:"))
    return _FAMILIES[f"{prefix}:"], arg


def _dataset(name: str) -> DatasetEntry:
    """The entry of a plain name, or a `DatasetError` with the closest known name."""
    return _DATASETS.get(name)


def _ensure_loaded() -> None:
    # Importing the modules registers them (one explicit import list, no star imports).
    from . import (
        custom,  # noqa: F401
        datasets,  # noqa: F401
        hfds,  # noqa: F401
        wds,  # noqa: F401
    )
    from .synthetic import suite  # noqa: F401


def list_datasets() -> list[str]:
    """Registered dataset names, then every named member of each family (e.g. synthetic:shapes)."""
    _ensure_loaded()
    names = sorted(_DATASETS)
    for prefix, family in sorted(_FAMILIES.items()):
        if family.lister is not None:
            names += [f"{prefix}{n}" for n in family.lister()]
    return names


def dataset_status(name: str, root: str | Path | None) -> str:
    """"present", "missing" (with the reason when the data root itself does not exist) or
    "incomplete: <why>" for a dataset under the data root.

    Only cheap checks run (folders, split files, a sample of listed files), so every
    registered dataset can be reported in a moment.
    """
    _ensure_loaded()
    root_path = Path(root).expanduser().absolute() if root is not None else None
    prefixed = _family(name)
    if prefixed is not None:
        family, arg = prefixed
        if family.status is not None:
            return family.status(arg, root_path)
        return "present"  # generated on demand (e.g. synthetic:<task>)
    entry = _dataset(name)
    if root_path is None:
        return "missing"
    if not root_path.is_dir():
        return f"missing: the data root {root_path} does not exist"
    if entry.folder is not None and not (root_path / entry.folder).exists():
        return "missing"
    problem = entry.check(root_path) if entry.check is not None else None
    return f"incomplete: {problem}" if problem else "present"


def load_dataset(name: str, root: str | Path | None = None, **options) -> DatasetSplits:
    """Build a dataset by name; `root` is the `$DATA` folder for the benchmark datasets."""
    _ensure_loaded()
    prefixed = _family(name)
    if prefixed is not None:
        family, arg = prefixed
        return family.loader(arg, root=Path(root) if root else None, **options)
    entry = _dataset(name)
    if root is None:
        raise DatasetError(f"dataset {name!r} needs --root (the folder that holds its data)")
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DatasetError(f"data root {root} does not exist")
    data = entry.loader(root, **options)
    from .checks import check_split_overlap  # here: checks imports this module

    check_split_overlap(data)
    return data
