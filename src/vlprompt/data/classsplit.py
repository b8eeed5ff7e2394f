"""Base-to-new class splitting, a protocol step that works on any dataset.

The first ceil(n/2) labels are the base classes and the rest the new ones; new classes
are relabelled from 0. The protocol samples shots first and splits afterwards, so the
base classes see exactly the images a full few-shot run would.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

from .types import DatasetSplits, Item

Part = Literal["base", "new", "all"]
#: `DatasetSplits.info` key of a dataset whose classes are a subset of a larger label space
#: (ImageNet-A/R of ImageNet's 1000): the label of each of its classes there.
SUBSET_LABELS = "imagenet_labels"
#: Lists in `DatasetSplits.info` that hold one entry per class.
PER_CLASS_INFO = ("wnids", SUBSET_LABELS)


def base_new_labels(num_classes: int) -> tuple[range, range]:
    """Labels of the base classes and of the new classes."""
    cut = math.ceil(num_classes / 2)
    return range(cut), range(cut, num_classes)


def labels_within(dataset: DatasetSplits, classnames: list[str]) -> list[int] | None:
    """Where each class of `dataset` sits among `classnames`, if the dataset is a subset of them.

    A dataset that lists its labels in a larger label space (`info[SUBSET_LABELS]`, as
    ImageNet-A/R do for ImageNet) lets a classifier trained on the larger space be scored on
    its logits for those classes only, as the papers do for ImageNet's linear probe on the
    200-class test sets. The class names must agree too, so that a mapping cannot silently
    point at other classes. None: not such a subset.
    """
    labels = dataset.info.get(SUBSET_LABELS)
    if not isinstance(labels, list) or len(labels) != dataset.num_classes:
        return None
    if not all(isinstance(i, int) and 0 <= i < len(classnames) for i in labels):
        return None
    if any(classnames[i] != name for i, name in zip(labels, dataset.classnames, strict=True)):
        return None
    return list(labels)


def split_base_new(dataset: DatasetSplits, part: Part) -> DatasetSplits:
    """The dataset restricted to its base or new classes (every split), or unchanged for "all"."""
    if part == "all":
        return dataset
    if part not in ("base", "new"):
        raise ValueError(f"part must be 'base', 'new' or 'all', not {part!r}")
    base, new = base_new_labels(dataset.num_classes)
    kept = base if part == "base" else new
    offset = kept.start

    def keep(items: list[Item]) -> list[Item]:
        return [Item(it.path, it.label - offset) for it in items if it.label in kept]

    info = {**dataset.info, "class_split": {"part": part, "original_labels": list(kept),
                                             "of_classes": dataset.num_classes}}
    for key in PER_CLASS_INFO:  # keep per-class provenance aligned with the new labels
        values = dataset.info.get(key)
        if isinstance(values, list) and len(values) == dataset.num_classes:
            info[key] = [values[i] for i in kept]
    return replace(dataset, name=f"{dataset.name}[{part}]",
                   classnames=[dataset.classnames[i] for i in kept],
                   train=keep(dataset.train), val=keep(dataset.val), test=keep(dataset.test), info=info)
