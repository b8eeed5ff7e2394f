"""One check for a machine with a GPU (no network: random weights, random images).

For CoOp, CoCoOp, VPT and MaPLe on a random ViT-B/16: the same weights run in fp32 and in the
automatic precision (`train.precision=auto`: bf16 where the GPU runs it, else fp16), with the
largest logit difference and how many of the predictions agree; a few training steps in each
precision (steps/s); image-feature encoding in fp32, bf16 and fp16 (images/s); and the peak
GPU memory of one CoOp step over 1000 classes. On a CPU the same code runs in fp32 only.

    python benchmarks/gpu_check.py                # the full check, under 8 minutes on one GPU
    python benchmarks/gpu_check.py --dry-run      # a scaled-down model and batch: the code path only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import classnames, machine  # noqa: E402

from vlprompt.api import create_method, load_backbone  # noqa: E402
from vlprompt.engine.trainer import amp_dtype_for  # noqa: E402
from vlprompt.methods.base import Batch  # noqa: E402
from vlprompt.utils.runtime import check_device  # noqa: E402

METHODS = {"coop": {"n_ctx": 16}, "cocoop": {}, "vpt": {"n_tokens": 8}, "maple": {}}
#: A scaled-down ViT for --dry-run (same code path, seconds on a CPU).
DRY_CONFIG = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32,
                                              "patch_size": 8},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else nullcontext()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare_precisions(backbone, names, images, labels, auto_dtype, steps: int) -> dict:
    """Per method: logits in fp32 and in the automatic precision, then training steps/s in each."""
    device = backbone.device
    out = {}
    for name, options in METHODS.items():
        method = create_method(name, backbone, names, generator=torch.Generator().manual_seed(0), **options)
        method.eval()
        with torch.no_grad():
            ref = method(images).float()
            with autocast(device, auto_dtype):
                low = method(images).float()
        row = {"max_abs_logit_diff": float((ref - low).abs().max()),
               "top1_agreement": float((ref.argmax(-1) == low.argmax(-1)).float().mean())}
        for label, dtype in (("fp32", None), ("auto", auto_dtype)):
            if label == "auto" and dtype is None:
                row["steps_per_s_auto"] = row["steps_per_s_fp32"]
                continue
            opt = torch.optim.SGD(method.trainable_parameters(), lr=1e-3)
            method.train()
            batch = Batch(labels=labels, images=images)
            sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                with autocast(device, dtype):
                    step = method.training_step(batch)
                opt.zero_grad()
                step.loss.float().backward()
                opt.step()
            sync(device)
            row[f"steps_per_s_{label}"] = steps / (time.perf_counter() - start)
        out[name] = row
    return out


def encoding_throughput(backbone, images, repeats: int) -> dict:
    device = backbone.device
    dtypes = {"fp32": None}
    if device.type == "cuda":
        dtypes.update(bf16=torch.bfloat16, fp16=torch.float16)
    out = {}
    for label, dtype in dtypes.items():
        with torch.no_grad(), autocast(device, dtype):
            backbone.encode_images(images)
            sync(device)
            start = time.perf_counter()
            for _ in range(repeats):
                backbone.encode_images(images)
            sync(device)
        out[label] = repeats * len(images) / (time.perf_counter() - start)
    return out


def coop_memory(backbone, classes: int, images, labels, auto_dtype) -> float | None:
    """Peak GPU memory (GiB above the model) of one CoOp step over `classes` classes."""
    device = backbone.device
    if device.type != "cuda":
        return None
    method = create_method("coop", backbone, classnames(classes), generator=torch.Generator().manual_seed(0))
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    features = backbone.encode_images(images).detach()
    with autocast(device, auto_dtype):
        step = method.training_step(Batch(labels=labels % classes, features=features))
    step.loss.float().backward()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (default), cuda, cuda:1, cpu")
    parser.add_argument("--dry-run", action="store_true", help="a scaled-down model and batch (seconds on a CPU)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    device = torch.device(check_device(args.device))
    torch.manual_seed(0)
    if args.dry_run:
        tmp = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        (tmp / "dry_vit.json").write_text(json.dumps(DRY_CONFIG))
        spec, batch, steps, repeats, classes = f"openclip:{tmp / 'dry_vit.json'}", 4, 2, 2, 50
    else:
        spec, batch, steps, repeats, classes = "openclip:ViT-B-16", 32, 10, 5, 1000
    backbone = load_backbone(spec, device=str(device))
    size = backbone.image_size
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    names = classnames(10)
    labels = torch.arange(batch, device=device) % len(names)
    auto_dtype = amp_dtype_for("auto", device)
    report = {
        "machine": machine(), "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "backbone": spec.split("/")[-1], "auto_precision": str(auto_dtype).replace("torch.", "") if auto_dtype
        else "fp32",
        "methods": compare_precisions(backbone, names, images, labels, auto_dtype, steps),
        "encode_images_per_s": encoding_throughput(backbone, images, repeats),
        f"coop_{classes}_classes_peak_gib": coop_memory(backbone, classes, images, labels, auto_dtype),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
