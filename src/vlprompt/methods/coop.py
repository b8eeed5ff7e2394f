"""CoOp (Zhou et al., "Learning to Prompt for Vision-Language Models").

The prompt of class i is `[V]_1..[V]_M [CLASS_i] .`; the M context vectors are the only
parameters, either shared by all classes (unified) or one set per class (class-specific,
CSC). Text features are `g(t_i)` read at EOT; logits `tau * cos(f, g(t_i))`.
ProGrad and KgCoOp reuse this module and change only the loss or the backward step.
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
from .base import Method, MethodSpec
from .components.prompts import ClassPrompts, word_init
from .registry import register_method


@dataclass
class ContextConfig:
    """Options shared by every method that learns CoOp-style context vectors."""

    n_ctx: int = option(16, "number of context vectors M (ignored when ctx_init is a phrase)",
                        "CoOp paper Sec. 4.1 and scripts/coop/main.sh (NCTX 16)")
    ctx_init: str = option("", "phrase whose word embeddings initialise the context, e.g. 'a photo of a'; "
                               "empty: random N(0, init_std)",
                           "CoOp train.py (CTX_INIT '' : random init) for few-shot")
    init_std: float = option(0.02, "standard deviation of the random context init",
                             "CoOp trainers/coop.py (nn.init.normal_ std 0.02)")
    class_specific: bool = option(False, "one context per class (CSC) instead of a unified one",
                                  "CoOp scripts/coop/main.sh (CSC False)")
    class_token_position: Literal["end", "middle", "front"] = option(
        "end", "where the class name sits relative to the context",
        "CoOp scripts/coop/main.sh (CTP end)")
    text_chunk: int = option(0, "encode this many classes per text-encoder call (0: automatic: one call "
                                "up to 512 prompts, else calls of 256 prompts with checkpointing)")
    text_checkpointing: bool = option(False, "recompute each class chunk's text activations in "
                                             "backward (on by itself for automatic chunks)")
    text_share_prefix: bool = option(True, "encode the positions all classes share ([SOS] + context) "
                                           "once per call; exact, since the text transformer is causal")

    def __post_init__(self) -> None:
        if self.n_ctx < 1 and not self.ctx_init:
            raise ConfigError("n_ctx must be at least 1")
        if self.init_std <= 0:
            raise ConfigError("init_std must be positive")
        if self.text_chunk < 0:
            raise ConfigError("text_chunk must be >= 0")


class ContextPromptMethod(Method):
    """A frozen CLIP whose class prompts carry learnable context vectors (`learned.ctx`)."""

    SPEC = MethodSpec(trains="context vectors (M x W, or K x M x W class-specific)",
                      frozen_image_features=True, fit="sgd", can_change_classes=True,
                      text_classifier=True)
    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: ContextConfig, **kw):
        super().__init__(backbone, classnames, config, **kw)
        #: words that stay text between the context and each class name (ProGrad's template init)
        self.name_prefix = ""
        base, from_words = self._initial_context(backbone.text_tower.width)  # (M, W)
        self.n_ctx = base.shape[0]
        if config.class_specific:
            base = base.unsqueeze(0).repeat(len(self.classnames), 1, 1)
            if not from_words:  # independent random vectors per class
                base = torch.randn(base.shape, generator=self._generator) * config.init_std
        self.learned.ctx = nn.Parameter(base.to(backbone.device))
        self._build_classes()

    def _initial_context(self, width: int) -> tuple[torch.Tensor, bool]:
        """The context's starting vectors (M, W) and whether they come from words."""
        cfg = self.config
        if cfg.ctx_init:
            return word_init(self.backbone, cfg.ctx_init), True
        return torch.randn(cfg.n_ctx, width, generator=self._generator) * cfg.init_std, False

    @property
    def spec(self) -> MethodSpec:
        if self.config.class_specific:
            from dataclasses import replace

            return replace(self.SPEC, can_change_classes=False)
        return self.SPEC

    def _build_classes(self) -> None:
        cfg = self.config
        names = [f"{self.name_prefix} {c}" for c in self.classnames] if self.name_prefix else self.classnames
        self.prompts = ClassPrompts(self.backbone, names, self.n_ctx, cfg.class_token_position,
                                    chunk=cfg.text_chunk, checkpointing=cfg.text_checkpointing,
                                    share_prefix=cfg.text_share_prefix)

    def class_weights(self) -> torch.Tensor:
        """Unit-norm text features of the learned prompts (K, D)."""
        return self.prompts.encode(self.learned.ctx)


@register_method
class CoOp(ContextPromptMethod):
    """CoOp: learned context vectors, cross-entropy on `tau * cos(f, g(t_i))`."""

    name = "coop"

    @dataclass
    class Config(ContextConfig):
        pass
