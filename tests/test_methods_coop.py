"""CoOp against a direct computation from the backbone's pieces, for every variant."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vlprompt.methods.registry import create_method

NAMES = ["cat", "red fox", "dog_house"]  # one- and two-token names; no letter 'x' (the placeholder)


def _placeholder_text(name: str, m: int, position: str) -> str:
    """The reference's way to write the prompt with 'X' standing for the context vectors."""
    name = name.replace("_", " ")
    if position == "end":
        return " ".join(["X"] * m + [name]) + "."
    if position == "front":
        return " ".join([name] + ["X"] * m) + "."
    half = m // 2
    return " ".join(["X"] * half + [name] + ["X"] * (m - half)) + "."


def direct_text_features(backbone, ctx: torch.Tensor, position: str) -> torch.Tensor:
    """Text features (K, D) computed with open_clip's own modules on the full 77-token context."""
    model = backbone.model
    k = len(NAMES)
    m = ctx.shape[-2]
    ids = backbone.tokenize([_placeholder_text(n, m, position) for n in NAMES])  # (K, 77)
    x_id = backbone.tokenize(["X"])[0, 1]
    emb = model.token_embedding(ids).clone()  # (K, 77, W)
    for i in range(k):
        slots = (ids[i] == x_id).nonzero().flatten()
        assert len(slots) == m
        emb[i, slots] = ctx[i] if ctx.dim() == 3 else ctx
    x = emb + model.positional_embedding
    x = model.transformer(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    eot = ids.argmax(dim=-1)  # CLIP's EOT has the highest id
    return x[torch.arange(k), eot] @ model.text_projection, eot


@pytest.mark.parametrize("class_specific", [False, True], ids=["unified", "csc"])
@pytest.mark.parametrize("position", ["end", "middle", "front"])
def test_coop_logits_equal_direct_computation(tiny_vit, class_specific, position):
    method = create_method("coop", tiny_vit, NAMES, n_ctx=4, class_specific=class_specific,
                           class_token_position=position, generator=torch.Generator().manual_seed(1))
    ctx = method.learned.ctx.detach()
    expected_text, eot = direct_text_features(tiny_vit, ctx, position)
    assert torch.equal(method.prompts.eot.cpu(), eot)  # EOT index right for every position
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    f = F.normalize(tiny_vit.model.encode_image(images), dim=-1)
    expected = tiny_vit.model.logit_scale.exp() * f @ F.normalize(expected_text, dim=-1).T
    with torch.no_grad():
        got = method(images)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-5)


def test_word_init_uses_phrase_embeddings(tiny_vit):
    method = create_method("coop", tiny_vit, NAMES, ctx_init="a photo of a")
    ids = tiny_vit.tokenize(["a photo of a"])[0, 1:5]
    assert method.learned.ctx.shape == (4, tiny_vit.text_tower.width)
    assert torch.equal(method.learned.ctx.detach(), tiny_vit.embed_tokens(ids).detach())
    # with word init, the initial prompt is the hand-crafted one: same features as "a photo of a <name>."
    with torch.no_grad():
        expected = F.normalize(tiny_vit.encode_texts([f"a photo of a {n.replace('_', ' ')}." for n in NAMES]), dim=-1)
        assert torch.allclose(method.class_weights(), expected, atol=1e-5)


def test_class_chunking_and_checkpointing_are_exact(tiny_vit):
    g = torch.Generator().manual_seed(0)
    plain = create_method("coop", tiny_vit, NAMES, n_ctx=3, generator=g)
    chunked = create_method("coop", tiny_vit, NAMES, n_ctx=3, text_chunk=2, text_checkpointing=True)
    chunked.load_learned(plain.learned_state())
    feats = torch.randn(4, tiny_vit.embed_dim, generator=torch.Generator().manual_seed(5))
    grads = []
    for m in (plain, chunked):
        loss = m.logits_from_features(feats).logsumexp(-1).sum()
        (g_ctx,) = torch.autograd.grad(loss, [m.learned.ctx])
        grads.append(g_ctx)
    assert torch.allclose(grads[0], grads[1], atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(plain.logits_from_features(feats), chunked.logits_from_features(feats), atol=1e-5)


def test_automatic_chunking_switches_on_for_many_prompts_and_is_exact(tiny_vit, monkeypatch):
    from vlprompt.methods.components import prompts as prompts_module

    few = create_method("coop", tiny_vit, NAMES, n_ctx=3)
    assert few.prompts.chunk_plan() == (3, False)  # one call, no recomputation
    monkeypatch.setattr(prompts_module, "AUTO_MAX_PROMPTS", 4)
    monkeypatch.setattr(prompts_module, "AUTO_CHUNK_PROMPTS", 2)
    names = [f"class {i}" for i in range(7)]
    auto = create_method("coop", tiny_vit, names, n_ctx=3, generator=torch.Generator().manual_seed(0))
    one_call = create_method("coop", tiny_vit, names, n_ctx=3, text_chunk=7)
    one_call.load_learned(auto.learned_state())
    assert auto.prompts.chunk_plan() == (2, True) and one_call.prompts.chunk_plan() == (7, False)
    assert auto.prompts.chunk_plan(batch=2) == (1, True)  # per-image prompts count too
    calls = []
    monkeypatch.setattr(prompts_module, "checkpoint", lambda fn, *a, **kw: calls.append(1) or fn(*a))
    feats = torch.randn(4, tiny_vit.embed_dim, generator=torch.Generator().manual_seed(5))
    grads = []
    for m in (auto, one_call):
        loss = m.logits_from_features(feats).logsumexp(-1).sum()
        grads.append(torch.autograd.grad(loss, [m.learned.ctx])[0])
    assert len(calls) == 4  # ceil(7 / 2) checkpointed chunks, all from the automatic plan
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_too_long_prompt_is_a_config_error(tiny_vit):
    from vlprompt.errors import ConfigError

    with pytest.raises(ConfigError, match="context"):
        create_method("coop", tiny_vit, ["cat"], n_ctx=80)
