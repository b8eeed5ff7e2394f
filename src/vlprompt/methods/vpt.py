"""VPT (Jia et al., "Visual Prompt Tuning") on CLIP's image tower, text side fixed.

n learnable tokens follow the class token. Shallow: only at the first layer. Deep: a fresh
set at the input of each of the first `depth` layers, replacing the previous layer's
prompt outputs. The classifier is the hand-crafted prompt's text features, encoded once
and kept as a buffer, so only the image tower runs per step. ViT backbones only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..backbones.base import VLBackbone
from ..config import option
from ..data.templates import resolve_templates
from ..errors import ConfigError
from .base import MethodSpec
from .components.multimodal import (
    PromptedImageMethod,
    PromptSet,
    init_prompt_tokens,
    prompt_depth,
    split_layers,
)
from .registry import register_method
from .zeroshot import text_classifier


@register_method
class VPT(PromptedImageMethod):
    """Visual prompt tokens (shallow or deep) with a fixed hand-crafted text classifier."""

    name = "vpt"
    SPEC = MethodSpec(trains="visual prompt tokens (P x n x vision width)", frozen_image_features=False,
                      fit="sgd", can_change_classes=True, text_classifier=False)

    @dataclass
    class Config:
        n_tokens: int = option(8, "visual prompt tokens per layer (0: none, equals zero-shot)",
                               "MaPLe repo configs/trainers/VPT/vit_b16_c2_ep5_batch4_4.yaml (N_CTX_VISION 8)")
        deep: bool = option(True, "a fresh set of tokens at every layer (VPT-deep) instead of the first only",
                            "MaPLe repo VPT config (PROMPT_DEPTH_VISION 12); UPT repo trainers/vpt_deep.py")
        depth: int = option(0, "deep: how many layers, from the first, get fresh tokens (0: all)",
                            "MaPLe repo VPT config (PROMPT_DEPTH_VISION 12 of 12)")
        init: Literal["xavier", "normal", "zeros"] = option(
            "normal", "prompt init (normal: N(0, init_std) as both CLIP references; xavier: the VPT "
                      "paper's uniform)", "MaPLe repo clip/model.py; UPT repo trainers/vpt_deep.py")
        init_std: float = option(0.02, "standard deviation of the normal init",
                                 "MaPLe repo clip/model.py; UPT repo trainers/vpt_deep.py")
        template: str = option("a photo of a {}.", "hand-crafted prompt(s) of the fixed text classifier "
                                                   "(the few-shot preset uses the dataset's own, as UPT's code)",
                               "MaPLe repo trainers/vpt.py (FixedEmbeddings)")

        def __post_init__(self) -> None:
            if self.n_tokens < 0 or self.depth < 0:
                raise ConfigError("n_tokens and depth must be >= 0")
            if self.init_std <= 0:
                raise ConfigError("init_std must be positive")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        tower = backbone.require_vit("vpt")
        layers = prompt_depth(config.depth, tower.depth) if config.deep else 1
        tokens = init_prompt_tokens((layers, config.n_tokens, tower.width), config.init, config.init_std,
                                    self._generator)
        self.learned.prompts = nn.Parameter(tokens.to(backbone.device))  # (P, n, Wv)
        self.templates = resolve_templates(config.template, self.dataset_templates)
        self._build_classes()

    def _build_classes(self) -> None:
        weights = text_classifier(self.backbone, self.classnames, self.templates)  # (K, D)
        self.register_buffer("text_classifier", weights, persistent=False)

    def prompts(self) -> PromptSet:
        first, deep = split_layers(self.learned.prompts)
        return PromptSet(visual=first, deep_visual=deep)

    def text_weights(self, prompts: PromptSet) -> torch.Tensor:
        return self.text_classifier
