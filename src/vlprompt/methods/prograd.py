"""ProGrad (Zhu et al., "Prompt-aligned Gradient for Prompt Tuning").

CoOp prompts trained with two losses on the same batch: `L_ce = CE(p, y)` and the
general-knowledge loss `L_kl = KL(p_zs || p)` towards zero-shot CLIP with a hand-crafted
prompt (temperature T). Only `G_d = grad L_ce` is applied, projected when it conflicts
with `G_g = grad L_kl`: if `G_d . G_g < 0`, `G = G_d - lambda (G_d . G_g / ||G_g||^2) G_g`.
As in the reference implementation the test is made per parameter tensor (here there is
one: the context).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import option
from ..data.templates import resolve_templates
from ..errors import ConfigError
from .base import StepOutput
from .components.prompts import split_init_phrase, word_init
from .coop import ContextConfig, ContextPromptMethod
from .registry import register_method
from .zeroshot import text_classifier


def project_gradient(g_d: torch.Tensor, g_g: torch.Tensor, lam: float) -> torch.Tensor:
    """ProGrad's update: `g_d` unless it points against `g_g`, then minus lam x its projection."""
    dot = (g_d * g_g).sum()
    norm2 = (g_g * g_g).sum()
    if dot >= 0 or norm2 == 0:
        return g_d
    return g_d - lam * (dot / norm2) * g_g


def kl_to_teacher(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(p_teacher || p) with temperature T, averaged over the batch, times T^2."""
    t = temperature
    log_p = F.log_softmax(logits.float() / t, dim=-1)
    log_q = F.log_softmax(teacher_logits.float() / t, dim=-1)
    return F.kl_div(log_p, log_q, reduction="batchmean", log_target=True) * (t * t)


@register_method
class ProGrad(ContextPromptMethod):
    """CoOp context trained with prompt-aligned gradients."""

    name = "prograd"

    @dataclass
    class Config(ContextConfig):
        ctx_from_template: bool = option(
            True, "initialise the context from the words of the teacher's template before the class "
                  "name, right-aligned in the M slots with zeros before them (ProGrad's CTX_INIT; "
                  "ignored when ctx_init is given)",
            "ProGrad configs/trainers/ProGrad/rn50*.yaml (CTX_INIT: True), trainers/prograd.py")
        grad_lambda: float = option(1.0, "lambda: how much of the conflicting component to remove "
                                          "(the preset sets 0.8 for Flowers/DTD/EuroSAT at 8/16 shots)",
                                    "ProGrad scripts/prograd.sh (LAMBDA=1.0) and README")
        teacher_template: str = option("dataset", "hand-crafted prompt(s) of the zero-shot teacher (the "
                                                  "preset sets ProGrad's own template where it differs)",
                                       "ProGrad trainers/prograd.py CUSTOM_TEMPLATES")
        temperature: float = option(1.0, "temperature T of the KL to the teacher",
                                    "ProGrad configs/trainers/ProGrad/*.yaml (LOSS.T: 1.0)")

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.temperature <= 0:
                raise ConfigError("temperature must be positive")

    def _initial_context(self, width: int) -> tuple[torch.Tensor, bool]:
        """ProGrad's CTX_INIT: the words of the template before `{}` (as many BPE tokens as the
        phrase has words, so a comma's token pushes the last word into the fixed text after the
        context), right-aligned in the M slots, zeros before them."""
        cfg = self.config
        if cfg.ctx_init or not cfg.ctx_from_template:
            return super()._initial_context(width)
        template = resolve_templates(cfg.teacher_template, self.dataset_templates)[0]
        phrase = template.split("{}", 1)[0].strip()
        if not phrase:  # nothing before the class name: random init as without CTX_INIT
            return super()._initial_context(width)
        n_words = len(phrase.split())
        if n_words > cfg.n_ctx:
            raise ConfigError(f"ProGrad's template init: {phrase!r} has {n_words} words, more than "
                              f"n_ctx={cfg.n_ctx}; raise method.n_ctx or set method.ctx_from_template=false")
        tokens = word_init(self.backbone, phrase)  # (T, W)
        n_init = min(n_words, tokens.shape[0])
        if n_init < tokens.shape[0]:
            try:
                tokens, self.name_prefix = split_init_phrase(self.backbone, phrase, n_init)
            except ConfigError:
                raise ConfigError(f"ProGrad's template init cannot split {phrase!r} after {n_init} tokens "
                                  "at a word boundary; set method.ctx_from_template=false or give "
                                  "method.ctx_init") from None
        ctx = torch.zeros(cfg.n_ctx, width)
        ctx[cfg.n_ctx - n_init:] = tokens[:n_init]
        return ctx, True

    def _build_classes(self) -> None:
        super()._build_classes()
        templates = resolve_templates(self.config.teacher_template, self.dataset_templates)
        self.register_buffer("teacher_weights", text_classifier(self.backbone, self.classnames, templates),
                             persistent=False)  # (K, D), computed once per class set

    def losses(self, logits, labels, features):
        ce = F.cross_entropy(logits.float(), labels)
        with torch.no_grad():
            teacher = self.cosine_logits(features, self.teacher_weights)
        kl = kl_to_teacher(logits, teacher, self.config.temperature)
        return {"loss": ce, "ce": ce, "kl": kl}

    def backward(self, out: StepOutput, scale: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> None:
        params = self.trainable_parameters()
        g_d = torch.autograd.grad(scale(out.parts["ce"]), params, retain_graph=True)
        g_g = torch.autograd.grad(scale(out.parts["kl"]), params)
        for p, d, g in zip(params, g_d, g_g, strict=True):
            update = project_gradient(d, g, self.config.grad_lambda)
            p.grad = update if p.grad is None else p.grad + update
