"""CoOp speed: (a) a training epoch with cached features, truncated prompts and the shared
prefix encoded once vs. the reference-style configuration (image tower at every step, full
77-token context), and (c) evaluation with class text features computed once vs.
recomputed at every test batch.

Ratios are measured in one process on the same random data and backbone (a random-weight
ViT-B/16 by default: timing does not depend on the weights). A few steps are timed and the
epoch time is the step time x steps per epoch (16 shots x K classes / batch 32). The
reference's text pass (forward + backward of K full-context prompts) is timed on a chunk of
at most `--ref-chunk` classes and scaled by K / chunk: at 1000 classes the real thing needs
about 20 GB of activations and minutes per step on 2 cores, and its cost is linear in K.
Usage: python benchmarks/coop_speed.py [--backbone openclip:ViT-B-16] [--classes 10 1000]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import classnames, machine, seconds_per_call

from vlprompt.backbones import load_backbone
from vlprompt.methods.registry import create_method


def full_context_text(method, backbone) -> torch.Tensor:
    """The reference's text path: every prompt padded to the whole context (no truncation)."""
    prompts = method.prompts.assemble(method.learned.ctx)  # (K, L, W)
    pad = backbone.context_length - prompts.shape[1]
    full = torch.cat([prompts, prompts.new_zeros(prompts.shape[0], pad, prompts.shape[2])], dim=1)
    return F.normalize(backbone.encode_text_embeddings(full, method.prompts.eot, truncate=False), dim=-1)


def bench(backbone, k: int, args: argparse.Namespace) -> None:
    size = backbone.image_size
    method = create_method("coop", backbone, classnames(k), n_ctx=16)
    unshared = create_method("coop", backbone, classnames(k), n_ctx=16, text_share_prefix=False)
    unshared.load_learned(method.learned_state())
    chunk = min(k, args.ref_chunk)
    ref_method = create_method("coop", backbone, classnames(chunk), n_ctx=16)
    images = torch.randn(args.batch, 3, size, size)
    labels = torch.randint(k, (args.batch,))
    with torch.no_grad():
        cached = backbone.encode_images(images)  # what the feature cache holds

    def train_step(m) -> None:
        m.zero_grad()
        logits = m.cosine_logits(cached, m.class_weights())
        F.cross_entropy(logits, labels).backward()

    def reference_text() -> None:  # forward + backward of `chunk` full-context prompts
        ref_method.zero_grad()
        full_context_text(ref_method, backbone).sum().backward()

    def reference_images() -> None:
        with torch.no_grad():
            backbone.encode_images(images)

    steps = args.shots * k // args.batch
    t_ours = seconds_per_call(lambda: train_step(method), args.steps, warmup=args.warmup)
    t_trunc = seconds_per_call(lambda: train_step(unshared), args.steps, warmup=args.warmup)
    t_ref_text = seconds_per_call(reference_text, args.steps, warmup=args.warmup) * k / chunk
    t_img = seconds_per_call(reference_images, args.steps, warmup=args.warmup)
    t_ref = t_img + t_ref_text
    scaled = "" if chunk == k else f", text timed on {chunk} classes x {k / chunk:g}"
    print(f"(a) K={k}: step {t_ref:.3f}s reference (images {t_img:.3f}s + full-context text {t_ref_text:.3f}s"
          f"{scaled}) vs {t_trunc:.3f}s cached+truncated vs {t_ours:.3f}s cached+truncated+shared prefix; "
          f"epoch ({steps} steps) {t_ref * steps:.1f}s vs {t_trunc * steps:.1f}s vs {t_ours * steps:.1f}s: "
          f"{t_ref / t_trunc:.1f}x and {t_ref / t_ours:.1f}x (one-off cache of 1 view: {t_img * steps:.1f}s)")
    if k > args.eval_max_classes:
        return

    feats = torch.randn(args.test_images, backbone.embed_dim)
    eval_batch = 64

    def eval_once_encoded() -> None:
        with torch.no_grad(), method.frozen_classifier():
            for s in range(0, len(feats), eval_batch):
                method.logits_from_features(feats[s:s + eval_batch])

    def eval_recomputed() -> None:
        with torch.no_grad():
            for s in range(0, len(feats), eval_batch):
                method.cosine_logits(feats[s:s + eval_batch], full_context_text(method, backbone))

    t_once = seconds_per_call(eval_once_encoded, 1)
    t_every = seconds_per_call(eval_recomputed, 1)
    print(f"(c) K={k}: evaluating {len(feats)} cached features in batches of {eval_batch}: "
          f"{t_every:.3f}s recomputing text per batch vs {t_once:.3f}s encoding once: {t_every / t_once:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="openclip:ViT-B-16")
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration")
    parser.add_argument("--test-images", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before each timing")
    parser.add_argument("--ref-chunk", type=int, default=100,
                        help="classes in the timed chunk of the reference's text pass")
    parser.add_argument("--eval-max-classes", type=int, default=100,
                        help="run (c) only up to this many classes (the per-batch recompute is slow)")
    args = parser.parse_args()
    backbone = load_backbone(args.backbone)
    print(f"backbone {args.backbone}; {machine()}")
    for k in args.classes:
        bench(backbone, k, args)


if __name__ == "__main__":
    main()
