"""ZS-LP and CLAP (Silva-Rodriguez et al., CVPR 2024): linear probes started at the text classifier.

ZS-LP learns one prototype w_c per class on L2-normalised, frozen image features, with CLIP's
temperature: `logits = tau * cos(f, w_c)`. The prototypes start at the zero-shot ones t_c (the
mean of the class's raw text features over the templates, as the reference keeps them).

CLAP adds a class-adaptive penalty that keeps each prototype near its zero-shot start:

    L = CE + (1/K) sum_c lambda_c ||w_c - t_c||^2,

with lambda_c set once from the support set: the zero-shot model's mean softmax probability of
class c over the training views of class c (classes it already gets right keep their prototype
closer). The reference: jusiro/CLAP trainers/adapters.py (`zero_shot_constraint`,
`init_lagrangian_multipliers`) and configs/trainers/SGD_lr1e-1_B256_ep300.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

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

LambdaRule = Literal["zero-shot", "balanced", "corrected", "constant"]


def clap_penalty(prototypes: torch.Tensor, anchors: torch.Tensor, lambdas: torch.Tensor) -> torch.Tensor:
    """`(1/K) sum_c lambda_c ||w_c - t_c||^2` (the reference's l2 constraint, a mean over classes)."""
    return (lambdas * (prototypes - anchors).pow(2).sum(-1)).mean()


def clap_lambdas(zero_shot_logits: torch.Tensor, labels: torch.Tensor, num_classes: int,
                 rule: LambdaRule = "zero-shot") -> torch.Tensor:
    """Per-class penalty weights (K,) from the zero-shot logits (M, K) of the support views.

    `zero-shot`: lambda_c = mean over the views of class c of softmax(logits)_c (the reference's
    default); `corrected` rescales them to mean 1; `constant` gives every class their mean;
    `balanced` is 1 for every class.
    """
    if rule == "balanced":
        return torch.ones(num_classes)
    counts = torch.bincount(labels.cpu(), minlength=num_classes).float()
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise ConfigError(f"CLAP sets each class's penalty from its training images; class index "
                          f"{missing[0]} has none")
    probs = torch.softmax(zero_shot_logits.float().cpu(), dim=-1)
    own = probs.gather(1, labels.cpu()[:, None]).squeeze(1)  # (M,) p(true class)
    lambdas = torch.zeros(num_classes).index_add_(0, labels.cpu(), own) / counts
    if rule == "corrected":
        lambdas = lambdas * (num_classes / lambdas.sum())
    elif rule == "constant":
        lambdas = torch.full((num_classes,), float(lambdas.mean()))
    return lambdas


@register_method
class ZSLP(Method):
    """Zero-shot-initialised linear probe: K prototypes, cosine logits at CLIP's temperature."""

    name = "zs-lp"
    SPEC = MethodSpec(trains="class prototypes (K x D), started at the zero-shot text prototypes",
                      frozen_image_features=True, fit="sgd", can_change_classes=True, text_classifier=False)

    @dataclass
    class Config:
        template: str = option("dataset", "templates of the zero-shot prototypes: a template with {} "
                                          "or a set (dataset, select7, imagenet80, '+' joins)",
                               "CLAP trainers/adapters.py CUSTOM_TEMPLATES (CoOp's per-dataset prompt)")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        self.templates = resolve_templates(config.template, self.dataset_templates)
        self.trained_classnames = list(self.classnames)
        anchors = raw_text_mean(backbone, self.classnames, self.templates)
        self.register_buffer("anchors", anchors, persistent=False)  # t_c of the training classes
        self.learned.prototypes = nn.Parameter(anchors.clone())
        self._build_classes()

    def _build_classes(self) -> None:
        """Trained classes keep their learned prototype; any other name gets its zero-shot one."""
        index = {name: i for i, name in enumerate(self.trained_classnames)}
        rows = [index.get(name, -1) for name in self.classnames]
        self._identity = rows == list(range(len(self.trained_classnames)))
        if self._identity:
            self.register_buffer("_fallback", None, persistent=False)
            self.register_buffer("_rows", None, persistent=False)
            return
        fallback = raw_text_mean(self.backbone, self.classnames, self.templates)
        self.register_buffer("_fallback", fallback, persistent=False)
        self.register_buffer("_rows", torch.tensor(rows, device=fallback.device), persistent=False)

    def prototypes(self) -> torch.Tensor:
        """(K, D) prototypes of the current classes (unnormalised)."""
        learned = self.learned.prototypes
        if self._identity:
            return learned
        known = (self._rows >= 0)[:, None]
        return torch.where(known, learned[self._rows.clamp(min=0)], self._fallback)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """`tau * cos(f, w_c)`: image features (B, D) -> logits (B, K)."""
        return self.cosine_logits(features, F.normalize(self.prototypes().float(), dim=-1))


@register_method
class CLAP(ZSLP):
    """ZS-LP plus the class-adaptive penalty towards the zero-shot prototypes."""

    name = "clap"
    SPEC = MethodSpec(trains="class prototypes (K x D) held near the zero-shot ones by per-class weights "
                             "set from the support set",
                      frozen_image_features=True, fit="sgd", can_change_classes=True, text_classifier=False)

    @dataclass
    class Config(ZSLP.Config):
        lambda_rule: LambdaRule = option(
            "zero-shot", "per-class penalty weights: zero-shot (mean zero-shot probability of the class "
                         "on its support views), corrected (those, rescaled to mean 1), constant (their "
                         "mean for every class), balanced (1)",
            "CLAP trainers/adapters.py init_lagrangian_multipliers (the paper's runs: CONSTRAINT l2)")

        def __post_init__(self) -> None:
            if self.lambda_rule not in ("zero-shot", "balanced", "corrected", "constant"):
                raise ConfigError(f"method.lambda_rule must be zero-shot, balanced, corrected or constant, "
                                  f"not {self.lambda_rule!r}")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        # lambda_c: saved with the prototypes so a resumed run keeps them; zero until prepare_fit
        self.learned.register_buffer("lambdas", torch.zeros(len(self.classnames), device=backbone.device))

    def prepare_fit(self, views: torch.Tensor, labels: torch.Tensor) -> dict:
        """lambda_c from the zero-shot model on every cached view (V, N, D) of the support set.

        On a resumed run the checkpoint's lambdas replace these (they are the same numbers)."""
        dev = self.anchors.device
        flat = views.flatten(0, 1).to(dev)  # (V N, D)
        with torch.no_grad():
            zs = self.cosine_logits(flat, F.normalize(self.anchors.float(), dim=-1))
        lambdas = clap_lambdas(zs, labels.to(dev).repeat(views.shape[0]), len(self.trained_classnames),
                               self.config.lambda_rule)
        self.learned.lambdas.copy_(lambdas.to(self.learned.lambdas.device))
        return {"clap_lambda_mean": float(lambdas.mean()), "clap_lambda_min": float(lambdas.min()),
                "clap_lambda_max": float(lambdas.max())}

    def losses(self, logits: torch.Tensor, labels: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        ce = F.cross_entropy(logits.float(), labels)
        penalty = clap_penalty(self.learned.prototypes.float(), self.anchors.float(), self.learned.lambdas)
        return {"loss": ce + penalty, "ce": ce, "penalty": penalty}
