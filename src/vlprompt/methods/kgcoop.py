"""KgCoOp (Yao et al., "Visual-Language Prompt Tuning with Knowledge-guided Context Optimization").

CoOp context plus a consistency loss that keeps each learned class feature close to the
hand-crafted zero-shot one: `CE + w * (1 - mean_i cos(g(t_i), w_i^zs))`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from ..config import option
from ..data.templates import resolve_templates
from .base import Batch, StepOutput
from .coop import ContextConfig, ContextPromptMethod
from .registry import register_method
from .zeroshot import text_classifier


@register_method
class KgCoOp(ContextPromptMethod):
    """CoOp context regularised towards the zero-shot text features."""

    name = "kgcoop"

    @dataclass
    class Config(ContextConfig):
        n_ctx: int = option(4, "number of context vectors M (ignored when ctx_init is a phrase)",
                            "KgCoOp scripts/base2new_train.sh (NCTX 4)")
        ctx_init: str = option("a photo of a", "phrase whose word embeddings initialise the context",
                               "KgCoOp trainers/kgcoop.py (CTX_INIT: 'a photo of a')")
        weight: float = option(8.0, "w: weight of the text-feature consistency loss",
                               "KgCoOp scripts/run.sh and xd_train.sh (W 8.0; train.py's default is 1.0)")
        template: str = option("dataset", "hand-crafted prompt(s) giving the zero-shot features w^zs",
                               "KgCoOp trainers/kgcoop.py CUSTOM_TEMPLATES (CoOp's, except DTD: see the preset)")

    def _build_classes(self) -> None:
        super()._build_classes()
        templates = resolve_templates(self.config.template, self.dataset_templates)
        self.register_buffer("zs_weights", text_classifier(self.backbone, self.classnames, templates),
                             persistent=False)  # (K, D)

    def training_step(self, batch: Batch) -> StepOutput:
        features = batch.features if batch.features is not None else self.encode_images(batch.images)
        text = self.class_weights()  # (K, D), unit norm, with gradients
        logits = self.cosine_logits(features, text)
        ce = F.cross_entropy(logits, batch.labels)
        consistency = 1.0 - (text * self.zs_weights).sum(dim=-1).mean()
        loss = ce + self.config.weight * consistency
        return StepOutput(loss=loss, logits=logits, parts={"loss": loss, "ce": ce, "kg": consistency})


__all__ = ["KgCoOp"]
