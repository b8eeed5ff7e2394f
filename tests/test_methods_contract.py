"""The contract every registered method keeps (one parametrized test over the registry)."""

from __future__ import annotations

import pytest
import torch

from vlprompt.engine.contract import ContractError, check_method_contract
from vlprompt.errors import ConfigError
from vlprompt.methods.registry import create_method, get_method_class, list_methods

NAMES = ["cat", "dog", "red_fox"]
#: Every method with small settings that keep the tiny test backbone fast, then variants.
#: Written out (not built from the registry) so that a new method without a case fails
#: `test_every_registered_method_is_covered`.
CASES = [
    ("zeroshot", {}),
    ("prompt-baseline", {"kind": "random-embedding", "seeds": 2, "n_random": 2}),
    ("linear-probe", {}),
    ("classifier-ft", {}),
    ("coop", {"n_ctx": 4}),
    ("cocoop", {}),
    ("prograd", {"n_ctx": 4}),
    ("kgcoop", {}),
    ("vpt", {"n_tokens": 2}),
    ("upt", {}),
    ("variational", {"samples": 2}),
    ("maple", {}),
    ("ivlp", {}),
    ("promptsrc", {"templates": "select7"}),
    ("zs-lp", {}),
    ("clap", {}),
    ("lp++", {"iterations": 20}),
    ("cross-modal-lp", {}),
    ("clip-adapter", {}),
    ("tip-adapter", {}),
    ("tip-adapter-f", {}),
    ("taskres", {}),
    ("coop", {"n_ctx": 2, "class_specific": True, "class_token_position": "middle"}),
    ("prompt-baseline", {"kind": "negative"}),
    ("vpt", {"n_tokens": 2, "deep": True}),
    ("vpt", {"n_tokens": 2, "deep": False}),
    ("upt", {"deep": True}),
    ("upt", {"variant": "joint"}),
    ("upt", {"variant": "shared"}),
    ("upt", {"generator_type": "mlp"}),
    ("variational", {"samples": 2, "conditional": True}),
    ("ivlp", {"text_depth": 1, "vision_depth": 0, "n_ctx_vision": 0}),
    ("promptsrc", {"gpa": False}),
    ("tip-adapter", {"search": False, "clip_scale": 100.0}),
]


def test_every_registered_method_is_covered():
    """The built-in methods of the registry are exactly those with a case (plugins, e.g. from
    $VLPROMPT_METHODS, test themselves with `check_method_contract`)."""
    builtin = [n for n in list_methods() if get_method_class(n).__module__.startswith("vlprompt.methods.")]
    assert len(builtin) == len(set(builtin))
    assert sorted({name for name, _ in CASES}) == sorted(builtin)


@pytest.mark.parametrize("name,config", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_method_contract(name, config, tiny_vit, tmp_path):
    check_method_contract(name, tiny_vit, tmp_path, **config)


def test_the_contract_catches_a_method_that_trains_the_backbone(tiny_vit, tmp_path, monkeypatch):
    """The check can fail: a method whose step also moves a backbone weight is caught."""
    from vlprompt.methods.coop import CoOp

    step = CoOp.training_step

    def leaky(self, batch):
        with torch.no_grad():
            self.backbone.model.text_projection.add_(1e-3)
        return step(self, batch)

    monkeypatch.setattr(CoOp, "training_step", leaky)
    original = tiny_vit.model.text_projection.detach().clone()
    checksum = getattr(tiny_vit, "_checksum", None)
    try:
        with pytest.raises(ContractError, match="the backbone's .*text_projection changed"):
            check_method_contract("coop", tiny_vit, tmp_path, n_ctx=2)
    finally:  # the shared fixture, bit for bit as it was
        with torch.no_grad():
            tiny_vit.model.text_projection.copy_(original)
        tiny_vit._checksum = checksum


def test_create_method_rejects_unknown_options(tiny_vit):
    with pytest.raises(ConfigError, match="unknown option"):
        create_method("coop", tiny_vit, NAMES, nctx=4)
    with pytest.raises(ConfigError, match="n_ctx"):
        create_method("coop", tiny_vit, NAMES, n_ctx="four")
    with pytest.raises(ConfigError, match="unknown method"):
        create_method("nope", tiny_vit, NAMES)


def test_public_create_method_returns_module(tiny_vit):
    import vlprompt

    method = vlprompt.create_method("coop", tiny_vit, NAMES, n_ctx=2)
    assert isinstance(method, torch.nn.Module)
    assert [n for n, p in method.named_parameters() if p.requires_grad] == ["learned.ctx"]
    assert method.learned.ctx.shape == (2, tiny_vit.text_tower.width)
