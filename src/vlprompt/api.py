"""The Python API: each function here is what one CLI subcommand calls."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from .backbones import VLBackbone, load_backbone
from .data.checks import class_problems, one_class_message
from .data.fewshot import sample_fewshot
from .data.registry import load_dataset
from .data.templates import resolve_templates
from .data.types import DatasetSplits
from .engine.evaluation import evaluate
from .engine.inference import export_classifier, nearest_words, predict
from .engine.inference import load_for_use as load_method
from .engine.runner import claim_run_dir, evaluate_run, screen_images, train
from .errors import ConfigError, VLPromptWarning
from .methods.registry import create_method, list_methods
from .methods.zeroshot import ZeroShotClassifier, zeroshot_classifier
from .protocols.execute import Grid, run_protocol
from .studies.analyses import analyze_projection, analyze_variance, analyze_words
from .studies.demo import StudyGrid
from .studies.demo import run_demo as demo
from .studies.replicate import run_replicate as replicate
from .studies.report import report
from .utils.runtime import Runtime, runtime_or_default

__all__ = ["load_backbone", "load_dataset", "sample_fewshot", "zeroshot_classifier", "zeroshot_evaluate",
           "create_method", "list_methods", "train", "fit", "claim_run_dir", "evaluate_run", "load_method", "predict",
           "export_classifier", "nearest_words", "run_protocol", "report", "merge_results", "export_results", "demo",
           "analyze_variance", "analyze_words", "analyze_projection", "replicate", "Runtime", "Grid", "StudyGrid"]

#: `fit` is `train` under the name the design notes use.
fit = train


def _split_items(dataset: DatasetSplits, split: str):
    if split == "all":
        return [*dataset.train, *dataset.val, *dataset.test]
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; use train, val, test or all")
    return getattr(dataset, split)


def zeroshot_evaluate(backbone: str | VLBackbone, dataset: str | DatasetSplits, *,
                      templates: str | Sequence[str] | None = None, ensemble: str | None = None,
                      split: str = "test", batch_size: int = 64, skip_bad_images: bool = False,
                      runtime: Runtime | None = None) -> dict:
    """Zero-shot accuracy of a backbone on a dataset split; the dataset's templates by default.

    `templates`: a list of templates, or one text: a template with `{}` or a set name
    (`dataset+select7`); `ensemble`: set names only."""
    rt = runtime_or_default(runtime)
    device, workers, progress = rt.device, rt.workers, rt.progress
    if isinstance(dataset, str):
        dataset = load_dataset(dataset, root=rt.root)
    if isinstance(backbone, str):
        backbone = load_backbone(backbone, device=device)
    if isinstance(templates, str):
        templates = resolve_templates(templates, dataset.templates)
    if templates is None:
        if ensemble is not None:
            templates = resolve_templates(ensemble, dataset.templates, sets_only=True)
        else:
            templates = dataset.templates
    if split not in ("train", "val", "test", "all"):
        raise ConfigError(f"unknown split {split!r}; use train, val, test or all")
    used = ("train", "val", "test") if split == "all" else (split,)
    dataset, skipped = screen_images(dataset, skip_bad_images, workers, splits=used)
    items = _split_items(dataset, split)
    if not items:
        raise ConfigError(f"split {split!r} of {dataset.name} has no images")
    data_warnings = [m for m in [one_class_message(dataset)] if m]
    for message in data_warnings:
        warnings.warn(message, VLPromptWarning, stacklevel=2)
    data_warnings += class_problems(dataset, used if split != "all" else ())
    start = time.perf_counter()
    classifier: ZeroShotClassifier = zeroshot_classifier(backbone, dataset.classnames, list(templates))
    metrics = evaluate(classifier, items, backbone.preprocess(train=False), dataset.num_classes,
                       batch_size=batch_size, workers=workers, device=device, progress=progress)
    return {
        **metrics,
        "dataset": dataset.name,
        "split": split,
        "backbone": backbone.spec,
        "backbone_checksum": backbone.checksum(),
        "templates": list(templates),
        "seconds": round(time.perf_counter() - start, 3),
        **({"skipped_images": len(skipped)} if skip_bad_images else {}),
        **({"data_warnings": data_warnings} if data_warnings else {}),
    }


# ---------------------------------------------------------------- protocols and results

def merge_results(into: str | Path, sources: Sequence[str | Path]) -> dict:
    """Copy the records of shard databases into `into`; returns how many were new."""
    from .results.store import ResultStore

    with ResultStore(into) as store:
        added = sum(store.merge_from(s) for s in sources)
        return {"added": added, "total": store.count(), "into": str(into)}


def export_results(db: str | Path, *, csv: str | Path | None = None, json: str | Path | None = None) -> dict:
    """Every record of a database as CSV and/or JSON."""
    from .results.store import ResultStore

    if csv is None and json is None:
        raise ConfigError("nothing to export: give a CSV and/or a JSON path")
    with ResultStore(db, create=False) as store:
        files = [str(store.export_csv(csv))] if csv else []
        files += [str(store.export_json(json))] if json else []
        return {"records": store.count(), "files": files}
