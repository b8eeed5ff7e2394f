"""bf16 against fp32 frozen image features: their difference, encoding speed, and predictions.

(1) For each backbone, the features of the same generated 224 px images encoded in fp32 and
in bf16 (`train.feature_precision`): cosine and largest absolute difference, images/s of each
(and of bf16 autocast, which the engine does not use), and the share of equal zero-shot
predictions. (2) On the synthetic suite with the tiny CLIP: CoOp and CoCoOp trained and
tested once with fp32 and once with bf16 features (same seed), the share of test images
with the same prediction and both accuracies.
Usage: PYTHONPATH=src python benchmarks/feature_precision.py [--backbones tiny openclip:ViT-B-16]
       [--images 32] [--tasks synthetic:shapes] [--no-speed] [--no-train]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from _timing import machine
from end_to_end import make_images

from vlprompt.backbones import load_backbone
from vlprompt.data.registry import load_dataset
from vlprompt.engine.evaluation import method_logits
from vlprompt.engine.feature_cache import FeatureCache, encode_items
from vlprompt.engine.runner import train
from vlprompt.engine.runs import load_method
from vlprompt.methods.registry import create_method
from vlprompt.utils.runtime import Runtime, set_threads


def timed(fn) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def compare_features(spec: str, n_images: int, speed: bool, root: Path) -> None:
    bb = load_backbone(spec, device="cpu")
    classes = 10
    items = make_images(root / "img", classes, max(1, n_images // classes), 224)
    pre = bb.preprocess(train=False)
    params = sum(p.numel() for p in bb.parameters()) / 1e6
    if speed:  # a warm-up pass of each, then the timed one
        encode_items(bb, items[:4], pre)
        encode_items(bb, items[:4], pre, amp_dtype=torch.bfloat16)
    fp32, t32 = timed(lambda: encode_items(bb, items, pre))
    bf16, t16 = timed(lambda: encode_items(bb, items, pre, amp_dtype=torch.bfloat16))
    cos = torch.nn.functional.cosine_similarity(fp32, bf16, dim=-1)
    line = (f"{spec} ({params:.1f}M parameters), {len(items)} images: cosine min {cos.min():.6f} mean {cos.mean():.6f}; "
            f"max |bf16 - fp32| {(bf16 - fp32).abs().max():.4f} (max |fp32| {fp32.abs().max():.3f})")
    if speed:
        line += f"; fp32 {len(items) / t32:.2f} img/s, bf16 (weights cast) {len(items) / t16:.2f} img/s"
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            x = torch.stack([pre(__import__("PIL.Image").Image.open(it.path).convert("RGB")) for it in items])
            _, tac = timed(lambda: bb.encode_images(x))
        line += f", bf16 autocast {len(items) / tac:.2f} img/s"
    method = create_method("zeroshot", bb, [f"object {i}" for i in range(classes)])
    same = (method_logits(method, features=fp32).argmax(-1) == method_logits(method, features=bf16).argmax(-1))
    line += f"; zero-shot predictions equal on {100 * same.float().mean():.1f}% of the images"
    print(line, flush=True)


def compare_training(task: str, root: Path) -> None:
    bb = load_backbone("tiny", device="cpu")
    data = load_dataset(task)
    pre = bb.preprocess(train=False)
    for method, epochs in (("coop", 20), ("cocoop", 5)):
        preds, accs = {}, {}
        for precision in ("fp32", "bf16"):
            out = root / f"{task.replace(':', '-')}-{method}-{precision}"
            summary = train(method, bb, data, shots=16, seed=1, out=out,
                            runtime=Runtime(progress=False, cache_dir=root / "cache"),
                            config={"train": {"epochs": epochs, "feature_precision": precision}})
            model = load_method(out, backbone=bb, device="cpu")
            dtype = torch.bfloat16 if precision == "bf16" else None
            feats = FeatureCache(root / "cache").features(bb, data.test, pre, amp_dtype=dtype)
            preds[precision] = method_logits(model, features=feats).argmax(-1)
            accs[precision] = summary["top1"]
        same = (preds["fp32"] == preds["bf16"]).float().mean()
        print(f"{task} {method} (tiny CLIP, 16 shots, {epochs} epochs, seed 1): test top-1 fp32 "
              f"{100 * accs['fp32']:.2f}% / bf16 {100 * accs['bf16']:.2f}%; same prediction on "
              f"{100 * same:.2f}% of {len(data.test)} test images", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["tiny", "openclip:ViT-B-16"])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--tasks", nargs="+", default=["synthetic:shapes", "synthetic:textures"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-train", action="store_true")
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"{machine()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.backbones:
            compare_features(spec, args.images, not args.no_speed, Path(tmp) / spec.replace(":", "-"))
        if not args.no_train:
            for task in args.tasks:
                compare_training(task, Path(tmp))


if __name__ == "__main__":
    main()
