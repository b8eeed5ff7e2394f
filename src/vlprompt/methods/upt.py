"""UPT (Zang et al., "Unified Vision and Language Prompt Learning") and its Table 2 ablations.

Unified prompts U (P x n x d, P = 1 shallow or one set per layer) go through one
lightweight Transformer layer (Eq. 5) and are split: the first `n_text` tokens become the
CoOp context of the text encoder (projected only when d differs from the text width), the
other `n_visual` are projected to the vision width and become visual prompts. Ablations
(`variant`, `generator_type`): `joint` trains independent CoOp context and VPT-deep tokens,
`shared` feeds one prompt set to both towers (projected for the image tower, no
generator), `generator_type=mlp` replaces the Transformer layer with two MLP layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..backbones.base import VLBackbone
from ..config import option
from ..errors import ConfigError
from .base import MethodSpec, reset_linear
from .components.generators import AuthorsPromptLayer, MLPPromptGenerator, UnifiedPromptLayer
from .components.multimodal import (
    PromptedImageMethod,
    PromptSet,
    encode_class_prompts,
    init_prompt_tokens,
    prompt_depth,
    split_layers,
)
from .components.prompts import ClassPrompts, word_init
from .registry import register_method


@register_method
class UPT(PromptedImageMethod):
    """Unified prompts for both towers from one small generator; see the module docstring."""

    name = "upt"
    SPEC = MethodSpec(trains="unified prompts, the generator and the projections", frozen_image_features=False,
                      fit="sgd", can_change_classes=True, text_classifier=False)

    @dataclass
    class Config:
        n_text: int = option(4, "prompt tokens sent to the text encoder (the CoOp context)",
                             "UPT code configs/trainers/Unified/*.yaml (N_CTX 4)")
        n_visual: int = option(4, "prompt tokens sent to the image encoder",
                               "UPT code trainers/unified.py (2 x n_ctx unified tokens: 4 visual)")
        dim: int = option(0, "width d of the unified prompts (0: the text width, 512 for ViT-B)",
                          "UPT code trainers/unified.py (ctx_dim 512, the text width)")
        deep: bool = option(False, "layer-wise unified prompts U^i for both towers",
                            "UPT paper Sec. 3 (the shallow variant is the main result)")
        depth: int = option(0, "deep (and joint's visual tokens): how many layers get fresh prompts (0: all)",
                            "UPT paper (layer-wise variant)")
        variant: Literal["unified", "joint", "shared"] = option(
            "unified", "unified (UPT); joint: independent CoOp + VPT-deep prompts; shared: one prompt "
                       "set used by both towers",
            "UPT paper Table 2")
        generator_type: Literal["transformer", "mlp"] = option(
            "transformer", "unified: Eq. 5's Transformer layer, or two MLP layers (ablation)",
            "UPT paper Eq. 5; Table 2 for the MLP ablation")
        generator_code: Literal["paper", "authors"] = option(
            "paper", "the Transformer layer as the paper's Eq. 5 writes it (pre-norm residuals, GELU, "
                     "tokens attend to each other), or exactly as the authors' released code runs it "
                     "(post-norm attention, pre-norm ReLU FFN, each token attends only to itself, "
                     "text and visual prompts from two generator passes)",
            "UPT paper Eq. 5 (authors: UPT code, 2025 release, trainers/unified.py)")
        heads: int = option(1, "attention heads of the Transformer layer",
                            "UPT code trainers/unified.py (num_heads 1)")
        dropout: float = option(0.1, "dropout in the generator",
                                "UPT code trainers/unified.py (dropout 0.1)")
        init_std: float = option(0.02, "standard deviation of the prompt init",
                                 "UPT code trainers/unified.py (nn.init.normal_ std 0.02)")
        ctx_init: str = option("", "joint: phrase initialising the CoOp context (then n_text = its tokens)",
                               "UPT paper Table 2 (joint: CoOp + VPT-deep)")
        text_chunk: int = option(0, "encode this many classes per text-encoder call (0: automatic, "
                                    "one call up to 512 classes)")

        def __post_init__(self) -> None:
            if self.n_text < 1 or self.n_visual < 1:
                raise ConfigError("n_text and n_visual must be at least 1")
            if self.dim < 0 or self.depth < 0 or self.text_chunk < 0 or self.heads < 1:
                raise ConfigError("dim, depth and text_chunk must be >= 0, heads >= 1")
            if not 0 <= self.dropout < 1 or self.init_std <= 0:
                raise ConfigError("dropout must be in [0, 1) and init_std positive")
            if self.variant == "shared" and self.n_text != self.n_visual:
                raise ConfigError("variant=shared uses one prompt set for both towers: n_text must equal n_visual")
            if self.variant != "unified" and self.generator_type != "transformer":
                raise ConfigError("generator_type applies to variant=unified only")
            if self.generator_code == "authors" and (self.variant != "unified"
                                                     or self.generator_type != "transformer"):
                raise ConfigError("generator_code=authors is the released code's Transformer layer: it needs "
                                  "variant=unified and generator_type=transformer")
            if self.ctx_init and self.variant != "joint":
                raise ConfigError("ctx_init applies to variant=joint only (unified prompts are generated)")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        vision, text = backbone.require_vit("upt"), backbone.text_tower
        g, device = self._generator, backbone.device
        if config.variant == "joint":
            self._build_joint(vision.width, vision.depth, text.width)
        else:
            layers = prompt_depth(config.depth, text.depth, vision.depth) if config.deep else 1
            dim = config.dim or text.width
            n = config.n_text + (config.n_visual if config.variant == "unified" else 0)
            self.learned.unified = nn.Parameter(torch.randn(layers, n, dim, generator=g) * config.init_std)
            if config.variant == "unified":
                if config.generator_type == "transformer":
                    layer = AuthorsPromptLayer if config.generator_code == "authors" else UnifiedPromptLayer
                    self.learned.generator = layer(dim, config.heads, dropout=config.dropout, generator=g)
                else:
                    self.learned.generator = MLPPromptGenerator(dim, dropout=config.dropout, generator=g)
            if dim != text.width:
                self.learned.text_proj = reset_linear(nn.Linear(dim, text.width), g)
            self.learned.visual_proj = reset_linear(nn.Linear(dim, vision.width), g)
            self.n_ctx = config.n_text
        self.learned.to(device)
        self._build_classes()
        self.eval()  # deterministic (no dropout) until the engine trains it

    def _build_joint(self, v_width: int, v_depth: int, t_width: int) -> None:
        cfg = self.config
        if cfg.ctx_init:
            ctx = word_init(self.backbone, cfg.ctx_init)  # (M, Wt)
        else:
            ctx = torch.randn(cfg.n_text, t_width, generator=self._generator) * cfg.init_std
        self.n_ctx = ctx.shape[0]
        self.learned.ctx = nn.Parameter(ctx)  # (M, Wt)
        layers = prompt_depth(cfg.depth, v_depth)
        shape = (layers, cfg.n_visual, v_width)
        self.learned.visual = nn.Parameter(init_prompt_tokens(shape, "xavier", cfg.init_std, self._generator))

    def _build_classes(self) -> None:
        self.class_prompts = ClassPrompts(self.backbone, self.classnames, self.n_ctx, "end",
                                          chunk=self.config.text_chunk)

    def generate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Text prompts (P, n_text, Wt) and visual prompts (P, n_visual, Wv) of the unified variants."""
        learned, cfg = self.learned, self.config
        u = learned.unified  # (P, n, d)
        if cfg.variant == "unified" and cfg.generator_code == "authors":
            # the released code runs the generator once for each tower (two dropout draws)
            text, visual = learned.generator(u)[:, :cfg.n_text], learned.generator(u)[:, cfg.n_text:]
        elif cfg.variant == "unified":
            u = learned.generator(u)  # (P, n, d), Eq. 5
            text, visual = u[:, :cfg.n_text], u[:, cfg.n_text:]
        else:  # shared: the same tokens for both towers
            text, visual = u, u
        if hasattr(learned, "text_proj"):
            text = learned.text_proj(text)
        return text, learned.visual_proj(visual)

    def prompts(self) -> PromptSet:
        if self.config.variant == "joint":
            visual, deep_visual = split_layers(self.learned.visual)
            return PromptSet(text_ctx=self.learned.ctx, visual=visual, deep_visual=deep_visual)
        text, visual = self.generate()
        ctx, deep_text = split_layers(text)
        first, deep_visual = split_layers(visual)
        return PromptSet(text_ctx=ctx, deep_text=deep_text, visual=first, deep_visual=deep_visual)

    def text_weights(self, prompts: PromptSet) -> torch.Tensor:
        return encode_class_prompts(self.class_prompts, prompts.text_ctx, prompts.deep_text)
