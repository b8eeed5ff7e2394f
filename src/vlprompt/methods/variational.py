"""Variational prompt tuning (Derakhshani et al., "Bayesian Prompt Learning").

The context is `[V]_m + r`: CoOp's learned vectors plus one residual r shared by every
context token, `r ~ q(r)` (global) or `q(r|x)` (conditional, MLPs on the image feature);
prior N(0, I). Training minimises `-log (1/L) sum_l p(y|x, r_l) + beta * KL(q || p)` (the KL
averaged over the W context dimensions by default, as the reference does) with L
reparameterised samples; prediction is the same log-mean-exp over L samples: by default
each image draws its own, as the reference does, from a generator seeded by `test_seed` and
the image's position in the evaluation (deterministic for a given image order); with
`test_noise=shared` one set of L draws serves every image (the same for any order or batch). All samples, images
and classes go through the text encoder in one call (chunked over classes only if asked).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..backbones.base import VLBackbone
from ..config import option
from ..errors import ConfigError
from .base import Batch, MethodSpec, StepOutput
from .components.gaussian import (
    ConditionalPosterior,
    GlobalPosterior,
    kl_to_standard_normal,
    log_mean_exp,
)
from .coop import ContextConfig, ContextPromptMethod
from .registry import register_method


def _image_generator(seed: int, position: int) -> torch.Generator:
    """The generator of the prediction noise of the image at `position` in an evaluation."""
    return torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + position + 1) % (2**63 - 1))


@register_method
class VariationalPrompt(ContextPromptMethod):
    """A distribution over prompts: base context plus a sampled residual."""

    name = "variational"
    SPEC = MethodSpec(trains="base context (M x W) and q(r): mean and log-variance (global, or MLPs on "
                             "the image feature)", frozen_image_features=True, fit="sgd",
                      can_change_classes=True, text_classifier=False)

    @dataclass
    class Config(ContextConfig):
        n_ctx: int = option(4, "number of context vectors M (ignored when ctx_init is a phrase)",
                            "Bayesian-Prompt-Learning config vit_b16_c4_ep10_batch1_ctxv1.yaml (N_CTX 4)")
        ctx_init: str = option("a photo of a", "phrase whose word embeddings initialise the context",
                               "Bayesian-Prompt-Learning config (CTX_INIT 'a photo of a')")
        conditional: bool = option(False, "q(r|x) from MLPs on the image feature instead of a global q(r)",
                                   "Bayesian-Prompt-Learning configs/trainers/VPT/"
                                   "vit_b16_c4_ep10_batch1_ctxv1.yaml (VPT_TYPE coopvpt: global)")
        samples: int = option(10, "L: Monte-Carlo samples per training step (the preset sets the "
                                  "reference's per-dataset L)",
                              "Bayesian-Prompt-Learning config (VPT.L 10) and VPT.md's table")
        test_samples: int = option(0, "samples averaged at prediction (0: the same as samples)",
                                   "Bayesian-Prompt-Learning scripts (the test uses the training L)")
        beta: float = option(0.001, "weight of KL(q || N(0, I))", "Bayesian-Prompt-Learning trainers/vpt.py")
        kl_reduction: Literal["mean", "sum"] = option(
            "mean", "KL over the W context dimensions: mean (the reference's) or sum (the full "
                    "Gaussian's KL, W times stronger)", "Bayesian-Prompt-Learning trainers/vpt.py")
        hidden: int = option(0, "conditional: hidden width of the two MLPs (0: the image-feature width // 2)",
                             "Bayesian-Prompt-Learning trainers/vpt.py (d_theta = vis_dim // 2)")
        init_log_var: float | None = option(
            None, "initial log sigma^2; none: as the reference (global: uniform in [0, 1) per dimension; "
                  "conditional: the MLPs' default init); a number: that value (conditional: output "
                  "layers scaled by 0.01 with that bias)", "Bayesian-Prompt-Learning trainers/vpt.py")
        test_noise: Literal["per_image", "shared"] = option(
            "per_image", "prediction samples: L fresh draws for every image, as the reference (seeded "
                         "here by test_seed and the image's position in the evaluation); shared: one set "
                         "of L draws for all images (class features encoded once: faster, and each "
                         "image's prediction independent of the others)",
            "Bayesian-Prompt-Learning trainers/vpt.py (test-time sampling)")
        test_seed: int = option(0, "seed of the prediction samples (deterministic predictions)")
        batched: bool = option(True, "all samples x images x classes in one text-encoder call (False: a "
                                     "loop over samples and images, for comparisons)")

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.class_specific:
                raise ConfigError("variational prompts share one context; class_specific is not supported")
            if self.samples < 1 or self.test_samples < 0 or self.hidden < 0:
                raise ConfigError("samples must be >= 1, test_samples and hidden >= 0")
            if self.beta < 0:
                raise ConfigError("beta must be >= 0")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        width = backbone.text_tower.width
        if config.conditional:
            hidden = config.hidden or max(1, backbone.embed_dim // 2)
            posterior = ConditionalPosterior(backbone.embed_dim, width, hidden, config.init_log_var,
                                             self._generator)
        else:
            posterior = GlobalPosterior(width, config.init_log_var, self._generator)
        self.learned.posterior = posterior.to(backbone.device)
        seed = int(torch.randint(2**62, (1,), generator=self._generator))
        self._noise = torch.Generator().manual_seed(seed)  # training samples
        self._frozen_text: torch.Tensor | None = None
        self._images_seen: int | None = None  # per_image test noise: position in the evaluation
        self.eval()  # predictions use the seeded test samples until the engine trains it

    @property
    def spec(self) -> MethodSpec:
        return self.SPEC

    def class_weights(self) -> None:
        return None  # a distribution over classifiers, not one matrix

    # ------------------------------------------------------------------ sampling
    def _eps(self, n: int) -> torch.Tensor:
        """Noise (L, n, W): fresh per training step; at prediction drawn from `test_seed` (one
        shared set, n = 1, or each image's own set by its position in the evaluation)."""
        width = self.learned.ctx.shape[-1]
        if self.training:
            eps = torch.randn((self.config.samples, n, width), generator=self._noise)
        else:
            samples = self.config.test_samples or self.config.samples
            if self.config.test_noise == "shared":
                g = torch.Generator().manual_seed(self.config.test_seed)
                eps = torch.randn(samples, 1, width, generator=g)  # shared by all images
            else:
                start = self._images_seen or 0
                eps = torch.stack([torch.randn(samples, width, generator=_image_generator(
                    self.config.test_seed, start + i)) for i in range(n)], dim=1)  # (L, n, W)
                if self._images_seen is not None:
                    self._images_seen += n
        return eps.to(self.learned.ctx.device)

    def _text(self, r: torch.Tensor) -> torch.Tensor:
        """Residuals (L, G, W) -> normalised class features (L, G, K, D)."""
        ctx = self.learned.ctx + r.unsqueeze(-2)  # (L, G, M, W)
        n_samples, n_rows = ctx.shape[:2]
        if self.config.batched:
            text = self.prompts.encode(ctx.flatten(0, 1), per_image=True)  # (L*G, K, D)
            return text.view(n_samples, n_rows, *text.shape[1:])
        return torch.stack([torch.stack([self.prompts.encode(ctx[s, b]) for b in range(n_rows)])
                            for s in range(n_samples)])  # one call per sample and image

    def sample_log_probs(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image features (B, D) -> per-sample log-probabilities (L, B, K) and KL per row (G,)."""
        mu, log_var = self.learned.posterior(features)  # (G, W), G = 1 (global) or B
        if self._frozen_text is not None:
            text = self._frozen_text
        else:
            # training draws noise per image for q(r|x); a global q(r) uses one r per sample
            eps = self._eps(self._noise_rows(mu.shape[0], features.shape[0]))  # (L, G or B or 1, W)
            text = self._text(mu + (0.5 * log_var).exp() * eps)  # (L, G, K, D)
        f = F.normalize(features.float(), dim=-1)  # (B, D)
        if text.shape[1] == 1:
            logits = torch.einsum("bd,lkd->lbk", f, text[:, 0])
        else:
            logits = torch.einsum("bd,lbkd->lbk", f, text)
        logits = self.logit_scale * logits  # (L, B, K)
        return logits.log_softmax(dim=-1), kl_to_standard_normal(mu.float(), log_var.float(),
                                                              self.config.kl_reduction)

    def _noise_rows(self, rows: int, images: int) -> int:
        """How many noise rows a batch needs: training draws per row of q (one for a global q,
        one per image for q(r|x)); prediction one shared row, or one per image."""
        if self.training:
            return rows
        return images if self.config.test_noise == "per_image" else 1

    # ------------------------------------------------------------------ forward / training
    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Image features (B, D) -> predictive log-probabilities (B, K), log-mean-exp over L."""
        return log_mean_exp(self.sample_log_probs(features)[0], dim=0)

    def training_step(self, batch: Batch) -> StepOutput:
        features = batch.features if batch.features is not None else self.encode_images(batch.images)
        log_probs, kl = self.sample_log_probs(features)
        predictive = log_mean_exp(log_probs, dim=0)  # (B, K)
        nll = F.nll_loss(predictive, batch.labels)
        kl = kl.mean()
        loss = nll + self.config.beta * kl
        return StepOutput(loss=loss, logits=predictive, parts={"loss": loss, "nll": nll, "kl": kl})

    @contextmanager
    def frozen_classifier(self) -> Iterator[None]:
        """One evaluation: per-image noise counts images from the first; with shared noise and a
        global q(r), the L prediction samples' class features are encoded once."""
        if self.training:
            yield
            return
        if self.config.test_noise == "per_image" or self.config.conditional:
            self._images_seen = 0
            try:
                yield
            finally:
                self._images_seen = None
            return
        with torch.no_grad():
            mu, log_var = self.learned.posterior(self.learned.ctx.new_zeros(1, 1))
            self._frozen_text = self._text(mu + (0.5 * log_var).exp() * self._eps(1))
        try:
            yield
        finally:
            self._frozen_text = None
