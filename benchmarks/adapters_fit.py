"""Fit time of the feature adapters (CLIP-Adapter, Tip-Adapter, Tip-Adapter-F, TaskRes) next to
CoOp's, on the same cached image features.

One process, one backbone (the bundled tiny CLIP by default), one synthetic task at K shots.
The features of the task are encoded once before any timing, so every fit reads them from
the same cache and the times are the fit alone (no image encoding). Each method runs with
its preset (epochs, batch, optimiser; `resolve_config`), and again at a common number of
epochs for a per-epoch comparison. Test top-1 is printed so that a fast but broken fit shows.
Usage: python benchmarks/adapters_fit.py [--task rare_names] [--shots 16] [--epochs 10]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import torch
from _timing import machine

from vlprompt.backbones import load_backbone
from vlprompt.data.fewshot import sample_fewshot
from vlprompt.data.registry import load_dataset
from vlprompt.engine.data import mix_seed
from vlprompt.engine.feature_cache import FeatureCache
from vlprompt.engine.runner import resolve_config
from vlprompt.engine.trainer import Trainer
from vlprompt.methods.registry import create_method

METHODS = ("coop", "clip-adapter", "tip-adapter", "tip-adapter-f", "taskres")


def fit_once(name: str, backbone, data, shots: int, cache: FeatureCache, epochs: int | None) -> tuple[dict, float]:
    """(the resolved train options, fit seconds) of one seeded run; prints nothing."""
    mcfg, tcfg = resolve_config(name, shots, dataset=data.name, epochs=epochs)
    method = create_method(name, backbone, data.classnames, config=mcfg, dataset_templates=data.templates,
                           generator=torch.Generator().manual_seed(mix_seed(1, 0x1417)))
    trainer = Trainer(method, tcfg, seed=1, cache=cache, progress=False, augment=data.augment_ok)
    start = time.perf_counter()
    trainer.fit(data.train, data.val)
    seconds = time.perf_counter() - start
    top1 = trainer.evaluate(data.test)["top1"]
    return {"epochs": tcfg.epochs if method.spec.fit == "sgd" else 0, "batch": tcfg.batch_size,
            "optimizer": tcfg.optimizer, "top1": top1}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--task", default="rare_names", help="a synthetic suite task")
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10, help="the common epoch count of the second column")
    args = parser.parse_args()
    logging.getLogger("vlprompt").setLevel(logging.ERROR)
    backbone = load_backbone(args.backbone)
    data = sample_fewshot(load_dataset(f"synthetic:{args.task}"), args.shots, 1, use_manifest=False)
    print(f"backbone {args.backbone}; {machine()}; synthetic:{args.task}, {args.shots} shots, "
          f"{data.num_classes} classes, {len(data.train)} training images")
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache(folder)
        fit_once("coop", backbone, data, args.shots, cache, 1)  # encodes and caches every feature once
        rows = []
        for name in METHODS:
            preset, t_preset = fit_once(name, backbone, data, args.shots, cache, None)
            common = fit_once(name, backbone, data, args.shots, cache, args.epochs)[1] if preset["epochs"] else None
            rows.append((name, preset, t_preset, common))
    coop_preset, coop_common = rows[0][2], rows[0][3]
    print(f"{'method':<14} {'preset':<22} {'fit s':>7} {'x CoOp':>7} {'top-1':>6}   "
          f"{'fit s at ' + str(args.epochs) + ' ep.':>15} {'x CoOp':>7}")
    for name, preset, t_preset, common in rows:
        what = (f"{preset['epochs']} ep., b{preset['batch']}, {preset['optimizer']}" if preset["epochs"]
                else "closed form")
        same = f"{common:15.2f} {common / coop_common:7.2f}" if common is not None else f"{'-':>15} {'-':>7}"
        print(f"{name:<14} {what:<22} {t_preset:7.2f} {t_preset / coop_preset:7.3f} {preset['top1']:6.3f}   {same}")


if __name__ == "__main__":
    main()
