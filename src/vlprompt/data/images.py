"""Reading image files into tensors, with errors that name the file.

The transform is the backbone's preprocessing, passed in by the caller (this package
never imports backbones). A missing or corrupt file stops the run with its name, or,
with `skip_bad_images=True`, is left out of its batch and counted on the loader;
`drop_unreadable` screens a whole dataset up front (what `--skip-bad-images` does).

Every image becomes 8-bit RGB by the package's one conversion, `utils.images.to_rgb`
(re-exported here): transparent pixels composited on white, 16-bit and 32-bit grey images
scaled to 8 bits rather than clipped, other modes as CLIP's own preprocessing converts
them; its docstring gives the reasons. Pillow's decompression-bomb guard stays on: a file
of more than 2 x `PIL.Image.MAX_IMAGE_PIXELS` pixels (178,956,970 by default) is refused
by name before it is decoded.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, default_collate

from ..utils.images import to_rgb
from .registry import DatasetError
from .types import DatasetSplits, ImageSource, Item

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SKIP_HINT = "or pass --skip-bad-images to leave such files out (they are counted)"


def open_image(path) -> Image.Image:
    """Open and fully decode an image, or raise `DatasetError` naming the file and the remedy.

    `path` may be an `ImageSource` (a tar member, a table row): its bytes are read here, so
    an item costs nothing until its batch is loaded.
    """
    try:
        source = io.BytesIO(_source_bytes(path)) if isinstance(path, ImageSource) else path
        with Image.open(source) as img:
            img.load()
            return img.copy()
    except DatasetError:  # a source's own message (it names the container)
        raise
    except FileNotFoundError:
        raise DatasetError(f"image file {path} is missing; restore it or fix the list that names it, "
                           f"{SKIP_HINT}") from None
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"image file {path} is too large to decode safely ({exc}); downscale it, "
                           f"{SKIP_HINT}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"image file {path} cannot be read ({type(exc).__name__}: {exc}); "
                           f"remove or replace it, {SKIP_HINT}") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many types on garbage
        raise DatasetError(f"image file {path} is corrupt ({type(exc).__name__}: {exc}); "
                           f"remove or replace it, {SKIP_HINT}") from None


class ImageDataset(Dataset):
    """Items -> (image tensor, label, index) with the given transform.

    Images are converted to RGB first by `to_rgb` (grayscale and CMYK files occur in ImageNet).
    With `skip_bad_images`, an unreadable file yields None instead of raising;
    `collate_skipping` drops it from the batch and `ImageLoader` counts it.
    """

    def __init__(self, items: Sequence[Item], transform: Callable, skip_bad_images: bool = False):
        self.items = list(items)
        self.transform = transform
        self.skip_bad_images = skip_bad_images

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int] | tuple[None, int, int]:
        item = self.items[index]
        try:
            img = open_image(item.path)
        except DatasetError as exc:
            if not self.skip_bad_images:
                raise
            log.warning("skipping %s", exc)
            return None, item.label, index
        return self.transform(to_rgb(img)), item.label, index


def collate_skipping(batch: list[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Default collation of the readable samples, plus the indices of the unreadable ones."""
    good = [s for s in batch if s[0] is not None]
    bad = torch.tensor([s[2] for s in batch if s[0] is None], dtype=torch.long)
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), bad
    images, labels, indices = default_collate(good)
    return images, labels, indices, bad


class ImageLoader:
    """A DataLoader over items yielding (images, labels, indices) batches.

    `skipped` lists the files left out (only with `skip_bad_images=True`); a summary is
    logged after each full pass, so nothing disappears without a count.
    """

    def __init__(self, items: Sequence[Item], transform: Callable, *, batch_size: int = 64,
                 shuffle: bool = False, workers: int = 0, device: str | torch.device | None = None,
                 seed: int | None = None, skip_bad_images: bool = False, drop_last: bool = False):
        self.dataset = ImageDataset(items, transform, skip_bad_images=skip_bad_images)
        self.skip_bad_images = skip_bad_images
        self.skipped: list[Path] = []
        generator = None
        if seed is not None:
            generator = torch.Generator()
            generator.manual_seed(seed)
        on_gpu = device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available()
        self.loader = DataLoader(
            self.dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
            pin_memory=on_gpu, drop_last=drop_last, generator=generator,
            collate_fn=collate_skipping if skip_bad_images else None,
            persistent_workers=False)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        if not self.skip_bad_images:
            yield from self.loader
            return
        self.skipped = []
        for images, labels, indices, bad in self.loader:
            self.skipped += [self.dataset.items[i].path for i in bad.tolist()]
            if len(labels):
                yield images, labels, indices
        if self.skipped:
            log.warning("skipped %d unreadable images of %d (first: %s)",
                        len(self.skipped), len(self.dataset), self.skipped[0])


def _source_bytes(source: ImageSource) -> bytes:
    """The encoded image of a source; a vanished or damaged container is a `DatasetError` naming it."""
    try:
        return source.read_bytes()
    except DatasetError:
        raise
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise DatasetError(f"image {source} cannot be read ({type(exc).__name__}: {exc}); "
                           f"restore its file, {SKIP_HINT}") from None


def _decoded_only(img: Image.Image) -> torch.Tensor:
    """The screening pass's transform: the image was decoded, nothing else is needed."""
    return torch.zeros(0)


def find_unreadable(items: Sequence[Item], workers: int = 0) -> list[Path]:
    """Paths of the items whose images cannot be decoded (one decoding pass, `workers` processes)."""
    if not items:
        return []
    loader = ImageLoader(items, _decoded_only, batch_size=64, workers=workers, skip_bad_images=True)
    for _ in loader:
        pass
    return list(loader.skipped)


def drop_unreadable(dataset: DatasetSplits, workers: int = 0,
                    splits: Sequence[str] = ("train", "val", "test")) -> tuple[DatasetSplits, list[dict]]:
    """The dataset without its unreadable images, and one {path, split, reason} per file left out.

    Why screen up front instead of skipping inside the loaders: cached features, labels
    and logits stay aligned item by item, and every split sees the same list.
    """
    skipped: list[dict] = []
    kept = {}
    for split in splits:
        items = getattr(dataset, split)
        bad = set(find_unreadable(items, workers))
        kept[split] = [it for it in items if it.path not in bad]
        for path in sorted(bad, key=str):
            try:
                open_image(path)
                reason = "unreadable"
            except DatasetError as exc:
                reason = str(exc).split(";")[0]
            skipped.append({"path": str(path), "split": split, "reason": reason})
    if not skipped:
        return dataset, []
    info = {**dataset.info, "skipped_images": len(skipped)}
    return replace(dataset, info=info, **kept), skipped
