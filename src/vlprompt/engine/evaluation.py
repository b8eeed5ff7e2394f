"""Evaluate a classifier over a split of images, batched, with a progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.images import ImageDataset
from ..data.types import Item
from ..metrics import classification_metrics


def make_loader(items: Sequence[Item], transform: Callable, batch_size: int = 64, workers: int = 0,
                shuffle: bool = False, generator: torch.Generator | None = None) -> DataLoader:
    """A DataLoader over items; memory is pinned only when a GPU is present."""
    return DataLoader(ImageDataset(items, transform), batch_size=batch_size, shuffle=shuffle,
                      num_workers=workers, pin_memory=torch.cuda.is_available(), generator=generator)


@torch.no_grad()
def predict_logits(model: Callable[[torch.Tensor], torch.Tensor], loader: DataLoader,
                   device: str | torch.device = "cpu", desc: str = "evaluate",
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """All logits (N, K) and labels (N,) of a loader, in loader order."""
    logits, labels = [], []
    for images, y, _ in tqdm(loader, desc=desc, disable=not progress, file=sys.stderr, leave=False):
        logits.append(model(images.to(device)).float().cpu())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def evaluate(model: Callable[[torch.Tensor], torch.Tensor], items: Sequence[Item], transform: Callable,
             num_classes: int, batch_size: int = 64, workers: int = 0, device: str = "cpu",
             progress: bool = True) -> dict:
    """top-1/top-5/per-class accuracy of `model` on `items`."""
    if not items:
        raise ValueError("the evaluation split is empty")
    loader = make_loader(items, transform, batch_size=batch_size, workers=workers)
    logits, labels = predict_logits(model, loader, device=device, progress=progress)
    return classification_metrics(logits, labels, num_classes)


# ---------------------------------------------------------------------- methods
#: (logits_of(items) -> (n, K), items) -> (N, K): how a distributed trainer shares an evaluation.
Distribute = Callable[[Callable[[Sequence[Item]], torch.Tensor], Sequence[Item]], torch.Tensor]


@torch.no_grad()
def method_logits(method, *, features: torch.Tensor | None = None, items: Sequence[Item] | None = None,
                  transform: Callable | None = None, batch_size: int = 128, workers: int = 0,
                  amp_dtype: torch.dtype | None = None, progress: bool = False,
                  desc: str = "evaluate") -> torch.Tensor:
    """Logits (N, K) of a method from cached features (N, D) or from images.

    Text classifiers encode their class prompts once for the whole pass.
    """
    from .feature_cache import autocast_context

    method.eval()
    device = method.backbone.device
    outs = []
    with method.frozen_classifier():
        if features is not None:
            for start in tqdm(range(0, len(features), batch_size), desc=desc, disable=not progress,
                              file=sys.stderr, leave=False):
                with autocast_context(device, amp_dtype):
                    outs.append(method.logits_from_features(features[start:start + batch_size].to(device))
                                .float().cpu())
        else:
            loader = make_loader(items, transform, batch_size=batch_size, workers=workers)
            for images, _, _ in tqdm(loader, desc=desc, disable=not progress, file=sys.stderr, leave=False):
                with autocast_context(device, amp_dtype):
                    outs.append(method(images.to(device)).float().cpu())
    if not outs:
        return torch.zeros(0, method.num_classes)
    return torch.cat(outs)


def evaluate_method(method, items: Sequence[Item], *, features: torch.Tensor | None = None,
                    batch_size: int = 128, workers: int = 0, amp_dtype: torch.dtype | None = None,
                    progress: bool = False, desc: str = "evaluate",
                    class_subset: Sequence[int] | None = None,
                    distribute: Distribute | None = None) -> dict:
    """Accuracy of a method on items; methods with several variants (random prompts over
    seeds) report the mean of the variants' metrics and each variant's top-1.

    With `class_subset`, item label i is the method's class `class_subset[i]` and only those
    logits compete (a 1000-way head scored on a 200-class test set). `distribute(logits_of,
    items)` computes the logits of all items from `logits_of(share)` (a distributed trainer:
    each rank its share, then gathered); only for the image path (`features` None).
    """
    if not items:
        raise ValueError("the evaluation split is empty")
    labels = torch.tensor([it.label for it in items])
    transform = None if features is not None else method.backbone.preprocess(train=False)
    n_variants = int(getattr(method, "n_variants", 1))
    runs = []
    if distribute is not None and features is not None:
        raise ValueError("distribute applies to the image path only")

    def logits_of(share: Sequence[Item]) -> torch.Tensor:
        return method_logits(method, features=features, items=share, transform=transform,
                             batch_size=batch_size, workers=workers, amp_dtype=amp_dtype,
                             progress=progress, desc=desc)

    for variant in range(n_variants):
        if n_variants > 1:
            method.variant = variant
        logits = logits_of(items) if distribute is None else distribute(logits_of, items)
        if class_subset is not None:
            logits = logits[:, list(class_subset)]
        runs.append(classification_metrics(logits, labels, logits.shape[1]))
    if n_variants > 1:
        method.variant = 0
    if len(runs) == 1:
        return runs[0]
    merged = dict(runs[0])
    for key in ("top1", "top5", "mean_per_class"):
        merged[key] = sum(r[key] for r in runs) / len(runs)
    merged["per_class"] = None
    merged["variants_top1"] = [r["top1"] for r in runs]
    return merged
