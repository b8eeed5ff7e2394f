"""Distributed data parallel training of one run, launched with `torchrun`.

    torchrun --nproc_per_node 2 -m vlprompt ddp-train --method coop --dataset ... --shots 16 --out run/

Every process builds the same method (same seed; rank 0's weights are broadcast anyway)
and walks the same (seed, epoch) batch order; each takes every world-th example of a batch
(`rank::world`; images are loaded only by the rank that uses them, with the augmentation
they get in one process), and a hook on each learned parameter sums the ranks' gradients
during backward, each weighted by the rank's share of the batch (`DistributedDataParallel`
takes the plain mean, which is right only for equal shares). A loss that is a mean over
the batch plus terms that do not depend on it (KgCoOp's, the variational KL) then gets
exactly the one-process gradient, also when a batch does not split evenly (batch 32 on 3
GPUs, an epoch's last batch), so results do not depend on the number of processes. The
engine's loop is reused unchanged: `DistributedTrainer` only splits batches, shares the
feature encoding and the evaluation, and adds the hooks. Rank 0 writes the run folder; the other ranks keep
their checkpoints in `<out>/.rank<r>/` so that `--resume` continues every rank in step.
Backend: NCCL with GPUs, gloo on CPUs.

Frozen image features (the training views and the evaluation splits) are encoded once
over the processes: on a cache miss each rank encodes every world-th image, with the
augmentation that image gets in a one-process run, and the shares are gathered
(`ShardedFeatureCache`), so the cache files equal the one-process ones. Methods that prompt
the image tower have no feature cache; each rank computes the logits of its share of an
evaluation split and the logits are gathered.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

from ..backbones.base import VLBackbone
from ..data.types import Item
from ..utils.runtime import Runtime, runtime_or_default
from . import runner
from .feature_cache import FeatureCache, FeatureKey, encode_items
from .trainer import Trainer


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_indices(batch: torch.Tensor, rank: int, size: int) -> tuple[torch.Tensor, float]:
    """Every `size`-th example of a batch of indices, from `rank`, and its fraction of the batch.

    A batch with fewer examples than ranks gives each rank one (wrapping), with equal fractions.
    """
    n = len(batch)
    if n >= size:
        local = batch[rank::size]
        return local, len(local) / n
    return batch[rank % n:rank % n + 1], 1.0 / size


def gather_rows(local: torch.Tensor, n: int, rank: int, size: int) -> torch.Tensor:
    """Every rank's rows `rank::size` of an (n, ...) tensor -> the whole tensor, in order, on the CPU."""
    if n == 0:
        return local.cpu()
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    per = -(-n // size)
    padded = torch.zeros((per, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[:len(local)] = local.to(device)
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    out = torch.empty((n, *local.shape[1:]), dtype=local.dtype)
    for r, part in enumerate(parts):
        out[r::size] = part[:len(range(r, n, size))].cpu()
    return out


def share_and_gather(items: Sequence[Item], rank: int, size: int,
                     compute: Callable[[list[Item], list[int]], torch.Tensor]) -> torch.Tensor:
    """`compute(items, their indices)` on this rank's share (every `size`-th item from `rank`),
    gathered from every rank into rows in item order."""
    idx = list(range(rank, len(items), size))
    return gather_rows(compute([items[i] for i in idx], idx), len(items), rank, size)


class ShardedFeatureCache(FeatureCache):
    """A feature cache whose misses are encoded once over the ranks, each its share.

    The ranks agree on hit or miss (a rank on another machine may have its own cache
    folder), so every rank takes part in the same gathers.
    """

    def __init__(self, cache: FeatureCache, rank: int, size: int):
        super().__init__(cache.root, enabled=cache.enabled)
        self.rank, self.size = rank, size

    def load(self, key: FeatureKey) -> torch.Tensor | None:
        cached = super().load(key)
        flag = torch.tensor([float(cached is not None)])
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return cached if flag.item() == 1.0 else None

    def save(self, key: FeatureKey, features: torch.Tensor) -> None:
        """One writer per machine (its first local rank): every rank holds the gathered features."""
        if int(os.environ.get("LOCAL_RANK", self.rank)) == 0:
            super().save(key, features)

    def encode(self, backbone: VLBackbone, items: Sequence[Item], transform, **kw) -> torch.Tensor:
        if self.rank != 0:
            kw["progress"] = False
        return share_and_gather(items, self.rank, self.size,
                                lambda share, idx: encode_items(backbone, share, transform, indices=idx, **kw))


class DistributedTrainer(Trainer):
    """The engine's Trainer with per-rank batch shards, share-weighted gradient sums, and
    feature encoding and image-path evaluation shared between the ranks."""

    def __init__(self, method, cfg, **kw):
        super().__init__(method, cfg, **kw)
        self.rank, self.size = world()
        if self.size > 1:
            self.cache = ShardedFeatureCache(self.cache, self.rank, self.size)
            if self.rank != 0:
                self.progress = False
            for p in method.trainable_parameters():
                dist.broadcast(p.data, src=0)
                p.register_hook(self._average)

    def _logs_here(self) -> bool:
        return self.rank == 0  # one set of curves per run, not one per process

    def distribute_evaluation(self):
        """Methods that prompt the image tower evaluate on images: each rank scores its share."""
        if self.size == 1 or self.use_features:
            return None

        return lambda logits_of, items: share_and_gather(items, self.rank, self.size,
                                                         lambda share, _: logits_of(share))

    def _average(self, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous() * self.batch_fraction
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad

    def _split(self, batches: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[float]]:
        """Each rank's share of every batch, before any image is loaded."""
        if self.size == 1:
            return super()._split(batches)
        shares = [shard_indices(b, self.rank, self.size) for b in batches]
        return [b for b, _ in shares], [f for _, f in shares]


@contextmanager
def process_group(device: str) -> Iterator[tuple[int, int]]:
    """Join the `torchrun` process group (gloo on CPU, NCCL on CUDA) for the block."""
    if "WORLD_SIZE" not in os.environ:
        yield 0, 1
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend)
    try:
        yield dist.get_rank(), dist.get_world_size()
    finally:
        dist.barrier()
        dist.destroy_process_group()


def train_distributed(method: str, backbone: str, dataset: str, *, shots: int, seed: int, out: str | Path,
                      runtime: Runtime | None = None, **kw) -> dict:
    """`engine.runner.train` (its keyword options in `kw`) across the processes `torchrun`
    started; rank 0's summary is returned."""
    rt = runtime_or_default(runtime)
    device = rt.device
    with process_group(device) as (rank, size):
        if device.startswith("cuda") and size > 1:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
            torch.cuda.set_device(device)
        run_dir = Path(out) if rank == 0 else Path(out) / f".rank{rank}"
        original = runner.Trainer
        runner.Trainer = DistributedTrainer  # the runner builds its trainer by this name
        try:
            result = runner.train(method, backbone, dataset, shots=shots, seed=seed, out=run_dir,
                                  runtime=rt.but(device=device, progress=rt.progress and rank == 0), **kw)
        finally:
            runner.Trainer = original
        return {**result, "world_size": size, "rank": rank}
