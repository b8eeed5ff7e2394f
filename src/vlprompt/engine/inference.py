"""Using a saved method: predict on image files, export a plain classifier, interpret a prompt."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from ..backbones import VLBackbone
from ..data.images import IMAGE_EXTENSIONS, open_image, to_rgb
from ..errors import ConfigError, UserError
from ..methods.base import Method
from ..utils.io import atomic_write_bytes
from ..utils.tensorfile import save_tensors as save_safetensors
from .runs import load_method

EXPORT_FORMAT = "vlprompt.classifier/1"


def image_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their images (recursively, sorted)."""
    out: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            out.append(path)
        else:
            raise UserError(f"{path} does not exist")
    if not out:
        raise UserError("no images found in " + ", ".join(map(str, inputs)))
    return out


@torch.no_grad()
def predict(method: Method, inputs: Sequence[str | Path], top_k: int = 5, batch_size: int = 32,
            skipped: list[dict] | None = None) -> list[dict]:
    """Top-k classes with probabilities for each image file (folders are expanded).

    With a `skipped` list, unreadable images are left out and appended to it as
    {"path", "reason"} (after one decoding pass); without it the first one stops with its name.
    """
    paths = image_paths(inputs)
    if skipped is not None:
        readable = []
        for p in paths:
            try:
                to_rgb(open_image(p))
                readable.append(p)
            except UserError as exc:
                skipped.append({"path": str(p), "reason": str(exc)})
        paths = readable
    transform = method.backbone.preprocess(train=False)
    device = method.backbone.device
    method.eval()
    k = min(top_k, method.num_classes)
    results = []
    with method.frozen_classifier():
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            images = torch.stack([transform(to_rgb(open_image(p))) for p in chunk]).to(device)
            probs = method(images).float().softmax(dim=-1).cpu()  # (B, K)
            top = probs.topk(k, dim=-1)
            for p, values, indices in zip(chunk, top.values, top.indices, strict=True):
                results.append({"path": str(p), "top": [
                    {"class": method.classnames[i], "prob": float(v)} for v, i in zip(values, indices, strict=True)]})
    return results


@torch.no_grad()
def export_classifier(method: Method, out: str | Path) -> dict:
    """Write the method's classifier as plain tensors usable with open_clip alone.

    Text classifiers: `weight` (K, D), unit rows, and `logit_scale`; logits are
    `logit_scale * normalize(image_features) @ weight.T`. The linear probe adds `bias` and
    uses raw features (`normalize_features` in the metadata says which).
    """
    if method.spec.text_classifier:
        with method.frozen_classifier():
            weight = method.class_weights()
        tensors = {"weight": weight.float().cpu(), "logit_scale": method.logit_scale.float().cpu().reshape(1)}
        normalize = True
    elif method.name == "linear-probe":
        tensors = {"weight": method.learned.weight.detach().float().cpu(),
                   "bias": method.learned.bias.detach().float().cpu()}
        normalize = bool(method.config.normalize)
    else:
        raise ConfigError(f"method {method.name}'s classifier depends on each image and cannot be exported "
                          "as a fixed weight matrix")
    meta = {"format": EXPORT_FORMAT, "method": method.name, "backbone": method.backbone.spec,
            "classnames": json.dumps(method.classnames), "normalize_features": str(normalize).lower()}
    atomic_write_bytes(out, save_safetensors({k: v.contiguous() for k, v in tensors.items()}, metadata=meta))
    return {"path": str(out), "shape": list(tensors["weight"].shape), "method": method.name,
            "normalize_features": normalize}


@torch.no_grad()
def nearest_words(method: Method, top: int = 1) -> list[list[dict]]:
    """For each learned context vector, the `top` nearest vocabulary tokens (Euclidean).

    Class-specific contexts give one list per class and position, in class order.
    """
    ctx = getattr(method.learned, "ctx", None)
    if ctx is None:
        raise ConfigError(f"method {method.name} learns no context vectors to interpret")
    backbone: VLBackbone = method.backbone
    table = backbone.token_embedding_table.float()  # (V, W)
    vectors = ctx.detach().float().reshape(-1, ctx.shape[-1])  # (M or K*M, W)
    dist = torch.cdist(vectors, table)  # (M, V)
    values, indices = dist.topk(top, dim=-1, largest=False)
    return [[{"token": backbone.decode_token(int(i)), "id": int(i), "distance": float(d)}
             for d, i in zip(row_d, row_i, strict=True)] for row_d, row_i in zip(values, indices, strict=True)]


def load_for_use(path: str | Path, backbone: VLBackbone | str | None = None, device: str = "auto") -> Method:
    """A saved method from a run folder or weights file (optionally on another backbone)."""
    if isinstance(backbone, str):
        from ..backbones import load_backbone

        backbone = load_backbone(backbone, device=device)
    return load_method(path, backbone=backbone, device=device)
