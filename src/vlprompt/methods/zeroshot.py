"""Zero-shot CLIP: classify by cosine similarity to text features of prompted class names.

`p(y=i|x) = softmax_i(tau * cos(f(x), w_i))` with `w_i` the text feature of the template
filled with class i. With several templates, `w_i` is the mean of the normalised features
over templates, renormalised (CLIP's prompt ensembling).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.base import VLBackbone
from ..config import option
from ..data.templates import check_template, resolve_templates
from .base import Method, MethodSpec
from .registry import register_method


def prompt_texts(classnames: Sequence[str], template: str) -> list[str]:
    """Fill a template with each class name (underscores read as spaces)."""
    check_template(template)
    return [template.format(c.replace("_", " ")) for c in classnames]


@torch.no_grad()
def text_classifier(backbone: VLBackbone, classnames: Sequence[str], templates: Sequence[str],
                    batch_size: int = 256) -> torch.Tensor:
    """(K, D) unit-norm class weights: per-template features normalised, averaged, renormalised."""
    if not classnames:
        raise ValueError("no class names")
    if not templates:
        raise ValueError("no templates")
    acc = None
    for template in templates:
        feats = F.normalize(backbone.encode_texts(prompt_texts(classnames, template), batch_size), dim=-1)
        acc = feats if acc is None else acc + feats
    return F.normalize(acc / len(templates), dim=-1)


@torch.no_grad()
def raw_text_mean(backbone: VLBackbone, classnames: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """(K, D): each class's raw (unnormalised) text features averaged over the templates, the
    start of the methods that keep the features' norms (TaskRes' base, CLAP's prototypes)."""
    acc = None
    for template in templates:
        feats = backbone.encode_texts(prompt_texts(classnames, template)).float()
        acc = feats if acc is None else acc + feats
    return acc / len(templates)


class ZeroShotClassifier(nn.Module):
    """Frozen backbone + fixed text classifier; `forward(images) -> logits (B, K)`."""

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], templates: Sequence[str]):
        super().__init__()
        self.backbone = backbone
        self.classnames = list(classnames)
        self.templates = list(templates)
        self.register_buffer("weights", text_classifier(backbone, classnames, templates))

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Image features (B, D) -> logits (B, K)."""
        f = F.normalize(features.float(), dim=-1)
        logits = self.backbone.logit_scale * f @ self.weights.T
        bias = self.backbone.logit_bias  # SigLIP's; the same shift for every class
        return logits if bias is None else logits + bias.to(logits.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.backbone.encode_images(images))


def zeroshot_classifier(backbone: VLBackbone, classnames: Sequence[str],
                        templates: Sequence[str] | str = "a photo of a {}.") -> ZeroShotClassifier:
    """A zero-shot classifier from one template or a list (ensembled)."""
    if isinstance(templates, str):
        templates = [templates]
    return ZeroShotClassifier(backbone, classnames, templates)


# ---------------------------------------------------------------------- registered method

@register_method
class ZeroShot(Method):
    """Zero-shot CLIP as a method: no training, class weights from hand-crafted prompts."""

    name = "zeroshot"
    SPEC = MethodSpec(trains="nothing", frozen_image_features=True, fit="none",
                      can_change_classes=True, text_classifier=True)

    @dataclass
    class Config:
        template: str = option("dataset", "a template with {} or a set: dataset, select7, "
                                          "imagenet80, or a '+' join such as dataset+select7",
                               "CoOp trainers/zsclip.py CUSTOM_TEMPLATES (the dataset's hand-crafted prompt)")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        self.templates = resolve_templates(config.template, self.dataset_templates)
        self._build_classes()

    def _build_classes(self) -> None:
        self.register_buffer("weights", text_classifier(self.backbone, self.classnames, self.templates),
                             persistent=False)

    def class_weights(self) -> torch.Tensor:
        return self.weights
