"""CLIP-Adapter (Gao et al., 2021, "CLIP-Adapter: Better Vision-Language Models with Feature Adapters").

A bottleneck MLP `A(f) = ReLU(W2 ReLU(W1 f))` (W1: D -> D/r, W2: D/r -> D, no biases) on
the frozen image feature f, blended with it: `f' = ratio * A(f) + (1 - ratio) * f`.
Logits are `tau * cos(f', w_i)` with w_i the zero-shot text weights of the hand-crafted
template; only W1 and W2 are trained (cross-entropy). Because the adapter acts on the image
side and the classifier stays text, the method moves to classes it never saw: their text
weights are encoded and the adapter is kept (docs/methods.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.base import VLBackbone
from ..config import option
from ..data.templates import resolve_templates
from ..errors import ConfigError
from .base import Method, MethodSpec, reset_linear
from .registry import register_method
from .zeroshot import text_classifier

REF = "CLIP-Adapter (gaopengcuhk/CLIP-Adapter) clip_adapter.py"


@register_method
class CLIPAdapter(Method):
    """Visual feature adapter with a residual blend; zero-shot text classifier."""

    name = "clip-adapter"
    SPEC = MethodSpec(trains="bottleneck adapter on image features (D x D/r and D/r x D)",
                      frozen_image_features=True, fit="sgd", can_change_classes=True, text_classifier=False)

    @dataclass
    class Config:
        template: str = option("dataset", "template (or set) of the zero-shot text classifier",
                               REF + " CUSTOM_TEMPLATES (the dataset's hand-crafted prompt)")
        reduction: int = option(4, "bottleneck reduction r (hidden width D / r)",
                                REF + " (Adapter(1024, 4))")
        ratio: float = option(0.2, "residual ratio alpha: f' = alpha A(f) + (1 - alpha) f",
                              REF + " (CustomCLIP.forward: ratio = 0.2)")

        def __post_init__(self) -> None:
            if self.reduction < 1:
                raise ConfigError(f"method.reduction must be >= 1, got {self.reduction}")
            if not 0.0 <= self.ratio <= 1.0:
                raise ConfigError(f"method.ratio must be in [0, 1], got {self.ratio}")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        d = backbone.embed_dim
        hidden = d // config.reduction
        if hidden < 1:
            raise ConfigError(f"method.reduction={config.reduction} leaves no hidden units for width {d}")
        self.templates = resolve_templates(config.template, self.dataset_templates)
        gen = self._generator
        self.learned.down = reset_linear(nn.Linear(d, hidden, bias=False), gen).to(backbone.device)
        self.learned.up = reset_linear(nn.Linear(hidden, d, bias=False), gen).to(backbone.device)
        self._build_classes()

    def _build_classes(self) -> None:
        self.register_buffer("text_weights", text_classifier(self.backbone, self.classnames, self.templates),
                             persistent=False)

    def adapt(self, features: torch.Tensor) -> torch.Tensor:
        """Image features (B, D) -> blended features ratio * A(f) + (1 - ratio) * f (B, D)."""
        f = features.float()
        a = F.relu(self.learned.up(F.relu(self.learned.down(f))))
        return self.config.ratio * a + (1.0 - self.config.ratio) * f

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Image features (B, D) -> logits tau * cos(f', w) (B, K)."""
        return self.cosine_logits(self.adapt(features), self.text_weights)
