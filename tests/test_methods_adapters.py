"""CLIP-Adapter, Tip-Adapter(-F) and TaskRes: their equations, written from the papers with
numbers computed here, the alpha/beta search against a brute force, and the engine hooks
(prepare_fit before the optimiser, finish_fit after SGD) that Tip-Adapter-F needs.

Their learning runs (16 shots on the synthetic tasks, measured gains and margins) are cases
of tests/test_methods_learning.py, whose table lists them.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlprompt.engine.options import TrainConfig
from vlprompt.engine.schedule import build_optimizer
from vlprompt.engine.trainer import Trainer
from vlprompt.errors import ConfigError
from vlprompt.methods.registry import create_method

NAMES = ["cat", "dog", "red fox"]
TEMPLATE = "a photo of a {}."


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _text(backbone, template: str = TEMPLATE) -> np.ndarray:
    """Raw text features (K, D) in float64, from the backbone directly."""
    with torch.no_grad():
        return backbone.encode_texts([template.format(n) for n in NAMES]).double().numpy()


# ---------------------------------------------------------------------------- Tip-Adapter

def _tip_expected(f: np.ndarray, keys: np.ndarray, labels: list[int], text: np.ndarray, scale: float,
                  alpha: float, beta: float) -> np.ndarray:
    """Tip-Adapter Eq. (the paper's): s f W^T + alpha * sum_j exp(-beta (1 - f.k_j)) onehot(y_j), by loops."""
    f, keys, w = _unit(f), _unit(keys), _unit(text)
    out = np.zeros((len(f), len(w)))
    for b in range(len(f)):
        for c in range(len(w)):
            out[b, c] = scale * float(f[b] @ w[c])
        for j, y in enumerate(labels):
            out[b, y] += alpha * math.exp(-beta * (1.0 - float(f[b] @ keys[j])))
    return out


def test_tip_affinity_by_hand(tiny_vit):
    """f = e1; keys e1 (class 0), e2 and -e1 (class 1), beta 2: the cache adds exp(0) = 1 to class 0
    and exp(-2) + exp(-4) = 0.153651 to class 1, nothing to class 2."""
    d = tiny_vit.embed_dim
    m = create_method("tip-adapter", tiny_vit, NAMES, template=TEMPLATE, init_alpha=1.0, init_beta=2.0,
                      clip_scale=10.0)
    e = torch.eye(d)
    m.prepare_fit(torch.stack([e[0], e[1], -e[0]])[None], torch.tensor([0, 1, 1]))
    f = e[0][None]
    with torch.no_grad():
        cache = m.logits_from_features(f) - 10.0 * f @ m.text_weights.T
    assert cache[0].tolist() == pytest.approx([1.0, 0.153651, 0.0], abs=1e-6)


def test_tip_logits_follow_the_equation(tiny_vit):
    g = torch.Generator().manual_seed(5)
    d = tiny_vit.embed_dim
    views = torch.randn(3, 6, d, generator=g)  # 3 augmented views of 6 images
    labels = [0, 1, 2, 0, 1, 2]
    m = create_method("tip-adapter", tiny_vit, NAMES, template=TEMPLATE, init_alpha=1.7, init_beta=3.5)
    m.prepare_fit(views, torch.tensor(labels))
    # keys: the views averaged per image, then normalised
    assert torch.allclose(m.learned.keys, F.normalize(views.mean(0), dim=-1), atol=1e-6)
    assert m.learned.values.tolist() == np.eye(3)[labels].tolist()
    f = torch.randn(4, d, generator=g)
    expected = _tip_expected(f.double().numpy(), views.double().mean(0).numpy(), labels, _text(tiny_vit),
                             float(tiny_vit.logit_scale), 1.7, 3.5)
    with torch.no_grad():
        got = m.logits_from_features(f).double().numpy()
    assert np.allclose(got, expected, atol=1e-4)


def _grid(scale: float, steps: int) -> list[float]:
    return [0.1 + i * (scale - 0.1) / steps for i in range(steps)]


def test_tip_search_picks_the_brute_force_best(tiny_vit):
    """The search returns the (beta, alpha) a plain loop over the reference's grid picks: most
    correct validation predictions, the first such point with beta outer and alpha inner."""
    g = torch.Generator().manual_seed(11)
    d = tiny_vit.embed_dim
    protos = torch.randn(3, d, generator=g)
    train_y = torch.arange(3).repeat(4)
    train_x = protos[train_y] + 0.9 * torch.randn(12, d, generator=g)
    val_y = torch.arange(3).repeat(10)
    val_x = protos[val_y] + 0.9 * torch.randn(30, d, generator=g)
    cfg = dict(template=TEMPLATE, beta_scale=9.0, alpha_scale=4.0, beta_steps=12, alpha_steps=7)
    m = create_method("tip-adapter", tiny_vit, NAMES, **cfg)
    info = m.fit_closed_form((train_x, train_y), (val_x, val_y))
    best, best_correct = None, -1
    scale = float(tiny_vit.logit_scale)
    for beta in _grid(9.0, 12):
        for alpha in _grid(4.0, 7):
            logits = _tip_expected(val_x.double().numpy(), train_x.double().numpy(), train_y.tolist(),
                                   _text(tiny_vit), scale, alpha, beta)
            correct = int((logits.argmax(1) == val_y.numpy()).sum())
            if correct > best_correct:
                best, best_correct = (beta, alpha), correct
    assert info["searched"] and (info["beta"], info["alpha"]) == pytest.approx(best)
    assert info["val_top1"] == pytest.approx(best_correct / 30)
    assert (float(m.learned.beta), float(m.learned.alpha)) == pytest.approx(best)
    # the search changes the answer here (so the test can fail): not the initial values
    assert best != pytest.approx((1.0, 1.17))


def test_tip_without_validation_keeps_the_initial_values(tiny_vit, caplog):
    m = create_method("tip-adapter", tiny_vit, NAMES, init_alpha=2.5, init_beta=4.0)
    x = torch.randn(6, tiny_vit.embed_dim, generator=torch.Generator().manual_seed(1))
    with caplog.at_level(logging.WARNING):
        info = m.fit_closed_form((x, torch.tensor([0, 1, 2, 0, 1, 2])), None)
    assert info["searched"] is False and (info["alpha"], info["beta"]) == (2.5, 4.0)
    assert (float(m.learned.alpha), float(m.learned.beta)) == (2.5, 4.0)
    assert "no validation images" in caplog.text


def test_tip_empty_cache_is_zero_shot_and_bad_cache_is_refused(tiny_vit):
    m = create_method("tip-adapter", tiny_vit, NAMES, template=TEMPLATE)
    zs = create_method("zeroshot", tiny_vit, NAMES, template=TEMPLATE)
    f = torch.randn(5, tiny_vit.embed_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(m.logits_from_features(f), zs.logits_from_features(f), atol=1e-5)
    with pytest.raises(ConfigError, match="labels must lie"):
        m.prepare_fit(torch.zeros(1, 2, tiny_vit.embed_dim), torch.tensor([0, 3]))
    state = m.learned_state()
    state["keys"] = torch.zeros(4, tiny_vit.embed_dim + 1)
    state["values"] = torch.zeros(4, 3)
    with pytest.raises(ConfigError, match="does not fit"):
        m.load_learned(state)
    with pytest.raises(ConfigError, match="beta_steps"):
        create_method("tip-adapter", tiny_vit, NAMES, beta_steps=0)


# ---------------------------------------------------------------------------- Tip-Adapter-F

def test_tip_f_engine_builds_the_cache_trains_the_keys_and_searches(tiny_vit, tmp_path):
    """Through the Trainer: prepare_fit builds the cache from every view before the optimiser,
    SGD moves only the keys, finish_fit searches alpha and beta on the validation features."""
    from vlprompt.data.types import Item

    d = tiny_vit.embed_dim
    g = torch.Generator().manual_seed(4)
    protos = torch.randn(3, d, generator=g)
    m = create_method("tip-adapter-f", tiny_vit, NAMES, template=TEMPLATE, beta_steps=5, alpha_steps=4)
    train = [Item(path=f"train{i}.png", label=i % 3) for i in range(9)]
    val = [Item(path=f"val{i}.png", label=i % 3) for i in range(6)]
    views = protos[torch.tensor([it.label for it in train])][None] + 0.5 * torch.randn(2, 9, d, generator=g)
    val_x = protos[torch.tensor([it.label for it in val])] + 0.5 * torch.randn(6, d, generator=g)

    class FakeTrainer(Trainer):  # features from memory instead of images
        def train_features(self, items, epochs=None):
            return views

        def eval_features(self, items):
            return val_x

    cfg = TrainConfig(epochs=3, batch_size=4, optimizer="adamw", lr=0.01, warmup_epochs=0, augment=False)
    result = FakeTrainer(m, cfg, seed=1, out_dir=None, progress=False).fit(train, val)
    init = F.normalize(views.mean(0), dim=-1)
    assert m.learned.keys.requires_grad and m.learned.keys.shape == (9, d)
    assert not torch.allclose(m.learned.keys, init)  # trained away from the cache
    assert result.info["cache_size"] == 9 and result.info["cache_views"] == 2
    assert result.info["searched"] is True
    assert (float(m.learned.beta), float(m.learned.alpha)) == pytest.approx((result.info["beta"],
                                                                              result.info["alpha"]))
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["learned.keys"]


def test_tip_f_resume_continues_exactly(tiny_vit, tmp_path):
    """A run stopped after 2 of 3 epochs and resumed ends with the keys of the uninterrupted run:
    prepare_fit rebuilds the cache before the optimiser, then the checkpoint restores the keys."""
    from vlprompt.data.types import Item

    d = tiny_vit.embed_dim
    g = torch.Generator().manual_seed(9)
    train = [Item(path=f"train{i}.png", label=i % 3) for i in range(9)]
    views = torch.randn(2, 9, d, generator=g)

    class FakeTrainer(Trainer):
        def train_features(self, items, epochs=None):
            return views

    class Stop(Exception):
        pass

    def stop_at_second_epoch(row: dict) -> None:
        if row["epoch"] == 1:  # before its checkpoint: the run continues after epoch 1
            raise Stop

    def run(out, resume: bool = False, on_epoch=None) -> torch.Tensor:
        m = create_method("tip-adapter-f", tiny_vit, NAMES, template=TEMPLATE)
        cfg = TrainConfig(epochs=3, batch_size=4, optimizer="adamw", lr=0.01, warmup_epochs=0, augment=False)
        FakeTrainer(m, cfg, seed=1, out_dir=out, progress=False, on_epoch=on_epoch,
                    run_config={"method": "tip-adapter-f"}).fit(train, (), resume=resume)
        return m.learned.keys.detach().clone()

    whole = run(tmp_path / "whole")
    with pytest.raises(Stop):
        run(tmp_path / "cut", on_epoch=stop_at_second_epoch)
    resumed = run(tmp_path / "cut", resume=True)
    assert torch.equal(resumed, whole)


# ---------------------------------------------------------------------------- TaskRes

def test_taskres_zero_residual_is_zero_shot(tiny_vit):
    tr = create_method("taskres", tiny_vit, NAMES, template=TEMPLATE)
    zs = create_method("zeroshot", tiny_vit, NAMES, template=TEMPLATE)
    assert torch.count_nonzero(tr.learned.residual) == 0
    assert torch.allclose(tr.class_weights(), zs.class_weights(), atol=1e-6)
    f = torch.randn(5, tiny_vit.embed_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(tr.logits_from_features(f), zs.logits_from_features(f), atol=1e-5)


def test_taskres_classifier_is_base_plus_scaled_residual(tiny_vit):
    """t' = normalise(t + alpha x), t the raw (unnormalised) text feature, as the reference."""
    tr = create_method("taskres", tiny_vit, NAMES, template=TEMPLATE, alpha=0.5)
    x = torch.randn(3, tiny_vit.embed_dim, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        tr.learned.residual.copy_(x)
    expected = _unit(_text(tiny_vit) + 0.5 * x.double().numpy())
    assert np.allclose(tr.class_weights().detach().double().numpy(), expected, atol=1e-5)
    with pytest.raises(ConfigError, match="alpha"):
        create_method("taskres", tiny_vit, NAMES, alpha=0.0)


# ---------------------------------------------------------------------------- CLIP-Adapter

def test_clip_adapter_ratio_zero_is_zero_shot(tiny_vit):
    ca = create_method("clip-adapter", tiny_vit, NAMES, template=TEMPLATE, ratio=0.0,
                       generator=torch.Generator().manual_seed(0))
    zs = create_method("zeroshot", tiny_vit, NAMES, template=TEMPLATE)
    f = torch.randn(5, tiny_vit.embed_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(ca.logits_from_features(f), zs.logits_from_features(f), atol=1e-5)


def test_clip_adapter_follows_the_equation(tiny_vit):
    """f' = ratio ReLU(W2 ReLU(W1 f)) + (1 - ratio) f; logits s cos(f', w); W1 is D/4 x D, no bias."""
    ca = create_method("clip-adapter", tiny_vit, NAMES, template=TEMPLATE, ratio=0.2,
                       generator=torch.Generator().manual_seed(0))
    d = tiny_vit.embed_dim
    assert ca.learned.down.weight.shape == (d // 4, d) and ca.learned.down.bias is None
    assert ca.learned.up.bias is None
    f = torch.randn(4, d, generator=torch.Generator().manual_seed(8)).double().numpy()
    w1, w2 = ca.learned.down.weight.detach().double().numpy(), ca.learned.up.weight.detach().double().numpy()
    a = np.maximum(np.maximum(f @ w1.T, 0) @ w2.T, 0)
    blended = 0.2 * a + 0.8 * f
    expected = float(tiny_vit.logit_scale) * _unit(blended) @ _unit(_text(tiny_vit)).T
    with torch.no_grad():
        got = ca.logits_from_features(torch.from_numpy(f).float()).double().numpy()
    assert np.allclose(got, expected, atol=1e-4)
    with pytest.raises(ConfigError, match="ratio"):
        create_method("clip-adapter", tiny_vit, NAMES, ratio=1.5)
    with pytest.raises(ConfigError, match="hidden units"):
        create_method("clip-adapter", tiny_vit, NAMES, reduction=d + 1)


def test_adam_is_dassls_adam(tiny_vit):
    """TaskRes' 'adam': torch Adam with L2 weight decay; eps from train.adam_eps (Tip-Adapter-F: 1e-4)."""
    p = [torch.nn.Parameter(torch.zeros(2))]
    opt = build_optimizer(p, TrainConfig(optimizer="adam", weight_decay=5e-4, adam_eps=1e-4))
    assert type(opt) is torch.optim.Adam and opt.defaults["eps"] == 1e-4 and opt.defaults["weight_decay"] == 5e-4
    assert type(build_optimizer(p, TrainConfig(optimizer="adamw"))) is torch.optim.AdamW
    with pytest.raises(ConfigError, match="adam_eps"):
        TrainConfig(adam_eps=0.0)
