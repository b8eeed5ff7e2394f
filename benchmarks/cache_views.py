"""How many augmented views V should the feature cache hold? Accuracy and cost against V.

Trains a frozen-image-feature method (CoOp by default) on K-shot subsets with V cached
augmented views per image (and once with augmentation off), on the same tasks and seeds (the
synthetic suite's tasks are measured with augmentation allowed, which they forbid by default), and
prints the mean test accuracy and the time spent building the cache (V image-tower passes
over the training shots). `train.views` defaults to the smallest V whose accuracy is within
noise of the best, recorded in docs/performance.md.
Usage: python benchmarks/cache_views.py [--backbone tiny] [--tasks synthetic:shapes ...]
       [--views 1 4 10 20] [--seeds 1 2] [--method coop] [--shots 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from _timing import machine

from vlprompt.backbones import load_backbone
from vlprompt.data.registry import load_dataset
from vlprompt.engine.runner import train
from vlprompt.engine.runs import RECORD
from vlprompt.utils.runtime import Runtime


def run(backbone, data, method: str, shots: int, seed: int, views: int | None, out: str) -> tuple[float, float]:
    """Test accuracy and cache-building seconds of one run (views None: augmentation off)."""
    train_config = {"augment": False} if views is None else {"views": views}
    with tempfile.TemporaryDirectory() as cache:
        result = train(method, backbone, data, shots=shots, seed=seed, out=out,
                       runtime=Runtime(progress=False, cache_dir=cache), config={"train": train_config})
    return result["top1"], result_seconds(out)


def result_seconds(out: str) -> float:
    record = json.loads((Path(out) / RECORD).read_text())
    return float(record["seconds"].get("features", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--tasks", nargs="+", default=["synthetic:shapes", "synthetic:textures"])
    parser.add_argument("--views", type=int, nargs="+", default=[1, 4, 10, 20])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--method", default="coop")
    parser.add_argument("--shots", type=int, default=16)
    args = parser.parse_args()
    backbone = load_backbone(args.backbone)
    print(f"backbone {args.backbone}; method {args.method}; {args.shots} shots; seeds {args.seeds}; {machine()}")
    # the synthetic suite forbids augmentation by default (augment_ok); here it is the thing measured
    datasets = {t: replace(load_dataset(t), augment_ok=True) for t in args.tasks}
    for views in [None, *args.views]:
        accs, cache_s = [], []
        start = time.perf_counter()
        for data in datasets.values():
            for seed in args.seeds:
                with tempfile.TemporaryDirectory() as out:
                    acc, secs = run(backbone, data, args.method, args.shots, seed, views, out)
                accs.append(acc)
                cache_s.append(secs)
        label = "no augmentation" if views is None else f"V={views}"
        print(f"{label:>16}: mean top-1 {100 * statistics.mean(accs):.1f} "
              f"(runs: {' '.join(f'{100 * a:.1f}' for a in accs)}); cache building {sum(cache_s):.1f}s; "
              f"wall {time.perf_counter() - start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
