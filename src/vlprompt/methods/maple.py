"""MaPLe (Khattak et al., "MaPLe: Multi-modal Prompt Learning"), from its public description.

Language prompts at the first J layers of the text encoder: the context (layer 0) and one
fresh set per deeper layer, replacing the previous layer's outputs at positions 1..M.
The vision prompts of layer j are `C_j(text prompts of layer j)`, a per-layer linear
coupling from the text width to the vision width, so both towers are prompted from one
source. With `ctx_init` "a photo of a" and M = 2 the prompt is `[SOS] V1 V2 of a <name> .`
(the first M words become learnable, the rest of the phrase stays text). As in the
reference, the couplings of the deeper layers start as copies of one initialisation.
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
from .components.multimodal import PromptSet, prompt_depth
from .registry import register_method


@register_method
class MaPLe(DeepTextPromptMethod):
    """Deep language prompts with vision prompts coupled to them layer by layer."""

    name = "maple"
    SPEC = MethodSpec(trains="text context, deep text prompts (J-1 layers) and J linear couplings",
                      frozen_image_features=False, fit="sgd", can_change_classes=True, text_classifier=False)

    @dataclass
    class Config:
        n_ctx: int = option(2, "prompt tokens M per layer (text and vision)",
                            "MaPLe configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml (N_CTX 2)")
        ctx_init: str = option("a photo of a", "phrase whose first n_ctx tokens initialise the context; "
                                               "the rest of it stays in the prompt (empty: random)",
                               "MaPLe config (CTX_INIT) and trainers/maple.py (n_ctx kept, rest fixed)")
        depth: int = option(9, "J: prompted layers, capped by both towers' depth (9 of 12 in the paper)",
                            "MaPLe config (PROMPT_DEPTH 9); the transfer preset sets 3")
        init_std: float = option(0.02, "standard deviation of the random prompt init",
                                 "MaPLe trainers/maple.py (deep text prompts normal std 0.02)")
        text_chunk: int = option(0, "encode this many classes per text-encoder call (0: automatic, "
                                    "one call up to 512 classes)")

        def __post_init__(self) -> None:
            if self.n_ctx < 1 or self.depth < 1:
                raise ConfigError("n_ctx and depth must be at least 1")
            if self.init_std <= 0 or self.text_chunk < 0:
                raise ConfigError("init_std must be positive and text_chunk >= 0")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        vision, text = backbone.require_vit("maple"), backbone.text_tower
        g = self._generator
        self.depth = prompt_depth(config.depth, text.depth, vision.depth)  # J
        self._init_text_prompts(config.n_ctx, config.ctx_init, self.depth, config.init_std)
        learned = self.learned
        # nn.Linear's default init: the first layer's coupling has its own draw; the deeper ones
        # start as copies of one draw, as the reference clones one Linear for them
        bound = 1.0 / text.width ** 0.5
        draws = min(self.depth, 2)
        weight = (torch.rand(draws, text.width, vision.width, generator=g) * 2 - 1) * bound  # (<=2, Wt, Wv)
        bias = (torch.rand(draws, vision.width, generator=g) * 2 - 1) * bound
        rows = [0] + [draws - 1] * (self.depth - 1)
        learned.coupling_weight = nn.Parameter(weight[rows].clone())  # (J, Wt, Wv)
        learned.coupling_bias = nn.Parameter(bias[rows].clone())  # (J, Wv)
        learned.to(backbone.device)
        self._build_classes()

    def prompts(self) -> PromptSet:
        text = self.text_stack()  # (J, M, Wt)
        learned = self.learned
        visual = torch.einsum("jmt,jtv->jmv", text, learned.coupling_weight) + learned.coupling_bias[:, None]
        deep_text = list(text[1:].unbind(0)) or None
        deep_visual = list(visual[1:].unbind(0)) or None
        return PromptSet(text_ctx=learned.ctx, deep_text=deep_text, visual=visual[0], deep_visual=deep_visual)
