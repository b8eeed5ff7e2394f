"""Few-shot subsets: K images per class from train, min(K, 4) from val, test kept whole.

The validation data can be asked for otherwise (`validation`): none (the run sees no
validation images) or the whole val split; the train shots are the same in every case.

Sampling uses an explicit seeded generator, so a (dataset, K, seed) always gives the same
subset. The subset is written as a readable JSON manifest (paths relative to the dataset
root, labels, seed, K and a hash of the source split) and read back on the next run; a
moved data root keeps it valid, a changed source split invalidates it. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from dataclasses import replace
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import VLPromptWarning
from ..utils.io import atomic_write_text
from .datasets.common import safe_relative
from .registry import DatasetError
from .types import DatasetSplits, Item

log = logging.getLogger(__name__)

FORMAT = "vlprompt.fewshot/1"
MAX_VAL_SHOTS = 4
#: What the validation split of a few-shot subset holds (`DataConfig.validation`).
VALIDATION = ("fewshot", "none", "full")
Entry = tuple[str, int]  # (path relative to the dataset root, label)


def default_manifest_dir() -> Path:
    """`$VLPROMPT_CACHE/fewshot`, else `~/.cache/vlprompt/fewshot`."""
    env = os.environ.get("VLPROMPT_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "vlprompt") / "fewshot"


def _dataset_root(dataset: DatasetSplits) -> Path | None:
    root = dataset.info.get("root")
    return Path(root) if root else None


def _entries(items: list[Item], root: Path | None) -> list[Entry]:
    """Paths relative to the root where possible, so a moved data root keeps the manifest valid.

    Plain string prefixes rather than Path.relative_to: ImageNet has 1.28M items.
    """
    prefix = os.path.join(str(root), "") if root is not None else None
    out = []
    for item in items:
        path = str(item.path)
        if prefix is not None and path.startswith(prefix):
            rel = path[len(prefix):]
        else:
            rel = os.path.abspath(path)
        out.append((rel.replace(os.sep, "/"), item.label))
    return out


def _item(entry: list, root: Path | None, num_classes: int, where: str) -> Item:
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
            and isinstance(entry[1], int) and 0 <= entry[1] < num_classes):
        raise DatasetError(f"{where}: expected [path, label], got {entry!r}; delete the manifest")
    rel, label = entry
    if PurePosixPath(rel).is_absolute():
        return Item(Path(rel), label)
    if root is None:
        raise DatasetError(f"{where}: relative path {rel!r} but the dataset has no root")
    return Item(root / safe_relative(rel, where), label)


def source_hash(classnames: list[str], train: list[Entry], val: list[Entry]) -> str:
    """sha256 of the class names and the train/val entries the subset is drawn from."""
    blob = json.dumps({"classnames": classnames, "train": train, "val": val}, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def manifest_path(manifest_dir: Path, dataset_name: str, shots: int, seed: int) -> Path:
    """One file per (dataset, K, seed); names with paths in them get a short hash."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset_name).strip("_")[-60:]
    if slug != dataset_name:
        slug += "-" + hashlib.sha1(dataset_name.encode("utf-8")).hexdigest()[:8]
    return manifest_dir / f"{slug}-{shots}shot-seed{seed}.json"


def _sample(entries: list[Entry], num_classes: int, k: int,
            rng: np.random.Generator) -> tuple[list[Entry], dict[int, int]]:
    """k entries per label (all of them when fewer), and the labels that had fewer than k."""
    by_label: list[list[int]] = [[] for _ in range(num_classes)]
    for index, (_, label) in enumerate(entries):
        by_label[label].append(index)
    chosen: list[Entry] = []
    short: dict[int, int] = {}
    for label, indices in enumerate(by_label):
        if len(indices) < k:
            short[label] = len(indices)
            picked = indices
        else:
            picked = sorted(indices[i] for i in rng.choice(len(indices), size=k, replace=False))
        chosen += [entries[i] for i in picked]
    return chosen, short


def _read_manifest(path: Path, expected: dict) -> dict | None:
    """The manifest when it matches the request and the current source split, else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("few-shot manifest %s is unreadable (%s); sampling again", path, exc)
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not (
            isinstance(data.get("train"), list) and isinstance(data.get("val"), list)
            and isinstance(data.get("short_classes"), list) and isinstance(data.get("strict"), bool)):
        log.warning("few-shot manifest %s has an unknown format; sampling again", path)
        return None
    for key, value in expected.items():
        if data.get(key) != value:
            if key == "source_hash":
                log.warning("the source split of %s changed since %s was written; sampling again",
                            expected["dataset"], path)
            else:
                log.warning("few-shot manifest %s has %s=%r, not %r; sampling again",
                            path, key, data.get(key), value)
            return None
    return data


def _drawn_from(data: dict, train: list[Entry], val: list[Entry]) -> bool:
    """Whether every manifest entry is an entry of the source split: a manifest can only pick
    images the dataset itself lists, so an edited one cannot point outside the data root."""
    try:
        return ({tuple(e) for e in data["train"]} <= set(train)
                and {tuple(e) for e in data["val"]} <= set(val))
    except TypeError:  # unhashable entries: not a manifest we wrote
        return False


def _write_manifest(path: Path, data: dict) -> bool:
    try:
        atomic_write_text(path, json.dumps(data, indent=1))
        return True
    except OSError as exc:
        log.warning("cannot write few-shot manifest %s (%s); the subset is not cached", path, exc)
        return False


def _short_message(dataset: DatasetSplits, short: dict[int, int], k: int, split: str) -> str:
    listed = ", ".join(f"{dataset.classnames[c]!r} ({n})" for c, n in list(short.items())[:5])
    more = f" and {len(short) - 5} more" if len(short) > 5 else ""
    return f"{dataset.name}: {len(short)} classes have fewer than {k} {split} images: {listed}{more}"


def sample_fewshot(dataset: DatasetSplits, shots: int, seed: int = 1, *,
                   manifest_dir: str | Path | None = None, strict: bool = False,
                   use_manifest: bool = True, validation: str = "fewshot") -> DatasetSplits:
    """K shots per class from train, min(K, 4) per class from val, the test split whole.

    `validation`: "fewshot" (the above), "none" (an empty val split) or "full" (the
    dataset's whole val split); the train shots and the manifest do not depend on it.

    A class with fewer than K train images gives all it has and one warning, or a
    DatasetError with `strict=True`. The manifest lives in `manifest_dir` (default
    `default_manifest_dir()`); `use_manifest=False` neither reads nor writes one.
    """
    if not isinstance(shots, int) or shots < 1:
        raise DatasetError(f"shots must be a positive integer, got {shots!r}")
    if not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"the seed must be an integer of 0 or more, got {seed!r}")
    if validation not in VALIDATION:
        raise DatasetError(f"validation must be one of {', '.join(VALIDATION)}, got {validation!r}")
    if validation == "full" and not dataset.val:
        raise DatasetError(f"{dataset.name} has no validation split, so validation=full has nothing to use; "
                           "use fewshot or none")
    if not dataset.train:
        raise DatasetError(f"{dataset.name} has no train split (test-only datasets cannot be sampled)")
    root = _dataset_root(dataset)
    train, val = _entries(dataset.train, root), _entries(dataset.val, root)
    val_shots = min(shots, MAX_VAL_SHOTS)
    expected = {"dataset": dataset.name, "shots": shots, "val_shots": val_shots, "seed": seed,
                "source_hash": source_hash(dataset.classnames, train, val)}
    path = manifest_path(Path(manifest_dir) if manifest_dir else default_manifest_dir(),
                         dataset.name, shots, seed)
    data = _read_manifest(path, expected) if use_manifest else None
    if data is not None and not _drawn_from(data, train, val):
        for i, e in enumerate(data["train"] + data["val"]):
            _item(e, root, dataset.num_classes, f"{path} entry {i}")  # names a path that escapes the root
        raise DatasetError(f"few-shot manifest {path} lists images that are not in the {dataset.name} "
                           "splits (edited by hand?); delete it to sample again")
    reused = data is not None
    if data is not None:
        short = {int(label): count for label, _, count in data["short_classes"]}
        if strict and short:
            raise DatasetError(_short_message(dataset, short, shots, "train")
                               + f" (manifest {path}); use fewer shots or drop strict")
    else:
        train_pick, short = _sample(train, dataset.num_classes, shots, np.random.default_rng([seed, 0]))
        if strict and short:
            raise DatasetError(_short_message(dataset, short, shots, "train")
                               + "; use fewer shots or drop strict")
        val_pick, _ = _sample(val, dataset.num_classes, val_shots, np.random.default_rng([seed, 1]))
        data = {**expected, "format": FORMAT, "strict": strict,
                "sampler": "numpy PCG64; train stream [seed, 0], val stream [seed, 1]; "
                           "per class, in label order, without replacement",
                "paths": "relative to the dataset root (absolute when outside it)",
                "root_when_written": str(root) if root else None,
                "classnames": dataset.classnames,
                "short_classes": [[c, dataset.classnames[c], n] for c, n in short.items()],
                "train": [list(e) for e in train_pick], "val": [list(e) for e in val_pick]}
        if use_manifest:
            _write_manifest(path, data)
    if short:
        warnings.warn(f"{_short_message(dataset, short, shots, 'train')}; taking all of them "
                      "(recorded in the run record; --strict-shots makes this an error)",
                      VLPromptWarning, stacklevel=2)
    n = dataset.num_classes
    # Entries name the dataset's own items (checked above), so they map back to them: an
    # item that is not a file (a tar member, a table row) keeps its reader.
    own = dict(zip(train + val, dataset.train + dataset.val, strict=True))

    def item(entry: list, where: str) -> Item:
        found = own.get((entry[0], entry[1])) if isinstance(entry, list) and len(entry) == 2 else None
        return found if found is not None else _item(entry, root, n, where)

    new_train = [item(e, f"{path} train[{i}]") for i, e in enumerate(data["train"])]
    if validation == "fewshot":
        new_val = [item(e, f"{path} val[{i}]") for i, e in enumerate(data["val"])]
    else:
        new_val = list(dataset.val) if validation == "full" else []
    info = {**dataset.info, "fewshot": {
        "shots": shots, "val_shots": val_shots if validation == "fewshot" else None, "seed": seed,
        "validation": validation, "n_val": len(new_val), "strict": data["strict"],
        "manifest": str(path) if use_manifest else None, "reused": reused,
        "short_classes": data["short_classes"], "source_hash": expected["source_hash"]}}
    return replace(dataset, train=new_train, val=new_val, info=info)
