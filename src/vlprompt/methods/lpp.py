"""LP++ (Huang et al., CVPR 2024): a linear probe blended with the text classifier, no lr search.

On L2-normalised image features f and the unit-norm zero-shot text weights T (K, D):

    logits = f W^T + b + alpha (.) (f T^T),

with a learned visual classifier (W, b) and a learned class-wise blending vector alpha (K,).
W starts at the per-class sums of the support features, alpha at `250 *` the mean over classes
of the mean text score of a class's own images, and the step sizes come from the data instead
of a validation search: `lr_W = 4 N / lambda_max(F^T F)` (SGD with momentum 0.9 on W and b, one
full-batch step per iteration) and `lr_alpha = N / (4 max_c sum_i (f_i . t_c)^2)` (a gradient
step on alpha every 10 iterations). Reference: FereshteShakeri/FewShot-CLIP-Strong-Baseline
methods/linear_probe_p2.py (`calculate_lr_w`, `calculate_lr_alpha`, `calculate_init_alpha`)
and configs/base.yaml (300 iterations).
"""

from __future__ import annotations

import logging
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
from .zeroshot import text_classifier

log = logging.getLogger(__name__)


def lpp_logits(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, alpha: torch.Tensor,
               text: torch.Tensor) -> torch.Tensor:
    """Normalised features (B, D) -> `f W^T + b + alpha (.) f T^T` (B, K)."""
    return features @ weight.T + bias + alpha * (features @ text.T)


def lpp_lr_w(features: torch.Tensor) -> float:
    """`4 N / lambda_max(F^T F)` for normalised features F (N, D)."""
    f = features.double()
    return 4.0 * f.shape[0] / float(torch.linalg.eigvalsh(f.T @ f).max())


def lpp_lr_alpha(features: torch.Tensor, text: torch.Tensor) -> float:
    """`N / (4 max_c sum_i (f_i . t_c)^2)`."""
    scores = features.double() @ text.double().T  # (N, K)
    return features.shape[0] / (4.0 * float(scores.pow(2).sum(0).max()))


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Images per class; LP++ starts every class from its own images, so none may be missing."""
    counts = torch.bincount(labels, minlength=num_classes)
    if len(counts) > num_classes or bool((counts == 0).any()):
        missing = (counts[:num_classes] == 0).nonzero().flatten().tolist()
        raise ConfigError(f"LP++ starts each class from its training images; class index {missing[0]} has none"
                          if missing else "training labels outside the class list")
    return counts


def lpp_alpha_init(features: torch.Tensor, labels: torch.Tensor, text: torch.Tensor, scale: float = 250.0
                   ) -> float:
    """`scale * mean_c mean_{i in c} f_i . t_c`: one value for every class."""
    k = text.shape[0]
    own = (features.double() @ text.double().T).gather(1, labels[:, None]).squeeze(1)  # (N,)
    per_class = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, own) / class_counts(labels, k)
    return scale * float(per_class.mean())


@register_method
class LPPlusPlus(Method):
    """LP++: visual linear classifier plus class-wise scaled text scores, data-derived step sizes."""

    name = "lp++"
    SPEC = MethodSpec(trains="visual classifier (K x D, K biases) and class-wise text weights alpha (K)",
                      frozen_image_features=True, fit="closed-form", can_change_classes=False,
                      text_classifier=False)

    @dataclass
    class Config:
        template: str = option("dataset", "templates of the text weights T (a template with {} or a set)",
                               "LP++ repo (Tip-Adapter's per-dataset templates; ImageNet: the 7 selected)")
        iterations: int = option(300, "full-batch gradient iterations",
                                 "LP++ configs/base.yaml (train_epoch 300)")
        alpha_every: int = option(10, "a step on alpha every this many iterations",
                                  "LP++ methods/linear_probe_p2.py ((epoch + 1) % 10)")
        alpha_init_scale: float = option(250.0, "alpha starts at this times the mean own-class text score",
                                         "LP++ methods/linear_probe_p2.py calculate_init_alpha (250)")
        alpha_grad: Literal["accumulated", "current"] = option(
            "accumulated", "alpha's step uses its gradient summed since the start (the reference never "
                           "clears it) or only the current iteration's",
            "LP++ methods/linear_probe_p2.py (alpha_vec.grad is never zeroed)")
        momentum: float = option(0.9, "SGD momentum of W and b",
                                 "LP++ methods/linear_probe_p2.py (SGD momentum 0.9)")
        select: Literal["val", "last"] = option(
            "val", "keep the iteration with the best few-shot val accuracy (the last on ties) or the last",
            "LP++ methods/linear_probe_p2.py (test accuracy taken at the best val iteration)")

        def __post_init__(self) -> None:
            if self.iterations < 1 or self.alpha_every < 1:
                raise ConfigError("method.iterations and method.alpha_every must be at least 1")
            if not 0 <= self.momentum < 1:
                raise ConfigError("method.momentum must be in [0, 1)")
            if self.alpha_grad not in ("accumulated", "current"):
                raise ConfigError(f"method.alpha_grad must be accumulated or current, not {self.alpha_grad!r}")
            if self.select not in ("val", "last"):
                raise ConfigError(f"method.select must be val or last, not {self.select!r}")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        self.templates = resolve_templates(config.template, self.dataset_templates)
        k, d = len(self.classnames), backbone.embed_dim
        dev = backbone.device
        self.register_buffer("text", text_classifier(backbone, self.classnames, self.templates).float(),
                             persistent=False)
        self.learned.weight = nn.Parameter(torch.zeros(k, d, device=dev))
        self.learned.bias = nn.Parameter(torch.zeros(k, device=dev))
        self.learned.alpha = nn.Parameter(torch.zeros(k, device=dev))
        bound = 1.0 / d ** 0.5  # nn.Linear's default bias init, as the reference's classifier
        self.register_buffer("bias_init", (torch.rand(k, generator=self._generator) * 2 - 1).mul(bound).to(dev),
                             persistent=False)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        f = F.normalize(features.float(), dim=-1)
        return lpp_logits(f, self.learned.weight, self.learned.bias, self.learned.alpha, self.text)

    def fit_closed_form(self, train, val) -> dict:
        cfg, k = self.config, self.num_classes
        dev = self.learned.weight.device
        x = F.normalize(train[0].float(), dim=-1).to(dev)
        y = train[1].to(dev)
        class_counts(y.cpu(), k)  # refuses a class without training images
        text = self.text.to(dev)
        lr_w, lr_alpha = lpp_lr_w(x), lpp_lr_alpha(x, text)
        alpha0 = lpp_alpha_init(x.cpu(), y.cpu(), text.cpu(), cfg.alpha_init_scale)
        w = torch.zeros(k, x.shape[1], device=dev).index_add_(0, y, x).requires_grad_(True)  # class sums
        b = self.bias_init.clone().requires_grad_(True)
        alpha = torch.full((k,), alpha0, device=dev, requires_grad=True)
        opt = torch.optim.SGD([w, b], lr=lr_w, momentum=cfg.momentum)
        xv = yv = None
        if cfg.select == "val" and val is not None and len(val[1]):
            xv, yv = F.normalize(val[0].float(), dim=-1).to(dev), val[1].to(dev)
        best: tuple[float, int, tuple[torch.Tensor, ...]] | None = None
        loss = torch.zeros(())
        with torch.enable_grad():
            for it in range(cfg.iterations):
                if cfg.alpha_grad == "current":
                    alpha.grad = None
                loss = F.cross_entropy(lpp_logits(x, w, b, alpha, text), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if (it + 1) % cfg.alpha_every == 0:
                    with torch.no_grad():
                        alpha -= lr_alpha * alpha.grad
                if xv is not None:
                    with torch.no_grad():
                        acc = float((lpp_logits(xv, w, b, alpha, text).argmax(-1) == yv).float().mean())
                    if best is None or acc >= best[0]:
                        best = (acc, it, (w.detach().clone(), b.detach().clone(), alpha.detach().clone()))
        final = best[2] if best is not None else (w.detach(), b.detach(), alpha.detach())
        with torch.no_grad():
            for param, value in zip((self.learned.weight, self.learned.bias, self.learned.alpha), final,
                                    strict=True):
                param.copy_(value)
        info = {"lr_w": lr_w, "lr_alpha": lr_alpha, "alpha_init": alpha0, "final_loss": float(loss.detach())}
        if best is not None:
            info.update(selected_iteration=best[1] + 1, val_top1=best[0])
        else:
            if cfg.select == "val":
                log.info("lp++: no validation images to select the iteration on; keeping the last")
            info["selected_iteration"] = f"last ({cfg.iterations})" + (
                "; no validation data" if cfg.select == "val" else "")
        return info
