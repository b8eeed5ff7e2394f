"""IVLP: independent deep vision and language prompts (the baseline of the MaPLe paper).

Text prompts at the first J_t layers of the text encoder (the context at layer 0, initialised
from a phrase, and a fresh set per deeper layer, as MaPLe's; `components/deep_text.py`) and
visual prompts at the first J_v layers of the image encoder (n tokens after the class token
at layer 0, a fresh set replacing their outputs at each deeper layer, as deep VPT's). Unlike
MaPLe there is no coupling: the two sets are learned independently. Read from the MaPLe
repository's trainers/independentVL.py and clip/model.py (ResidualAttentionBlock_IVLP).

With J_t = 1 and no visual prompts (`vision_depth=0`, `n_ctx_vision=0`) it is CoOp with
a context initialised from the phrase, trained on images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..backbones.base import VLBackbone
from ..config import option
from ..errors import ConfigError
from .base import MethodSpec
from .components.deep_text import DeepTextPromptMethod
from .components.multimodal import PromptSet, split_layers
from .registry import register_method

IVLP_CFG = "MaPLe repo configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml"


@register_method
class IVLP(DeepTextPromptMethod):
    """Deep text and deep visual prompts, learned independently."""

    name = "ivlp"
    SPEC = MethodSpec(trains="text context, deep text prompts and deep visual prompts",
                      frozen_image_features=False, fit="sgd", can_change_classes=True, text_classifier=False)

    @dataclass
    class Config:
        n_ctx_text: int = option(2, "text prompt tokens M per layer", f"{IVLP_CFG} (N_CTX_TEXT 2)")
        n_ctx_vision: int = option(2, "visual prompt tokens per layer (0: no visual prompts, with "
                                      "vision_depth=0)", f"{IVLP_CFG} (N_CTX_VISION 2)")
        ctx_init: str = option("a photo of a", "phrase whose first n_ctx_text tokens initialise the context; "
                                               "the rest of it stays in the prompt (empty: random)",
                               f"{IVLP_CFG} (CTX_INIT) and trainers/independentVL.py")
        text_depth: int = option(12, "J_t: text layers with fresh prompts (>= 1), capped by the text tower's "
                                     "depth", f"{IVLP_CFG} (PROMPT_DEPTH_TEXT 12)")
        vision_depth: int = option(12, "J_v: image layers with fresh prompts (0: none), capped by the image "
                                       "tower's depth", f"{IVLP_CFG} (PROMPT_DEPTH_VISION 12)")
        init_std: float = option(0.02, "standard deviation of the random prompt init (deep text, visual, "
                                       "and the context without ctx_init)",
                                 "MaPLe repo clip/model.py and trainers/independentVL.py (normal, std 0.02)")
        text_chunk: int = option(0, "encode this many classes per text-encoder call (0: automatic, "
                                    "one call up to 512 classes)")

        def __post_init__(self) -> None:
            if self.n_ctx_text < 1 or self.text_depth < 1:
                raise ConfigError("n_ctx_text and text_depth must be at least 1 (for image prompts only, use vpt)")
            if self.n_ctx_vision < 0 or self.vision_depth < 0:
                raise ConfigError("n_ctx_vision and vision_depth must be >= 0")
            if (self.n_ctx_vision == 0) != (self.vision_depth == 0):
                raise ConfigError("n_ctx_vision and vision_depth must both be 0 (no visual prompts) or both positive")
            if self.init_std <= 0 or self.text_chunk < 0:
                raise ConfigError("init_std must be positive and text_chunk >= 0")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        vision, text = backbone.require_vit(self.name), backbone.text_tower
        self._init_text_prompts(config.n_ctx_text, config.ctx_init, min(config.text_depth, text.depth),
                                config.init_std)
        self.vision_depth = min(config.vision_depth, vision.depth)  # J_v (0: no visual prompts)
        if self.vision_depth:
            shape = (self.vision_depth, config.n_ctx_vision, vision.width)
            self.learned.visual = nn.Parameter(torch.randn(shape, generator=self._generator)
                                               * config.init_std)  # (J_v, n, Wv)
        self.learned.to(backbone.device)
        self._build_classes()

    def prompts(self) -> PromptSet:
        text = self.text_stack()  # (J_t, M, Wt)
        visual, deep_visual = split_layers(self.learned.visual) if self.vision_depth else (None, None)
        return PromptSet(text_ctx=self.learned.ctx, deep_text=list(text[1:].unbind(0)) or None,
                         visual=visual, deep_visual=deep_visual)
