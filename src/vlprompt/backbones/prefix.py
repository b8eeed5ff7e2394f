"""Encoding prompts that share a prefix: the prefix once, each suffix on top of it.

The text transformer is causal, so the hidden states of a position depend only on the
tokens up to it. CoOp's prompts `[SOS] V1..VM name . [EOT]` share `[SOS] V1..VM` across
all K classes, and CoCoOp's share it across the classes of one image. Running those 1+M
positions once and only the few name tokens of each class through the dense layers is
exact (up to float rounding) and cuts the text tower's work and activation memory by
roughly (1 + M + s) / s for suffixes of s tokens (about 4-5x for M = 16).

Each block is described by `BlockParts` (its layer norms, fused q/k/v projection, output
projection, MLP and layer scales); a backbone whose blocks cannot be described this way
falls back to concatenating prefix and suffix (`VLBackbone.encode_text_prefixed`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

Module = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class BlockParts:
    """The pieces of a pre-norm transformer block: x + ls_1(attn(ln_1 x)), then + ls_2(mlp(ln_2 x))."""

    ln_1: Module
    qkv: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    out_proj: Module
    heads: int
    ln_2: Module
    mlp: Module
    ls_1: Module = nn.Identity()
    ls_2: Module = nn.Identity()


def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    n, length, width = t.shape
    return t.view(n, length, heads, width // heads).transpose(1, 2)  # (N, H, L, d)


def _merge_heads(t: torch.Tensor) -> torch.Tensor:
    n, heads, length, d = t.shape
    return t.transpose(1, 2).reshape(n, length, heads * d)  # (N, L, W)


def _attention(parts: BlockParts, a_p: torch.Tensor, a_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal self-attention of prefixes a_p (P, n, W) and suffixes a_s (P*k, S, W).

    Suffix i continues prefix i // k: its queries see that prefix's keys and its own
    earlier suffix keys, exactly as in the concatenated sequence.
    """
    h = parts.heads
    q_p, k_p, v_p = (_split_heads(t, h) for t in parts.qkv(a_p))  # (P, H, n, d)
    q_s, k_s, v_s = (_split_heads(t, h) for t in parts.qkv(a_s))  # (P*k, H, S, d)
    out_p = nn.functional.scaled_dot_product_attention(q_p, k_p, v_p, is_causal=True)
    p, n = a_p.shape[0], a_p.shape[1]
    s = a_s.shape[1]
    k = a_s.shape[0] // p
    scale = q_s.shape[-1] ** -0.5
    q = q_s.view(p, k, h, s, -1)
    to_prefix = torch.einsum("pkhsd,phmd->pkhsm", q, k_p) * scale  # (P, k, H, S, n)
    to_suffix = (q_s @ k_s.transpose(-1, -2)).view(p, k, h, s, s) * scale  # (P, k, H, S, S)
    causal = torch.ones(s, s, dtype=torch.bool, device=a_s.device).triu(1)
    to_suffix = to_suffix.masked_fill(causal, float("-inf"))
    probs = torch.softmax(torch.cat([to_prefix, to_suffix], dim=-1).float(), dim=-1).to(v_s.dtype)
    out_s = torch.einsum("pkhsm,phmd->pkhsd", probs[..., :n], v_p)
    out_s = out_s + (probs[..., n:].reshape(p * k, h, s, s) @ v_s).view(p, k, h, s, -1)
    return _merge_heads(out_p), _merge_heads(out_s.reshape(p * k, h, s, -1))


def run_blocks_with_prefix(blocks: Sequence[BlockParts], prefix: torch.Tensor,
                           suffix: torch.Tensor) -> torch.Tensor:
    """Hidden states (P, n, W) and (P*k, S, W) after every block; returns the suffix's (P*k, S, W)."""
    if suffix.shape[0] % prefix.shape[0]:
        raise ValueError(f"{suffix.shape[0]} suffixes do not split evenly over {prefix.shape[0]} prefixes")
    x_p, x_s = prefix, suffix
    last = len(blocks) - 1
    for i, parts in enumerate(blocks):
        o_p, o_s = _attention(parts, parts.ln_1(x_p), parts.ln_1(x_s))
        x_s = x_s + parts.ls_1(parts.out_proj(o_s))
        x_s = x_s + parts.ls_2(parts.mlp(parts.ln_2(x_s)))
        if i < last:  # the last block's prefix output is never read
            x_p = x_p + parts.ls_1(parts.out_proj(o_p))
            x_p = x_p + parts.ls_2(parts.mlp(parts.ln_2(x_p)))
    return x_s
