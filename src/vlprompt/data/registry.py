"""Dataset registry: `load_dataset(name, root=...)` for every dataset vlprompt knows.

Plain names (`eurosat`) map to a loader taking the data root; prefixed names
(`folder:<path>`, `csv:<path>`, `synthetic:<task>`) map to a family loader taking the
part after the colon. Registering a name twice is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from .types import DatasetSplits


class DatasetError(UserError, ValueError):
    """A dataset cannot be found or read; the message names the file and the remedy."""


Loader = Callable[..., DatasetSplits]
#: A status check: the first problem found under the data root, or None when complete.
Check = Callable[[Path], str | None]
_DATASETS: dict[str, Loader] = {}
_FOLDERS: dict[str, str] = {}
_CHECKS: dict[str, Check] = {}
_FAMILIES: dict[str, Loader] = {}
_FAMILY_LISTERS: dict[str, Callable[[], list[str]]] = {}
_FAMILY_STATUS: dict[str, Callable[[str, Path | None], str]] = {}


def register_dataset(name: str, *, folder: str | None = None,
                     check: Check | None = None) -> Callable[[Loader], Loader]:
    """Decorator: `loader(root: Path, **options) -> DatasetSplits` under `name`.

    `folder` is the dataset's folder under the data root and `check(root)` reports what is
    missing; both serve `dataset_status` (so `vlprompt list datasets --root` stays cheap).
    """

    def wrap(fn: Loader) -> Loader:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        _DATASETS[name] = fn
        if folder is not None:
            _FOLDERS[name] = folder
        if check is not None:
            _CHECKS[name] = check
        return fn

    return wrap


def register_family(prefix: str, lister: Callable[[], list[str]] | None = None,
                    status: Callable[[str, Path | None], str] | None = None) -> Callable[[Loader], Loader]:
    """Decorator: `loader(arg: str, root: Path | None, **options)` for names `prefix:arg`.

    `lister` names the family's built-in members; `status(arg, root)` answers like
    `dataset_status` for one member.
    """

    def wrap(fn: Loader) -> Loader:
        if prefix in _FAMILIES:
            raise ValueError(f"dataset family {prefix!r} is registered twice")
        _FAMILIES[prefix] = fn
        if lister is not None:
            _FAMILY_LISTERS[prefix] = lister
        if status is not None:
            _FAMILY_STATUS[prefix] = status
        return fn

    return wrap


def _ensure_loaded() -> None:
    # Importing the modules registers them (one explicit import list, no star imports).
    from . import (
        custom,  # noqa: F401
        datasets,  # noqa: F401
    )
    from .synthetic import suite  # noqa: F401


def list_datasets() -> list[str]:
    """Registered dataset names, then every named member of each family (e.g. synthetic:shapes)."""
    _ensure_loaded()
    names = sorted(_DATASETS)
    for prefix, lister in sorted(_FAMILY_LISTERS.items()):
        names += [f"{prefix}:{n}" for n in lister()]
    return names


def dataset_status(name: str, root: str | Path | None) -> str:
    """"present", "missing" (with the reason when the data root itself does not exist) or
    "incomplete: <why>" for a dataset under the data root.

    Only cheap checks run (folders, split files, a sample of listed files), so every
    registered dataset can be reported in a moment.
    """
    _ensure_loaded()
    root_path = Path(root).expanduser().absolute() if root is not None else None
    if ":" in name:
        prefix, arg = name.split(":", 1)
        if prefix in _FAMILY_STATUS:
            return _FAMILY_STATUS[prefix](arg, root_path)
        if prefix in _FAMILIES:
            return "present"  # generated on demand (e.g. synthetic:<task>)
    key = name.lower()
    if key not in _DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; see `vlprompt list datasets`")
    if root_path is None:
        return "missing"
    if not root_path.is_dir():
        return f"missing: the data root {root_path} does not exist"
    folder = _FOLDERS.get(key)
    if folder is not None and not (root_path / folder).exists():
        return "missing"
    check = _CHECKS.get(key)
    problem = check(root_path) if check is not None else None
    return f"incomplete: {problem}" if problem else "present"


def load_dataset(name: str, root: str | Path | None = None, **options) -> DatasetSplits:
    """Build a dataset by name; `root` is the `$DATA` folder for the benchmark datasets."""
    _ensure_loaded()
    if ":" in name:
        prefix, arg = name.split(":", 1)
        if prefix in _FAMILIES:
            return _FAMILIES[prefix](arg, root=Path(root) if root else None, **options)
    key = name.lower()
    if key in _DATASETS:
        if root is None:
            raise DatasetError(f"dataset {name!r} needs --root (the folder that holds its data)")
        root = Path(root).expanduser().absolute()
        if not root.is_dir():
            raise DatasetError(f"data root {root} does not exist")
        data = _DATASETS[key](root, **options)
        from .checks import check_split_overlap  # here: checks imports this module

        check_split_overlap(data)
        return data
    raise DatasetError(
        f"unknown dataset {name!r}; see `vlprompt list datasets` (custom data: folder:<dir> or csv:<file>)")
