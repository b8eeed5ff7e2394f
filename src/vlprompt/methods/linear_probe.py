"""Linear probe (CLIP): logistic regression on frozen, unaugmented image features.

The weights minimise `mean_i CE_i + ||W||^2 / (2 C N)` (scikit-learn's objective divided
by C N; the bias is not penalised) with full-batch L-BFGS. The inverse regularisation C
is chosen on the few-shot validation set: a coarse sweep over 1e6 .. 1e-6, then a short
binary search in log10(C) around the best value; the final fit uses the training shots.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.base import VLBackbone
from ..config import option
from ..errors import ConfigError
from .base import Method, MethodSpec
from .registry import register_method

log = logging.getLogger(__name__)
COARSE_LOG10_C = (6.0, 4.0, 2.0, 0.0, -2.0, -4.0, -6.0)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, c: float,
                 max_iter: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression: features (N, D), labels (N,) -> W (K, D), b (K,)."""
    x = x.double()
    w = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                            tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")
    penalty = 1.0 / (2.0 * c * len(y))

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + penalty * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach().float(), b.detach().float()


def _accuracy(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(((x.float() @ w.T + b).argmax(-1) == y).float().mean())


@register_method
class LinearProbe(Method):
    """A linear classifier (K x D and a bias) on frozen image features, fitted in closed form."""

    name = "linear-probe"
    SPEC = MethodSpec(trains="linear classifier (K x D weights, K biases)", frozen_image_features=True,
                      fit="closed-form", can_change_classes=False, text_classifier=False)

    @dataclass
    class Config:
        C: float | None = option(None, "inverse regularisation; none: search it on the few-shot val set",
                                 "CLIP paper Appendix A.3 (C searched on validation data)")
        search_steps: int = option(8, "binary-search steps in log10(C) after the coarse sweep",
                                   "CLIP paper Appendix A.3 / CoOp's lpclip (binary search after a sweep)")
        default_C: float = option(0.316, "C used when there is no validation data to search on",
                                  "CoOp lpclip/linear_probe.py (0.316 when no search is possible)")
        normalize: bool = option(False, "L2-normalise the features first (CLIP uses raw features)",
                                 "CoOp lpclip/linear_probe.py (raw features)")
        max_iter: int = option(1000, "L-BFGS iterations per fit",
                               "CoOp lpclip/linear_probe.py (max_iter 1000)")

        def __post_init__(self) -> None:
            if self.C is not None and self.C <= 0 or self.default_C <= 0:
                raise ConfigError("C must be positive")
            if self.search_steps < 0 or self.max_iter < 1:
                raise ConfigError("search_steps must be >= 0 and max_iter >= 1")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        k, d = len(self.classnames), backbone.embed_dim
        self.learned.weight = nn.Parameter(torch.zeros(k, d, device=backbone.device))
        self.learned.bias = nn.Parameter(torch.zeros(k, device=backbone.device))

    def _prepare(self, features: torch.Tensor) -> torch.Tensor:
        f = features.float()
        return F.normalize(f, dim=-1) if self.config.normalize else f

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Image features (B, D) -> logits (B, K) = f W^T + b."""
        return self._prepare(features) @ self.learned.weight.T + self.learned.bias

    def search_c(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor]
                 ) -> tuple[float, list[tuple[float, float]]]:
        """Best C on the validation set and every (C, val accuracy) tried."""
        k, cfg = self.num_classes, self.config
        tried: dict[float, float] = {}

        def score(log_c: float) -> float:
            if log_c not in tried:
                w, b = fit_logistic(train[0], train[1], k, 10.0 ** log_c, cfg.max_iter)
                tried[log_c] = _accuracy(w, b, val[0], val[1])
            return tried[log_c]

        scores = [score(v) for v in COARSE_LOG10_C]
        i = max(range(len(scores)), key=lambda j: (scores[j], -j))  # first best: larger C
        best = COARSE_LOG10_C[i]
        lo = COARSE_LOG10_C[min(i + 1, len(COARSE_LOG10_C) - 1)]
        hi = COARSE_LOG10_C[max(i - 1, 0)]
        for _ in range(cfg.search_steps):
            left, right = (lo + best) / 2, (best + hi) / 2
            candidates = [(score(best), 0, best), (score(left), 1, left), (score(right), 2, right)]
            _, _, new = max(candidates, key=lambda t: (t[0], -t[1]))
            if new == left:
                hi = best
            elif new == right:
                lo = best
            else:
                lo, hi = left, right
            best = new
            if math.isclose(lo, hi):
                break
        return 10.0 ** best, sorted((10.0 ** c, a) for c, a in tried.items())

    def fit_closed_form(self, train, val) -> dict:
        x, y = self._prepare(train[0]).cpu(), train[1].cpu()
        cfg = self.config
        info: dict = {}
        if cfg.C is not None:
            c, info["C_from"] = cfg.C, "method.C"
        elif val is not None and len(val[1]):
            c, tried = self.search_c((x, y), (self._prepare(val[0]).cpu(), val[1].cpu()))
            info["c_search"] = [{"C": ci, "val_top1": a} for ci, a in tried]
            info["C_from"] = "validation search"
        else:
            log.warning("linear probe: no validation images to search C on; using C=%g", cfg.default_C)
            c, info["C_from"] = cfg.default_C, "method.default_C (no validation data)"
        w, b = fit_logistic(x, y, self.num_classes, c, cfg.max_iter)
        with torch.no_grad():
            self.learned.weight.copy_(w)
            self.learned.bias.copy_(b)
        info["C"] = c
        return info
