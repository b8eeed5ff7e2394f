"""CoCoOp (Zhou et al., "Conditional Prompt Learning for Vision-Language Models"), batched.

Context tokens are shifted per image: `[V]_m(x) = [V]_m + pi(x)`, `pi` a small meta-network
Linear(D -> D/16) -> ReLU -> Linear(-> W) on the normalised image feature. Every image of a
batch and every class go through the text encoder in ONE call of B x K sequences (chunked
over classes only when asked), instead of the reference's loop over images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.base import VLBackbone
from ..config import option
from ..errors import ConfigError
from .base import MethodSpec, reset_linear
from .coop import ContextConfig, ContextPromptMethod
from .registry import register_method


@register_method
class CoCoOp(ContextPromptMethod):
    """Image-conditional context: shared vectors plus a meta-network bias per image."""

    name = "cocoop"
    SPEC = MethodSpec(trains="context vectors (M x W) and the meta-network", frozen_image_features=True,
                      fit="sgd", can_change_classes=True, text_classifier=False)

    @dataclass
    class Config(ContextConfig):
        n_ctx: int = option(4, "number of context vectors M (ignored when ctx_init is a phrase)",
                            "CoCoOp config vit_b16_c4_ep10_batch1_ctxv1.yaml (N_CTX 4)")
        ctx_init: str = option("a photo of a", "phrase whose word embeddings initialise the context",
                               "CoCoOp config vit_b16_c4_ep10_batch1_ctxv1.yaml (CTX_INIT)")
        meta_reduction: int = option(16, "hidden width of the meta-network is D / meta_reduction",
                                     "CoOp repo trainers/cocoop.py (vis_dim // 16)")
        batched: bool = option(True, "all images x classes in one text-encoder call (False: a "
                                     "per-image loop, as the reference; for comparisons)")

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.class_specific:
                raise ConfigError("CoCoOp has one shared context; class_specific is not supported")
            if self.meta_reduction < 1:
                raise ConfigError("meta_reduction must be at least 1")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        dim, width = backbone.embed_dim, backbone.text_tower.width
        hidden = max(1, dim // config.meta_reduction)
        self.learned.meta_net = nn.Sequential(
            reset_linear(nn.Linear(dim, hidden), self._generator), nn.ReLU(inplace=True),
            reset_linear(nn.Linear(hidden, width), self._generator)).to(backbone.device)

    @property
    def spec(self) -> MethodSpec:
        return self.SPEC

    def class_weights(self) -> None:
        return None  # the classifier depends on the image

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Image features (B, D) -> logits (B, K), text encoded for all B x K prompts at once."""
        f = F.normalize(features.float(), dim=-1)  # (B, D)
        bias = self.learned.meta_net(f)  # (B, W)
        ctx = self.learned.ctx.unsqueeze(0) + bias.unsqueeze(1)  # (B, M, W)
        if self.config.batched:
            text = self.prompts.encode(ctx, per_image=True)  # (B, K, D)
        else:
            text = torch.stack([self.prompts.encode(c) for c in ctx])  # (B, K, D), one call per image
        return self.logit_scale * torch.einsum("bd,bkd->bk", f, text)  # (B, K)
