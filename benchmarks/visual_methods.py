"""Visual and multimodal prompts (VPT, UPT, MaPLe, variational): training-step time against CoOp, and the cost of
variational prompts as a function of L, batched vs. a loop over samples and images.

All ratios are measured in one process on the same backbone, data and class names (a
random-weight ViT-B/16 by default; timing does not depend on the weights). A step is
forward + backward of one batch.
Usage: python benchmarks/visual_methods.py [--backbone openclip:ViT-B-16] [--classes 10]
       [--batch 8] [--samples 1 5 10] [--loop-samples 5]
"""

from __future__ import annotations

import argparse

import torch
from _timing import classnames, machine, seconds_per_call

from vlprompt.backbones import load_backbone
from vlprompt.methods.base import Batch, Method
from vlprompt.methods.registry import create_method

PROMPTED = [("vpt", {}), ("vpt", {"deep": True}), ("upt", {}), ("upt", {"deep": True}), ("maple", {})]


def step_fn(method: Method, batch: Batch):
    """One training step (forward + backward), gradients cleared first."""
    def run() -> None:
        method.zero_grad(set_to_none=True)
        method.training_step(batch).loss.backward()
    method.train()
    return run


def label(name: str, cfg: dict) -> str:
    return name + "".join(f" {k}={v}" for k, v in cfg.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="openclip:ViT-B-16")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--loop-samples", type=int, default=5, help="L of the batched-vs-loop comparison")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    backbone = load_backbone(args.backbone)
    names = classnames(args.classes)
    g = torch.Generator().manual_seed(0)
    size = backbone.image_size
    images = torch.randn(args.batch, 3, size, size, generator=g)
    labels = torch.randint(args.classes, (args.batch,), generator=g)
    with torch.no_grad():
        features = backbone.encode_images(images)
    print(f"backbone {args.backbone}; {machine()}; batch {args.batch}, {args.classes} classes")

    coop = create_method("coop", backbone, names, n_ctx=4, ctx_init="a photo of a")
    t_coop_img = seconds_per_call(step_fn(coop, Batch(labels=labels, images=images)), args.repeats)
    t_coop_feat = seconds_per_call(step_fn(coop, Batch(labels=labels, features=features)), args.repeats)
    print(f"CoOp step: image tower each step {t_coop_img:.3f}s, cached features {t_coop_feat:.3f}s")
    for name, cfg in PROMPTED:
        t = seconds_per_call(step_fn(create_method(name, backbone, names, **cfg),
                                     Batch(labels=labels, images=images)), args.repeats)
        print(f"  {label(name, cfg):<16} {t:.3f}s = {t / t_coop_img:.2f}x CoOp from images, "
              f"{t / t_coop_feat:.1f}x CoOp on cached features")

    print("variational step on cached features (global | conditional), vs. CoOp on cached features:")
    for n in args.samples:
        times = [seconds_per_call(step_fn(create_method("variational", backbone, names, samples=n,
                                                        conditional=c), Batch(labels=labels, features=features)),
                                  args.repeats) for c in (False, True)]
        print(f"  L={n:<3} {times[0]:.3f}s ({times[0] / t_coop_feat:.1f}x) | {times[1]:.3f}s "
              f"({times[1] / t_coop_feat:.1f}x)")
    n = args.loop_samples
    batch = Batch(labels=labels, features=features)
    for cond in (False, True):
        fast = create_method("variational", backbone, names, samples=n, conditional=cond)
        slow = create_method("variational", backbone, names, samples=n, conditional=cond, batched=False)
        slow.load_learned(fast.learned_state())
        t_fast = seconds_per_call(step_fn(fast, batch), args.repeats)
        t_slow = seconds_per_call(step_fn(slow, batch), args.repeats)
        kind = "conditional (loop over L x B)" if cond else "global (loop over L)"
        print(f"  batched vs loop, L={n}, {kind}: {t_slow:.3f}s / {t_fast:.3f}s = {t_slow / t_fast:.1f}x")


if __name__ == "__main__":
    main()
