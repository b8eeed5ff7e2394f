"""A whole run: config resolution, few-shot data, training, test evaluation, saving.

The configuration is resolved in one order, recorded in full in `run.json`:
the `Config`/`TrainConfig`/`DataConfig` defaults <- the method's preset for (protocol, dataset,
shots) (`methods/presets.py`) <- explicit dicts (`--config`) <- `--set section.key=value` (the
CLI's `--epochs` is `--set train.epochs=N` put before the others). The test split is only
touched once, after training; model selection and hyper-parameter searches use the few-shot
validation split, the whole val split, or nothing (`data.validation`: fewshot | full | none).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from ..backbones import VLBackbone, load_backbone
from ..config import (
    CONFIG_SECTIONS,
    apply_text_overrides,
    check_sections,
    from_dict,
    parse_overrides,
    to_dict,
)
from ..data.checks import class_problems, one_class_message
from ..data.classsplit import labels_within
from ..data.fewshot import sample_fewshot
from ..data.images import drop_unreadable
from ..data.registry import load_dataset
from ..data.types import DatasetSplits, Item
from ..errors import ConfigError, VLPromptWarning
from ..methods.base import Method
from ..methods.presets import DEFAULT_PROTOCOL, Preset, resolve_preset
from ..methods.registry import create_method, get_method_class
from ..utils.io import MARKER, atomic_write_json, claim_output_dir, remove_stale_temp
from ..utils.runtime import Runtime, runtime_or_default
from .checkpoint import STATE
from .data import mix_seed
from .feature_cache import FeatureCache
from .options import DataConfig, TrainConfig
from .runs import CONFIG, RECORD, WEIGHTS, environment, load_method, read_method_config, save_method
from .trainer import Trainer

log = logging.getLogger(__name__)
SECTIONS = CONFIG_SECTIONS


def resolve_config(method: str, shots: int, *, protocol: str = DEFAULT_PROTOCOL, dataset: str | None = None,
                   method_config: dict | None = None, train_config: dict | None = None,
                   epochs: int | None = None, overrides: Sequence[str] = ()) -> tuple[object, TrainConfig]:
    """The method's Config and the TrainConfig of a run (see the module docstring)."""
    mcfg, tcfg, _ = resolve_run_config(method, shots, protocol=protocol, dataset=dataset,
                                       method_config=method_config, train_config=train_config,
                                       epochs=epochs, overrides=overrides)
    return mcfg, tcfg


def resolve_run_config(method: str, shots: int, *, protocol: str = DEFAULT_PROTOCOL,
                       dataset: str | None = None, method_config: dict | None = None,
                       train_config: dict | None = None, epochs: int | None = None,
                       overrides: Sequence[str] = ()) -> tuple[object, TrainConfig, Preset]:
    """`resolve_config` plus the preset it applied (recorded in `run.json`)."""
    cls = get_method_class(method)
    sets = parse_overrides(overrides)
    unknown = sorted(set(sets) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"--set: unknown section(s) {', '.join(unknown)}; use method.<key>, train.<key> "
                          "or data.<key>")
    preset = resolve_preset(cls, protocol=protocol, dataset=dataset, shots=shots)
    mcfg = from_dict(cls.Config, {**preset.method, **(method_config or {})}, where="method")
    mcfg = apply_text_overrides(mcfg, sets.get("method", {}), "method")
    tdict = {**to_dict(TrainConfig()), **preset.train, **(train_config or {})}
    if epochs is not None:
        tdict["epochs"] = epochs
    tcfg = from_dict(TrainConfig, tdict, where="train")
    tcfg = apply_text_overrides(tcfg, sets.get("train", {}), "train")
    return mcfg, tcfg, preset


def claim_run_dir(out: str | Path, force: bool = False) -> bool:
    """Make `out` a run folder of vlprompt (new, empty, or marked; runs written before the
    marker existed are known by their checkpoint); returns whether it already was one."""
    return claim_output_dir(out, "run", force=force, legacy=(f"checkpoint/{STATE}",))


def _dataset(dataset: str | DatasetSplits, root: str | Path | None) -> DatasetSplits:
    return load_dataset(dataset, root=root) if isinstance(dataset, str) else dataset


def _backbone(backbone: str | VLBackbone, device: str) -> VLBackbone:
    return load_backbone(backbone, device=device) if isinstance(backbone, str) else backbone


def resolve_data_config(data_config: dict | None, overrides: Sequence[str] = ()) -> DataConfig:
    """The run's `data` section: defaults <- explicit dict <- `--set data.key=value`."""
    dcfg = from_dict(DataConfig, data_config or {}, where="data")
    return apply_text_overrides(dcfg, parse_overrides(overrides).get("data", {}), "data")


def _sampled_as(data: DatasetSplits, shots: int, seed: int, dcfg: DataConfig) -> bool:
    """Whether `data` already is the few-shot subset this run asks for (a grid samples before
    the class split): sampling it again would give the same images, but would rewrite the
    shared manifest with the subset's own source hash, which the next run then rejects."""
    few = data.info.get("fewshot") or {}
    return (few.get("shots"), few.get("seed"), few.get("validation"), few.get("strict")) == (
        shots, seed, dcfg.validation, dcfg.strict_shots)


def validation_fallbacks(tcfg: TrainConfig, dcfg: DataConfig, *, config: dict | None = None,
                         overrides: Sequence[str] = ()) -> tuple[TrainConfig, dict[str, str]]:
    """The train options a run without validation data uses, and what fell back to what.

    With `data.validation=none`, a preset's `train.select=val` (model selection on the val
    split) becomes `last`; asking for it explicitly (`--config`, `--set`) is refused, since
    the two options contradict each other.
    """
    if dcfg.validation != "none" or tcfg.select != "val":
        return tcfg, {}
    explicit = "select" in ((config or {}).get("train") or {}) or "select" in parse_overrides(overrides).get("train", {})
    if explicit:
        raise ConfigError("train.select=val selects the model on validation data, and data.validation=none "
                          "gives none; use train.select=last or another data.validation")
    log.info("data.validation=none: model selection falls back from the best val epoch to the last epoch")
    return replace(tcfg, select="last"), {"train.select": "last (the preset's val selection has no data)"}


def train(method: str, backbone: str | VLBackbone, dataset: str | DatasetSplits, *, shots: int,
          out: str | Path, seed: int = 1, config: dict | None = None, overrides: Sequence[str] = (),
          resume: bool = False, runtime: Runtime | None = None) -> dict:
    """Train `method` on a K-shot subset, evaluate on the test split, save into `out`.

    `config` is what a `--config` file holds: option values by section, `{"method": {...},
    "train": {...}, "data": {...}}`, and `"protocol"`, whose reference preset the run starts
    from (`methods/presets.py`; default fewshot). `overrides` are `--set` texts
    (`"train.epochs=5"`), applied last. `resume` continues from the folder's last checkpoint.
    `out` must be new, empty or a folder vlprompt wrote (it holds the marker file); to write
    into another folder, claim it first with `claim_run_dir(out, force=True)` (`--force`).
    `runtime`: device, workers, progress bars, feature-cache folder and data root.

    Returns the run record's summary: `top1` (test accuracy, a fraction), `run_dir`, ...
    """
    t_start = time.perf_counter()
    rt = runtime_or_default(runtime)
    out = Path(out)
    cls = get_method_class(method)
    dataset_name = dataset if isinstance(dataset, str) else dataset.name
    sections = check_sections(config)
    protocol = sections.get("protocol", DEFAULT_PROTOCOL)
    dcfg = resolve_data_config(sections.get("data"), overrides)
    mcfg, tcfg, preset = resolve_run_config(method, shots, protocol=protocol, dataset=dataset_name,
                                            method_config=sections.get("method"),
                                            train_config=sections.get("train"), overrides=overrides)
    tcfg, fallbacks = validation_fallbacks(tcfg, dcfg, config=sections, overrides=overrides)
    data = _dataset(dataset, rt.root)
    one_class = one_class_message(data)
    if one_class and cls.SPEC.fit != "none":
        raise ConfigError(f"{one_class}; {method} cannot learn from it: add classes")
    if one_class:
        warnings.warn(one_class, VLPromptWarning, stacklevel=2)
    if cls.SPEC.fit != "none" or shots:
        if not isinstance(shots, int) or shots < 1:
            raise ConfigError(f"--shots must be a positive integer, got {shots!r}")
        if not _sampled_as(data, shots, seed, dcfg):
            data = sample_fewshot(data, shots, seed, strict=dcfg.strict_shots, validation=dcfg.validation)
    elif dcfg.validation == "none":
        data = replace(data, val=[])
    data, skipped = screen_images(data, dcfg.skip_bad_images, rt.workers)
    data_warnings = ([one_class] if one_class else []) + class_problems(
        data, ("train", "test") if cls.SPEC.fit != "none" else ("test",))
    bb = _backbone(backbone, rt.device)
    if (out / "checkpoint").exists() and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if resume:
        remove_stale_temp(out, [WEIGHTS, CONFIG, RECORD, MARKER])  # a killed writer's; checkpoint/ is cleaned on load
    generator = torch.Generator().manual_seed(mix_seed(seed, 0x1417))
    model = create_method(method, bb, data.classnames, config=mcfg, dataset_templates=data.templates,
                          generator=generator)
    run_config = {"method": method, "method_config": to_dict(mcfg), "train": to_dict(tcfg),
                  "seed": seed, "shots": shots, "dataset": data.name, "backbone": bb.spec,
                  "backbone_checksum": bb.checksum(), "preset": preset.record(), "data": to_dict(dcfg)}
    cache = FeatureCache(rt.cache_dir, enabled=tcfg.cache_features) if rt.cache_dir else None
    claim_run_dir(out)
    trainer = Trainer(model, tcfg, seed=seed, out_dir=out, cache=cache, workers=rt.workers,
                      flip=data.flip_ok, augment=data.augment_ok, progress=rt.progress, run_config=run_config, loggers=rt.log)
    fit = trainer.fit(data.train, data.val, resume=resume)
    t_eval = time.perf_counter()
    metrics = trainer.evaluate(data.test, desc="test") if data.test else None
    eval_seconds = time.perf_counter() - t_eval
    extra = {"dataset": data.name, "root": str(rt.root) if rt.root else None, "shots": shots, "seed": seed}
    if data.info.get("classnames_file"):
        extra["classnames_file"] = data.info["classnames_file"]
    weights = save_method(model, out, extra=extra)
    record = {
        "config": run_config, "environment": environment(), "fewshot": data.info.get("fewshot"),
        "n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test),
        "metrics": {"test": metrics}, "history": fit.history, "selected_epoch": fit.selected_epoch,
        "selection": tcfg.select, "fit_info": fit.info, "resumed_from_epoch": fit.resumed_from,
        "ran_on": {"device": str(trainer.device),
                   "autocast": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "none (fp32)",
                   "feature_encoding": str(trainer.feature_dtype or torch.float32).replace("torch.", ""),
                   "text_encoding": bb.text_encoding()},
        "augmentation": {"used": trainer.augment, "flip": trainer.augment and data.flip_ok,
                         "dataset_allows": data.augment_ok},
        "feature_cache": {"hits": trainer.cache.hits, "misses": trainer.cache.misses,
                          "used": trainer.use_features and tcfg.cache_features},
        "seconds": {**{k: round(v, 3) for k, v in fit.seconds.items()}, "test": round(eval_seconds, 3),
                    "total": round(time.perf_counter() - t_start, 3)},
        "weights": str(weights), "skipped_images": skipped, "data_warnings": data_warnings,
        "validation": {"setting": dcfg.validation, "n_val": len(data.val), "fallbacks": fallbacks},
    }
    atomic_write_json(out / RECORD, record)
    summary = {"run_dir": str(out), "method": method, "dataset": data.name, "backbone": bb.spec,
               "shots": shots, "seed": seed, "weights": str(weights), "seconds": record["seconds"]["total"]}
    if metrics is not None:
        summary.update(top1=metrics["top1"], top5=metrics["top5"], mean_per_class=metrics["mean_per_class"],
                       n_test=metrics["n_images"])
        if "variants_top1" in metrics:
            summary["variants_top1"] = metrics["variants_top1"]
    if fit.history and "val_top1" in fit.history[-1]:
        summary["val_top1"] = fit.history[-1]["val_top1"]
    if dcfg.skip_bad_images:
        summary["skipped_images"] = len(skipped)
    return summary


def screen_images(data: DatasetSplits, skip: bool, workers: int = 0,
                  splits: Sequence[str] = ("train", "val", "test")) -> tuple[DatasetSplits, list[dict]]:
    """With `skip`, the dataset without unreadable images in `splits`, and a visible warning."""
    if not skip:
        return data, []
    data, skipped = drop_unreadable(data, workers, splits)
    if skipped:
        first = skipped[0]
        warnings.warn(f"left out {len(skipped)} unreadable image(s) of {data.name} (--skip-bad-images); "
                      f"first: {first['path']} ({first['reason']})", VLPromptWarning, stacklevel=2)
    return data, skipped


def _evaluate(model: Method, items: list[Item], workers: int, progress: bool, cache_dir=None,
              class_subset: list[int] | None = None) -> dict:
    trainer = Trainer(model, TrainConfig(), seed=0, workers=workers, progress=progress,
                      cache=FeatureCache(cache_dir) if cache_dir else None)
    return trainer.evaluate(items, desc="test", class_subset=class_subset)


def evaluate_run(run: str | Path, *, dataset: str | DatasetSplits | None = None,
                 backbone: str | VLBackbone | None = None, skip_bad_images: bool = False,
                 runtime: Runtime | None = None) -> dict:
    """Test accuracy of a saved run or prompt file, on its own dataset or another one.

    With another dataset whose classes differ, methods that can move to new classes do so
    (`set_classnames`); the others are scored on their logits for the dataset's classes
    when it is a labelled subset of theirs (ImageNet-A/R for a 1000-way ImageNet head,
    `labels_within`), and must otherwise see the same class names.
    """
    rt = runtime_or_default(runtime)
    root = rt.root
    data_cfg, weights = read_method_config(run)
    bb = _backbone(backbone, rt.device) if backbone is not None else None
    model = load_method(weights, backbone=bb, device=rt.device)
    if dataset is None:
        name = data_cfg.get("dataset")
        if not name:
            raise ConfigError(f"{weights} does not name its dataset; pass --dataset")
        root = root if root is not None else data_cfg.get("root")
        mapping = data_cfg.get("classnames_file")
        dataset = load_dataset(name, root=root, **({"classnames": mapping} if mapping else {}))
    data = _dataset(dataset, root)
    subset = None
    if list(data.classnames) != model.classnames:
        if not model.spec.can_change_classes:
            subset = labels_within(data, model.classnames)
        if subset is None:
            model.set_classnames(data.classnames)
    if not data.test:
        raise ConfigError(f"{data.name} has no test split")
    data, skipped = screen_images(data, skip_bad_images, rt.workers, splits=("test",))
    if not data.test:
        raise ConfigError(f"no readable test images in {data.name}")
    metrics = _evaluate(model, data.test, rt.workers, rt.progress, rt.cache_dir, subset)
    out = {**metrics, "dataset": data.name, "method": model.name, "backbone": model.backbone.spec,
           "run": str(run)}
    if subset is not None:
        out["scored_classes"] = f"{len(subset)} of the method's {model.num_classes}"
    if skip_bad_images:
        out["skipped_images"] = len(skipped)
    return out
