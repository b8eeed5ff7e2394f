"""ZS-LP, CLAP, LP++ and the cross-modal linear probe: each property written from the papers
and reference code, with the expected numbers computed here independently (plain loops, NumPy).
The learning tests of these methods are in tests/test_methods_learning.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlprompt.api import load_dataset
from vlprompt.engine.feature_cache import FeatureCache
from vlprompt.engine.options import TrainConfig
from vlprompt.engine.trainer import Trainer
from vlprompt.errors import ConfigError
from vlprompt.methods.base import Batch
from vlprompt.methods.clap import clap_lambdas, clap_penalty
from vlprompt.methods.lpp import lpp_alpha_init, lpp_logits, lpp_lr_alpha, lpp_lr_w
from vlprompt.methods.registry import create_method

NAMES = ["cat", "dog", "red_fox"]
TEMPLATE = "a photo of a {}."


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic:textures")


def few(items, per_class: int = 4) -> list:
    """The first `per_class` items of each class (a small support set with every class)."""
    seen: dict[int, int] = {}
    out = []
    for it in items:
        if seen.get(it.label, 0) < per_class:
            seen[it.label] = seen.get(it.label, 0) + 1
            out.append(it)
    return out


def feats(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------- CLAP

def test_clap_penalty_value_and_gradient():
    w = torch.tensor([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5]], requires_grad=True)
    t = torch.tensor([[0.0, 2.0], [1.0, 1.0], [3.0, 0.0]])
    lam = torch.tensor([0.5, 2.0, 4.0])
    value = clap_penalty(w, t, lam)
    # (1/3) * (0.5 * 1 + 2 * (1 + 4) + 4 * 0.25) = 11.5 / 3
    assert value.item() == pytest.approx(11.5 / 3)
    value.backward()
    # d/dw_c = (2/3) lambda_c (w_c - t_c)
    expected = [[2 / 3 * 0.5 * 1.0, 0.0], [2 / 3 * 2 * -1.0, 2 / 3 * 2 * -2.0], [0.0, 2 / 3 * 4 * 0.5]]
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-6)


def test_clap_loss_is_ce_plus_the_penalty_on_the_method(tiny_vit):
    m = create_method("clap", tiny_vit, NAMES, template=TEMPLATE)
    d = tiny_vit.embed_dim
    with torch.no_grad():
        m.learned.prototypes.add_(feats(3, d, 1) * 0.1)
        m.learned.lambdas.copy_(torch.tensor([0.2, 0.7, 1.5]))
    x, y = feats(4, d, 2), torch.tensor([0, 1, 2, 1])
    parts = m.losses(m.logits_from_features(x), y, x)
    diff = (m.learned.prototypes - m.anchors).detach()
    by_hand = sum(lam * float(diff[c].pow(2).sum()) for c, lam in enumerate([0.2, 0.7, 1.5])) / 3
    assert parts["penalty"].item() == pytest.approx(by_hand, rel=1e-5)
    assert parts["loss"].item() == pytest.approx(parts["ce"].item() + by_hand, rel=1e-5)
    zs = create_method("zs-lp", tiny_vit, NAMES, template=TEMPLATE)
    assert set(zs.losses(zs.logits_from_features(x), y, x)) == {"loss", "ce"}  # ZS-LP: no penalty


def test_clap_lambda_rule_from_support_logits():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 3.0], [0.5, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2, 0])

    def p(row, c):
        return math.exp(row[c]) / sum(math.exp(v) for v in row)

    rows = logits.tolist()
    lam = [(p(rows[0], 0) + p(rows[4], 0)) / 2, (p(rows[1], 1) + p(rows[2], 1)) / 2, p(rows[3], 2)]
    assert clap_lambdas(logits, labels, 3).tolist() == pytest.approx(lam)
    assert clap_lambdas(logits, labels, 3, "corrected").tolist() == pytest.approx([v * 3 / sum(lam) for v in lam])
    assert clap_lambdas(logits, labels, 3, "constant").tolist() == pytest.approx([sum(lam) / 3] * 3)
    assert clap_lambdas(logits, labels, 3, "balanced").tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="class index 2"):
        clap_lambdas(logits[:3], labels[:3], 3)


def test_clap_prepare_fit_uses_the_zero_shot_model_on_every_view(tiny_vit):
    m = create_method("clap", tiny_vit, NAMES, template=TEMPLATE)
    d = tiny_vit.embed_dim
    views, labels = feats(6, d, 3).view(2, 3, d), torch.tensor([0, 1, 2])
    info = m.prepare_fit(views, labels)
    # zero-shot: tau * cos(f, t_c) with t_c the class's text feature (one template)
    with torch.no_grad():
        t = F.normalize(tiny_vit.encode_texts([TEMPLATE.format(n.replace("_", " ")) for n in NAMES]), dim=-1)
    tau = float(tiny_vit.logit_scale)
    f = F.normalize(views, dim=-1).numpy().astype(np.float64)
    probs = np.exp(tau * f @ t.numpy().T)
    probs /= probs.sum(-1, keepdims=True)  # (2, 3, K)
    expected = [(probs[0, c, c] + probs[1, c, c]) / 2 for c in range(3)]
    assert m.learned.lambdas.tolist() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert info["clap_lambda_mean"] == pytest.approx(sum(expected) / 3, rel=1e-4, abs=1e-6)


def test_the_trainer_sets_clap_lambdas_before_training(tiny_vit, data):
    m = create_method("clap", tiny_vit, data.classnames, dataset_templates=data.templates)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.1, augment=False)
    result = Trainer(m, cfg, seed=1, progress=False, cache=FeatureCache(enabled=False)).fit(few(data.train))
    assert float(m.learned.lambdas.min()) > 0
    assert result.info["clap_lambda_max"] == pytest.approx(float(m.learned.lambdas.max()))


# ---------------------------------------------------------------------------------- ZS-LP

def test_zs_lp_starts_as_zero_shot(tiny_vit):
    m = create_method("zs-lp", tiny_vit, NAMES, template=TEMPLATE)
    zs = create_method("zeroshot", tiny_vit, NAMES, template=TEMPLATE)
    x = feats(10, tiny_vit.embed_dim, 4)
    with torch.no_grad():
        a, b = m.logits_from_features(x), zs.logits_from_features(x)
    assert torch.allclose(a, b, atol=1e-4)
    assert torch.equal(a.argmax(-1), b.argmax(-1))


def test_zs_lp_new_classes_use_their_zero_shot_prototype(tiny_vit):
    m = create_method("zs-lp", tiny_vit, NAMES, template=TEMPLATE)
    with torch.no_grad():
        m.learned.prototypes.add_(feats(3, tiny_vit.embed_dim, 5))
    trained = F.normalize(m.learned.prototypes.detach(), dim=-1)
    m.set_classnames(["boat", "dog"])
    x = F.normalize(feats(5, tiny_vit.embed_dim, 6), dim=-1)
    with torch.no_grad():
        boat = F.normalize(tiny_vit.encode_texts([TEMPLATE.format("boat")]), dim=-1)[0]
        logits = m.logits_from_features(x)
    tau = float(tiny_vit.logit_scale)
    assert torch.allclose(logits[:, 0], tau * x @ boat, atol=1e-4)  # untrained name: zero-shot
    assert torch.allclose(logits[:, 1], tau * x @ trained[1], atol=1e-4)  # trained name: learned


# ---------------------------------------------------------------------------------- LP++

def test_lpp_blending_logits():
    f = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    w = torch.tensor([[1.0, 1.0], [0.0, 2.0], [-1.0, 0.0]])
    b = torch.tensor([0.1, 0.0, -0.1])
    alpha = torch.tensor([2.0, 3.0, 4.0])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    expected = [[1 + 0.1 + 2 * 1, 0 + 0 + 3 * 0, -1 - 0.1 + 4 * 0.6],
                [1.4 + 0.1 + 2 * 0.6, 1.6 + 0 + 3 * 0.8, -0.6 - 0.1 + 4 * 1.0]]
    np.testing.assert_allclose(lpp_logits(f, w, b, alpha, t).numpy(), expected, rtol=1e-6)


def test_lpp_step_sizes_and_alpha_start():
    x = F.normalize(feats(12, 5, 7), dim=-1)
    y = torch.arange(3).repeat(4)
    t = F.normalize(feats(3, 5, 8), dim=-1)
    xn, tn = x.numpy().astype(np.float64), t.numpy().astype(np.float64)
    sigma = np.linalg.svd(xn, compute_uv=False)[0]  # lambda_max(F^T F) = sigma_max(F)^2
    assert lpp_lr_w(x) == pytest.approx(4 * 12 / sigma ** 2, rel=1e-6)
    sums = [sum(float(xn[i] @ tn[c]) ** 2 for i in range(12)) for c in range(3)]
    assert lpp_lr_alpha(x, t) == pytest.approx(12 / (4 * max(sums)), rel=1e-6)
    own = [np.mean([xn[i] @ tn[c] for i in range(12) if y[i] == c]) for c in range(3)]
    assert lpp_alpha_init(x, y, t) == pytest.approx(250 * np.mean(own), rel=1e-6)


def test_lpp_first_iteration_by_hand(tiny_vit):
    """One iteration from the reference's start: W = class sums, alpha = the start value,
    then a gradient step of size lr_W on W and b and (alpha_every=1) lr_alpha on alpha."""
    m = create_method("lp++", tiny_vit, NAMES, template=TEMPLATE, iterations=1, alpha_every=1, select="last")
    d = tiny_vit.embed_dim
    x_raw, y = feats(9, d, 9), torch.tensor([0, 1, 2] * 3)
    info = m.fit_closed_form((x_raw, y), None)
    x = F.normalize(x_raw, dim=-1).double()
    t = m.text.double()
    w0 = torch.stack([x[y == c].sum(0) for c in range(3)])
    b0 = m.bias_init.double()
    a0 = torch.full((3,), info["alpha_init"], dtype=torch.float64)
    s = x @ t.T
    p = torch.softmax(x @ w0.T + b0 + a0 * s, -1)
    g = (p - F.one_hot(y, 3).double()) / 9  # d(mean CE)/d logits
    assert torch.allclose(m.learned.weight.double(), w0 - info["lr_w"] * g.T @ x, atol=1e-4)
    assert torch.allclose(m.learned.bias.double(), b0 - info["lr_w"] * g.sum(0), atol=1e-4)
    assert torch.allclose(m.learned.alpha.double(), a0 - info["lr_alpha"] * (g * s).sum(0), atol=1e-4)


def test_lpp_alpha_gradient_accumulates_as_the_reference(tiny_vit):
    d = tiny_vit.embed_dim
    x, y = feats(9, d, 10), torch.tensor([0, 1, 2] * 3)
    out = {}
    for rule in ("accumulated", "current"):
        m = create_method("lp++", tiny_vit, NAMES, template=TEMPLATE, iterations=4, alpha_every=2,
                          select="last", alpha_grad=rule)
        m.fit_closed_form((x, y), None)
        out[rule] = m.learned.alpha.detach().clone()
    assert not torch.allclose(out["accumulated"], out["current"])


def test_lpp_keeps_the_best_val_iteration_and_refuses_missing_classes(tiny_vit):
    d = tiny_vit.embed_dim
    x, y = feats(9, d, 11), torch.tensor([0, 1, 2] * 3)
    m = create_method("lp++", tiny_vit, NAMES, template=TEMPLATE, iterations=30)
    info = m.fit_closed_form((x, y), (x, y))
    with torch.no_grad():
        acc = float((m.logits_from_features(x).argmax(-1) == y).float().mean())
    assert acc == info["val_top1"] and 1 <= info["selected_iteration"] <= 30
    with pytest.raises(ConfigError, match="class index 2"):
        m.fit_closed_form((x[:2], y[:2]), None)
    with pytest.raises(ConfigError, match="cannot move"):
        m.set_classnames(["boat"])


# ---------------------------------------------------------------------------------- cross-modal

def test_cross_modal_training_set_holds_the_text_samples(tiny_vit):
    templates = ["a photo of a {}.", "a drawing of a {}."]
    m = create_method("cross-modal-lp", tiny_vit, NAMES)
    m2 = create_method("cross-modal-lp", tiny_vit, NAMES, dataset_templates=templates)
    assert len(m.text_labels) == 3
    assert len(m2.text_labels) == 6
    with torch.no_grad():
        for i, (feature, label) in enumerate(zip(m2.text_features, m2.text_labels.tolist(), strict=True)):
            template, name = templates[i // 3], NAMES[label]
            expected = tiny_vit.encode_texts([template.format(name.replace("_", " "))])[0]
            assert torch.allclose(feature, expected, atol=1e-5), (i, template, name)
        raw = tiny_vit.encode_texts([tp.format(n.replace("_", " ")) for tp in templates for n in NAMES]).view(2, 3, -1)
    assert torch.allclose(m2.learned.weight, F.normalize(raw.mean(0), dim=-1), atol=1e-5)  # head's start


def test_cross_modal_step_mixes_images_and_texts(tiny_vit):
    m = create_method("cross-modal-lp", tiny_vit, NAMES, template=TEMPLATE, text_ratio=1.0)
    x, y = feats(2, tiny_vit.embed_dim, 12), torch.tensor([2, 0])
    torch.manual_seed(0)
    out = m.training_step(Batch(labels=y, features=x))
    torch.manual_seed(0)
    idx = torch.randperm(3)[:2]  # the same draw: 2 of the 3 text samples
    every = torch.cat([x, m.text_features[idx]])
    labels = torch.cat([y, m.text_labels[idx]])
    logits = 100.0 * F.normalize(every, dim=-1) @ m.learned.weight.T
    assert out.logits.shape == (2, 3)  # the images' logits (training accuracy)
    assert out.loss.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    assert m.text_labels[idx].tolist() == idx.tolist()  # one template: sample i is class i


def test_val_selection_keeps_a_copy_of_the_best_weights(tiny_vit, data, tmp_path):
    """Selecting on val saves the best epoch's weights apart from the live ones (on the CPU the
    saved state used to share their memory: the checkpoint refused to write it)."""
    m = create_method("cross-modal-lp", tiny_vit, data.classnames, dataset_templates=data.templates)
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer="adamw", lr=0.01, augment=False, select="val",
                      eval_every=1, warmup_epochs=0)
    trainer = Trainer(m, cfg, seed=1, progress=False, out_dir=tmp_path)
    result = trainer.fit(few(data.train, 8), data.val)
    best = max(h["val_top1"] for h in result.history)
    assert trainer.evaluate(data.val)["top1"] == pytest.approx(best)
