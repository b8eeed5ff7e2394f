"""Shared-prefix text encoding is exact: same features and gradients as the full sequences."""

from __future__ import annotations

import pytest
import torch

from vlprompt import create_method
from vlprompt.backbones import load_backbone
from vlprompt.backbones.base import VLBackbone
from vlprompt.methods.components.prompts import ClassPrompts, shared_prefix_length

NAMES = ["circle", "red square", "a rather long class name here", "star", "x"]


@pytest.fixture(scope="module")
def hf_backbone(hf_clip_dir):
    return load_backbone(f"hf:{hf_clip_dir}")


def _backbones(request) -> VLBackbone:
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["tiny_vit", "hf_backbone"])
def backbone(request) -> VLBackbone:
    return _backbones(request)


def _random_sequences(backbone: VLBackbone, prefixes: int, per_prefix: int, n: int, s: int):
    g = torch.Generator().manual_seed(0)
    w = backbone.text_tower.width
    prefix = torch.randn(prefixes, n, w, generator=g).requires_grad_()
    suffix = torch.randn(prefixes * per_prefix, s, w, generator=g).requires_grad_()
    eot = n + torch.randint(0, s, (prefixes * per_prefix,), generator=g)
    return prefix, suffix, eot


@pytest.mark.parametrize("prefixes", [1, 3])
def test_prefixed_encoding_equals_the_concatenated_sequences(backbone, prefixes):
    assert backbone._block_parts() is not None  # the fast path is what is under test
    n, s, k = 5, 4, 3
    prefix, suffix, eot = _random_sequences(backbone, prefixes, k, n, s)
    fast = backbone.encode_text_prefixed(prefix, suffix, eot)
    fast_grads = torch.autograd.grad(fast.square().sum(), [prefix, suffix])
    full = backbone.encode_text_embeddings(torch.cat([prefix.repeat_interleave(k, 0), suffix], 1), eot)
    full_grads = torch.autograd.grad(full.square().sum(), [prefix, suffix])
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)
    for a, b in zip(fast_grads, full_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_an_eot_inside_the_prefix_is_refused(tiny_vit):
    prefix, suffix, eot = _random_sequences(tiny_vit, 1, 2, 5, 3)
    with pytest.raises(ValueError, match="inside the shared prefix"):
        tiny_vit.encode_text_prefixed(prefix, suffix, eot - 3)


def test_backbones_without_block_parts_fall_back_to_concatenation(tiny_vit, monkeypatch):
    prefix, suffix, eot = _random_sequences(tiny_vit, 2, 3, 4, 3)
    fast = tiny_vit.encode_text_prefixed(prefix, suffix, eot)
    monkeypatch.setattr(type(tiny_vit), "_block_parts", lambda self: None)
    slow = tiny_vit.encode_text_prefixed(prefix, suffix, eot)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("position,shared", [("end", 1 + 6), ("middle", 1 + 3), ("front", 1)])
def test_shared_length_covers_sos_and_the_context_before_the_name(tiny_vit, position, shared):
    prompts = ClassPrompts(tiny_vit, NAMES, 6, position)
    assert prompts.shared_length == shared
    assert shared_prefix_length(prompts.index, prompts.index.shape[1]) == shared


@pytest.mark.parametrize("position", ["end", "middle"])
@pytest.mark.parametrize("per_image", [False, True])
def test_class_prompts_share_prefix_exactly(backbone, position, per_image):
    on = ClassPrompts(backbone, NAMES, 6, position, share_prefix=True)
    off = ClassPrompts(backbone, NAMES, 6, position, share_prefix=False)
    g = torch.Generator().manual_seed(1)
    shape = (3, 6, backbone.text_tower.width) if per_image else (6, backbone.text_tower.width)
    ctx = (0.02 * torch.randn(*shape, generator=g)).requires_grad_()
    feats_on, feats_off = on.encode(ctx, per_image=per_image), off.encode(ctx, per_image=per_image)
    torch.testing.assert_close(feats_on, feats_off, atol=1e-5, rtol=1e-5)
    grad_on, = torch.autograd.grad(feats_on[..., 0].sum(), ctx)
    grad_off, = torch.autograd.grad(feats_off[..., 0].sum(), ctx)
    torch.testing.assert_close(grad_on, grad_off, atol=1e-6, rtol=1e-4)


def test_sharing_is_used_and_class_specific_context_does_not_share(tiny_vit, monkeypatch):
    calls = []
    original = type(tiny_vit).encode_text_prefixed

    def spy(self, prefix, suffix, eot):
        calls.append((tuple(prefix.shape), tuple(suffix.shape)))
        return original(self, prefix, suffix, eot)

    monkeypatch.setattr(type(tiny_vit), "encode_text_prefixed", spy)
    coop = create_method("coop", tiny_vit, NAMES, n_ctx=4)
    coop.class_weights()
    assert calls and calls[0][0][:2] == (1, 5) and calls[0][1][0] == len(NAMES)
    calls.clear()
    create_method("coop", tiny_vit, NAMES, n_ctx=4, class_specific=True).class_weights()
    create_method("coop", tiny_vit, NAMES, n_ctx=4, text_share_prefix=False).class_weights()
    assert calls == []
