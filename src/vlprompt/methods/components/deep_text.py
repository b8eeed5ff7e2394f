"""Deep language prompts shared by MaPLe, IVLP and PromptSRC.

The text side of these methods is the same: a context of M tokens at the input of the
text encoder (layer 0), initialised from the first M tokens of a phrase (the rest of the
phrase stays text: `[SOS] V1 V2 of a <name> .` for "a photo of a" and M = 2) or drawn at
random, and one fresh set of M tokens per deeper layer 1..J-1, each replacing the previous
layer's outputs at positions 1..M. Only what feeds the image tower differs (MaPLe couples
it to these prompts; IVLP and PromptSRC learn it independently).
"""

from __future__ import annotations

import torch
from torch import nn

from .multimodal import PromptedImageMethod, PromptSet, encode_class_prompts
from .prompts import ClassPrompts, split_init_phrase


class DeepTextPromptMethod(PromptedImageMethod):
    """A prompted-image method with MaPLe-style deep text prompts; see the module docstring.

    Subclasses call `_init_text_prompts` in `__init__` (it draws from the method's generator,
    first the random context if any, then the deep prompts) and then `_build_classes`.
    """

    n_ctx_text: int
    text_depth: int  # J: layers that get fresh text prompts (the context is layer 0)
    prefix: str  # the words of the init phrase after the learned context

    def _init_text_prompts(self, n_ctx: int, ctx_init: str, depth: int, std: float) -> None:
        """`learned.ctx` (M, Wt) and, for J > 1, `learned.deep_text` (J-1, M, Wt) ~ N(0, std)."""
        text, g = self.backbone.text_tower, self._generator
        self.n_ctx_text, self.text_depth = n_ctx, depth
        if ctx_init:
            ctx, self.prefix = split_init_phrase(self.backbone, ctx_init, n_ctx)
        else:
            ctx, self.prefix = torch.randn(n_ctx, text.width, generator=g) * std, ""
        self.learned.ctx = nn.Parameter(ctx)  # (M, Wt), layer 0
        if depth > 1:
            self.learned.deep_text = nn.Parameter(torch.randn(depth - 1, n_ctx, text.width, generator=g)
                                                  * std)  # (J-1, M, Wt)

    def _build_classes(self) -> None:
        names = [f"{self.prefix} {c}" if self.prefix else c for c in self.classnames]
        self.class_prompts = ClassPrompts(self.backbone, names, self.n_ctx_text, "end",
                                          chunk=self.config.text_chunk)

    def text_stack(self) -> torch.Tensor:
        """Every layer's text prompts (J, M, Wt): the context, then the deep prompts."""
        ctx = self.learned.ctx.unsqueeze(0)
        return torch.cat([ctx, self.learned.deep_text]) if self.text_depth > 1 else ctx

    def text_weights(self, prompts: PromptSet) -> torch.Tensor:
        return encode_class_prompts(self.class_prompts, prompts.text_ctx, prompts.deep_text)
