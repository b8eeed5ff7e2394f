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
    qkv: Module  # (rows, W) -> (rows, 3W): queries, keys, values side by side
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


def _attention(parts: BlockParts, qkv: torch.Tensor, p: int, n: int, s: int,
               mask: torch.Tensor) -> torch.Tensor:
    """Causal self-attention of P prefixes (n tokens) and P*k suffixes (s tokens).

    `qkv` (P*n + P*k*s, 3W) holds the rows of all prefixes, then of all suffixes; suffix i
    continues prefix i // k: its queries see that prefix's keys and its own earlier suffix
    keys, exactly as in the concatenated sequence (`mask` (s, n+s), True = may attend).
    Returns the attention outputs in the same row order (rows, W).
    """
    h = parts.heads
    rows_p = p * n
    q, key, value = qkv.chunk(3, dim=-1)
    q_p, k_p, v_p = (_split_heads(t[:rows_p].view(p, n, -1), h) for t in (q, key, value))  # (P, H, n, d)
    q_s, k_s, v_s = (_split_heads(t[rows_p:].view(-1, s, t.shape[-1]), h) for t in (q, key, value))
    out_p = nn.functional.scaled_dot_product_attention(q_p, k_p, v_p, is_causal=True)
    k = q_s.shape[0] // p
    expand = (p, k, *k_p.shape[1:])
    k_all = torch.cat([k_p.unsqueeze(1).expand(expand).flatten(0, 1), k_s], dim=2)  # (P*k, H, n+s, d)
    v_all = torch.cat([v_p.unsqueeze(1).expand(expand).flatten(0, 1), v_s], dim=2)
    out_s = nn.functional.scaled_dot_product_attention(q_s, k_all, v_all, attn_mask=mask)
    return torch.cat([_merge_heads(out_p).flatten(0, 1), _merge_heads(out_s).flatten(0, 1)])


def run_blocks_with_prefix(blocks: Sequence[BlockParts], prefix: torch.Tensor,
                           suffix: torch.Tensor) -> torch.Tensor:
    """Hidden states (P, n, W) and (P*k, s, W) after every block; returns the suffix's (P*k, s, W).

    Prefix and suffix rows share one (rows, W) buffer, so every dense layer is one call.
    """
    if suffix.shape[0] % prefix.shape[0]:
        raise ValueError(f"{suffix.shape[0]} suffixes do not split evenly over {prefix.shape[0]} prefixes")
    p, n, width = prefix.shape
    s = suffix.shape[1]
    x = torch.cat([prefix.reshape(-1, width), suffix.reshape(-1, width)])  # (rows, W)
    mask = torch.ones(s, n + s, dtype=torch.bool, device=x.device).tril(n)
    for parts in blocks:
        a = _attention(parts, parts.qkv(parts.ln_1(x)), p, n, s, mask)
        x = x + parts.ls_1(parts.out_proj(a))
        x = x + parts.ls_2(parts.mlp(parts.ln_2(x)))
    return x[p * n:].view(-1, s, width)
