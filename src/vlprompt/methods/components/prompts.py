"""Class prompts with learnable context: the token sequences of CoOp and its descendants.

Each class i is tokenized once as `[SOS] <name tokens> "." [EOT] ...` and embedded. M
context vectors are spliced in with one gather from the table `[name embeddings ; context]`,
so the class token can sit at the end (`[SOS] V1..VM name . [EOT]`), in the middle
(`[SOS] V1..V(M/2) name V(M/2+1)..VM . [EOT]`) or at the front (`[SOS] name V1..VM . [EOT]`).
The period and EOT always follow the last inserted token, so EOT moves from e_i to e_i + M
for every position. Sequences are built only up to the longest EOT: the text transformer
is causal, so the tokens after EOT never change the feature read there. For the same
reason the positions every class shares (`[SOS] V1..VM` with the class token at the end)
are encoded once per call, and only the class suffixes per class (`backbones.prefix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...backbones.base import BackboneError, VLBackbone
from ...errors import ConfigError

Position = Literal["end", "middle", "front"]
#: Automatic chunking (chunk = 0): one text-encoder call up to this many prompts ...
AUTO_MAX_PROMPTS = 512
#: ... and above it calls of this many prompts, each recomputed in backward.
AUTO_CHUNK_PROMPTS = 256


def classname_text(name: str) -> str:
    """How a class name enters a prompt: underscores read as spaces, then a period."""
    return name.replace("_", " ").strip() + "."


def word_init(backbone: VLBackbone, phrase: str) -> torch.Tensor:
    """Token embeddings (M, W) of a phrase such as "a photo of a", without SOS/EOT."""
    ids = backbone.tokenize([phrase])
    n = int(backbone.eot_index(ids)[0]) - 1
    if n < 1:
        raise ConfigError(f"context init {phrase!r} has no tokens")
    with torch.no_grad():
        return backbone.embed_tokens(ids[:, 1:1 + n])[0].detach().clone().float()


def split_init_phrase(backbone: VLBackbone, phrase: str, n_ctx: int) -> tuple[torch.Tensor, str]:
    """Embeddings (M, W) of the phrase's first `n_ctx` tokens and the rest of the phrase as text.

    The split must fall between words, so the remaining words can be tokenized with the
    class name exactly as they were inside the phrase.
    """
    tokens = word_init(backbone, phrase)  # (T, W)
    if n_ctx > tokens.shape[0]:
        raise ConfigError(f"ctx_init {phrase!r} has {tokens.shape[0]} tokens, fewer than n_ctx={n_ctx}")
    words = phrase.split()
    for k in range(len(words) + 1):
        head = " ".join(words[:k])
        count = 0 if not head else word_init(backbone, head).shape[0]
        if count == n_ctx:
            return tokens[:n_ctx], " ".join(words[k:])
        if count > n_ctx:
            break
    raise ConfigError(f"n_ctx={n_ctx} splits a word of ctx_init {phrase!r}; choose n_ctx at a word boundary")


def splice_index(eot: int, n_ctx: int, length: int, position: Position) -> list[int]:
    """Source positions (length,) into `[name embeddings (L) ; context (M)]` for one class.

    `eot` is the EOT position of the class's own tokens `[SOS] name . [EOT]`; `length` is the
    table's L (context entries start at L).
    """
    n_name = eot - 2  # tokens strictly between SOS and the period
    ctx = [length + j for j in range(n_ctx)]
    rest_end = length - n_ctx  # keep e[0 .. L-M-1], drop M trailing pads
    if position == "end":
        src = [0, *ctx, *range(1, rest_end)]
    elif position == "middle":
        half = n_ctx // 2
        src = [0, *ctx[:half], *range(1, 1 + n_name), *ctx[half:], *range(1 + n_name, rest_end)]
    elif position == "front":
        src = [0, *range(1, 1 + n_name), *ctx, *range(1 + n_name, rest_end)]
    else:
        raise ConfigError(f"class token position must be end, middle or front, not {position!r}")
    return src


def shared_prefix_length(index: torch.Tensor, length: int) -> int:
    """Leading positions whose source is the same for every class: SOS (0) or a context entry (>= length)."""
    shared = 0
    for column in index.T:
        first = int(column[0])
        if not bool((column == first).all()) or not (first == 0 or first >= length):
            break
        shared += 1
    return shared


class ClassPrompts(nn.Module):
    """Frozen class-name embeddings + splice indices; turns context vectors into text features.

    Buffers are derived from the class names and rebuilt by the owner, never saved.
    """

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], n_ctx: int,
                 position: Position = "end", chunk: int = 0, checkpointing: bool = False,
                 share_prefix: bool = True):
        super().__init__()
        if n_ctx < 0:
            raise ConfigError(f"n_ctx must be >= 0, got {n_ctx}")
        self.backbone_ref = [backbone]  # a list: not a submodule, the owner holds it
        self.n_ctx = n_ctx
        self.position = position
        self.chunk = chunk
        self.checkpointing = checkpointing
        self.share_prefix = share_prefix
        problem = backbone.text_prompt_problem()
        if problem:
            raise BackboneError(f"text prompts cannot run on backbone {backbone.spec}: {problem}")
        ids = backbone.tokenize([classname_text(c) for c in classnames])  # (K, C)
        eot = backbone.eot_index(ids).cpu()  # (K,)
        new_eot = eot + n_ctx
        limit = backbone.context_length
        if int(new_eot.max()) >= limit:
            worst = classnames[int(new_eot.argmax())]
            raise ConfigError(f"class name {worst!r} with {n_ctx} context tokens exceeds the text "
                              f"context of {limit} tokens; use fewer context tokens")
        length = int(new_eot.max()) + 1
        if length > ids.shape[1]:  # pragma: no cover - guarded above
            raise ConfigError("prompt longer than the tokenized context")
        with torch.no_grad():
            emb = backbone.embed_tokens(ids[:, :length]).detach().float()  # (K, L, W)
        index = torch.tensor([splice_index(int(e), n_ctx, length, position) for e in eot])  # (K, L)
        device = emb.device
        index, new_eot, ids = index.to(device), new_eot.to(device), ids.to(device)
        self.register_buffer("name_embeddings", emb, persistent=False)
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("eot", new_eot, persistent=False)
        self.register_buffer("name_ids", ids[:, :length], persistent=False)
        self.shared_length = shared_prefix_length(index, length)

    def _prefix_length(self, ctx: torch.Tensor, per_image: bool) -> int:
        """How many leading positions all prompts of one encoder call share (0: none worth sharing)."""
        if not self.share_prefix or (ctx.dim() == 3 and not per_image):  # class-specific context
            return 0
        return self.shared_length if self.shared_length >= 2 else 0

    @property
    def backbone(self) -> VLBackbone:
        return self.backbone_ref[0]

    @property
    def num_classes(self) -> int:
        return self.index.shape[0]

    def assemble(self, ctx: torch.Tensor, classes: slice = slice(None), per_image: bool = False) -> torch.Tensor:
        """Context -> prompt embeddings.

        ctx (M, W) shared, (K, M, W) class-specific, or with `per_image` (B, M, W) one per
        image. Returns (k, L, W), or (B, k, L, W) with `per_image`.
        """
        emb = self.name_embeddings[classes].to(ctx.dtype)  # (k, L, W)
        idx = self.index[classes]  # (k, L)
        k, length, width = emb.shape
        if per_image:
            b = ctx.shape[0]
            table = torch.cat([emb.unsqueeze(0).expand(b, -1, -1, -1),
                               ctx.unsqueeze(1).expand(-1, k, -1, -1)], dim=2)  # (B, k, L+M, W)
            gather = idx.view(1, k, length, 1).expand(b, -1, -1, width)
            return table.gather(2, gather)  # (B, k, L, W)
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(k, -1, -1)  # (k, M, W)
        else:
            ctx = ctx[classes]
        table = torch.cat([emb, ctx], dim=1)  # (k, L+M, W)
        return table.gather(1, idx.unsqueeze(-1).expand(-1, -1, width))  # (k, L, W)

    def _encode(self, ctx: torch.Tensor, classes: slice, per_image: bool) -> torch.Tensor:
        prompts = self.assemble(ctx, classes, per_image)
        eot = self.eot[classes]
        p = self._prefix_length(ctx, per_image)
        if p and per_image:  # one prefix per image, its K class suffixes after it
            b, k = prompts.shape[:2]
            feats = self.backbone.encode_text_prefixed(prompts[:, 0, :p], prompts[:, :, p:].flatten(0, 1),
                                                       eot.repeat(b))
            return feats.view(b, k, -1)  # (B, k, D)
        if p:
            return self.backbone.encode_text_prefixed(prompts[:1, :p], prompts[:, p:], eot)  # (k, D)
        if per_image:
            b, k = prompts.shape[:2]
            feats = self.backbone.encode_text_embeddings(prompts.flatten(0, 1), eot.repeat(b))
            return feats.view(b, k, -1)  # (B, k, D)
        return self.backbone.encode_text_embeddings(prompts, eot)  # (k, D)

    def chunk_plan(self, batch: int = 1) -> tuple[int, bool]:
        """Classes per text-encoder call, and whether to checkpoint each call.

        `chunk` > 0 is taken as given. With `chunk` = 0 (automatic) every class goes in one
        call while there are at most AUTO_MAX_PROMPTS prompts (classes x images); above that,
        calls of about AUTO_CHUNK_PROMPTS prompts with checkpointing, so that a 1000-class
        dataset trains in bounded memory (docs/performance.md, target (d)).
        """
        k = self.num_classes
        if self.chunk > 0:
            return self.chunk, self.checkpointing
        if k * batch <= AUTO_MAX_PROMPTS:
            return k, self.checkpointing
        return max(1, AUTO_CHUNK_PROMPTS // batch), True

    def encode(self, ctx: torch.Tensor, per_image: bool = False) -> torch.Tensor:
        """Normalised text features (K, D), or (B, K, D) with `per_image`, class chunk by chunk.

        With `checkpointing` each chunk's activations are recomputed in the backward pass,
        so peak memory follows the chunk size rather than the class count.
        """
        k = self.num_classes
        step, checkpointing = self.chunk_plan(ctx.shape[0] if per_image else 1)
        outs = []
        for start in range(0, k, step):
            classes = slice(start, min(start + step, k))
            if checkpointing and torch.is_grad_enabled() and ctx.requires_grad:
                out = checkpoint(self._encode, ctx, classes, per_image, use_reentrant=False)
            else:
                out = self._encode(ctx, classes, per_image)
            outs.append(out)
        feats = torch.cat(outs, dim=-2)
        return F.normalize(feats.float(), dim=-1)
