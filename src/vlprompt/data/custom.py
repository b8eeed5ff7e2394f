"""A user's own images: `folder:<dir>` (one sub-folder per class) or `csv:<file>`.

A CSV has rows `path,label[,split]` (an optional header row names the columns); paths are
relative to the CSV's folder and may not leave it (no absolute paths, no `..`), so a CSV
received from elsewhere cannot make vlprompt read files outside its folder. Without split information each class is cut
train/val/test 50/20/30 with a seed. Class names come from the folder names or labels
unless `classnames=<file>` maps them: a JSON object `{"raw": "name"}` or a text file
with `raw<TAB>name`, `raw,name` or `raw name` per line.
"""

from __future__ import annotations

import csv
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

from .checks import (
    Listed,
    check_split_overlap,
    dedupe,
    numeric_classnames_warning,
    warn_content_copies,
)
from .datasets.common import (
    SPLIT_NAMES,
    clean_classname,
    cut_per_class,
    safe_relative,
    scan_class_folders,
)
from .registry import DatasetError, register_family
from .types import DatasetSplits, Item

__all__ = ["DEFAULT_TEMPLATE", "cut_per_class", "load_csv", "load_folder", "read_class_mapping",
           "scan_class_folders"]

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "a photo of a {}."
SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def read_class_mapping(path: str | Path) -> dict[str, str]:
    """Raw class label -> display name, from a JSON object or a two-column text file."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"class-name mapping file {path} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"class-name mapping file {path} cannot be read ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise DatasetError(f"{path} must be a JSON object mapping labels to names")
        return {str(k): v for k, v in data.items()}
    mapping: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        sep = "\t" if "\t" in line else "," if "," in line else None
        raw, _, name = line.strip().partition(sep) if sep else line.strip().partition(" ")
        if not name.strip():
            raise DatasetError(f"{path} line {n}: expected '<label> <name>', got {line!r}")
        mapping[raw.strip()] = name.strip()
    return mapping


def _display_names(raw: Sequence[str], mapping_file: str | Path | None, source: str = "") -> list[str]:
    if mapping_file is None:
        numeric_classnames_warning(raw, source)
        return [clean_classname(r) for r in raw]
    mapping = read_class_mapping(mapping_file)
    unmapped = [r for r in raw if r not in mapping]
    if unmapped:
        raise DatasetError(f"class-name mapping {mapping_file} has no name for {unmapped[:5]}")
    unused = sorted(set(mapping) - set(raw))
    if unused:
        log.warning("class-name mapping %s names %d labels without images (e.g. %s)",
                    mapping_file, len(unused), unused[0])
    return [mapping[r] for r in raw]


def _mapping_info(mapping_file: str | Path | None) -> dict:
    """Recorded so that `eval` of a saved run reloads the data with the same names."""
    return {"classnames_file": str(Path(mapping_file).expanduser().absolute())} if mapping_file else {}


def _resolve(arg: str, root: Path | None) -> Path:
    """A path given after `folder:`/`csv:`; relative ones may also live under `root`."""
    path = Path(arg).expanduser()
    if root is not None and not path.is_absolute() and not path.exists():
        path = root / path
    return path.absolute()


def _status(arg: str, root: Path | None, exists, loader) -> str:
    """"missing", "present", or "incomplete: <why>" (the loader's own error)."""
    if not exists(_resolve(arg, root)):
        return "missing"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loader(arg, root=root)
    except DatasetError as exc:
        return f"incomplete: {exc}"
    return "present"


def _folder_status(arg: str, root: Path | None) -> str:
    return _status(arg, root, Path.is_dir, load_folder)


@register_family("folder", status=_folder_status)
def load_folder(arg: str, root: Path | None = None, seed: int = 1,
                classnames: str | Path | None = None) -> DatasetSplits:
    """`folder:<dir>`: <dir>/<class>/*.jpg, or <dir>/{train,val,test}/<class>/*.jpg."""
    base = _resolve(arg, root)
    if not base.is_dir():
        raise DatasetError(f"image folder {base} does not exist")
    if (base / "train").is_dir() and (base / "test").is_dir():
        classes, _ = scan_class_folders(base / "train")
        label_of = {c: i for i, c in enumerate(classes)}
        splits: dict[str, list[Item]] = {}
        for split in SPLIT_NAMES:
            if not (base / split).is_dir():
                splits[split] = []
                continue
            names, files = scan_class_folders(base / split)
            unknown = sorted(set(names) - set(classes))
            if unknown:
                raise DatasetError(f"{base / split} has classes not in train: {unknown[:5]}")
            splits[split] = [Item(p, label_of[n]) for n, ps in zip(names, files, strict=True) for p in ps]
        listed = [Listed(it.path, classes[it.label], split, f"{split}/{classes[it.label]}")
                  for split in SPLIT_NAMES for it in splits[split]]
        kept = dedupe(listed, f"image folder {base}")
        splits = {s: [Item(e.path, label_of[e.label]) for e in kept if e.split == s] for s in SPLIT_NAMES}
        source = "split folders"
    else:
        classes, files = scan_class_folders(base)
        kept = dedupe([Listed(p, c, "", f"{c}/") for c, ps in zip(classes, files, strict=True) for p in ps],
                      f"image folder {base}")
        files = [[e.path for e in kept if e.label == c] for c in classes]
        splits = cut_per_class(files, seed=seed)
        source = f"cut 50/20/30 per class (seed {seed})"
    data = DatasetSplits(
        name=f"folder:{base}", classnames=_display_names(classes, classnames, f"image folder {base}"),
        templates=[DEFAULT_TEMPLATE], info={"root": str(base), "split_source": source, **_mapping_info(classnames)},
        **splits)
    check_split_overlap(data)
    warn_content_copies(data)
    return data


# ----------------------------------------------------------------------------- CSV


def _read_rows(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, path, label, split) per data row; the header row, if any, names the columns."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [(n, row) for n, row in enumerate(csv.reader(fh), 1) if any(c.strip() for c in row)]
    except FileNotFoundError:
        raise DatasetError(f"CSV file {path} is missing") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"CSV file {path} cannot be read ({exc})") from None
    columns = {"path": 0, "label": 1, "split": 2}
    if rows and rows[0][1][0].strip().lower() == "path":
        header = [c.strip().lower() for c in rows.pop(0)[1]]
        if "label" not in header:
            raise DatasetError(f"{path}: the header must name the columns path,label[,split]")
        columns = {c: header.index(c) for c in ("path", "label", "split") if c in header}
    if not rows:
        raise DatasetError(f"CSV file {path} has no rows (expected path,label[,split])")
    out = []
    for n, row in rows:
        cells = [c.strip() for c in row]
        if len(cells) <= max(columns["path"], columns["label"]) or len(cells) > 3:
            raise DatasetError(f"{path} line {n}: expected path,label[,split], got {row!r}")
        split_col = columns.get("split")
        split = cells[split_col] if split_col is not None and split_col < len(cells) else ""
        out.append((n, cells[columns["path"]], cells[columns["label"]], split))
    return out


def _sorted_labels(labels: set[str]) -> list[str]:
    """Numeric labels in numeric order, otherwise text order."""
    if all(lab.lstrip("-").isdigit() for lab in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def _csv_status(arg: str, root: Path | None) -> str:
    return _status(arg, root, Path.is_file, load_csv)


@register_family("csv", status=_csv_status)
def load_csv(arg: str, root: Path | None = None, seed: int = 1,
             classnames: str | Path | None = None) -> DatasetSplits:
    """`csv:<file>` with rows `path,label[,split]`; every listed image must exist."""
    path = _resolve(arg, root)
    rows = _read_rows(path)
    base = path.parent
    raw = _sorted_labels({label for _, _, label, _ in rows})
    label_of = {r: i for i, r in enumerate(raw)}
    has_split = [bool(split) for *_, split in rows]
    if any(has_split) and not all(has_split):
        n = rows[has_split.index(False)][0]
        raise DatasetError(f"{path} line {n}: no split given while other rows have one; "
                           "give every row a split or none")
    listed, missing = [], []
    for n, rel, label, split in rows:
        image = base / safe_relative(rel, f"{path} line {n}")
        if not image.is_file():
            missing.append(f"{rel} (line {n})")
        if split and split.lower() not in SPLIT_ALIASES:
            raise DatasetError(f"{path} line {n}: split {split!r} is not train, val or test")
        listed.append(Listed(image, label, SPLIT_ALIASES.get(split.lower(), ""), f"line {n}"))
    if missing:
        raise DatasetError(f"{path}: {len(missing)} listed images are missing, e.g. "
                           f"{', '.join(missing[:3])} (paths are relative to {base})")
    items = [(e.split, Item(e.path, label_of[e.label])) for e in dedupe(listed, f"CSV file {path}")]
    if all(has_split):
        splits = {s: [it for sp, it in items if sp == s] for s in SPLIT_NAMES}
        source = "split column"
    else:
        files: list[list[Path]] = [[] for _ in raw]
        for _, it in items:
            files[it.label].append(it.path)
        splits = cut_per_class(files, seed=seed)
        source = f"cut 50/20/30 per class (seed {seed})"
    data = DatasetSplits(
        name=f"csv:{path}", classnames=_display_names(raw, classnames, f"CSV file {path}"),
        templates=[DEFAULT_TEMPLATE], info={"root": str(base), "csv": str(path), "split_source": source,
                                                   **_mapping_info(classnames)}, **splits)
    check_split_overlap(data)
    warn_content_copies(data)
    return data

