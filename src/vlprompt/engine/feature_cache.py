"""On-disk cache of frozen image features, shared by runs, seeds and methods.

An entry holds the features (N, D) of one list of images under one transform and one
augmented view. Its key is (backbone id with weight checksum, digest of the image list
with each file's size and mtime, the transform's full description, the view index and
augmentation seed, the compute dtype, the cache format); the file name is the key's
SHA-256 and the key itself is stored in the file and compared on load, so a changed
backbone, manifest, file or transform can never reuse stale features.
Files are safetensors written atomically under `$VLPROMPT_CACHE/features`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm import tqdm

from ..backbones.base import VLBackbone
from ..data.types import ImageSource, Item
from ..utils.io import atomic_write_bytes
from ..utils.tensorfile import save_tensors as save_safetensors
from .data import image_loader

log = logging.getLogger(__name__)
FORMAT = "vlprompt.features/1"


def default_cache_dir() -> Path:
    """`$VLPROMPT_CACHE/features`, else `~/.cache/vlprompt/features`."""
    env = os.environ.get("VLPROMPT_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "vlprompt") / "features"


def items_digest(items: Sequence[Item]) -> str:
    """SHA-256 of every (path, label, size, mtime): a changed manifest or file changes it.

    An `ImageSource` (a tar member, a table row) gives its own stamp: its shard's size and
    mtime, or its dataset's fingerprint."""
    digest = hashlib.sha256()
    for item in items:
        try:
            if isinstance(item.path, ImageSource):
                stamp = item.path.stamp()
            else:
                st = os.stat(item.path)
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        # surrogateescape: file names that are not valid UTF-8 (old archives) still hash
        digest.update(f"{item.path}\t{item.label}\t{stamp}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def transform_description(transform: Callable) -> str:
    """The transform's full repr (sizes, crop scale, interpolation, mean/std)."""
    return " ".join(repr(transform).split())


@dataclass(frozen=True)
class FeatureKey:
    backbone: str
    items: str
    n_items: int
    transform: str
    view: int
    aug_seed: int | None
    dtype: str
    format: str = FORMAT

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """Autocast on GPUs only; CPU runs stay in fp32 (bf16 autocast measured slower here)."""
    if dtype is None or device.type != "cuda":
        return nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


class FeatureCache:
    """Computes image features once and keeps them on disk; counts hits and misses."""

    def __init__(self, root: str | Path | None = None, enabled: bool = True):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.hits = 0
        self.misses = 0

    def path(self, key: FeatureKey) -> Path:
        return self.root / f"{key.digest()[:40]}.safetensors"

    def load(self, key: FeatureKey) -> torch.Tensor | None:
        path = self.path(key)
        if not self.enabled or not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                if meta.get("key") != json.dumps(asdict(key), sort_keys=True):
                    return None
                return fh.get_tensor("features")
        except Exception as exc:  # noqa: BLE001 - a damaged file is recomputed, not fatal
            log.warning("feature cache file %s is unreadable (%s); recomputing", path, exc)
            return None

    def save(self, key: FeatureKey, features: torch.Tensor) -> None:
        if not self.enabled:
            return
        blob = save_safetensors({"features": features.contiguous()},
                                metadata={"key": json.dumps(asdict(key), sort_keys=True)})
        try:
            atomic_write_bytes(self.path(key), blob)
        except OSError as exc:
            log.warning("cannot write feature cache %s (%s)", self.path(key), exc)

    def features(self, backbone: VLBackbone, items: Sequence[Item], transform: Callable, *,
                 view: int = 0, aug_seed: int | None = None, batch_size: int = 128, workers: int = 0,
                 amp_dtype: torch.dtype | None = None, progress: bool = False) -> torch.Tensor:
        """Features (N, D) in fp32 on the CPU; `aug_seed` makes a random transform reproducible."""
        key = FeatureKey(backbone=backbone.backbone_id, items=items_digest(items), n_items=len(items),
                         transform=transform_description(transform), view=view,
                         aug_seed=None if aug_seed is None else int(aug_seed),
                         dtype=str(amp_dtype) if backbone.device.type == "cuda" and amp_dtype else "float32")
        cached = self.load(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        feats = self.encode(backbone, items, transform, seed=None if aug_seed is None else (aug_seed, view),
                            batch_size=batch_size, workers=workers, amp_dtype=amp_dtype,
                            desc=f"features (view {view})" if aug_seed is not None else "features",
                            progress=progress)
        self.save(key, feats)
        return feats

    def encode(self, backbone: VLBackbone, items: Sequence[Item], transform: Callable, **kw) -> torch.Tensor:
        """Features (N, D) of a cache miss (a distributed cache encodes its share and gathers)."""
        return encode_items(backbone, items, transform, **kw)

    def views(self, backbone: VLBackbone, items: Sequence[Item], transform: Callable, n_views: int,
              aug_seed: int, **kw) -> torch.Tensor:
        """V augmented views (V, N, D)."""
        return torch.stack([self.features(backbone, items, transform, view=v, aug_seed=aug_seed, **kw)
                            for v in range(n_views)])


@torch.no_grad()
def encode_items(backbone: VLBackbone, items: Sequence[Item], transform: Callable, *,
                 seed: tuple[int, int] | None = None, batch_size: int = 128, workers: int = 0,
                 amp_dtype: torch.dtype | None = None, desc: str = "features",
                 progress: bool = False, indices: Sequence[int] | None = None) -> torch.Tensor:
    """Image features (N, D), fp32 on the CPU, in item order (`indices`: the items' places in
    a longer list, which seed their augmentation; see `SeededImageDataset`)."""
    from .data import mix_seed

    device = backbone.device
    loader = image_loader(items, transform, seed=None if seed is None else mix_seed(*seed),
                          batch_size=batch_size, workers=workers, device=device, indices=indices)
    outs = []
    for images, _, _ in tqdm(loader, desc=desc, disable=not progress, file=sys.stderr, leave=False):
        with autocast_context(device, amp_dtype):
            outs.append(backbone.encode_images(images.to(device)).float().cpu())
    if not outs:
        return torch.zeros(0, backbone.embed_dim)
    return torch.cat(outs)
