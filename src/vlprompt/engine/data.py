"""Deterministic training data: batch order and augmentation are functions of (seed, epoch).

Every epoch draws its permutation (and, with cached features, the augmented view of each
image) from a fresh `torch.Generator` seeded with (seed, epoch), and every augmented image
is produced under its own seed, so a run is reproducible with any number of loader
workers and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.images import ImageDataset, open_image, to_rgb
from ..data.types import Item

_MIX = 1_000_003


def mix_seed(*parts: int) -> int:
    """One 63-bit seed from several integers."""
    value = 0x5EED
    for part in parts:
        value = (value * _MIX + int(part) + 1) % (2 ** 63 - 1)
    return value


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(seed, epoch))


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, drop_last: bool) -> list[torch.Tensor]:
    """A shuffled order cut into batches; the last partial batch is dropped only if `drop_last`
    and there is at least one full batch (as Dassl does)."""
    order = torch.randperm(n, generator=generator)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if drop_last and n >= batch_size and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


class SeededImageDataset(Dataset):
    """(image tensor, label, index); with a seed, image i is transformed under seed (seed, i).

    torchvision's random transforms draw from torch's global generator; it is forked per
    item so the caller's random state is untouched. `indices[i]` replaces i in the seed when
    the items are a share of a longer list (a distributed rank's), so every image gets the
    augmentation it gets in the whole list.
    """

    def __init__(self, items: Sequence[Item], transform: Callable, seed: int | None = None,
                 indices: Sequence[int] | None = None):
        if indices is not None and len(indices) != len(items):
            raise ValueError(f"{len(indices)} seed indices for {len(items)} items")
        self.base = ImageDataset(items, transform)
        self.seed = seed
        self.indices = indices

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        if self.seed is None:
            return self.base[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(self.seed, index if self.indices is None else int(self.indices[index])))
            return self.base[index]


class ViewsDataset(Dataset):
    """(views (V, C, H, W), label, index): each image is read and decoded once and its V views
    are made from the decoded image.

    View v of image i is transformed under seed (view_seeds[v], i) exactly as
    `SeededImageDataset(items, transform, view_seeds[v])` does it (None: no seeding, for a
    deterministic transform), so the views are the same tensors, bit for bit, as V passes of
    one-view loaders, at one decoding instead of V.
    """

    def __init__(self, items: Sequence[Item], transform: Callable, view_seeds: Sequence[int | None],
                 indices: Sequence[int] | None = None):
        if not view_seeds:
            raise ValueError("no views to make")
        if indices is not None and len(indices) != len(items):
            raise ValueError(f"{len(indices)} seed indices for {len(items)} items")
        self.items = list(items)
        self.transform = transform
        self.view_seeds = list(view_seeds)
        self.indices = indices

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        image = to_rgb(open_image(item.path))
        place = index if self.indices is None else int(self.indices[index])
        views = []
        for seed in self.view_seeds:
            if seed is None:
                views.append(self.transform(image))
                continue
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(mix_seed(seed, place))
                views.append(self.transform(image))
        return torch.stack(views), item.label, index


def views_loader(items: Sequence[Item], transform: Callable, view_seeds: Sequence[int | None], *,
                 batch_size: int = 128, workers: int = 0, device: torch.device | str = "cpu",
                 indices: Sequence[int] | None = None) -> DataLoader:
    """Batches (B, V, C, H, W) in item order with B x V <= `batch_size` images (at least one item),
    so a batch of one view holds as many images as an `image_loader` batch."""
    per_batch = max(1, batch_size // len(view_seeds))
    return DataLoader(ViewsDataset(items, transform, view_seeds, indices), batch_size=per_batch,
                      shuffle=False, num_workers=workers, pin_memory=torch.device(device).type == "cuda")


def image_loader(items: Sequence[Item], transform: Callable, *, seed: int | None = None,
                 batch_size: int = 64, batches: list[torch.Tensor] | None = None,
                 workers: int = 0, device: torch.device | str = "cpu",
                 indices: Sequence[int] | None = None) -> DataLoader:
    """Loader in item order, or over explicit index batches (training)."""
    dataset = SeededImageDataset(items, transform, seed, indices)
    pin = torch.device(device).type == "cuda"
    if batches is not None:
        return DataLoader(dataset, batch_sampler=[b.tolist() for b in batches], num_workers=workers,
                          pin_memory=pin)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin)
