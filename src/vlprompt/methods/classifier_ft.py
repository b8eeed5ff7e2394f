"""Classifier fine-tuning ("Rethinking ... prompt learning", Sec. 5).

The K x D weight matrix W is the parameter itself, initialised from the zero-shot text
features; logits `tau * cos(f, w_i)`. It is trained like CoOp but needs no text-encoder
pass per step, which is what makes it about 10x faster than prompt learning.
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
from .base import Method, MethodSpec
from .registry import register_method
from .zeroshot import text_classifier


@register_method
class ClassifierFT(Method):
    """A cosine classifier (K x D) initialised from zero-shot text features."""

    name = "classifier-ft"
    SPEC = MethodSpec(trains="class weights (K x D)", frozen_image_features=True, fit="sgd",
                      can_change_classes=False, text_classifier=True)

    @dataclass
    class Config:
        template: str = option("dataset", "hand-crafted prompt(s) whose text features initialise W",
                               "rethinking paper Sec. 3 (W initialised from the zero-shot text features)")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        templates = resolve_templates(config.template, self.dataset_templates)
        init = text_classifier(backbone, self.classnames, templates)  # (K, D), unit norm
        self.learned.weight = nn.Parameter(init.detach().clone())

    def class_weights(self) -> torch.Tensor:
        return F.normalize(self.learned.weight, dim=-1)  # (K, D)
