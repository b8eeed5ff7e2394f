"""Reading shared by several datasets: split JSON files, class-folder walks and seeded cuts.

The reference repositories (CoOp, CoCoOp, MaPLe, ProGrad) store splits as JSON files
`{"train": [[relative_path, label, classname], ...], "val": [...], "test": [...]}` with
paths relative to the image folder. Where no split file exists they cut each class
50/20/30 (or 80/20 of an official train+val set); the same rules live here once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ...utils.io import atomic_write_text
from ..images import IMAGE_EXTENSIONS
from ..registry import DatasetError, register_dataset
from ..types import DatasetSplits, ImageSource, Item

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
#: The seed of every derived split (50/20/30 or 80/20 cut); fixed so runs agree.
SPLIT_SEED = 1
Splits = dict[str, list[Item]]


# ----------------------------------------------------------------------------- paths


def safe_relative(rel: str, what: str) -> PurePosixPath:
    """A relative path that cannot leave its base folder (no absolute paths, no `..`)."""
    if not isinstance(rel, str) or not rel.strip():
        raise DatasetError(f"{what}: empty or non-text path {rel!r}")
    posix = PurePosixPath(rel.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(rel).drive or ".." in posix.parts:
        raise DatasetError(f"{what}: path {rel!r} must be relative to the image folder and must "
                           "not contain '..' (paths may not leave the data root)")
    return posix


def clean_classname(name: str) -> str:
    """Prompt-ready class name: underscores become spaces (the references do this in the prompt)."""
    return " ".join(name.replace("_", " ").split())


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files of a folder in sorted order (hidden files and other extensions skipped)."""
    if recursive:
        found = (p for p in folder.rglob("*") if p.is_file())
    else:
        found = (Path(e.path) for e in os.scandir(folder) if e.is_file())
    return sorted(p for p in found
                  if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def class_folders(root: Path, skip: Iterable[str] = ()) -> list[str]:
    """Sorted names of the visible sub-folders of `root`, minus `skip` (files such as README.txt are ignored)."""
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist")
    skipped = set(skip)
    return sorted(e.name for e in os.scandir(root)
                  if e.is_dir() and not e.name.startswith(".") and e.name not in skipped)


def scan_class_folders(root: Path, skip: Iterable[str] = (),
                       recursive: bool = True) -> tuple[list[str], list[list[Path]]]:
    """Class names (sorted folder names) and their image files; an empty class is an error."""
    classes = class_folders(root, skip)
    if not classes:
        raise DatasetError(f"{root} has no class sub-folders (expected {root}/<class>/<image>)")
    files = []
    for name in classes:
        found = list_images(root / name, recursive=recursive)
        if not found:
            raise DatasetError(f"class folder {root / name} holds no images "
                               f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove it")
        files.append(found)
    return classes, files


# ----------------------------------------------------------------------------- cuts


def _counts(n: int, fractions: Sequence[float]) -> tuple[int, int]:
    """Train and val counts of a class of n images (the rest is test)."""
    n_train = max(1, round(fractions[0] * n)) if n else 0
    n_val = min(round(fractions[1] * n), n - n_train)
    if fractions[2] > 0 and n - n_train - n_val <= 0 and n > 1:
        n_val = max(0, n - n_train - 1)  # keep one test image when the class is tiny
    return n_train, n_val


def cut_per_class(files: Sequence[Sequence[Path]], fractions: Sequence[float] = (0.5, 0.2, 0.3),
                  seed: int = SPLIT_SEED) -> Splits:
    """Cut each class (files[label]) into train/val/test by fractions with a fixed seed."""
    rng = np.random.default_rng(seed)
    out: Splits = {s: [] for s in SPLIT_NAMES}
    for label, paths in enumerate(files):
        order = rng.permutation(len(paths))
        n_train, n_val = _counts(len(paths), fractions)
        for rank, idx in enumerate(order):
            split = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
            path = paths[idx]  # a file, or an ImageSource (tar member, table row) kept as it is
            out[split].append(Item(path if isinstance(path, ImageSource) else Path(path), label))
    return out


def group_by_label(items: Iterable[Item], num_classes: int) -> list[list[Path]]:
    groups: list[list[Path]] = [[] for _ in range(num_classes)]
    for item in items:
        groups[item.label].append(item.path)
    return groups


def cut_train_val(items: Sequence[Item], num_classes: int, val_fraction: float = 0.2,
                  seed: int = SPLIT_SEED) -> tuple[list[Item], list[Item]]:
    """80/20 (by default) per class of an official train+val set, seeded."""
    cut = cut_per_class(group_by_label(items, num_classes), (1 - val_fraction, val_fraction, 0.0), seed)
    return cut["train"], cut["val"]


# ----------------------------------------------------------------------------- split files


def read_split_json(split_file: Path, image_dir: Path) -> tuple[list[str], Splits]:
    """Class names (by label) and splits of a reference split file; paths join `image_dir`."""
    try:
        data = json.loads(split_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"split file {split_file} cannot be read ({exc}); "
                           "restore it or delete it to cut the data again") from None
    if not isinstance(data, dict) or not set(SPLIT_NAMES) <= set(data):
        raise DatasetError(f"split file {split_file} must hold 'train', 'val' and 'test' lists")
    names: dict[int, str] = {}
    splits: Splits = {}
    for split in SPLIT_NAMES:
        items = []
        for n, row in enumerate(data[split]):
            where = f"{split_file} ({split}[{n}])"
            if not (isinstance(row, list) and len(row) == 3 and isinstance(row[1], int)
                    and isinstance(row[2], str) and row[1] >= 0):
                raise DatasetError(f"{where}: expected [relative_path, label, classname], got {row!r}")
            rel, label, classname = row
            if names.setdefault(label, classname) != classname:
                raise DatasetError(f"{where}: label {label} is named both {names[label]!r} "
                                   f"and {classname!r}")
            items.append(Item(image_dir / safe_relative(rel, where), label))
        splits[split] = items
    missing = sorted(set(range(len(names))) - set(names))
    if missing or not names:
        raise DatasetError(f"split file {split_file}: labels must run 0..n-1; "
                           f"missing {missing[:5] or 'all'}")
    return [names[i] for i in range(len(names))], splits


def write_split_json(split_file: Path, image_dir: Path, classnames: Sequence[str], splits: Mapping[str, Sequence[Item]]) -> None:
    """Write splits in the reference format (paths relative to `image_dir`), atomically."""
    data = {s: [[item.path.relative_to(image_dir).as_posix(), item.label, classnames[item.label]]
                for item in splits[s]] for s in SPLIT_NAMES}
    atomic_write_text(split_file, json.dumps(data, indent=1))
    log.info("wrote split file %s", split_file)


# ----------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Layout:
    """Where a benchmark dataset lives under `$DATA` and how to read it.

    `split_file` (relative to `folder`) holds the reference splits, with paths relative to
    `image_dir`. `derive(dataset_dir)` reads the dataset when there is no split file (the
    references' own rule: a 50/20/30 cut, or official lists); it returns class names by
    label and the three splits. `needs` lists the files `derive` reads, for status reports.
    """

    name: str
    folder: str
    image_dir: str
    split_file: str | None
    templates: tuple[str, ...]
    derive: Callable[[Path], tuple[list[str], Splits]]
    needs: tuple[str, ...] = ()
    flip_ok: bool = True


def build(layout: Layout, root: Path, classnames: Sequence[str], splits: Mapping[str, list[Item]],
          **info: object) -> DatasetSplits:
    """The DatasetSplits of a benchmark dataset (prompt-ready names, provenance in info)."""
    return DatasetSplits(
        name=layout.name, classnames=[clean_classname(c) for c in classnames],
        templates=list(layout.templates), train=list(splits["train"]), val=list(splits["val"]),
        test=list(splits["test"]), flip_ok=layout.flip_ok,
        info={"root": str(root), "dataset_dir": str(root / layout.folder), **info})


def load_layout(layout: Layout, root: Path, write_split: bool = False) -> DatasetSplits:
    """Read the split file when there is one; otherwise derive the splits (and save them if asked)."""
    dataset_dir = root / layout.folder
    image_dir = dataset_dir / layout.image_dir
    if not dataset_dir.is_dir():
        raise DatasetError(f"{layout.name}: folder {dataset_dir} does not exist "
                           f"(expected $DATA/{layout.folder}/{layout.image_dir})")
    if not image_dir.is_dir():
        raise DatasetError(f"{layout.name}: image folder {image_dir} does not exist")
    split_file = dataset_dir / layout.split_file if layout.split_file else None
    if split_file is not None and split_file.is_file():
        classnames, splits = read_split_json(split_file, image_dir)
        return build(layout, root, classnames, splits, split_file=str(split_file), split_source="file")
    classnames, splits = layout.derive(dataset_dir)
    source = f"derived (seed {SPLIT_SEED})" if split_file is not None else "official lists"
    if split_file is not None and write_split:
        write_split_json(split_file, image_dir, classnames, splits)
        source = "derived, written"
    elif split_file is not None:
        log.info("%s: no %s; splits derived with seed %d (write_split=True saves them)",
                 layout.name, split_file.name, SPLIT_SEED)
    return build(layout, root, classnames, splits, split_file=None, split_source=source)


def derive_by_folders(image_subdir: str, skip: Iterable[str] = (),
                      rename: Mapping[str, str] | None = None) -> Callable[[Path], tuple[list[str], Splits]]:
    """The 50/20/30 rule: walk <dataset>/<image_subdir>/<class>/, rename, cut each class."""

    def derive(dataset_dir: Path) -> tuple[list[str], Splits]:
        names, files = scan_class_folders(dataset_dir / image_subdir, skip=skip, recursive=False)
        renamed = [(rename or {}).get(n, n) for n in names]
        return renamed, cut_per_class(files)

    return derive


def read_lines(path: Path) -> list[str]:
    """Non-empty, non-comment lines of a text file, or a DatasetError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"file {path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"file {path} cannot be read ({exc})") from None
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]


def mat_scalar(value: object) -> object:
    """Unwrap the nested 1x1 arrays scipy.io.loadmat returns for MATLAB cells and structs."""
    while isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"expected one value, got an array of shape {value.shape}")
        value = value.reshape(-1)[0]
    return value


def load_mat(path: Path) -> dict:
    from scipy.io import loadmat  # scipy is only needed for the .mat-based datasets

    if not path.is_file():
        raise DatasetError(f"file {path} is missing")
    try:
        return loadmat(str(path))
    except Exception as exc:  # scipy raises several unrelated types for a bad file
        raise DatasetError(f"{path} cannot be read as a MATLAB file ({exc})") from None


def sample_files_missing(items: Sequence[Item], count: int = 12) -> list[Path]:
    """Files among an evenly spaced sample of `items` that do not exist (a cheap completeness check)."""
    if not items:
        return []
    step = max(1, len(items) // count)
    return [it.path for it in list(items)[::step][:count] + [items[-1]] if not it.path.exists()]


def register_layout(layout: Layout) -> Callable[[Callable], Callable]:
    """`@register_dataset` for a benchmark layout, with its status check."""
    return register_dataset(layout.name, folder=layout.folder, check=partial(check_layout, layout))


def check_layout(layout: Layout, root: Path) -> str | None:
    """The first problem that keeps the dataset from loading, or None when it looks complete."""
    dataset_dir = root / layout.folder
    image_dir = dataset_dir / layout.image_dir
    if not image_dir.is_dir():
        return f"{image_dir} is missing"
    if not any(True for _ in os.scandir(image_dir)):
        return f"{image_dir} is empty"
    split_file = dataset_dir / layout.split_file if layout.split_file else None
    if split_file is not None and split_file.is_file():
        try:
            _, splits = read_split_json(split_file, image_dir)
        except DatasetError as exc:
            return str(exc)
        checked = [p for s in SPLIT_NAMES for p in sample_files_missing(splits[s], 4)]
        if checked:
            return f"{len(checked)} sampled files listed in {split_file.name} are missing (e.g. {checked[0]})"
        return None
    absent = [n for n in layout.needs if not (dataset_dir / n).exists()]
    if absent:
        wanted = f"{layout.split_file} or " if layout.split_file else ""
        return f"needs {wanted}{', '.join(absent)}"
    return None
