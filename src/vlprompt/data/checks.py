"""Checks that keep a dataset from being silently wrong (docs/reliability.md, "Bad data").

- `dedupe`: the same image listed twice (the same path, another spelling of it, or a
  symlink to it) is kept once with a warning that counts the removed rows; an
  image under two labels, or in two splits (a test image seen in training), is an error.
- `check_split_overlap`: no path in two splits, for every dataset (a cheap set test).
- `warn_content_copies`: byte-identical files under different names in two splits (custom
  data), found by size first and hashed only where sizes collide, are warned and counted.
- `class_problems`: classes without images in a split, as warnings to show and record.
- `numeric_classnames_warning`: labels such as "0", "1" would become prompts like
  "a photo of a 0.".
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import VLPromptWarning
from .registry import DatasetError
from .types import DatasetSplits

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Listed:
    """One listed image: its path, label, split ('' when the loader cuts the splits) and where it was listed."""

    path: Path
    label: str
    split: str
    where: str


def _identities(entries: Sequence[Listed]) -> list[str]:
    """One key per entry; equal keys are the same file (same path, another spelling, a symlink)."""
    return [os.path.normcase(os.path.realpath(e.path)) for e in entries]


def dedupe(entries: Sequence[Listed], source: str) -> list[Listed]:
    """`entries` without repeats (warned, counted); an image under two labels or in two splits is an error."""
    keys = _identities(entries)
    first: dict[str, int] = {}
    kept: list[Listed] = []
    repeats: list[tuple[Listed, Listed]] = []
    relabelled: list[tuple[Listed, Listed]] = []
    overlap: list[tuple[Listed, Listed]] = []
    for i, (entry, key) in enumerate(zip(entries, keys, strict=True)):
        j = first.setdefault(key, i)
        if j == i:
            kept.append(entry)
            continue
        other = entries[j]
        if other.label != entry.label:
            relabelled.append((other, entry))
        elif other.split != entry.split:
            overlap.append((other, entry))
        else:
            repeats.append((other, entry))

    def example(pair: tuple[Listed, Listed], what: str) -> str:
        a, b = pair
        same = "" if a.path == b.path else f" (also as {b.path})"
        return f"{a.path}{same}: {a.where} ({what(a)}) and {b.where} ({what(b)})"

    if relabelled:
        raise DatasetError(f"{source}: {len(relabelled)} image(s) are listed under two labels, e.g. "
                           f"{example(relabelled[0], lambda e: repr(e.label))}; give each image one label")
    if overlap:
        raise DatasetError(f"{source}: {len(overlap)} image(s) are in two splits, e.g. "
                           f"{example(overlap[0], lambda e: e.split)}; a test image seen in training "
                           "inflates the accuracy: list each image in one split")
    if repeats:
        warnings.warn(f"{source}: removed {len(repeats)} repeated listing(s) of the same image, e.g. "
                      f"{example(repeats[0], lambda e: e.split or 'no split')}", VLPromptWarning, stacklevel=2)
    return kept


def check_split_overlap(data: DatasetSplits) -> None:
    """A path in two splits is an error (the test split must be unseen)."""
    seen: dict[str, str] = {}
    clash: list[tuple[str, str, str]] = []
    for split in SPLITS:
        for item in getattr(data, split):
            key = str(item.path)
            prev = seen.setdefault(key, split)
            if prev != split:
                clash.append((key, prev, split))
    if clash:
        path, a, b = clash[0]
        raise DatasetError(f"{data.name}: {len(clash)} image(s) are in two splits, e.g. {path} ({a} and {b}); "
                           "a test image seen in training inflates the accuracy: list each image in one split")


def content_copies(data: DatasetSplits) -> list[tuple[Path, str, Path, str]]:
    """Pairs (path, split, copy, other split) of byte-identical files in two splits.

    Files are grouped by size; only files whose size occurs in more than one split are read
    and hashed, so a dataset without copies costs one `stat` per image."""
    import hashlib

    by_size: dict[int, list[tuple[Path, str]]] = {}
    for split in SPLITS:
        for item in getattr(data, split):
            try:
                size = os.stat(item.path).st_size
            except OSError:
                continue  # unreadable files are reported where they are read
            by_size.setdefault(size, []).append((Path(item.path), split))
    pairs = []
    for group in by_size.values():
        if len({split for _, split in group}) < 2:
            continue
        first: dict[str, tuple[Path, str]] = {}
        for path, split in group:
            try:
                digest = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
            except OSError:
                continue
            prev = first.setdefault(digest, (path, split))
            if prev[1] != split:
                pairs.append((prev[0], prev[1], path, split))
    return pairs


def warn_content_copies(data: DatasetSplits) -> int:
    """Warn (counted, on stderr without -v) when an image has a byte-identical copy under
    another name in another split: accuracy on it is not accuracy on an unseen image."""
    pairs = content_copies(data)
    if pairs:
        a, sa, b, sb = pairs[0]
        warnings.warn(f"{data.name}: {len(pairs)} image(s) have byte-identical copies in another split, e.g. "
                      f"{a} ({sa}) and {b} ({sb}); a test image seen in training inflates the accuracy: "
                      "remove the copies", VLPromptWarning, stacklevel=2)
    return len(pairs)


def class_counts(data: DatasetSplits, split: str) -> list[int]:
    counts = [0] * data.num_classes
    for item in getattr(data, split):
        counts[item.label] += 1
    return counts


def class_problems(data: DatasetSplits, splits: Sequence[str] = ("train", "test"), *,
                   warn: bool = True) -> list[str]:
    """Messages for classes with no images in `splits` (shown as warnings with `warn`)."""
    messages = []
    for split in splits:
        items = getattr(data, split)
        if not items:
            continue
        empty = [c for c, n in enumerate(class_counts(data, split)) if n == 0]
        if empty:
            listed = ", ".join(repr(data.classnames[c]) for c in empty[:5])
            more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
            effect = ("nothing is learned for them" if split == "train"
                      else "their accuracy is not measured")
            messages.append(f"{data.name}: {len(empty)} of {data.num_classes} classes have no {split} images "
                            f"({listed}{more}); {effect}")
    if warn:
        for message in messages:
            warnings.warn(message, VLPromptWarning, stacklevel=2)
    return messages


def one_class_message(data: DatasetSplits) -> str | None:
    if data.num_classes >= 2:
        return None
    names = ", ".join(repr(n) for n in data.classnames) or "none"
    return (f"{data.name} has {data.num_classes} class ({names}); classification needs at least two, "
            "so every image is trivially right")


def numeric_classnames_warning(raw: Sequence[str], source: str) -> None:
    """Warn when class names are numbers: the prompts would read "a photo of a 0."."""
    numeric = [r for r in raw if r.strip().lstrip("-").replace(".", "", 1).isdigit()]
    if numeric and len(numeric) == len(raw):
        warnings.warn(f"{source}: the class names are numbers ({', '.join(numeric[:3])}"
                      f"{', ...' if len(numeric) > 3 else ''}), so the prompts read "
                      f"'a photo of a {numeric[0]}.'; give names with --classnames FILE "
                      "(JSON {\"0\": \"cat\"} or lines '0,cat')", VLPromptWarning, stacklevel=3)
