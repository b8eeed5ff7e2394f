"""On-disk cache of frozen image features, shared by runs, seeds and methods.

An entry holds the features (N, D) of one list of images under one transform and one
augmented view. Its key is (backbone id with weight checksum, digest of the image list
with each file's size and mtime, the transform's full description, the view index and
augmentation seed, the compute dtype, the cache format); the file name is the key's
SHA-256 and the key itself is stored in the file and compared on load, so a changed
backbone, manifest, file or transform can never reuse stale features.
Files are safetensors written atomically under `$VLPROMPT_CACHE/features`.

Encoding precision (`train.feature_precision`): features are computed in fp32, bf16 or fp16
and always stored in fp32. bf16 casts the backbone's weights for the pass (and back after):
autocast would keep torch's attention off its fused inference path, which made bf16 no
faster than fp32 for open_clip's ViT-B/16 on the CPU (docs/performance.md). fp16 runs
under CUDA autocast, which keeps layer norms and softmax in fp32.

The V augmented views of a list of images are made in one pass: each image is decoded once
and its views are made from the decoded image (`ViewsDataset`), only the views missing
from the cache are made, and a batch holds about `batch_size` images whatever V is.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm import tqdm

from ..backbones.base import VLBackbone
from ..data.types import ImageSource, Item
from ..errors import ConfigError
from ..utils.io import atomic_write_bytes
from ..utils.runtime import SMALL_MODEL_PARAMS
from ..utils.tensorfile import save_tensors as save_safetensors
from .data import mix_seed, views_loader

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


@functools.cache  # a fact of the machine: read once, not for every run of a grid
def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX flags in /proc/cpuinfo);
    without them torch emulates bf16 matmuls, slower than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:  # not Linux: not measured, so no claim
        pass
    return False


def feature_dtype_for(choice: str, backbone: VLBackbone) -> torch.dtype | None:
    """The dtype frozen image features are encoded in (None: fp32); `train.feature_precision`.

    auto: bf16 on GPUs that run it; on CPUs with native bf16 for backbones over
    `SMALL_MODEL_PARAMS` parameters (ViT-B/16 encodes about 3x faster there; for the tiny CLIP
    the gain is a fraction of a second, and fp32 keeps its figures unchanged); else fp32.
    """
    device = backbone.device
    if choice == "fp32":
        return None
    if choice == "fp16":
        if device.type != "cuda":
            raise ConfigError("train.feature_precision=fp16 needs a GPU (fp16 matmuls crawl on CPUs); "
                              "use fp32 or bf16")
        return torch.float16
    if choice == "bf16":
        return torch.bfloat16
    if choice != "auto":
        raise ConfigError(f"train.feature_precision must be auto, fp32, bf16 or fp16, got {choice!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu" and native_bf16_cpu():
        large = sum(p.numel() for p in backbone.parameters()) > SMALL_MODEL_PARAMS
        return torch.bfloat16 if large else None
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    """fp32, bf16 or fp16 (for run records)."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def _key_dtype(dtype: torch.dtype | None) -> str:
    """The cache key's dtype: how the features were computed (fp32 keeps the older keys)."""
    if dtype is None:
        return "float32"
    return "bfloat16 (weights cast)" if dtype == torch.bfloat16 else "float16 (cuda autocast)"


@contextmanager
def encoding_precision(backbone: VLBackbone, dtype: torch.dtype | None) -> Iterator[torch.dtype]:
    """Run the block's image encoding in `dtype`; yields the dtype to give the images.

    bf16: every floating weight and buffer of the backbone is cast for the block and the
    very same fp32 tensors are put back after it (also on error), so parameters, optimizer
    state and the weight checksum are untouched. fp16: CUDA autocast.
    """
    if dtype is None:
        yield torch.float32
        return
    if dtype == torch.float16:
        if backbone.device.type != "cuda":
            raise ConfigError("fp16 feature encoding needs a GPU")
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            yield torch.float32
        return
    saved = []
    try:
        for tensor in [*backbone.parameters(), *backbone.buffers()]:
            if tensor.is_floating_point() and tensor.dtype != dtype:
                saved.append((tensor, tensor.data))
                tensor.data = tensor.data.to(dtype)
        yield dtype
    finally:
        for tensor, data in saved:
            tensor.data = data


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

    def key(self, backbone: VLBackbone, items: Sequence[Item], transform: Callable, view: int,
            aug_seed: int | None, dtype: torch.dtype | None, digest: str | None = None) -> FeatureKey:
        return FeatureKey(backbone=backbone.backbone_id, items=digest or items_digest(items), n_items=len(items),
                          transform=transform_description(transform), view=view,
                          aug_seed=None if aug_seed is None else int(aug_seed), dtype=_key_dtype(dtype))

    def features(self, backbone: VLBackbone, items: Sequence[Item], transform: Callable, *,
                 view: int = 0, aug_seed: int | None = None, **kw) -> torch.Tensor:
        """Features (N, D) in fp32 on the CPU; `aug_seed` makes a random transform reproducible."""
        return self._views(backbone, items, transform, [view], aug_seed, **kw)[0]

    def views(self, backbone: VLBackbone, items: Sequence[Item], transform: Callable, n_views: int,
              aug_seed: int, **kw) -> torch.Tensor:
        """V augmented views (V, N, D); the missing ones are made in one pass over the images."""
        return self._views(backbone, items, transform, list(range(n_views)), aug_seed, **kw)

    def _views(self, backbone: VLBackbone, items: Sequence[Item], transform: Callable, views: list[int],
               aug_seed: int | None, *, batch_size: int = 128, workers: int = 0,
               amp_dtype: torch.dtype | None = None, progress: bool = False) -> torch.Tensor:
        """(len(views), N, D); `amp_dtype`: the encoding dtype (`feature_dtype_for`)."""
        digest = items_digest(items)
        keys = [self.key(backbone, items, transform, v, aug_seed, amp_dtype, digest) for v in views]
        out = [self.load(key) for key in keys]
        missing = [i for i, feats in enumerate(out) if feats is None]
        self.hits += len(views) - len(missing)
        self.misses += len(missing)
        if missing:
            seeds = [None if aug_seed is None else mix_seed(aug_seed, views[i]) for i in missing]
            desc = "features" if aug_seed is None else f"features ({len(missing)} view(s))"
            feats = self.encode(backbone, items, transform, view_seeds=seeds, batch_size=batch_size,
                                workers=workers, amp_dtype=amp_dtype, desc=desc, progress=progress)
            for j, i in enumerate(missing):
                out[i] = feats[:, j].contiguous()
                self.save(keys[i], out[i])
        return torch.stack(out)

    def encode(self, backbone: VLBackbone, items: Sequence[Item], transform: Callable, **kw) -> torch.Tensor:
        """Features (N, V, D) of a cache miss (a distributed cache encodes its share and gathers)."""
        return encode_items(backbone, items, transform, **kw)


@torch.no_grad()
def encode_items(backbone: VLBackbone, items: Sequence[Item], transform: Callable, *,
                 view_seeds: Sequence[int | None] | None = None,
                 batch_size: int = 128, workers: int = 0, amp_dtype: torch.dtype | None = None,
                 desc: str = "features", progress: bool = False,
                 indices: Sequence[int] | None = None) -> torch.Tensor:
    """Image features in fp32 on the CPU, in item order: (N, D) for one view of a
    deterministic transform (`view_seeds` None), or (N, V, D) for the views of `view_seeds`
    (each image decoded once; a view's seed is `mix_seed(augmentation seed, view)`).
    `indices`: the items' places in a longer list, which seed their augmentation (see
    `SeededImageDataset`)."""
    one_view = view_seeds is None
    if one_view:
        view_seeds = [None]
    device = backbone.device
    loader = views_loader(items, transform, view_seeds, batch_size=batch_size, workers=workers, device=device,
                          indices=indices)
    outs = []
    with encoding_precision(backbone, amp_dtype) as image_dtype:
        for images, _, _ in tqdm(loader, desc=desc, disable=not progress, file=sys.stderr, leave=False):
            b, v = images.shape[:2]
            flat = images.flatten(0, 1).to(device, non_blocking=True).to(image_dtype)
            outs.append(backbone.encode_images(flat).float().cpu().view(b, v, -1))
    feats = torch.cat(outs) if outs else torch.zeros(0, len(view_seeds), backbone.embed_dim)
    return feats[:, 0] if one_view else feats
