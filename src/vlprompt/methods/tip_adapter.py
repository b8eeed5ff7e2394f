"""Tip-Adapter and Tip-Adapter-F (Zhang et al., ECCV 2022, "Tip-Adapter: Training-free
Adaption of CLIP for Few-shot Classification").

A cache model from the few-shot training set: keys K (N, D) are the L2-normalised image
features (each image's augmented views averaged first, as the reference's 10 augmentation
epochs), values V (N, C) their one-hot labels. For a normalised test feature f,

    logits = s * f W^T + alpha * exp(-beta * (1 - f K^T)) V

with W the zero-shot text weights and s CLIP's logit scale (the reference writes 100, which
is OpenAI CLIP's scale). alpha and beta are chosen on the validation features by the
reference's grid search. Tip-Adapter is training-free (`fit_closed_form`); Tip-Adapter-F
makes the keys learnable, initialised from the cache, trains them with cross-entropy at the
initial alpha and beta, then searches alpha and beta again. The cache holds the training
classes only, so neither moves to other classes (docs/methods.md).
"""

from __future__ import annotations

import logging
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
from .zeroshot import text_classifier

log = logging.getLogger(__name__)
REF = "Tip-Adapter (gaopengcuhk/Tip-Adapter) "


def search_grid(scale: float, steps: int) -> list[float]:
    """The reference's grid: `i * (scale - 0.1) / steps + 0.1` for i in 0..steps-1 (utils.search_hp)."""
    return [i * (scale - 0.1) / steps + 0.1 for i in range(steps)]


def cache_logits(affinity: torch.Tensor, values: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
    """exp(-beta (1 - A)) V: affinities (B, N), one-hot values (N, C) -> (B, C)."""
    return torch.exp(-beta * (1.0 - affinity)) @ values


def search_alpha_beta(zero_shot: torch.Tensor, affinity: torch.Tensor, values: torch.Tensor,
                      labels: torch.Tensor, betas: Sequence[float], alphas: Sequence[float]
                      ) -> tuple[float, float, int]:
    """(beta, alpha, correct) with the most correct predictions, the first such in the reference's
    order (beta outer, alpha inner; a later point must be strictly better)."""
    best = (betas[0], alphas[0], -1)
    alpha_t = torch.tensor(list(alphas), dtype=zero_shot.dtype, device=zero_shot.device)
    for beta in betas:
        cache = cache_logits(affinity, values, beta)  # (M, C)
        logits = zero_shot[None] + alpha_t[:, None, None] * cache[None]  # (A, M, C)
        correct = (logits.argmax(-1) == labels[None]).sum(-1).tolist()  # per alpha
        for alpha, c in zip(alphas, correct, strict=True):
            if c > best[2]:
                best = (beta, alpha, c)
    return best


@register_method
class TipAdapter(Method):
    """Training-free cache model over the few-shot features; alpha and beta searched on val."""

    name = "tip-adapter"
    SPEC = MethodSpec(trains="nothing by gradient: a cache of the few-shot features and labels, alpha, beta",
                      frozen_image_features=True, fit="closed-form", can_change_classes=False,
                      text_classifier=False)

    @dataclass
    class Config:
        template: str = option("dataset", "template (or set) of the zero-shot text weights",
                               REF + "datasets/*.py template (ImageNet: 7 templates, in the preset)")
        init_alpha: float = option(1.17, "alpha before (or without) the search",
                                   REF + "configs/imagenet.yaml (init_alpha 1.17; per dataset in the preset)")
        init_beta: float = option(1.0, "beta before (or without) the search",
                                  REF + "configs/*.yaml (init_beta 1)")
        search: bool = option(True, "search alpha and beta on the validation features",
                              REF + "configs/*.yaml (search_hp True)")
        beta_scale: float = option(7.0, "largest beta of the search grid (exclusive)",
                                   REF + "configs/imagenet.yaml (search_scale[0] 7; per dataset in the preset)")
        alpha_scale: float = option(3.0, "largest alpha of the search grid (exclusive)",
                                    REF + "configs/imagenet.yaml (search_scale[1] 3; per dataset in the preset)")
        beta_steps: int = option(200, "beta grid points", REF + "configs/*.yaml (search_step[0] 200)")
        alpha_steps: int = option(20, "alpha grid points", REF + "configs/*.yaml (search_step[1] 20)")
        clip_scale: float | None = option(None, "scale s of the zero-shot term; none: the backbone's logit "
                                                "scale (100 for OpenAI CLIP, the value the reference writes)",
                                          REF + "main.py (100. * features @ clip_weights)")

        def __post_init__(self) -> None:
            if self.init_beta < 0 or self.init_alpha < 0:
                raise ConfigError("method.init_alpha and method.init_beta must be >= 0")
            if self.beta_steps < 1 or self.alpha_steps < 1:
                raise ConfigError("method.beta_steps and method.alpha_steps must be >= 1")
            if self.clip_scale is not None and self.clip_scale <= 0:
                raise ConfigError(f"method.clip_scale must be positive, got {self.clip_scale}")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        self.templates = resolve_templates(config.template, self.dataset_templates)
        d, dev = backbone.embed_dim, backbone.device
        self._set_keys(torch.zeros(0, d, device=dev))  # an empty cache: zero-shot CLIP
        self.learned.register_buffer("values", torch.zeros(0, self.num_classes, device=dev))
        self.learned.register_buffer("alpha", torch.tensor(float(config.init_alpha), device=dev))
        self.learned.register_buffer("beta", torch.tensor(float(config.init_beta), device=dev))
        self.register_buffer("text_weights", text_classifier(backbone, self.classnames, self.templates),
                             persistent=False)

    # ------------------------------------------------------------------ the cache
    def _set_keys(self, keys: torch.Tensor) -> None:
        """Tip-Adapter keeps the keys as a buffer; Tip-Adapter-F makes them a parameter."""
        self.learned.register_buffer("keys", keys)

    def build_cache(self, views: torch.Tensor, labels: torch.Tensor) -> None:
        """Keys: the views (V, N, D) averaged per image, then L2-normalised; values: one-hot labels."""
        if views.dim() != 3 or views.shape[1] != len(labels):
            raise ConfigError(f"cache features of shape {tuple(views.shape)} do not fit {len(labels)} labels")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ConfigError(f"cache labels must lie in 0..{self.num_classes - 1}")
        dev = self.text_weights.device
        keys = F.normalize(views.float().mean(0), dim=-1).to(dev)
        self._set_keys(keys)
        self.learned.values = F.one_hot(labels.long().to(dev), self.num_classes).float()

    def prepare_fit(self, views: torch.Tensor, labels: torch.Tensor) -> dict:
        self.build_cache(views, labels)
        return {"cache_size": len(labels), "cache_views": int(views.shape[0])}

    # ------------------------------------------------------------------ logits
    @property
    def zero_shot_scale(self) -> torch.Tensor | float:
        return self.logit_scale if self.config.clip_scale is None else self.config.clip_scale

    def parts(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(zero-shot logits s f W^T, affinities f K^T) for image features (B, D)."""
        f = F.normalize(features.float(), dim=-1)
        return self.zero_shot_scale * f @ self.text_weights.T, f @ self.learned.keys.T

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Image features (B, D) -> s f W^T + alpha exp(-beta (1 - f K^T)) V (B, C)."""
        zero_shot, affinity = self.parts(features)
        return zero_shot + self.learned.alpha * cache_logits(affinity, self.learned.values, self.learned.beta)

    # ------------------------------------------------------------------ alpha and beta
    @torch.no_grad()
    def search(self, val: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
        """Set alpha and beta by the grid search on `val`; keep the initial values without one."""
        cfg = self.config
        if not cfg.search:
            return {"alpha": cfg.init_alpha, "beta": cfg.init_beta, "searched": False,
                    "alpha_beta_from": "method.init_alpha/init_beta (method.search=false)"}
        if val is None or not len(val[1]):
            log.warning("%s: no validation images to search alpha and beta on; using alpha=%g, beta=%g",
                        self.name, cfg.init_alpha, cfg.init_beta)
            self.learned.alpha.fill_(cfg.init_alpha)
            self.learned.beta.fill_(cfg.init_beta)
            return {"alpha": cfg.init_alpha, "beta": cfg.init_beta, "searched": False,
                    "alpha_beta_from": "method.init_alpha/init_beta (no validation data)"}
        zero_shot, affinity = self.parts(val[0].to(self.text_weights.device))
        labels = val[1].to(zero_shot.device)
        beta, alpha, correct = search_alpha_beta(zero_shot, affinity, self.learned.values, labels,
                                                 search_grid(cfg.beta_scale, cfg.beta_steps),
                                                 search_grid(cfg.alpha_scale, cfg.alpha_steps))
        self.learned.alpha.fill_(alpha)
        self.learned.beta.fill_(beta)
        return {"alpha": alpha, "beta": beta, "searched": True, "val_top1": correct / len(labels)}

    def fit_closed_form(self, train, val) -> dict:
        """Build the cache (unless `prepare_fit` built it from the views) and search alpha, beta.
        Called directly, each row of `train` is one image with one view."""
        info: dict = {}
        if not len(self.learned.keys):
            self.build_cache(train[0][None], train[1])
            info["cache_size"] = len(train[1])
        return {**info, **self.search(val)}

    # ------------------------------------------------------------------ state
    def load_learned(self, state: dict[str, torch.Tensor]) -> None:
        """The cache's size is the training set's: take it from the saved tensors."""
        keys, values = state.get("keys"), state.get("values")
        if keys is not None and values is not None:
            d = self.backbone.embed_dim
            if keys.dim() != 2 or keys.shape[1] != d or values.shape != (keys.shape[0], self.num_classes):
                raise ConfigError(f"saved cache of shape keys {tuple(keys.shape)}, values "
                                  f"{tuple(values.shape)} does not fit width {d} and {self.num_classes} classes")
            if self.learned.keys.shape != keys.shape:  # else keep the tensor an optimiser may hold
                dev = self.text_weights.device
                self._set_keys(torch.zeros_like(keys, device=dev))
                self.learned.values = torch.zeros_like(values, device=dev)
        super().load_learned(state)


@register_method
class TipAdapterF(TipAdapter):
    """Tip-Adapter with learnable keys (initialised from the cache), then alpha/beta searched again."""

    name = "tip-adapter-f"
    SPEC = MethodSpec(trains="cache keys (N x D, initialised from the few-shot features); alpha, beta searched",
                      frozen_image_features=True, fit="sgd", can_change_classes=False, text_classifier=False)

    def _set_keys(self, keys: torch.Tensor) -> None:
        if "keys" in self.learned._buffers:
            del self.learned._buffers["keys"]
        self.learned.keys = nn.Parameter(keys.clone())

    def finish_fit(self, val: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
        return self.search(val)
