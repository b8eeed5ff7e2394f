"""The small data types every dataset, sampler and protocol shares."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path


class ImageSource:
    """An image that is not a file of its own: a member of a tar shard, a row of an Arrow table.

    Items hold one in place of a path, so nothing is read until a batch needs the image.
    Subclasses are small frozen dataclasses (hashable, picklable for DataLoader workers) with
    `str()` a stable identity (`<container>::<key>`: duplicate checks, few-shot manifests and
    the feature cache key on it), `stamp()` what changes when the bytes may have changed
    (the shard's size and mtime, a dataset fingerprint), and `read_bytes()` the encoded image.
    """

    def read_bytes(self) -> bytes:
        raise NotImplementedError

    def stamp(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Item:
    """One labelled image: a file on disk, or an `ImageSource` inside a larger file."""

    path: Path | ImageSource
    label: int


@dataclass(frozen=True)
class DatasetSplits:
    """A classification dataset: class names in label order, templates and three splits.

    `flip_ok` says whether a horizontal flip keeps the label (False for left/right tasks);
    `augment_ok` whether the papers' training augmentation (random resized crops of 8-100%
    of the image, flips) keeps it at all (False: training images are used as they are).
    `info` carries provenance such as the root, the split file and few-shot settings.
    """

    name: str
    classnames: list[str]
    templates: list[str]
    train: list[Item]
    val: list[Item]
    test: list[Item]
    flip_ok: bool = True
    augment_ok: bool = True
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def with_splits(self, **splits: list[Item]) -> DatasetSplits:
        return replace(self, **splits)
