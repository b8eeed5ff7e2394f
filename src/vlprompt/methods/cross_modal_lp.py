"""Cross-modal linear probe (Lin et al., CVPR 2023): class-name texts as extra training samples.

A linear head W (K, D) on L2-normalised features, `logits = s * normalize(x) W^T` with a fixed
scale s (100), is trained on image features and on the text features of every (class, template)
prompt, each labelled with its class: the text encoder and the image encoder share one space,
so a text is one more labelled example. Each step takes the batch of image features plus as
many text samples (half of the reference's batch is text). W starts at the zero-shot weights:
the class's raw text features averaged over the templates, L2-normalised. Reference:
linzhiqiu/cross_modal_adaptation train.py (CROSS_MODAL_BATCH_RATIO), engine/model/head.py
(`get_zero_shot_weights`), engine/model/logit.py (LogitHead) and engine/optimizer/default.py.
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
from .base import Batch, Method, MethodSpec, StepOutput
from .registry import register_method
from .zeroshot import prompt_texts


@torch.no_grad()
def text_samples(backbone: VLBackbone, classnames: Sequence[str], templates: Sequence[str]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw text features (T K, D) of every (template, class) prompt and their class labels (T K,)."""
    feats = torch.cat([backbone.encode_texts(prompt_texts(classnames, t)).float() for t in templates])
    labels = torch.arange(len(classnames), device=feats.device).repeat(len(templates))
    return feats, labels


@register_method
class CrossModalLP(Method):
    """A linear head trained on image features and the class-name text features together."""

    name = "cross-modal-lp"
    SPEC = MethodSpec(trains="linear head (K x D), started at the zero-shot text weights, trained on image "
                             "and text features", frozen_image_features=True, fit="sgd",
                      can_change_classes=False, text_classifier=False)

    @dataclass
    class Config:
        template: str = option("dataset", "templates of the text samples and of the head's start (a template "
                                          "with {} or a set: dataset, select7, imagenet80, '+' joins)",
                               "cross_modal_adaptation engine/templates (hand_crafted: Tip-Adapter's "
                               "per-dataset templates)")
        logit_scale: float = option(100.0, "fixed logit scale s",
                                    "cross_modal_adaptation README (--logit 4.60517, exp = 100)")
        text_ratio: float = option(1.0, "text samples per image sample in each batch (0: image only)",
                                   "cross_modal_adaptation train.py (CROSS_MODAL_BATCH_RATIO 0.5: half "
                                   "of each batch is text)")

        def __post_init__(self) -> None:
            if self.logit_scale <= 0:
                raise ConfigError("method.logit_scale must be positive")
            if self.text_ratio < 0:
                raise ConfigError("method.text_ratio must be >= 0")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        self.templates = resolve_templates(config.template, self.dataset_templates)
        feats, labels = text_samples(backbone, self.classnames, self.templates)
        self.register_buffer("text_features", feats, persistent=False)
        self.register_buffer("text_labels", labels, persistent=False)
        k = len(self.classnames)
        start = F.normalize(feats.view(len(self.templates), k, -1).mean(0), dim=-1)
        self.learned.weight = nn.Parameter(start.clone())

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """`s * normalize(x) W^T` for image or text features (B, D) -> (B, K)."""
        return self.config.logit_scale * F.normalize(features.float(), dim=-1) @ self.learned.weight.T

    def sample_texts(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`n` text samples and labels, without replacement while there are enough (the trainer
        seeds the global generator from the run's seed and epoch, so a resumed run draws the same)."""
        m = len(self.text_labels)
        if n <= m:
            idx = torch.randperm(m)[:n]
        else:
            idx = torch.randint(m, (n,))
        idx = idx.to(self.text_labels.device)
        return self.text_features[idx], self.text_labels[idx]

    def training_step(self, batch: Batch) -> StepOutput:
        features = batch.features if batch.features is not None else self.encode_images(batch.images)
        logits = self.logits_from_features(features)
        ce_image = F.cross_entropy(logits.float(), batch.labels)
        n_text = round(self.config.text_ratio * len(batch.labels))
        if n_text == 0:
            return StepOutput(loss=ce_image, logits=logits, parts={"loss": ce_image, "ce_image": ce_image})
        text, text_labels = self.sample_texts(n_text)
        text_logits = self.logits_from_features(text)
        loss = F.cross_entropy(torch.cat([logits, text_logits]).float(), torch.cat([batch.labels, text_labels]))
        ce_text = F.cross_entropy(text_logits.float(), text_labels)
        return StepOutput(loss=loss, logits=logits, parts={"loss": loss, "ce_image": ce_image, "ce_text": ce_text})
