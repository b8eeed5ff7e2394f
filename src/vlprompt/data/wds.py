"""`wds:<dir>`: WebDataset shards in the CLIP benchmark's `wds_*` layout.

    <dir>/train/0.tar, 1.tar, ... (optional nshards.txt: how many)
    <dir>/test/0.tar, ...          (val/ or validation/ when there is one)
    <dir>/classnames.txt           one class name per line, in label order
    <dir>/zeroshot_classification_templates.txt   optional, one template per line ({c})

Each sample of a shard is the members sharing a key (the member name up to the first dot
of its base name, WebDataset's rule): an image (`.jpg`, `.png`, `.webp`, ...) and its
label (`.cls`, the class index as text). The shards are read with the standard library's
`tarfile` (no extra to install): the headers and the small `.cls` members are read once
per shard and the resulting index (member, offset, size, label) kept in
`$VLPROMPT_CACHE/wds-index/` under the shard's size and mtime; each image is read later
from its byte offset, so a 16-shot run decodes 16 images per class, not the split. Shards must therefore be plain, uncompressed `.tar`
files (as the benchmark ships them). A split without val gets one cut from train (80/20
per class, seeded), a layout with train only is cut 50/20/30 as image folders are, and a
layout with test only is a test-only dataset; `info["split_source"]` records which.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..utils.io import atomic_write_text
from .checks import check_split_overlap
from .custom import DEFAULT_TEMPLATE, _resolve, _status
from .datasets.common import SPLIT_SEED, cut_per_class, cut_train_val
from .registry import DatasetError, register_family
from .types import DatasetSplits, ImageSource, Item

#: Image member extensions, as WebDataset's decoders name them.
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "ppm", "pgm", "pbm", "pnm", "gif")
#: Folder names of each split, first match wins.
SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}
_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # key = up to the first dot of the base name


@dataclass(frozen=True)
class TarMember(ImageSource):
    """One image inside an uncompressed tar shard, read from its byte offset."""

    shard: Path
    name: str
    offset: int
    size: int

    def read_bytes(self) -> bytes:
        with open(self.shard, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(self.size)
        if len(data) != self.size:
            raise OSError(f"the shard ends {self.size - len(data)} bytes early (truncated?)")
        return data

    def stamp(self) -> str:
        st = os.stat(self.shard)
        return f"{st.st_size}:{st.st_mtime_ns}"

    def __str__(self) -> str:
        return f"{self.shard}::{self.name}"


def _read_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} cannot be read ({exc})") from None


def _shards(folder: Path) -> list[Path]:
    """The shards of a split folder: 0.tar .. n-1.tar by nshards.txt, else every .tar in
    numeric-then-text order."""
    count_file = folder / "nshards.txt"
    if count_file.is_file():
        text = count_file.read_text(encoding="utf-8").strip()
        if not text.isdigit():
            raise DatasetError(f"{count_file} must hold the number of shards, got {text[:40]!r}")
        shards = [folder / f"{i}.tar" for i in range(int(text))]
        missing = [p.name for p in shards if not p.is_file()]
        if missing:
            raise DatasetError(f"{folder}: nshards.txt says {text} shards but {', '.join(missing[:3])} "
                               "are missing; restore them or fix nshards.txt")
        return shards
    found = [p for p in folder.iterdir() if p.is_file() and p.suffix == ".tar" and not p.name.startswith(".")]
    return sorted(found, key=lambda p: (not p.stem.isdigit(), int(p.stem) if p.stem.isdigit() else 0, p.name))


INDEX_FORMAT = "vlprompt.wds-index/1"


def index_dir() -> Path:
    """`$VLPROMPT_CACHE/wds-index`, else `~/.cache/vlprompt/wds-index`."""
    env = os.environ.get("VLPROMPT_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "vlprompt") / "wds-index"


def index_shard(shard: Path, num_classes: int) -> list[Item]:
    """The labelled images of one shard, in shard order. The (member, offset, size, label)
    list is kept in `index_dir()` under the shard's path, size and mtime, so a later load
    of an unchanged shard reads no tar header at all."""
    st = os.stat(shard)
    stamp = {"format": INDEX_FORMAT, "shard": str(shard), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    cached = index_dir() / f"{hashlib.sha256(str(shard).encode('utf-8', 'surrogateescape')).hexdigest()[:32]}.json"
    rows = None
    try:
        data = json.loads(cached.read_text(encoding="utf-8"))
        if isinstance(data, dict) and all(data.get(k) == v for k, v in stamp.items()):
            rows = data["samples"]
    except (OSError, ValueError, KeyError):
        rows = None
    if rows is None:
        rows = _read_shard(shard, num_classes)
        try:
            atomic_write_text(cached, json.dumps({**stamp, "samples": rows}))
        except OSError:
            pass  # an unwritable cache only costs the next load its header pass
    items = []
    for name, offset, size, label in rows:
        if not 0 <= label < num_classes:
            raise DatasetError(f"{shard}: sample {name!r} has label {label}, not a class index "
                               f"0..{num_classes - 1} (classnames.txt has {num_classes} names)")
        items.append(Item(TarMember(shard, name, offset, size), label))
    return items


def _read_shard(shard: Path, num_classes: int) -> list[list]:
    """[member name, data offset, size, label] per sample; nothing but headers and labels is read."""
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    try:
        with tarfile.open(shard, mode="r:") as tar:
            for info in tar:
                match = _KEY.match(info.name) if info.isfile() else None
                if match:
                    samples.setdefault(match.group(1), {})[match.group(2).lower()] = info
            items = []
            for key, parts in samples.items():
                image = next((parts[e] for e in IMAGE_EXTENSIONS if e in parts), None)
                if image is None and "cls" not in parts:
                    continue  # neither image nor label: metadata of another kind
                if image is None or "cls" not in parts:
                    lacks = "an image" if image is None else "a .cls label"
                    raise DatasetError(f"{shard}: sample {key!r} has no {lacks} "
                                       "(each sample needs an image and a .cls label)")
                text = tar.extractfile(parts["cls"]).read().decode("utf-8", "replace").strip()
                if not text.lstrip("-").isdigit() or not 0 <= int(text) < num_classes:
                    raise DatasetError(f"{shard}: sample {key!r} has label {text[:20]!r}, not a class index "
                                       f"0..{num_classes - 1} (classnames.txt has {num_classes} names)")
                items.append([image.name, image.offset_data, image.size, int(text)])
    except tarfile.ReadError as exc:
        raise DatasetError(f"{shard} is not an uncompressed tar file ({exc}); images are read from their "
                           "offsets, so decompress .tar.gz shards first") from None
    except OSError as exc:
        raise DatasetError(f"shard {shard} cannot be read ({exc})") from None
    return items


def _split_items(base: Path, split: str, num_classes: int, counts: dict[str, int]) -> list[Item] | None:
    """The items of one split (its shard count into `counts`), or None when the layout has
    no folder for it."""
    folder = next((base / n for n in SPLIT_FOLDERS[split] if (base / n).is_dir()), None)
    if folder is None:
        return None
    shards = _shards(folder)
    if not shards:
        raise DatasetError(f"{folder} holds no .tar shards")
    counts[split] = len(shards)
    return [item for shard in shards for item in index_shard(shard, num_classes)]


def templates_of(path: Path) -> list[str]:
    """The benchmark's templates (`{c}` marks the class) in our form (`{}`); absent: the default."""
    if not path.is_file():
        return [DEFAULT_TEMPLATE]
    out = []
    for line in _read_lines(path):
        template = line.replace("{c}", "{}")
        if template.count("{}") != 1:
            raise DatasetError(f"{path}: template {line!r} must mark the class once with {{c}}")
        out.append(template)
    return out or [DEFAULT_TEMPLATE]


def _wds_status(arg: str, root: Path | None) -> str:
    return _status(arg, root, Path.is_dir, load_wds)


@register_family("wds", status=_wds_status)
def load_wds(arg: str, root: Path | None = None, seed: int = SPLIT_SEED, **_: object) -> DatasetSplits:
    """`wds:<dir>`: see the module docstring."""
    base = _resolve(arg, root)
    if not base.is_dir():
        raise DatasetError(f"WebDataset folder {base} does not exist")
    names_file = base / "classnames.txt"
    if not names_file.is_file():
        raise DatasetError(f"{base} has no classnames.txt (one class name per line, in label order)")
    classnames = _read_lines(names_file)
    if not classnames:
        raise DatasetError(f"{names_file} is empty")
    counts: dict[str, int] = {}
    found = {s: _split_items(base, s, len(classnames), counts) for s in SPLIT_FOLDERS}
    if all(v is None for v in found.values()):
        raise DatasetError(f"{base} has no split folders (expected train/ and test/ holding .tar shards)")
    train, val, test = (found[s] or [] for s in ("train", "val", "test"))
    splits = {"train": train, "val": val, "test": test}
    if found["val"] is None and train and test:
        splits["train"], splits["val"] = cut_train_val(train, len(classnames), seed=seed)
        source = f"train and test shards; val cut from train 80/20 per class (seed {seed})"
    elif train and found["test"] is None:  # no test shards: cut what there is, as image folders are
        groups = [[] for _ in classnames]
        for item in train + val:
            groups[item.label].append(item.path)
        splits = cut_per_class(groups, seed=seed)
        source = f"train shards only; cut 50/20/30 per class (seed {seed})"
    else:
        source = "split folders" if train else "test shards only (test-only dataset)"
    data = DatasetSplits(
        name=f"wds:{base}", classnames=classnames, templates=templates_of(
            base / "zeroshot_classification_templates.txt"),
        info={"root": str(base), "split_source": source, "shards": counts},
        **splits)
    check_split_overlap(data)
    return data
