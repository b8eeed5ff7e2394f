"""Variational prompt tuning: CoOp limit, closed-form KL, seeded L-sample prediction."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vlprompt.methods.base import Batch
from vlprompt.methods.components.gaussian import kl_to_standard_normal
from vlprompt.methods.registry import create_method
from vlprompt.methods.variational import _image_generator

NAMES = ["cat", "dog", "red fox"]


@pytest.fixture(scope="module")
def data(tiny_vit):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, 3, 32, 32, generator=g)
    with torch.no_grad():
        return x, tiny_vit.encode_images(x), torch.tensor([0, 1, 2, 0])


def _make(backbone, **cfg):
    return create_method("variational", backbone, NAMES, generator=torch.Generator().manual_seed(0), **cfg)


@torch.no_grad()
def _collapse(method) -> None:
    """mu = 0 and sigma -> 0 (log sigma^2 = -80, sigma ~ 4e-18)."""
    post = method.learned.posterior
    if method.config.conditional:
        for net, bias in ((post.mu_net, 0.0), (post.log_var_net, -80.0)):
            net[-1].weight.zero_()
            net[-1].bias.fill_(bias)
    else:
        post.mu.zero_()
        post.log_var.fill_(-80.0)


@pytest.mark.parametrize("conditional", [False, True], ids=["global", "conditional"])
def test_zero_variance_equals_coop_with_same_context(tiny_vit, data, conditional):
    x, f, y = data
    var = _make(tiny_vit, conditional=conditional, samples=3)
    _collapse(var)
    coop = create_method("coop", tiny_vit, NAMES, n_ctx=4, ctx_init="a photo of a")
    assert torch.equal(var.learned.ctx, coop.learned.ctx)
    with torch.no_grad():
        expected = coop(x).log_softmax(dim=-1)
        assert torch.allclose(var(x), expected, atol=1e-5)
        var.train()
        out = var.training_step(Batch(labels=y, features=f))
    assert torch.allclose(out.logits, expected, atol=1e-5)
    assert out.parts["nll"].item() == pytest.approx(torch.nn.functional.cross_entropy(coop(x), y).item(), abs=1e-5)


def test_kl_is_the_closed_form():
    g = torch.Generator().manual_seed(1)
    mu, log_var = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    reference = kl_divergence(Normal(mu, (0.5 * log_var).exp()), Normal(0.0, 1.0))
    assert torch.allclose(kl_to_standard_normal(mu, log_var), reference.sum(-1), atol=1e-5)
    assert torch.allclose(kl_to_standard_normal(mu, log_var, "mean"), reference.mean(-1), atol=1e-6)
    assert torch.equal(kl_to_standard_normal(torch.zeros(3), torch.zeros(3)), torch.tensor(0.0))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("conditional", [False, True], ids=["global", "conditional"])
def test_training_loss_is_nll_plus_beta_kl(tiny_vit, data, conditional, reduction):
    """The reference averages the KL over the W context dimensions (default); `sum` is the
    full Gaussian KL, W times larger. Both written out here from the closed form."""
    _, f, y = data
    var = _make(tiny_vit, conditional=conditional, samples=2, beta=0.5, kl_reduction=reduction,
                init_log_var=-2.0)
    var.train()
    out = var.training_step(Batch(labels=y, features=f))
    mu, log_var = var.learned.posterior(f)
    per_dim = 0.5 * (log_var.exp() + mu ** 2 - 1 - log_var)  # (G, W)
    kl = (per_dim.mean(-1) if reduction == "mean" else per_dim.sum(-1)).mean()
    assert out.parts["kl"].item() == pytest.approx(kl.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(out.parts["nll"].item() + 0.5 * kl.item(), rel=1e-5)


def test_default_kl_is_mean_over_dimensions(tiny_vit, data):
    _, f, y = data
    mean, total = (_make(tiny_vit, samples=1, init_log_var=-2.0, kl_reduction=r) for r in ("mean", "sum"))
    assert _make(tiny_vit).config.kl_reduction == "mean"
    mean.train(), total.train()
    kl_mean = mean.training_step(Batch(labels=y, features=f)).parts["kl"]
    kl_sum = total.training_step(Batch(labels=y, features=f)).parts["kl"]
    width = mean.learned.ctx.shape[-1]
    assert kl_sum.item() == pytest.approx(width * kl_mean.item(), rel=1e-5)


@pytest.mark.parametrize("noise", ["per_image", "shared"])
@pytest.mark.parametrize("conditional", [False, True], ids=["global", "conditional"])
def test_prediction_is_log_mean_exp_over_seeded_samples(tiny_vit, data, conditional, noise):
    """per_image (the reference's): each image its own L draws, from a generator seeded by
    test_seed and the image's position in the evaluation; shared: one set of L draws."""
    x, f, _ = data
    kw = dict(conditional=conditional, samples=2, test_samples=4, test_seed=11,
              init_log_var=math.log(0.05 ** 2), test_noise=noise)
    var = _make(tiny_vit, **kw)
    width = var.learned.ctx.shape[-1]
    if noise == "shared":
        eps = torch.randn(4, 1, width, generator=torch.Generator().manual_seed(11)).expand(4, len(x), width)
    else:
        eps = torch.stack([torch.randn(4, width, generator=_image_generator(11, b)) for b in range(len(x))], 1)
    coop = create_method("coop", tiny_vit, NAMES, n_ctx=4, ctx_init="a photo of a")
    with torch.no_grad():
        mu, log_var = var.learned.posterior(f)  # (G, W)
        r = mu + (0.5 * log_var).exp() * eps  # (L, B, W)
        per_sample = []
        for s in range(4):
            rows = []
            for b in range(len(x)):
                coop.learned.ctx.copy_(var.learned.ctx + r[s, b])
                rows.append(coop(x[b:b + 1])[0].log_softmax(-1))
            per_sample.append(torch.stack(rows))
        expected = torch.logsumexp(torch.stack(per_sample), dim=0) - math.log(4)  # (B, K)
        got = var(x)
        assert torch.allclose(got, expected, atol=1e-4)
        single = torch.stack(per_sample)[0]
        assert not torch.allclose(got, single, atol=1e-4)  # the average differs from one sample
        # deterministic: again, and in another batch split within one evaluation
        assert torch.equal(var(x), got)
        with var.frozen_classifier():
            split = torch.cat([var(x[:2]), var(x[2:])])
        assert torch.allclose(split, got, atol=1e-5)
        other = _make(tiny_vit, **{**kw, "test_seed": 12})
        other.load_learned(var.learned_state())
        assert not torch.allclose(other(x), got, atol=1e-4)


def test_reference_initial_log_variance_and_hidden_width(tiny_vit):
    """The reference draws the global log-variance uniform in [0, 1) and sizes the conditional
    MLPs' hidden layer at the image-feature width // 2."""
    var = _make(tiny_vit)
    log_var = var.learned.posterior.log_var
    assert log_var.min() >= 0 and log_var.max() < 1 and log_var.std() > 0.1
    cond = _make(tiny_vit, conditional=True)
    assert cond.learned.posterior.mu_net[0].out_features == tiny_vit.embed_dim // 2


@pytest.mark.parametrize("conditional", [False, True], ids=["global", "conditional"])
def test_batched_equals_loop_over_samples_and_images(tiny_vit, data, conditional):
    _, f, y = data
    a = _make(tiny_vit, conditional=conditional, samples=3, init_log_var=-4.0)
    b = _make(tiny_vit, conditional=conditional, samples=3, init_log_var=-4.0, batched=False)
    b.load_learned(a.learned_state())
    with torch.no_grad():
        assert torch.allclose(a.logits_from_features(f), b.logits_from_features(f), atol=1e-5)
    a.train(), b.train()
    a._noise.manual_seed(5), b._noise.manual_seed(5)
    la = a.training_step(Batch(labels=y, features=f)).loss
    lb = b.training_step(Batch(labels=y, features=f)).loss
    assert la.item() == pytest.approx(lb.item(), abs=1e-5)


def test_training_noise_is_fresh_each_step(tiny_vit, data):
    _, f, y = data
    var = _make(tiny_vit, samples=2, init_log_var=-2.0)
    var.train()
    with torch.no_grad():
        first = var.training_step(Batch(labels=y, features=f)).loss
        second = var.training_step(Batch(labels=y, features=f)).loss
    assert first.item() != second.item()


def test_text_only_method_works_on_resnets(model_configs):
    from vlprompt.backbones import load_backbone

    torch.manual_seed(0)
    rn = load_backbone(f"openclip:{model_configs['rn']}")
    var = _make(rn, samples=2)
    with torch.no_grad():
        assert var(torch.randn(2, 3, 64, 64)).shape == (2, 3)
