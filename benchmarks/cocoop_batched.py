"""(b) CoCoOp: all images x all classes in one text-encoder call vs. a loop over images,
forward + backward of one batch, same weights and data, one process.

Two loops are timed: the reference's (one text-encoder call per image, every prompt padded
to the full 77-token context, as the CoCoOp repository does) and a loop that already uses
our truncated, shared-prefix encoder (so its ratio isolates what batching alone gives).
Usage: python benchmarks/cocoop_batched.py [--backbone openclip:ViT-B-16] [--classes 10] [--batch 32]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import classnames, machine, seconds_per_call

from vlprompt.backbones import load_backbone
from vlprompt.methods.registry import create_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="openclip:ViT-B-16")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    backbone = load_backbone(args.backbone)
    names = classnames(args.classes)
    batched = create_method("cocoop", backbone, names)
    looped = create_method("cocoop", backbone, names, batched=False)
    looped.load_learned(batched.learned_state())
    feats = torch.randn(args.batch, backbone.embed_dim)
    labels = torch.randint(args.classes, (args.batch,))

    def step(method) -> None:
        method.zero_grad()
        torch.nn.functional.cross_entropy(method.logits_from_features(feats), labels).backward()

    def reference_logits(method, features: torch.Tensor) -> torch.Tensor:
        """The reference's forward: per image, K prompts of the full context length."""
        f = F.normalize(features.float(), dim=-1)
        ctx = method.learned.ctx.unsqueeze(0) + method.learned.meta_net(f).unsqueeze(1)  # (B, M, W)
        rows = []
        for c in ctx:
            prompts = method.prompts.assemble(c)  # (K, L, W)
            pad = prompts.new_zeros(prompts.shape[0], backbone.context_length - prompts.shape[1], prompts.shape[2])
            text = backbone.encode_text_embeddings(torch.cat([prompts, pad], 1), method.prompts.eot, truncate=False)
            rows.append(F.normalize(text.float(), dim=-1))
        return method.logit_scale * torch.einsum("bd,bkd->bk", f, torch.stack(rows))

    def reference_step() -> None:
        looped.zero_grad()
        F.cross_entropy(reference_logits(looped, feats), labels).backward()

    t_ref = seconds_per_call(reference_step, args.repeats)
    t_loop = seconds_per_call(lambda: step(looped), args.repeats)
    t_batch = seconds_per_call(lambda: step(batched), args.repeats)
    with torch.no_grad():
        diff = (batched.logits_from_features(feats) - looped.logits_from_features(feats)).abs().max().item()
        diff_ref = (batched.logits_from_features(feats) - reference_logits(looped, feats)).abs().max().item()
    print(f"backbone {args.backbone}; {machine()}")
    print(f"(b) CoCoOp, batch {args.batch}, {args.classes} classes, forward + backward: reference loop "
          f"(full context) {t_ref:.3f}s, loop with our encoder {t_loop:.3f}s, batched {t_batch:.3f}s: "
          f"{t_ref / t_batch:.1f}x vs the reference loop, {t_loop / t_batch:.1f}x from batching alone "
          f"(max |logit difference| {diff_ref:.1e} vs reference, {diff:.1e} vs loop)")


if __name__ == "__main__":
    main()
