"""Whole few-shot runs from a cold feature cache: where the time goes, and the speed-up.

Runs `vlprompt train` (the Python API) for a 16-shot CoOp run (200 epochs) and a CoCoOp run
(10 epochs) on a random-weight ViT-B/16, 10 classes of generated 224 px JPEG images with
augmentation on (10 cached views, min(V, E) of them encoded), each run with an empty feature
cache, and prints the run record's split (features, training, test) with the ratio to the
figures measured before frozen features were encoded in bf16 and each image decoded once
(`PREVIOUS`, docs/performance.md).
Usage: PYTHONPATH=src python benchmarks/end_to_end.py [--quick] [--device cpu|cuda]
       [--feature-precision auto|fp32|bf16|fp16] [--workers N] [--threads N] [--methods coop cocoop]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import machine
from PIL import Image

from vlprompt.backbones import load_backbone
from vlprompt.data.types import DatasetSplits, Item
from vlprompt.engine.runner import train
from vlprompt.engine.runs import RECORD
from vlprompt.utils.runtime import Runtime, set_threads

#: Seconds of the same runs before this change (ViT-B/16, random weights, 10 classes, 16 shots,
#: fp32, 2 threads, 10 views encoded for both runs; docs/performance.md).
PREVIOUS = {"coop": {"total": 1534.0, "features": 921.0}, "cocoop": {"total": 768.0, "features": 467.0}}
EPOCHS = {"coop": 200, "cocoop": 10}


def make_images(root: Path, classes: int, per_class: int, size: int, seed: int = 0) -> list[Item]:
    """`per_class` JPEG images per class: a class colour, a random disc and noise."""
    rng = np.random.default_rng(seed)
    items = []
    yy, xx = np.mgrid[:size, :size]
    for label in range(classes):
        base = rng.integers(0, 255, 3)
        for i in range(per_class):
            cy, cx, r = rng.integers(size // 4, 3 * size // 4, 2).tolist() + [int(rng.integers(size // 8, size // 3))]
            img = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 255 - base
            path = root / f"c{label}" / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.astype(np.uint8)).save(path, quality=90)
            items.append(Item(path=path, label=label))
    return items


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 classes, 2 shots, CoOp 5 and CoCoOp 2 epochs, 2 test images a class (a smoke run)")
    parser.add_argument("--backbone", default="openclip:ViT-B-16")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (GPU figures: run it there)")
    parser.add_argument("--feature-precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (Runtime.workers)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--test-per-class", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=["coop", "cocoop"], choices=sorted(EPOCHS))
    args = parser.parse_args()
    epochs = dict(EPOCHS)
    if args.quick:
        args.classes, args.shots, args.test_per_class = 3, 2, 2
        epochs = {"coop": 5, "cocoop": 2}
    set_threads(args.threads)
    backbone = load_backbone(args.backbone, device=args.device)
    print(f"{args.backbone} on {args.device}; {args.classes} classes, {args.shots} shots, "
          f"{args.test_per_class} test images a class, 224 px JPEG; feature precision {args.feature_precision}; "
          f"workers {args.workers}; {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_items = make_images(root / "train", args.classes, args.shots, 224, seed=0)
        test_items = make_images(root / "test", args.classes, args.test_per_class, 224, seed=1)
        data = DatasetSplits(name="e2e-random-224", classnames=[f"object {i}" for i in range(args.classes)],
                             templates=["a photo of a {}."], train=train_items, val=[], test=test_items)
        for method in args.methods:
            cache = root / f"cache-{method}"  # cold: nothing encoded yet
            out = root / f"run-{method}"
            before = load()
            start = time.perf_counter()
            summary = train(method, backbone, data, shots=args.shots, seed=1, out=out,
                            runtime=Runtime(device=args.device, workers=args.workers, progress=False,
                                            cache_dir=cache),
                            config={"train": {"epochs": epochs[method],
                                              "feature_precision": args.feature_precision}})
            wall = time.perf_counter() - start
            record = json.loads((out / RECORD).read_text())
            sec = record["seconds"]
            line = (f"{method}: {epochs[method]} epochs, total {wall:.1f} s = features {sec.get('features', 0):.1f} "
                    f"+ training {sec.get('train', 0):.1f} + test {sec.get('test', 0):.1f} s; test top-1 "
                    f"{100 * summary['top1']:.1f}%; features encoded in {record['ran_on']['feature_encoding']}; "
                    f"cache misses {record['feature_cache']['misses']}; {before} before, {load()} after")
            if not args.quick and args.classes == 10 and args.shots == 16:
                prev = PREVIOUS[method]
                line += (f"; vs previous: whole run {prev['total'] / wall:.2f}x ({prev['total']:.0f} s), "
                         f"features {prev['features'] / max(sec.get('features', 0), 1e-9):.2f}x "
                         f"({prev['features']:.0f} s)")
            print(line, flush=True)


if __name__ == "__main__":
    main()
