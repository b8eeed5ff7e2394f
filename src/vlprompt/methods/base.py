"""The method interface: what the engine, the CLI and the contract tests rely on.

A method is an `nn.Module` built from a frozen backbone, class names and its `Config`.
Everything it learns lives in `self.learned` (parameters, plus buffers that must be saved
such as fixed random prompts); the backbone and every derived tensor are frozen, so the
trainable parameters are exactly `self.learned.parameters()`. The engine saves only
`self.learned` plus the config, and uses the `spec` to decide how to train and whether
image features may be computed once and cached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.base import VLBackbone
from ..errors import ConfigError

DEFAULT_TEMPLATE = "a photo of a {}."
FitKind = Literal["none", "sgd", "closed-form"]


@dataclass(frozen=True)
class MethodSpec:
    """What a method trains and what the engine may assume about it."""

    trains: str  # human description of the learned tensors
    frozen_image_features: bool  # image features do not depend on learned weights (cacheable)
    fit: FitKind
    can_change_classes: bool  # `set_classnames` moves it to classes it never saw
    text_classifier: bool  # its result is a (K, D) weight matrix (exportable, cacheable at eval)


@dataclass
class Batch:
    """Labels plus either images (B, 3, H, W) or precomputed image features (B, D)."""

    labels: torch.Tensor
    images: torch.Tensor | None = None
    features: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(move(self.labels), move(self.images), move(self.features))


@dataclass
class StepOutput:
    """The total loss, its named parts (for logging) and the logits (B, K)."""

    loss: torch.Tensor
    logits: torch.Tensor
    parts: dict[str, torch.Tensor]


class Learned(nn.Module):
    """The one container of everything a method learns; the only state that is saved."""


class Method(nn.Module):
    """Base class of every method; see the module docstring."""

    name: ClassVar[str] = ""
    Config: ClassVar[type]
    SPEC: ClassVar[MethodSpec]

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config, *,
                 dataset_templates: Sequence[str] | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        if not classnames:
            raise ConfigError("a method needs at least one class name")
        backbone.requires_grad_(False)
        self.backbone = backbone.eval()
        self.config = config
        self.classnames = list(classnames)
        self.dataset_templates = list(dataset_templates or [DEFAULT_TEMPLATE])
        self.learned = Learned()
        self._generator = generator
        self._frozen_weights: torch.Tensor | None = None

    # ------------------------------------------------------------------ description
    @property
    def spec(self) -> MethodSpec:
        return self.SPEC

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.learned.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> Method:
        super().train(mode)
        self.backbone.eval()  # never dropout / batch-norm updates in the frozen model
        return self

    # ------------------------------------------------------------------ forward
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> image features (B, D)."""
        if self.spec.frozen_image_features:
            with torch.no_grad():
                return self.backbone.encode_images(images)
        return self.backbone.encode_images(images)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Image features (B, D) -> logits (B, K); text classifiers use `class_weights`."""
        weights = self._frozen_weights if self._frozen_weights is not None else self.class_weights()
        if weights is None:
            raise NotImplementedError(f"{self.name} must implement logits_from_features")
        return self.cosine_logits(features, weights)

    def cosine_logits(self, features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """`tau * cos(f, w)`: features (B, D), unit-norm weights (K, D) -> logits (B, K)."""
        f = F.normalize(features.float(), dim=-1)  # (B, D)
        logits = self.logit_scale * f @ weights.float().T  # (B, K)
        bias = self.backbone.logit_bias
        return logits if bias is None else logits + bias.to(logits.device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> logits (B, K)."""
        return self.logits_from_features(self.encode_images(images))

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.backbone.logit_scale.detach()

    def class_weights(self) -> torch.Tensor | None:
        """Unit-norm class weights (K, D) for methods whose classifier ignores the image."""
        return None

    @contextmanager
    def frozen_classifier(self) -> Iterator[None]:
        """Compute the class weights once for a whole evaluation (no gradients)."""
        if not self.spec.text_classifier:
            yield
            return
        with torch.no_grad():
            self._frozen_weights = self.class_weights()
        try:
            yield
        finally:
            self._frozen_weights = None

    # ------------------------------------------------------------------ training
    def losses(self, logits: torch.Tensor, labels: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named loss terms; the engine optimises their sum under the key `loss`."""
        ce = F.cross_entropy(logits.float(), labels)
        return {"loss": ce, "ce": ce}

    def training_step(self, batch: Batch) -> StepOutput:
        features = batch.features if batch.features is not None else self.encode_images(batch.images)
        logits = self.logits_from_features(features)
        parts = self.losses(logits, batch.labels, features)
        return StepOutput(loss=parts["loss"], logits=logits, parts=parts)

    def backward(self, out: StepOutput, scale: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> None:
        """Fill `.grad` of the trainable parameters; ProGrad overrides this to project."""
        scale(out.loss).backward()

    def end_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the SGD loop after training epoch `epoch` (0-based) of `epochs`, before
        that epoch's validation and checkpoint (PromptSRC aggregates its prompts here).

        State kept across epochs must live in `self.learned` (as buffers) so that the
        checkpoint carries it and a resumed run continues exactly; the default does nothing.
        """

    def fit_closed_form(self, train: tuple[torch.Tensor, torch.Tensor],
                        val: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
        """Fit from features (N, D) and labels (N,); only for `spec.fit == "closed-form"`."""
        raise NotImplementedError(f"{self.name} has no closed-form fit")

    def prepare_fit(self, views: torch.Tensor, labels: torch.Tensor) -> dict | None:
        """Initialise from the support set before any fit (closed-form or SGD).

        `views` (V, N, D) holds the cached views of the N training images (the V augmented
        views the run reads, or one unaugmented), `labels` (N,). The trainer calls it only
        where a method overrides it, before it builds the optimiser, so it may create learned
        tensors whose shape depends on the training set (Tip-Adapter's cache; Tip-Adapter-F
        then trains its keys; CLAP sets its penalty weights). It is called on a resumed run
        too, before the checkpoint is loaded over what it set, so whatever training changes
        must live in `self.learned`. Returns what to record in the run's fit info (or None).
        """
        return {}

    def finish_fit(self, val: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
        """After SGD: a last step on the validation features (N, D) and labels (N,), or None
        when there are none (Tip-Adapter-F searches its alpha and beta here). Returns fit info."""
        return {}

    @classmethod
    def prepares_fit(cls) -> bool:
        """Whether the method builds state from the training features (`prepare_fit`)."""
        return cls.prepare_fit is not Method.prepare_fit

    @classmethod
    def finishes_fit(cls) -> bool:
        """Whether the method takes a last step on the validation features (`finish_fit`)."""
        return cls.finish_fit is not Method.finish_fit

    # ------------------------------------------------------------------ classes
    def set_classnames(self, classnames: Sequence[str]) -> None:
        """Move to other classes (base-to-new, cross-dataset); rebuilds class-dependent tensors."""
        if not self.spec.can_change_classes:
            raise ConfigError(f"method {self.name} learns one weight per class and cannot move to "
                              "other class names; evaluate it on the classes it was trained on")
        if not classnames:
            raise ConfigError("no class names")
        self.classnames = list(classnames)
        self._build_classes()

    def _build_classes(self) -> None:
        """Rebuild tensors that depend on the class names (called by `set_classnames`)."""

    # ------------------------------------------------------------------ state
    def learned_state(self) -> dict[str, torch.Tensor]:
        """Everything learned, detached, on the CPU, contiguous (what safetensors stores)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.learned.state_dict().items()}

    def load_learned(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.learned.state_dict())
        got = set(state)
        if expected != got:
            raise ConfigError(f"saved weights of {self.name} do not fit: missing {sorted(expected - got)}, "
                              f"unexpected {sorted(got - expected)}")
        own = self.learned.state_dict()
        for key, value in state.items():
            if own[key].shape != value.shape:
                raise ConfigError(f"saved {key} has shape {tuple(value.shape)}, the method expects "
                                  f"{tuple(own[key].shape)} (other classes or options?)")
        self.learned.load_state_dict(state)


def reset_linear(layer: nn.Linear, generator: torch.Generator | None) -> nn.Linear:
    """PyTorch's default Linear init, drawn from an explicit generator (reproducible builds)."""
    bound = 1.0 / layer.in_features ** 0.5
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)
    return layer
