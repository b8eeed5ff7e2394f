"""The one interface every method uses to talk to a CLIP-like model.

Methods never reach into a library's internals: the adapters in this package hide
batch-first vs. sequence-first layouts, attention masks, EOT pooling and class-token
positions. Text is encoded from token *embeddings* with the EOT position given, so prompt
learners can splice learned vectors in, and the sequence is cut to the shortest length
that covers the batch's last EOT (exact, since the text transformer is causal).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from .prefix import BlockParts, run_blocks_with_prefix


class BackboneError(UserError, RuntimeError):
    """A backbone cannot be built or used as asked; the message says what to do."""


class NeedsViTError(BackboneError):
    """A visual-prompt method was asked of a backbone whose image tower is not a ViT."""


@dataclass(frozen=True)
class TowerInfo:
    """Sizes of one tower: what prompt modules need to shape their parameters."""

    width: int
    depth: int


class VLBackbone(nn.Module, ABC):
    """A frozen CLIP-like model seen through the operations prompt learning needs.

    Shapes: images (B, 3, H, W); token ids (N, L); token embeddings (N, L, text_width);
    features (N, embed_dim), unnormalised, as the underlying library computes them.
    """

    spec: str

    # ------------------------------------------------------------------ description
    @property
    @abstractmethod
    def embed_dim(self) -> int: ...

    @property
    @abstractmethod
    def text_tower(self) -> TowerInfo: ...

    @property
    @abstractmethod
    def vision_tower(self) -> TowerInfo | None:
        """Width and depth of the ViT image tower, or None when it is not a ViT."""

    @property
    @abstractmethod
    def context_length(self) -> int: ...

    @property
    def is_vit(self) -> bool:
        return self.vision_tower is not None

    @property
    @abstractmethod
    def logit_scale(self) -> torch.Tensor:
        """CLIP's temperature, already exponentiated (about 100 for OpenAI's models)."""

    @property
    def logit_bias(self) -> torch.Tensor | None:
        """SigLIP's learned logit bias (a scalar added to every logit), or None. A constant shift
        of every class's logit changes neither softmax probabilities nor predictions."""
        return None

    def text_prompt_problem(self) -> str | None:
        """Why prompt methods cannot splice context vectors into this text tower (None: they can)."""
        return None

    def text_encoding(self) -> str:
        """How texts are encoded, for run records."""
        return "causal: each prompt cut after its last end-of-text token (exact)"

    @abstractmethod
    def preprocess(self, train: bool = False) -> Callable:
        """PIL image -> normalised tensor, with the mean/std/size that travel with the weights."""

    @property
    @abstractmethod
    def image_size(self) -> int: ...

    @property
    @abstractmethod
    def image_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]: ...

    # ------------------------------------------------------------------ text side
    @abstractmethod
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> token ids (N, context_length), padded, with start and end tokens."""

    @abstractmethod
    def eot_index(self, ids: torch.Tensor) -> torch.Tensor:
        """Position of the end-of-text token in each row of `ids` -> (N,)."""

    @abstractmethod
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (N, L) -> token embeddings (N, L, text_width), no positions added."""

    @property
    @abstractmethod
    def token_embedding_table(self) -> torch.Tensor:
        """The vocabulary's embedding matrix (V, text_width), e.g. for nearest-word lookups."""

    @abstractmethod
    def decode_token(self, token_id: int) -> str: ...

    @abstractmethod
    def encode_text_embeddings(
        self,
        embeddings: torch.Tensor,
        eot_index: torch.Tensor,
        deep_prompts: Sequence[torch.Tensor] | None = None,
        truncate: bool = True,
    ) -> torch.Tensor:
        """Token embeddings (N, L, W) -> text features (N, embed_dim), read at `eot_index`.

        `deep_prompts[i-1]` (n, W) replaces positions 1..n at the input of layer i (i >= 1),
        as MaPLe-style deep language prompts do. With `truncate` the sequence is cut to
        max(eot_index) + 1 tokens, which gives the same features because attention is causal.
        """

    def encode_text_prefixed(self, prefix: torch.Tensor, suffix: torch.Tensor,
                             eot_index: torch.Tensor) -> torch.Tensor:
        """Prompts that share prefixes -> text features (P*k, embed_dim).

        prefix (P, n, W) and suffix (P*k, S, W) token embeddings; suffix i continues prefix
        i // k, and `eot_index` (P*k,) counts positions in the whole sequence (>= n). The
        result equals `encode_text_embeddings` of the concatenated sequences. This default
        concatenates; backbones with standard blocks encode each prefix once
        (`backbones.prefix`).
        """
        parts = self._block_parts()
        if parts is None:
            k = suffix.shape[0] // prefix.shape[0]
            return self.encode_text_embeddings(torch.cat([prefix.repeat_interleave(k, 0), suffix], 1), eot_index)
        n = prefix.shape[1]
        eot_index = eot_index.to(suffix.device)
        if int(eot_index.min()) < n:
            raise ValueError(f"an EOT index lies inside the shared prefix of {n} tokens")
        s = int(eot_index.max().item()) + 1 - n
        if n + s > self.context_length:
            raise ValueError(f"{n + s} text tokens, but the model has {self.context_length} positions")
        pos = self._text_positions()
        x = run_blocks_with_prefix(parts, prefix + pos[:n].to(prefix.dtype),
                                   suffix[:, :s] + pos[n:n + s].to(suffix.dtype))
        return self._text_head(x, eot_index - n)

    def _block_parts(self) -> list[BlockParts] | None:
        """The text blocks as `BlockParts` for shared-prefix encoding; None: no fast path."""
        return None

    def _text_positions(self) -> torch.Tensor:
        """The text tower's positional embeddings (context_length, W)."""
        raise NotImplementedError

    def _text_head(self, x: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """Final hidden states (N, L, W) -> projected text features read at `eot_index`."""
        raise NotImplementedError

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Texts -> text features (N, embed_dim), batched and truncated."""
        outs = []
        device = self.device
        for start in range(0, len(texts), batch_size):
            ids = self.tokenize(texts[start:start + batch_size]).to(device)
            outs.append(self.encode_text_embeddings(self.embed_tokens(ids), self.eot_index(ids)))
        if not outs:
            return torch.zeros(0, self.embed_dim, device=device)
        return torch.cat(outs)

    # ------------------------------------------------------------------ image side
    @abstractmethod
    def encode_images(
        self,
        images: torch.Tensor,
        visual_prompts: torch.Tensor | None = None,
        deep_visual_prompts: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Images (B, 3, H, W) -> image features (B, embed_dim).

        `visual_prompts` (n, W) or (B, n, W) are inserted after the class token before the
        first layer. `deep_visual_prompts[i-1]` replaces them at the input of layer i. Both
        need a ViT image tower; other towers raise `NeedsViTError`.
        """

    # ------------------------------------------------------------------ identity
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def checksum(self) -> str:
        """SHA-256 of every parameter and buffer (names, shapes, dtypes, bytes); memoised."""
        cached = getattr(self, "_checksum", None)
        if cached is not None:
            return cached
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            t = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        self._checksum = digest.hexdigest()
        return self._checksum

    @property
    def backbone_id(self) -> str:
        """Stable id for cache keys: the spec plus the weights' checksum."""
        return f"{self.spec}#{self.checksum()[:16]}"

    def require_vit(self, what: str) -> TowerInfo:
        """The ViT tower's sizes, or a clear error naming the method that needs one."""
        if self.vision_tower is None:
            raise NeedsViTError(
                f"{what} needs a ViT image tower read at its class token, but backbone {self.spec!r} has "
                f"{self.image_tower_kind()}; choose a ViT backbone such as openclip:ViT-B-16@openai")
        return self.vision_tower

    def image_tower_kind(self) -> str:
        """What the image tower is, in words, when visual prompts cannot enter it."""
        return "a convolutional one (e.g. RN50)"


def causal_mask(length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Additive causal mask (L, L): -inf above the diagonal."""
    mask = torch.full((length, length), float("-inf"), device=device, dtype=dtype)
    return torch.triu(mask, diagonal=1)


def insert_prompt_tokens(tokens: torch.Tensor, prompts: torch.Tensor, replace: int = 0) -> torch.Tensor:
    """Put prompts (n, W) or (B, n, W) after token 0 of tokens (B, L, W).

    With `replace` = n the n tokens already after token 0 (the previous layer's prompt
    outputs) are dropped first, as deep prompt tuning does.
    """
    b = tokens.shape[0]
    if prompts.dim() == 2:
        prompts = prompts.unsqueeze(0).expand(b, -1, -1)
    if prompts.shape[0] != b:
        raise ValueError(f"visual prompts have batch {prompts.shape[0]}, images {b}")
    prompts = prompts.to(tokens.dtype)
    return torch.cat([tokens[:, :1], prompts, tokens[:, 1 + replace:]], dim=1)


def replace_text_prompt_tokens(x: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """Overwrite positions 1..n of text tokens (N, L, W) with prompts (n, W) (deep text prompts)."""
    n = prompts.shape[0]
    p = prompts.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
    return torch.cat([x[:, :1], p, x[:, 1 + n:]], dim=1)
