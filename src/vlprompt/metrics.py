"""Classification metrics computed from logits and labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tensors come in; torch itself is not needed to read this module
    import torch


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """(B,) bool: is the label among the k highest logits (k capped at the class count)."""
    k = min(k, logits.shape[-1])
    return (logits.topk(k, dim=-1).indices == labels[:, None]).any(dim=-1)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """top-1, top-5, per-class and mean per-class accuracy, as fractions."""
    if len(labels) == 0:
        raise ValueError("no images to evaluate")
    top1 = topk_correct(logits, labels, 1)
    top5 = topk_correct(logits, labels, 5)
    per_class: list[float | None] = []
    for c in range(num_classes):
        sel = labels == c
        per_class.append(float(top1[sel].float().mean()) if sel.any() else None)
    seen = [a for a in per_class if a is not None]
    return {
        "top1": float(top1.float().mean()),
        "top5": float(top5.float().mean()),
        "mean_per_class": float(sum(seen) / len(seen)),
        "per_class": per_class,
        "n_images": int(len(labels)),
        "n_classes": int(num_classes),
    }


def harmonic_mean(base: float, new: float) -> float:
    """2bn/(b+n), the base-to-new summary; 0 when both are 0."""
    return 0.0 if base + new == 0 else 2 * base * new / (base + new)
