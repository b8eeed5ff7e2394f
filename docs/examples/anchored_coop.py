"""An example method written outside vlprompt: CoOp with its context anchored to the start.

`L = CE + anchor_weight * ||ctx - ctx_0||^2`: the learned context may move only as far as
the data pays for, a simple guard against forgetting the hand-crafted initialisation.
Run it with `VLPROMPT_METHODS=anchored_coop vlprompt train --method anchored-coop ...`
(this folder on PYTHONPATH), or install it and declare the module as an entry point of the
group `vlprompt.methods`. docs/new-method.md walks through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlprompt.config import option
from vlprompt.methods.coop import CoOp
from vlprompt.methods.registry import register_method


@register_method
class AnchoredCoOp(CoOp):
    """CoOp whose context is pulled back towards its initial value."""

    name = "anchored-coop"

    @dataclass
    class Config(CoOp.Config):
        ctx_init: str = option("a photo of a", "phrase whose word embeddings initialise the context")
        anchor_weight: float = option(1.0, "weight of ||ctx - ctx_0||^2")

    def __init__(self, backbone, classnames, config, **kw):
        super().__init__(backbone, classnames, config, **kw)
        # a buffer, not a parameter: it is neither trained nor saved with the learned state
        self.register_buffer("ctx_start", self.learned.ctx.detach().clone(), persistent=False)

    def losses(self, logits: torch.Tensor, labels: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = super().losses(logits, labels, features)  # {"loss": CE, "ce": CE}
        anchor = (self.learned.ctx - self.ctx_start).pow(2).sum()
        return {**parts, "anchor": anchor, "loss": parts["loss"] + self.config.anchor_weight * anchor}
