"""Zero-shot prompt baselines of "Rethinking the Value of Prompt Learning for Vision-Language Models".

Hand-crafted: ClassName `{}`, Basic `a photo of a {}.`, Revised `this is a photo of a {}.`,
Negative `this is not a photo of a {}.`. Random: M random vocabulary ids (random-token)
or M random embedding vectors (random-embedding) prepended to `<class name> .`. The paper
averages the accuracy over 10 seeds, so a random baseline holds one classifier per seed
(`n_variants`); the engine evaluates each and reports the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ..backbones.base import VLBackbone
from ..config import option
from ..errors import ConfigError
from .base import Method, MethodSpec
from .components.prompts import ClassPrompts
from .registry import register_method
from .zeroshot import text_classifier

HANDCRAFTED = {
    "classname": "{}",
    "basic": "a photo of a {}.",
    "revised": "this is a photo of a {}.",
    "negative": "this is not a photo of a {}.",
}
Kind = Literal["classname", "basic", "revised", "negative", "random-token", "random-embedding"]


def special_token_ids(backbone: VLBackbone) -> set[int]:
    """Ids of the start/end (and padding) tokens, never drawn as random tokens."""
    ids = backbone.tokenize([""])[0]
    return {int(i) for i in ids[: int(backbone.eot_index(ids[None])[0]) + 2]}


@register_method
class PromptBaseline(Method):
    """Fixed prompts (hand-crafted or random); no training."""

    name = "prompt-baseline"
    SPEC = MethodSpec(trains="nothing (random prompts are fixed and saved)", frozen_image_features=True,
                      fit="none", can_change_classes=True, text_classifier=True)

    @dataclass
    class Config:
        kind: Kind = option("basic", "classname, basic, revised, negative, random-token, random-embedding",
                            "rethinking paper Table 1 (Basic: 'a photo of a {}.')")
        n_random: int = option(4, "number of random tokens or vectors prepended to the class name",
                               "rethinking paper Sec. 4 (random prompts)")
        seeds: int = option(10, "random prompts: how many seeds to average the accuracy over",
                            "rethinking paper Sec. 4 (averaged over 10 seeds)")
        seed: int = option(0, "random prompts: the first seed (seeds seed .. seed+seeds-1)")

        def __post_init__(self) -> None:
            if self.n_random < 1 or self.seeds < 1:
                raise ConfigError("n_random and seeds must be at least 1")

    def __init__(self, backbone: VLBackbone, classnames: Sequence[str], config: Config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        self.variant = 0
        if config.kind.startswith("random"):
            table = backbone.token_embedding_table.detach().float()  # (V, W)
            special = special_token_ids(backbone)
            allowed = torch.tensor([i for i in range(table.shape[0]) if i not in special])
            ctx = []
            for s in range(config.seeds):
                g = torch.Generator().manual_seed(config.seed + s)
                if config.kind == "random-token":
                    ids = allowed[torch.randint(len(allowed), (config.n_random,), generator=g)]
                    ctx.append(table[ids.to(table.device)].cpu())
                else:  # random vectors with the vocabulary's per-dimension spread
                    noise = torch.randn(config.n_random, table.shape[1], generator=g)
                    ctx.append(noise * table.std(dim=0).cpu() + table.mean(dim=0).cpu())
            self.learned.register_buffer("random_ctx", torch.stack(ctx).to(backbone.device))  # (S, M, W)
        self._build_classes()

    @property
    def n_variants(self) -> int:
        return self.config.seeds if self.config.kind.startswith("random") else 1

    def _build_classes(self) -> None:
        kind = self.config.kind
        if kind in HANDCRAFTED:
            weights = text_classifier(self.backbone, self.classnames, [HANDCRAFTED[kind]])[None]
        else:
            prompts = ClassPrompts(self.backbone, self.classnames, self.config.n_random, "end")
            with torch.no_grad():
                weights = torch.stack([prompts.encode(c) for c in self.learned.random_ctx])
        self.register_buffer("weights", weights, persistent=False)  # (S, K, D)

    def load_learned(self, state: dict[str, torch.Tensor]) -> None:
        super().load_learned(state)
        self._build_classes()

    def class_weights(self) -> torch.Tensor:
        return self.weights[self.variant]
