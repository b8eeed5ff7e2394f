"""Analyses from the papers, computed with a backbone and stored in the results database.

- `variance`: intra-class visual variance and inter-class text variance per dataset (UPT
  App. A), on L2-normalised test image features and zero-shot class text features; the
  report correlates them with each method's few-shot gain over zero-shot.
- `words`: nearest vocabulary tokens of learned context vectors (CoOp Table 4), for the
  stored runs of methods that learn a context.
- `projection`: a 2-D PCA of image features and class text features (UPT Fig. 2), with the
  zero-shot text features or those of a stored run.
Each result is one entry of the store's `analyses` table, rendered by `vlprompt report`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..backbones import VLBackbone, load_backbone
from ..data.registry import load_dataset
from ..data.types import DatasetSplits, Item
from ..engine.feature_cache import FeatureCache
from ..errors import ConfigError, UserError
from ..methods.zeroshot import text_classifier
from ..results.store import ResultStore
from ..utils.runtime import Runtime, runtime_or_default

log = logging.getLogger(__name__)


def _image_features(backbone: VLBackbone, items: Sequence[Item]) -> torch.Tensor:
    """Normalised test features (N, D), through the shared feature cache."""
    feats = FeatureCache().features(backbone, items, backbone.preprocess(train=False))
    return F.normalize(feats.float(), dim=-1)


def feature_variance(backbone: VLBackbone, data: DatasetSplits) -> dict:
    """UPT App. A: intra-class visual variance and inter-class text variance of one dataset."""
    if not data.test:
        raise ConfigError(f"{data.name} has no test split")
    feats = _image_features(backbone, data.test)  # (N, D)
    labels = torch.tensor([it.label for it in data.test])
    per_class = []
    for c in range(data.num_classes):
        fc = feats[labels == c]
        if len(fc):
            per_class.append(float(((fc - fc.mean(0)) ** 2).sum(-1).mean()))
    text = text_classifier(backbone, data.classnames, data.templates).float().cpu()  # (K, D)
    inter = float(((text - text.mean(0)) ** 2).sum(-1).mean())
    return {"dataset": data.name, "intra_visual": sum(per_class) / len(per_class), "inter_text": inter,
            "n_classes": data.num_classes, "n_images": len(data.test)}


def _backbone_of(store: ResultStore, backbone: str | VLBackbone | None, device: str) -> tuple[str, VLBackbone]:
    """(spec as recorded, loaded backbone): the given one, or the database's only backbone."""
    if isinstance(backbone, VLBackbone):
        return backbone.spec, backbone
    if not backbone:
        names = sorted({r["backbone"] for r in store.records()})
        if len(names) != 1:
            raise ConfigError("pass --backbone: the database holds " + (", ".join(names) or "no runs"))
        backbone = names[0]
    return backbone, load_backbone(backbone, device=device)


def analyze_variance(db: str | Path, *, backbone: str | VLBackbone | None = None, datasets: Sequence[str] | None = None,
                     runtime: Runtime | None = None) -> list[dict]:
    """Variances of the given datasets (default: those of the database's few-shot runs)."""
    rt = runtime_or_default(runtime)
    root, device, progress = rt.root, rt.device, rt.progress
    with ResultStore(db) as store:
        names = list(datasets or dict.fromkeys(r["dataset"] for r in store.records("fewshot")))
        if not names:
            raise ConfigError("no datasets: pass --datasets or run the few-shot protocol first")
        spec, bb = _backbone_of(store, backbone, device)
        out = []
        for name in tqdm(names, desc="variance", disable=not progress, file=sys.stderr):
            result = {"backbone": spec, **feature_variance(bb, load_dataset(name, root=root))}
            store.put_analysis("variance", f"{spec}|{name}", result)
            out.append(result)
    return out


def _context_runs(records: list[dict]) -> list[dict]:
    """One stored run per (method, dataset): few-shot runs first, then the most shots, the lowest seed."""
    best: dict[tuple, dict] = {}
    for r in records:
        if int(r["shots"]) == 0 or r["target"] not in ("test", "base", r["dataset"]):
            continue
        key = (r["method"], r["dataset"])

        def rank(rec: dict) -> tuple:
            return rec["protocol"] == "fewshot", int(rec["shots"]), -int(rec["seed"])

        if key not in best or rank(r) > rank(best[key]):
            best[key] = r
    return list(best.values())


def analyze_words(db: str | Path, *, top: int = 3, backbones: dict[str, VLBackbone] | None = None,
                  runtime: Runtime | None = None) -> list[dict]:
    """Nearest words of every context-learning method's stored runs (one per method and dataset)."""
    rt = runtime_or_default(runtime)
    device, progress = rt.device, rt.progress
    from ..engine.inference import load_for_use, nearest_words

    out = []
    with ResultStore(db) as store:
        backbones = dict(backbones or {})
        for r in tqdm(_context_runs(store.records()), desc="words", disable=not progress, file=sys.stderr):
            if r["backbone"] not in backbones:
                backbones[r["backbone"]] = load_backbone(r["backbone"], device=device)
            try:
                method = load_for_use(r["run_dir"], backbone=backbones[r["backbone"]], device=device)
                rows = nearest_words(method, top=top)
            except (ConfigError, UserError, FileNotFoundError) as exc:
                log.info("no nearest words for %s on %s: %s", r["method"], r["dataset"], exc)
                continue
            n_ctx = int(getattr(method, "n_ctx", len(rows)))
            result = {"backbone": r["backbone"], "method": r["method"], "dataset": r["dataset"],
                      "shots": r["shots"], "seed": r["seed"], "protocol": r["protocol"],
                      "words": [[w["token"] for w in row] for row in rows[:n_ctx]],
                      "distances": [[round(w["distance"], 4) for w in row] for row in rows[:n_ctx]]}
            store.put_analysis("words", f"{r['backbone']}|{r['protocol']}|{r['method']}|{r['dataset']}", result)
            out.append(result)
    return out


def pca_2d(x: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """Rows of x (N, D) projected on their first two principal components, and the variance ratios."""
    centered = x - x.mean(0, keepdim=True)
    _, s, vh = torch.linalg.svd(centered, full_matrices=False)
    ratio = (s ** 2 / (s ** 2).sum()).tolist()
    return centered @ vh[:2].T, ratio[:2]


def analyze_projection(db: str | Path, dataset: str, *, backbone: str | VLBackbone | None = None, run: str | None = None,
                       per_class: int = 30, max_classes: int = 10, runtime: Runtime | None = None) -> dict:
    """PCA of test image features and class text features (zero-shot, or a stored run's)."""
    rt = runtime_or_default(runtime)
    root, device = rt.root, rt.device
    from ..engine.inference import load_for_use

    with ResultStore(db) as store:
        spec, bb = _backbone_of(store, backbone, device)
        data = load_dataset(dataset, root=root)
        keep = list(range(min(max_classes, data.num_classes)))
        items: list[Item] = []
        for c in keep:
            items += [it for it in data.test if it.label == c][:per_class]
        if not items:
            raise ConfigError(f"{data.name} has no test images")
        feats = _image_features(bb, items)
        name = "zero-shot"
        if run:
            method = load_for_use(run, backbone=bb, device=device)
            if not method.spec.text_classifier:
                raise ConfigError(f"{method.name} has no class text features to project")
            if method.classnames != data.classnames:
                method.set_classnames(data.classnames)
            with torch.no_grad(), method.frozen_classifier():
                text = method.class_weights().float().cpu()
            name = method.name
        else:
            text = text_classifier(bb, data.classnames, data.templates).float().cpu()
        text = F.normalize(text[keep], dim=-1)
        xy, ratio = pca_2d(torch.cat([feats, text]))
        xy = xy.round(decimals=5)
        result = {"backbone": spec, "dataset": data.name, "method": name, "classnames": [data.classnames[c] for c in keep],
                  "image_xy": xy[:len(items)].tolist(), "image_labels": [it.label for it in items],
                  "text_xy": xy[len(items):].tolist(), "explained": ratio}
        store.put_analysis("projection", f"{spec}|{data.name}|{name}|{run or ''}", result)
    return result
