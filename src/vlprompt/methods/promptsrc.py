"""PromptSRC (Khattak et al., ICCV 2023, "Self-regulating Prompts: Foundational Model
Adaptation without Forgetting"), read from the PromptSRC repository (trainers/promptsrc.py,
configs/trainers/PromptSRC/*.yaml).

IVLP's independent deep text and visual prompts, regulated by the frozen model:

- mutual agreement: with unit-norm prompted features (image f, class text t) and frozen ones
  (image f0 of the same augmented image, class text t0),
  `L = CE + w_t * mean|t - t0| + w_i * mean|f - f0| + w_kl * L_kl`, where
  `L_kl = sum_{b,k} p0 (log p0 - log p) / (B K)` is KL(p0 || p) at temperature 1 between the
  frozen (p0) and prompted (p) class distributions, summed and divided by the logits' count;
- textual diversity: t0 is the mean of the frozen text features over many templates (the
  reference's 60 ImageNet templates), normalised after averaging;
- Gaussian prompt aggregation (GPA): after epoch e (1-based) of E the prompts are added to a
  running sum with weight `N(e; mu, sigma) / sum_{e'=1..E} N(e'; mu, sigma)`; after the last
  epoch the prompts become that sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..backbones.base import VLBackbone
from ..config import option
from ..data.templates import resolve_templates
from ..errors import ConfigError
from .base import Batch, MethodSpec, StepOutput
from .ivlp import IVLP
from .registry import register_method
from .zeroshot import prompt_texts

SRC = "PromptSRC repo (muzairkhattak/PromptSRC) "
SRC_CFG = SRC + "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml"
GPA_PREFIX = "gpa_"


def gpa_weights(epochs: int, mean: float, std: float) -> torch.Tensor:
    """(E,) float64: the Gaussian N(e; mean, std) at epochs e = 1..E, normalised to sum 1.

    Computed as a softmax of the exponents (the Gaussian's constant cancels), so a mean far
    from every epoch still gives weights instead of 0 / 0.
    """
    if epochs < 1 or std <= 0:
        raise ConfigError(f"GPA needs epochs >= 1 and a positive std, got {epochs} and {std}")
    e = torch.arange(1, epochs + 1, dtype=torch.float64)
    return torch.softmax(-0.5 * ((e - mean) / std) ** 2, dim=0)


def kl_to_frozen(logits: torch.Tensor, frozen_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(frozen) || softmax(logits)) summed over (B, K) and divided by B * K
    (the reference's `kl_div(log p, log p0, reduction='sum', log_target=True) / numel`)."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_p0 = F.log_softmax(frozen_logits.float(), dim=-1)
    return (log_p0.exp() * (log_p0 - log_p)).sum() / logits.numel()


@register_method
class PromptSRC(IVLP):
    """IVLP prompts self-regulated towards the frozen model; see the module docstring."""

    name = "promptsrc"
    SPEC = MethodSpec(trains="text context, deep text and deep visual prompts (aggregated over epochs by GPA)",
                      frozen_image_features=False, fit="sgd", can_change_classes=True, text_classifier=False)

    @dataclass
    class Config(IVLP.Config):
        n_ctx_text: int = option(4, "text prompt tokens M per layer", f"{SRC_CFG} (N_CTX_TEXT 4)")
        n_ctx_vision: int = option(4, "visual prompt tokens per layer (0: no visual prompts, with "
                                      "vision_depth=0)", f"{SRC_CFG} (N_CTX_VISION 4)")
        ctx_init: str = option("a photo of a", "phrase whose first n_ctx_text tokens initialise the context; "
                                               "the rest of it stays in the prompt (empty: random)",
                               f"{SRC_CFG} (CTX_INIT)")
        text_depth: int = option(9, "J_t: text layers with fresh prompts (>= 1), capped by the text tower's "
                                    "depth", f"{SRC_CFG} (PROMPT_DEPTH_TEXT 9); the transfer preset sets 3")
        vision_depth: int = option(9, "J_v: image layers with fresh prompts (0: none), capped by the image "
                                      "tower's depth", f"{SRC_CFG} (PROMPT_DEPTH_VISION 9); the transfer preset "
                                                       "sets 3")
        text_loss_weight: float = option(25.0, "w_t: weight of the L1 between prompted and frozen class text "
                                               "features", f"{SRC_CFG} (TEXT_LOSS_WEIGHT 25)")
        image_loss_weight: float = option(10.0, "w_i: weight of the L1 between prompted and frozen image features",
                                          f"{SRC_CFG} (IMAGE_LOSS_WEIGHT 10)")
        logit_loss_weight: float = option(1.0, "w_kl: weight of KL(frozen || prompted) of the class distributions",
                                          SRC + "trainers/promptsrc.py (the KL term is added with weight 1)")
        templates: str = option("imagenet60", "templates the frozen text features average over: a set name "
                                              "(imagenet60, imagenet80, select7, dataset, '+' joins) or one "
                                              "template",
                                SRC + "trainers/promptsrc.py and imagenet_templates.py (60 ImageNet templates)")
        gpa: bool = option(True, "aggregate the prompts over epochs with Gaussian weights (false: keep the "
                                 "last epoch's)", SRC + "trainers/promptsrc.py (GPA)")
        gpa_mean: float = option(15.0, "mu: mean of the Gaussian over epochs 1..E", f"{SRC_CFG} (GPA_MEAN 15)")
        gpa_std: float = option(1.0, "sigma: standard deviation of the Gaussian over epochs",
                                f"{SRC_CFG} (GPA_STD 1)")

        def __post_init__(self) -> None:
            super().__post_init__()
            if min(self.text_loss_weight, self.image_loss_weight, self.logit_loss_weight) < 0:
                raise ConfigError("text_loss_weight, image_loss_weight and logit_loss_weight must be >= 0")
            if self.gpa_std <= 0:
                raise ConfigError(f"gpa_std must be positive, got {self.gpa_std}")
            if not self.templates.strip():
                raise ConfigError("templates must name a template set or give one template")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        self.frozen_templates = resolve_templates(config.templates, self.dataset_templates)
        if config.gpa:  # the running weighted sum of every learned tensor; buffers, so checkpoints keep it
            for name, param in list(self.learned.named_parameters()):
                self.learned.register_buffer(GPA_PREFIX + name, torch.zeros_like(param.detach()))

    def _build_classes(self) -> None:
        super()._build_classes()
        self._frozen_text: torch.Tensor | None = None  # for the current classes, made on first use

    # ------------------------------------------------------------------ the frozen model
    def frozen_text_features(self) -> torch.Tensor:
        """t0 (K, D): the frozen text features averaged over the templates, then normalised."""
        if self._frozen_text is None:
            texts = [s for t in self.frozen_templates for s in prompt_texts(self.classnames, t)]
            with torch.no_grad():  # one batched call for every (template, class)
                feats = self.backbone.encode_texts(texts).float()  # (T * K, D)
            mean = feats.view(len(self.frozen_templates), self.num_classes, -1).mean(0)  # (K, D)
            self._frozen_text = F.normalize(mean, dim=-1)
        return self._frozen_text

    def frozen_image_features(self, images: torch.Tensor) -> torch.Tensor:
        """f0 (B, D): the frozen image tower's unit-norm features (no prompts)."""
        with torch.no_grad():
            return F.normalize(self.backbone.encode_images(images).float(), dim=-1)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Batch) -> StepOutput:
        if batch.images is None:
            raise ConfigError(f"{self.name} prompts the image tower and trains on images, not cached features")
        p = self.prompts()
        image = F.normalize(self.encode_images(batch.images, p).float(), dim=-1)  # f (B, D)
        text = self.text_weights(p)  # t (K, D), unit norm
        logits = self.cosine_logits(image, text)  # (B, K)
        frozen_image = self.frozen_image_features(batch.images)  # f0 (B, D)
        frozen_text = self.frozen_text_features()  # t0 (K, D)
        frozen_logits = self.logit_scale * frozen_image @ frozen_text.T  # (B, K)
        parts = self.losses(logits, batch.labels, image)
        cfg = self.config
        parts["scl_text"] = cfg.text_loss_weight * F.l1_loss(text.float(), frozen_text)
        parts["scl_image"] = cfg.image_loss_weight * F.l1_loss(image, frozen_image)
        parts["scl_logits"] = cfg.logit_loss_weight * kl_to_frozen(logits, frozen_logits)
        parts["loss"] = parts["ce"] + parts["scl_text"] + parts["scl_image"] + parts["scl_logits"]
        return StepOutput(loss=parts["loss"], logits=logits, parts=parts)

    def end_epoch(self, epoch: int, epochs: int) -> None:
        """GPA: add this epoch's prompts with their Gaussian weight; after the last epoch,
        replace the prompts with the sum (a new run restarts the sum at epoch 0)."""
        if not self.config.gpa:
            return
        weight = float(gpa_weights(epochs, self.config.gpa_mean, self.config.gpa_std)[epoch])
        with torch.no_grad():
            for name, param in self.learned.named_parameters():
                total = getattr(self.learned, GPA_PREFIX + name)
                if epoch == 0:
                    total.zero_()
                total.add_(param.detach(), alpha=weight)
                if epoch == epochs - 1:
                    param.copy_(total)
