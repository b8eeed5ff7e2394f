"""Fit time of the linear probes (ZS-LP, CLAP, LP++, cross-modal LP) next to CoOp and CLIP's
linear probe, each with its preset, on the same cached features.

One process, one backbone, one K-shot split of a synthetic task; the features are encoded once
(a shared feature cache, filled before any timing), so the times below are the fits alone: the
SGD loop (epochs x steps, no checkpoints) or the closed-form fit, with the seconds per epoch of
the SGD methods. CoOp runs `--coop-epochs` of its preset's epochs (its 200 take minutes on a
CPU; its per-epoch time is the comparison). Test top-1 is printed too.
Usage: python benchmarks/linear_probes_fit.py [--backbone tiny] [--task textures] [--shots 16]
       [--coop-epochs 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from _timing import machine

from vlprompt.backbones import load_backbone
from vlprompt.data import load_dataset
from vlprompt.data.fewshot import sample_fewshot
from vlprompt.engine.feature_cache import FeatureCache
from vlprompt.engine.runner import resolve_config
from vlprompt.engine.trainer import Trainer
from vlprompt.methods.registry import create_method

METHODS = ("coop", "linear-probe", "zs-lp", "clap", "lp++", "cross-modal-lp")


def build(name: str, backbone, data, shots: int, cache: FeatureCache, epochs: int | None):
    mcfg, tcfg = resolve_config(name, shots, epochs=epochs)
    method = create_method(name, backbone, data.classnames, config=mcfg, dataset_templates=data.templates,
                           generator=torch.Generator().manual_seed(1))
    return mcfg, tcfg, method, Trainer(method, tcfg, seed=1, cache=cache, progress=False, augment=data.augment_ok)


def fill_cache(name: str, backbone, data, shots: int, cache: FeatureCache) -> None:
    """Encode every view the method's preset reads, untimed."""
    _, tcfg, method, trainer = build(name, backbone, data, shots, cache, None)
    if method.spec.frozen_image_features:
        trainer.train_features(data.train)
        trainer.train_features(data.train, epochs=tcfg.epochs)
        for split in (data.val, data.test):
            trainer.eval_features(split)


def fit_once(name: str, backbone, data, shots: int, cache: FeatureCache, epochs: int | None = None) -> dict:
    mcfg, tcfg, method, trainer = build(name, backbone, data, shots, cache, epochs)
    start = time.perf_counter()
    trainer.fit(data.train, data.val)
    seconds = time.perf_counter() - start
    with method.frozen_classifier():
        top1 = trainer.evaluate(data.test)["top1"]
    work = (f"{tcfg.epochs} epochs x {max(1, len(data.train) // tcfg.batch_size)} steps"
            if method.spec.fit == "sgd" else
            f"{mcfg.iterations} iterations" if hasattr(mcfg, "iterations") else "L-BFGS, C search")
    per_epoch = seconds / tcfg.epochs if method.spec.fit == "sgd" else None
    return {"seconds": seconds, "per_epoch": per_epoch, "top1": top1, "work": work}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--task", default="textures", help="a synthetic task (synthetic:<task>)")
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--coop-epochs", type=int, default=20, help="CoOp's epochs (its preset: 200)")
    args = parser.parse_args()
    torch.manual_seed(0)
    backbone = load_backbone(args.backbone)
    data = sample_fewshot(load_dataset(f"synthetic:{args.task}"), args.shots, seed=1)
    print(f"backbone {args.backbone}; {machine()}; synthetic:{args.task}, {args.shots} shots, "
          f"{len(data.classnames)} classes, {len(data.train)} training images")
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache(folder)
        for name in METHODS:
            fill_cache(name, backbone, data, args.shots, cache)
        rows = [(name, fit_once(name, backbone, data, args.shots, cache,
                                args.coop_epochs if name == "coop" else None)) for name in METHODS]
    coop = rows[0][1]["per_epoch"]
    print(f"{'method':<16}{'fit (s)':>9}{'s/epoch':>9}{'x CoOp/epoch':>14}{'test top-1':>12}  work")
    for name, r in rows:
        epoch = "-" if r["per_epoch"] is None else f"{r['per_epoch']:.4f}"
        ratio = "-" if r["per_epoch"] is None else f"{r['per_epoch'] / coop:.3f}"
        print(f"{name:<16}{r['seconds']:>9.2f}{epoch:>9}{ratio:>14}{r['top1']:>12.3f}  {r['work']}")


if __name__ == "__main__":
    main()
