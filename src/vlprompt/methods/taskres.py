"""TaskRes (Yu et al., CVPR 2023, "Task Residual for Tuning Vision-Language Models").

The classifier is the frozen zero-shot text weights t (the base) plus a learned, scaled
residual: `t' = t + alpha * x`, x initialised to zeros and trained by cross-entropy on
`tau * cos(f, t')`. As in the reference, the base holds the text features before
normalisation (averaged over the templates), and t' is normalised. The residual holds one
row per training class, so the method does not move to other classes (docs/methods.md).
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
from .base import Method, MethodSpec
from .registry import register_method
from .zeroshot import raw_text_mean

REF = "TaskRes (geekyutao/TaskRes) "


@register_method
class TaskRes(Method):
    """Zero-shot text classifier plus a learned residual, one row per class."""

    name = "taskres"
    SPEC = MethodSpec(trains="classifier residual (K x D, zeros at the start)", frozen_image_features=True,
                      fit="sgd", can_change_classes=False, text_classifier=True)

    @dataclass
    class Config:
        template: str = option("dataset", "template (or set) of the base classifier",
                               REF + "trainers/taskres.py CUSTOM_TEMPLATES (ImageNet: the 7 selected ones too, "
                                     "set by the preset)")
        alpha: float = option(0.5, "residual scale alpha: t' = t + alpha x",
                              REF + "scripts/taskres/README.md (SCALE 0.5; 1.0 for Flowers102, in the preset)")

        def __post_init__(self) -> None:
            if self.alpha <= 0:
                raise ConfigError(f"method.alpha must be positive, got {self.alpha}")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        self.templates = resolve_templates(config.template, self.dataset_templates)
        self.register_buffer("base", raw_text_mean(backbone, self.classnames, self.templates), persistent=False)
        self.learned.residual = nn.Parameter(torch.zeros_like(self.base))

    def class_weights(self) -> torch.Tensor:
        """Unit-norm (K, D): normalise(t + alpha * x)."""
        return F.normalize(self.base + self.config.alpha * self.learned.residual, dim=-1)
