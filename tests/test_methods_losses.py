"""ProGrad's projection, KgCoOp's consistency loss, CoCoOp's batched text encoding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vlprompt.errors import ConfigError
from vlprompt.methods.base import Batch
from vlprompt.methods.prograd import project_gradient
from vlprompt.methods.registry import create_method

NAMES = ["cat", "dog", "red_fox", "tree"]


def test_projection_formula():
    g_g = torch.tensor([1.0, 0.0, 0.0])
    conflicting = torch.tensor([-2.0, 1.0, 0.5])
    out = project_gradient(conflicting, g_g, lam=1.0)
    assert torch.allclose(out @ g_g, torch.tensor(0.0))
    assert torch.allclose(out, torch.tensor([0.0, 1.0, 0.5]))
    half = project_gradient(conflicting, g_g, lam=0.5)
    assert torch.allclose(half, torch.tensor([-1.0, 1.0, 0.5]))
    agreeing = torch.tensor([2.0, -1.0, 0.0])
    assert torch.equal(project_gradient(agreeing, g_g, lam=1.0), agreeing)


def _prograd_grads(method, features, labels):
    """(applied gradient, G_d, G_g) for one batch, the two references computed here."""
    ctx = method.learned.ctx
    logits = method.logits_from_features(features)
    ce = F.cross_entropy(logits, labels)
    with torch.no_grad():
        teacher = method.logit_scale * F.normalize(features, dim=-1) @ method.teacher_weights.T
    kl = (F.softmax(teacher, -1) * (F.log_softmax(teacher, -1) - F.log_softmax(logits, -1))).sum(-1).mean()
    (g_d,) = torch.autograd.grad(ce, [ctx], retain_graph=True)
    (g_g,) = torch.autograd.grad(kl, [ctx])
    method.learned.ctx.grad = None
    out = method.training_step(Batch(labels=labels, features=features))
    method.backward(out)
    return ctx.grad.clone(), g_d, g_g


def test_prograd_update_orthogonal_when_conflicting_else_ce(tiny_vit):
    method = create_method("prograd", tiny_vit, NAMES, n_ctx=4, ctx_from_template=False,
                           generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    seen = {"conflict": 0, "agree": 0}
    for trial in range(40):
        features = torch.randn(8, tiny_vit.embed_dim, generator=gen)
        with torch.no_grad():
            zs = (features @ method.teacher_weights.T).argsort(dim=-1)
        # labels the teacher likes tend to agree with it, labels it dislikes to conflict
        labels = zs[:, -1] if trial % 2 == 0 else zs[:, 0]
        applied, g_d, g_g = _prograd_grads(method, features, labels)
        if (g_d * g_g).sum() < 0:
            seen["conflict"] += 1
            assert abs(float((applied * g_g).sum())) <= 1e-4 * float(applied.norm() * g_g.norm())
            assert torch.allclose(applied, project_gradient(g_d, g_g, 1.0), atol=1e-6, rtol=1e-4)
        else:
            seen["agree"] += 1
            assert torch.allclose(applied, g_d, atol=1e-7, rtol=1e-5)
        if min(seen.values()) >= 2:
            break
    assert min(seen.values()) >= 1, seen


def test_kgcoop_loss(tiny_vit):
    method = create_method("kgcoop", tiny_vit, NAMES, weight=8.0)
    features = torch.randn(5, tiny_vit.embed_dim, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 0])
    with torch.no_grad():
        method.learned.ctx.add_(0.05 * torch.randn(method.learned.ctx.shape, generator=torch.Generator().manual_seed(1)))
        out = method.training_step(Batch(labels=labels, features=features))
        text = method.class_weights()
        ce = F.cross_entropy(method.logit_scale * F.normalize(features, dim=-1) @ text.T, labels)
        cos = F.cosine_similarity(text, method.zs_weights, dim=-1).mean()
    assert out.parts["kg"] > 0
    assert torch.allclose(out.loss, ce + 8.0 * (1 - cos), atol=1e-5)


def test_kgcoop_starts_at_zero_shot(tiny_vit):
    """Initialised from "a photo of a" with the same template, the consistency loss starts at 0."""
    method = create_method("kgcoop", tiny_vit, NAMES, template="a photo of a {}.")
    features = torch.randn(3, tiny_vit.embed_dim)
    out = method.training_step(Batch(labels=torch.tensor([0, 1, 2]), features=features))
    assert float(out.parts["kg"].detach()) == pytest.approx(0.0, abs=1e-5)


def test_cocoop_batched_equals_per_image_loop(tiny_vit):
    g = torch.Generator().manual_seed(0)
    batched = create_method("cocoop", tiny_vit, NAMES, generator=g)
    looped = create_method("cocoop", tiny_vit, NAMES, batched=False)
    looped.load_learned(batched.learned_state())
    features = torch.randn(5, tiny_vit.embed_dim, generator=torch.Generator().manual_seed(1))
    a, b = batched.logits_from_features(features), looped.logits_from_features(features)
    assert a.shape == (5, len(NAMES))
    assert torch.allclose(a, b, atol=1e-4)
    # the logits differ per image through the meta-network, and gradients reach it
    a.sum().backward()
    assert batched.learned.meta_net[0].weight.grad is not None


def test_cocoop_one_text_encoder_call_per_batch(tiny_vit, monkeypatch):
    """B images x K classes reach the text tower in one call (shared-prefix or plain path)."""
    method = create_method("cocoop", tiny_vit, NAMES)
    calls = []
    cls = type(tiny_vit)
    plain, prefixed = cls.encode_text_embeddings, cls.encode_text_prefixed
    depth = [0]

    def counted(original, rows):
        def wrapper(self, *args, **kw):
            if depth[0] == 0:  # the prefixed fallback calls the plain one: count the outer call
                calls.append(rows(*args))
            depth[0] += 1
            try:
                return original(self, *args, **kw)
            finally:
                depth[0] -= 1
        return wrapper

    monkeypatch.setattr(cls, "encode_text_embeddings", counted(plain, lambda emb, *a: emb.shape[0]))
    monkeypatch.setattr(cls, "encode_text_prefixed", counted(prefixed, lambda pre, suf, *a: suf.shape[0]))
    method.logits_from_features(torch.randn(6, tiny_vit.embed_dim))
    assert calls == [6 * len(NAMES)]
    # and the per-image loop of the reference makes one call per image
    calls.clear()
    looped = create_method("cocoop", tiny_vit, NAMES, batched=False)
    looped.logits_from_features(torch.randn(6, tiny_vit.embed_dim))
    assert calls == [len(NAMES)] * 6


@pytest.mark.parametrize("template, n_words, fixed", [
    ("a type of pet, a photo of a {}.", 8, "a"),  # the comma's token pushes the last word out
    ("a texture of {}.", 3, ""),
])
def test_prograd_context_starts_from_its_template(tiny_vit, template, n_words, fixed):
    """ProGrad's CTX_INIT: as many BPE tokens of the template's words before `{}` as it has
    words, right-aligned in the 16 slots with zeros before them; what is left of the phrase
    stays text before the class name."""
    from vlprompt.methods.components.prompts import word_init

    method = create_method("prograd", tiny_vit, NAMES, teacher_template=template)
    phrase = template.split("{}")[0].strip()
    tokens = word_init(tiny_vit, phrase)
    ctx = method.learned.ctx.detach()
    assert ctx.shape[0] == 16
    assert torch.equal(ctx[:16 - n_words], torch.zeros(16 - n_words, ctx.shape[1]))
    assert torch.allclose(ctx[16 - n_words:], tokens[:n_words])
    assert method.name_prefix == fixed
    assert tokens.shape[0] == n_words + (1 if fixed else 0)
    with pytest.raises(ConfigError, match="more than n_ctx"):
        create_method("prograd", tiny_vit, NAMES, teacher_template=template, n_ctx=2)
