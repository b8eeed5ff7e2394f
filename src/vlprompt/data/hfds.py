"""`hfds:<dir or hub id>[#config][@mapping]`: Hugging Face `datasets` (the `hf` extra).

Three homes are read, all offline (the hub is never asked at run time):
- a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`;
- a folder of parquet files (split names from the file or folder names, as `datasets`
  infers them: `train-*.parquet`, `data/test-*.parquet`, ...), converted once by
  `datasets` into its Arrow cache (`$HF_DATASETS_CACHE`, `~/.cache/huggingface/datasets`);
- a hub id whose download is already in that cache (`#config` picks a configuration).

The image column is the one of feature type `Image`, the label column the one of type
`ClassLabel`, whose names are the class names; `@` overrides any of it, e.g.
`@val=dev,test=validation,image=img,label=fine_label`. Splits default to `train`,
`validation`/`val`/`valid`/`dev` and `test`; without val, one is cut from train (80/20 per
class, seeded), and `info["split_source"]` records it. Rows whose label is negative
(unlabelled test sets) are left out and counted in `info["unlabelled_rows"]`.

Images stay in the memory-mapped Arrow files: an item is an `ArrowRow` (file list, split,
row index, the dataset's fingerprint), and a batch reads its rows' bytes with pyarrow,
so a 16-shot run decodes 16 images per class, never the split. The feature cache keys on
the fingerprint, which changes whenever `datasets` rewrites the data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import check_split_overlap
from .custom import DEFAULT_TEMPLATE, _resolve
from .datasets.common import (
    SPLIT_SEED,
    clean_classname,
    cut_per_class,
    cut_train_val,
    safe_relative,
)
from .registry import DatasetError, register_family
from .types import DatasetSplits, ImageSource, Item

EXTRA_HINT = "reading Hugging Face datasets needs the `datasets` package: pip install 'vlprompt[hf]'"
SPLIT_CANDIDATES = {"train": ("train",), "val": ("validation", "val", "valid", "dev"), "test": ("test",)}
MAPPING_KEYS = ("train", "val", "test", "image", "label")


@dataclass(frozen=True)
class ArrowTable:
    """One split's Arrow files, shared by its rows (pickled once per DataLoader worker)."""

    root: str  # the folder named by the user (or the cache folder of a hub id): the rows' identity
    split: str
    column: str
    files: tuple[str, ...]
    fingerprint: str


_OPEN: dict[ArrowTable, Any] = {}  # per process: the memory-mapped table of each split


def _table(spec: ArrowTable):
    """The split's pyarrow table, memory-mapped once per process (workers open their own)."""
    table = _OPEN.get(spec)
    if table is None:
        import pyarrow as pa

        parts = []
        for name in spec.files:
            with pa.memory_map(name) as source:
                try:
                    parts.append(pa.ipc.open_stream(source).read_all())
                except pa.ArrowInvalid:
                    parts.append(pa.ipc.open_file(source).read_all())
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        _OPEN[spec] = table
    return table


@dataclass(frozen=True)
class ArrowRow(ImageSource):
    """The image of one row of a Hugging Face dataset split."""

    table: ArrowTable
    index: int

    def read_bytes(self) -> bytes:
        cell = _table(self.table).column(self.table.column)[self.index].as_py()
        if isinstance(cell, dict) and cell.get("bytes"):
            return cell["bytes"]
        path = cell.get("path") if isinstance(cell, dict) else None
        if not path:
            raise ValueError(f"column {self.table.column!r} holds neither bytes nor a path")
        file = Path(path) if os.path.isabs(path) else Path(self.table.root) / safe_relative(path, str(self))
        with open(file, "rb") as fh:
            return fh.read()

    def stamp(self) -> str:
        return self.table.fingerprint

    def __str__(self) -> str:
        return f"{self.table.root}/{self.table.split}::{self.index}"  # <folder>/<split>::<row>


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class HFSpec:
    location: str
    config: str | None
    mapping: dict


def parse_spec(arg: str) -> HFSpec:
    """`<dir or id>[#config][@key=value,...]`: the mapping is the part after the last `@`
    that holds an `=`, the config the part after the last `#` before it."""
    rest, mapping = arg, {}
    head, at, tail = arg.rpartition("@")
    if at and "=" in tail:
        rest = head
        for pair in tail.split(","):
            key, eq, value = pair.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or key not in MAPPING_KEYS or not value:
                raise DatasetError(f"hfds:{arg}: bad mapping {pair!r}; use @<key>=<name> with keys "
                                   f"{', '.join(MAPPING_KEYS)} (e.g. @val=dev,label=fine_label)")
            mapping[key] = value
    location, hash_, config = rest.rpartition("#")
    if not hash_:
        location, config = rest, None
    if not location.strip():
        raise DatasetError(f"hfds:{arg}: name a folder or a hub id, e.g. hfds:/data/pets or hfds:user/pets")
    return HFSpec(location.strip(), (config or "").strip() or None, mapping)


# ----------------------------------------------------------------------------- loading


def _datasets():
    try:
        import datasets
    except ImportError:
        raise DatasetError(EXTRA_HINT) from None
    return datasets


@contextmanager
def _offline(datasets) -> Iterator[None]:
    """Hub access off for the block (the cache is still read), whatever the environment says."""
    import huggingface_hub.constants as hub

    saved = (datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = saved


def _hub_error(spec: HFSpec, exc: Exception) -> DatasetError:
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    config = f", {spec.config!r}" if spec.config else ""
    return DatasetError(
        f"could not load the Hugging Face dataset {spec.location!r} offline: wanted its files "
        f"(https://huggingface.co/datasets/{spec.location}) in the local cache, which does not hold them "
        f"({reason}). On a machine with network access run `datasets.load_dataset('{spec.location}'"
        f"{config}).save_to_disk(DIR)`, copy DIR here and use hfds:DIR; downloads already cached in "
        "HF_DATASETS_CACHE are found automatically.")


def _open(spec: HFSpec, root: Path | None) -> tuple[dict, str]:
    """({split name: Dataset}, the folder that identifies the rows)."""
    datasets = _datasets()
    local = _resolve(spec.location, root)
    looks_local = local.exists() or spec.location.startswith((".", "/", "~")) or spec.location.count("/") > 1
    with _offline(datasets):
        if local.is_dir():
            if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
                try:
                    loaded = datasets.load_from_disk(str(local))
                except Exception as exc:  # noqa: BLE001 - datasets raises many types
                    raise DatasetError(f"{local} cannot be read by datasets.load_from_disk "
                                       f"({type(exc).__name__}: {exc})") from None
            elif any(local.rglob("*.parquet")):
                try:
                    loaded = datasets.load_dataset("parquet", data_dir=str(local))
                except Exception as exc:  # noqa: BLE001
                    raise DatasetError(f"the parquet files under {local} cannot be read "
                                       f"({type(exc).__name__}: {exc})") from None
            else:
                raise DatasetError(f"{local} holds neither a saved dataset (dataset_dict.json or "
                                   "state.json, from save_to_disk) nor parquet files")
            where = str(local)
        elif looks_local:
            raise DatasetError(f"Hugging Face dataset folder {local} does not exist")
        else:
            try:
                loaded = datasets.load_dataset(spec.location, spec.config)
            except Exception as exc:  # noqa: BLE001 - not cached, gated, bad config: one message
                raise _hub_error(spec, exc) from None
            where = ""
    splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    if not where:
        first = next((d.cache_files for d in splits.values() if d.cache_files), [])
        where = str(Path(first[0]["filename"]).parent) if first else spec.location
    return splits, where


def _column(features: dict, wanted: str | None, kind: str, datasets, source: str) -> str:
    """The column named `wanted`, else the one column whose feature is of type `kind`."""
    types = {"image": datasets.Image, "label": datasets.ClassLabel}
    if wanted is not None:
        if wanted not in features:
            raise DatasetError(f"{source}: no column {wanted!r}; columns: {', '.join(features)}")
        if not isinstance(features[wanted], types[kind]):
            raise DatasetError(f"{source}: column {wanted!r} is {type(features[wanted]).__name__}, "
                               f"not {types[kind].__name__}")
        return wanted
    found = [name for name, f in features.items() if isinstance(f, types[kind])]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(found)})"
        raise DatasetError(f"{source}: {what} columns of type {types[kind].__name__}; name the {kind} "
                           f"column with @{kind}=<column> (columns: {', '.join(features)})")
    return found[0]


def _pick_splits(available: dict, mapping: dict, source: str) -> dict[str, str]:
    """Our split -> theirs: the mapping's, else the first usual name present."""
    chosen = {}
    for ours, candidates in SPLIT_CANDIDATES.items():
        if ours in mapping:
            if mapping[ours] not in available:
                raise DatasetError(f"{source}: no split {mapping[ours]!r}; splits: {', '.join(available)}")
            chosen[ours] = mapping[ours]
        else:
            name = next((c for c in candidates if c in available), None)
            if name is not None:
                chosen[ours] = name
    if not chosen:
        raise DatasetError(f"{source}: none of its splits ({', '.join(available)}) is train, validation or "
                           "test; map them, e.g. @train=<name>,test=<name>")
    return chosen


def _items(ds, split: str, where: str, image: str, label: str) -> tuple[list[Item], int]:
    """The split's labelled rows as items (no image read), and how many rows had no label."""
    if getattr(ds, "_indices", None) is not None:
        ds = ds.flatten_indices()  # rows must be where the Arrow files have them
    files = tuple(f["filename"] for f in ds.cache_files)
    if not files:
        raise DatasetError(f"{where}: split {split!r} is held in memory only; save it with save_to_disk")
    table = ArrowTable(root=where, split=split, column=image, files=files, fingerprint=ds._fingerprint)
    labels = ds.data.column(label).to_pylist()
    items = [Item(ArrowRow(table, i), y) for i, y in enumerate(labels) if y is not None and y >= 0]
    return items, len(labels) - len(items)


def _hfds_status(arg: str, root: Path | None) -> str:
    spec = parse_spec(arg)
    local = _resolve(spec.location, root)
    if not local.exists() and (spec.location.startswith((".", "/", "~")) or spec.location.count("/") > 1):
        return "missing"
    try:
        load_hfds(arg, root=root)
    except DatasetError as exc:
        return f"incomplete: {exc}"
    return "present"


@register_family("hfds", status=_hfds_status)
def load_hfds(arg: str, root: Path | None = None, seed: int = SPLIT_SEED, **_: object) -> DatasetSplits:
    """`hfds:<dir or hub id>[#config][@mapping]`: see the module docstring."""
    spec = parse_spec(arg)
    datasets = _datasets()
    found, where = _open(spec, root)
    source = f"hfds:{spec.location}"
    chosen = _pick_splits(found, spec.mapping, source)
    features = found[next(iter(chosen.values()))].features
    image = _column(features, spec.mapping.get("image"), "image", datasets, source)
    label = _column(features, spec.mapping.get("label"), "label", datasets, source)
    names = list(features[label].names)
    splits: dict[str, list[Item]] = {"train": [], "val": [], "test": []}
    unlabelled = {}
    for ours, theirs in chosen.items():
        ds = found[theirs]
        if ds.features.get(label) != features[label] or image not in ds.features:
            raise DatasetError(f"{source}: split {theirs!r} has other columns or classes than the others")
        splits[ours], unlabelled[theirs] = _items(ds, theirs, where, image, label)
    if "val" not in chosen and splits["train"] and splits["test"]:
        splits["train"], splits["val"] = cut_train_val(splits["train"], len(names), seed=seed)
        split_source = f"val cut from train 80/20 per class (seed {seed})"
    elif "test" not in chosen and splits["train"]:
        groups: list[list] = [[] for _ in names]
        for item in splits["train"] + splits["val"]:
            groups[item.label].append(item.path)
        splits = cut_per_class(groups, seed=seed)
        split_source = f"no test split; cut 50/20/30 per class (seed {seed})"
    else:
        split_source = "the dataset's splits"
    name = f"hfds:{where if Path(where) == _resolve(spec.location, root) else spec.location}"
    name += (f"#{spec.config}" if spec.config else "") + (
        "@" + ",".join(f"{k}={v}" for k, v in spec.mapping.items()) if spec.mapping else "")
    data = DatasetSplits(
        name=name, classnames=[clean_classname(n) for n in names], templates=[DEFAULT_TEMPLATE],
        info={"root": where, "split_source": split_source, "splits": chosen, "image_column": image,
              "label_column": label, "fingerprints": {s: found[s]._fingerprint for s in chosen.values()},
              **({"unlabelled_rows": {k: v for k, v in unlabelled.items() if v}}
                 if any(unlabelled.values()) else {})},
        **splits)
    check_split_overlap(data)
    return data

