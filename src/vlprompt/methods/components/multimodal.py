"""Base class of methods that prompt the image tower (VPT, UPT, MaPLe).

Their image features depend on learned prompts, so the engine must feed images (the
feature cache is off: `frozen_image_features=False`), and one step computes every prompt
once (`prompts()`) and feeds the same tensors to both towers, which matters when a
generator with dropout produces them (UPT). The class weights do not depend on the image,
so an evaluation encodes them once (`frozen_classifier`), but they are not exported as a
plain classifier: without the visual prompts the image features would not fit them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...backbones.base import VLBackbone
from ...errors import ConfigError
from ..base import Batch, Method, StepOutput
from .prompts import ClassPrompts


@dataclass
class PromptSet:
    """Every prompt tensor of one forward pass; None where a tower gets none.

    text_ctx (M, Wt): first-layer text context; deep_text[i-1] (M, Wt): layer i >= 1.
    visual (n, Wv): first-layer visual prompts; deep_visual[i-1] (n, Wv): layer i >= 1.
    """

    text_ctx: torch.Tensor | None = None
    deep_text: list[torch.Tensor] | None = None
    visual: torch.Tensor | None = None
    deep_visual: list[torch.Tensor] | None = None


def split_layers(stack: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """Per-layer prompts (P, n, W) -> (first layer (n, W), layers 1..P-1 or None)."""
    return stack[0], (list(stack[1:].unbind(0)) if stack.shape[0] > 1 else None)


def prompt_depth(requested: int, *tower_depths: int) -> int:
    """Layers that get fresh prompts: `requested` (0: all) capped by every tower's depth."""
    if requested < 0:
        raise ConfigError(f"prompt depth must be >= 0, got {requested}")
    cap = min(tower_depths)
    return cap if requested == 0 else min(requested, cap)


def encode_class_prompts(prompts: ClassPrompts, ctx: torch.Tensor,
                         deep: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Normalised class text features (K, D) from context (M, Wt) and deep text prompts.

    Deep prompts (MaPLe, deep UPT) replace the context positions 1..M at layers i >= 1, so
    the class token must sit after the context ("end"). Chunked over classes like CoOp.
    """
    if not deep:
        return prompts.encode(ctx)
    if prompts.position != "end":
        raise ConfigError("deep text prompts need the class token at the end of the prompt")
    k = prompts.num_classes
    step = prompts.chunk_plan()[0]
    outs = []
    for start in range(0, k, step):
        classes = slice(start, min(start + step, k))
        emb = prompts.assemble(ctx, classes)  # (k, L, Wt)
        outs.append(prompts.backbone.encode_text_embeddings(emb, prompts.eot[classes], deep_prompts=deep))
    return F.normalize(torch.cat(outs).float(), dim=-1)  # (K, D)


class PromptedImageMethod(Method):
    """A method whose learned prompts enter the image tower; see the module docstring."""

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config, **kw):
        backbone.require_vit(f"method {self.name!r}")  # before anything is built
        super().__init__(backbone, classnames, config, **kw)

    # ------------------------------------------------------------------ to implement
    def prompts(self) -> PromptSet:
        """All prompt tensors of one forward pass (generated once per step)."""
        raise NotImplementedError

    def text_weights(self, prompts: PromptSet) -> torch.Tensor:
        """Unit-norm class weights (K, D) given this pass's prompts."""
        raise NotImplementedError

    # ------------------------------------------------------------------ forward
    def encode_images(self, images: torch.Tensor, prompts: PromptSet | None = None) -> torch.Tensor:
        """Images (B, 3, H, W) -> prompted image features (B, D)."""
        p = prompts if prompts is not None else self.prompts()
        return self.backbone.encode_images(images, visual_prompts=p.visual, deep_visual_prompts=p.deep_visual)

    def class_weights(self) -> torch.Tensor:
        return self.text_weights(self.prompts())

    def _weights(self, prompts: PromptSet) -> torch.Tensor:
        return self._frozen_weights if self._frozen_weights is not None else self.text_weights(prompts)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Prompted image features (B, D) -> logits (B, K)."""
        return self.cosine_logits(features, self._weights(self.prompts()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        p = self.prompts()
        return self.cosine_logits(self.encode_images(images, p), self._weights(p))

    def training_step(self, batch: Batch) -> StepOutput:
        if batch.images is None:
            raise ConfigError(f"{self.name} prompts the image tower and trains on images, not cached "
                              "features")
        p = self.prompts()
        features = self.encode_images(batch.images, p)  # (B, D)
        logits = self.cosine_logits(features, self.text_weights(p))  # (B, K)
        parts = self.losses(logits, batch.labels, features)
        return StepOutput(loss=parts["loss"], logits=logits, parts=parts)

    @contextmanager
    def frozen_classifier(self) -> Iterator[None]:
        """Encode the class weights once for a whole evaluation (they ignore the image)."""
        with torch.no_grad():
            self._frozen_weights = self.text_weights(self.prompts())
        try:
            yield
        finally:
            self._frozen_weights = None


def init_prompt_tokens(shape: tuple[int, ...], init: str, std: float,
                       generator: torch.Generator | None) -> torch.Tensor:
    """Initial prompt tokens (..., n, W), drawn from an explicit generator.

    `xavier`: uniform in +-sqrt(6 / (2 W)), VPT's bound (which uses fan_in = 3 p^2, equal
    to W for ViT-B/16); `normal`: N(0, std); `zeros`.
    """
    width = shape[-1]
    if init == "zeros":
        return torch.zeros(shape)
    if init == "normal":
        return torch.randn(shape, generator=generator) * std
    if init == "xavier":
        bound = (6.0 / (2 * width)) ** 0.5
        return (torch.rand(shape, generator=generator) * 2 - 1) * bound
    raise ConfigError(f"prompt init must be xavier, normal or zeros, not {init!r}")
