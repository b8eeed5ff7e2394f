"""Prompt baselines, classifier fine-tuning init and the linear probe's C search."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vlprompt.engine.evaluation import evaluate_method
from vlprompt.methods.linear_probe import COARSE_LOG10_C, fit_logistic
from vlprompt.methods.prompt_baselines import HANDCRAFTED
from vlprompt.methods.registry import create_method

NAMES = ["cat", "dog", "red_fox"]


@pytest.mark.parametrize("kind", sorted(HANDCRAFTED))
def test_handcrafted_baselines_are_their_templates(tiny_vit, kind):
    method = create_method("prompt-baseline", tiny_vit, NAMES, kind=kind)
    texts = [HANDCRAFTED[kind].format(n.replace("_", " ")) for n in NAMES]
    with torch.no_grad():
        expected = F.normalize(tiny_vit.encode_texts(texts), dim=-1)
    assert torch.allclose(method.class_weights(), expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["random-token", "random-embedding"])
def test_random_baselines_differ_per_seed_and_are_reproducible(tiny_vit, kind):
    a = create_method("prompt-baseline", tiny_vit, NAMES, kind=kind, seeds=3)
    b = create_method("prompt-baseline", tiny_vit, NAMES, kind=kind, seeds=3)
    assert a.n_variants == 3 and a.weights.shape[:2] == (3, 3)
    assert torch.equal(a.weights, b.weights)
    assert not torch.allclose(a.weights[0], a.weights[1])


def test_random_token_prompt_is_made_of_vocabulary_rows(tiny_vit):
    method = create_method("prompt-baseline", tiny_vit, NAMES, kind="random-token", seeds=1, n_random=3)
    table = tiny_vit.token_embedding_table
    for vec in method.learned.random_ctx[0]:
        assert (table == vec).all(dim=-1).any()


def test_variants_accuracy_is_averaged(tiny_vit, image_folder):
    import vlprompt

    data = vlprompt.load_dataset(f"folder:{image_folder}")
    items = [*data.train, *data.val, *data.test]
    method = create_method("prompt-baseline", tiny_vit, data.classnames, kind="random-token", seeds=2)
    result = evaluate_method(method, items)
    assert len(result["variants_top1"]) == 2
    assert result["top1"] == pytest.approx(sum(result["variants_top1"]) / 2)
    for v in range(2):  # variant v is the single-seed baseline with seed v
        single = create_method("prompt-baseline", tiny_vit, data.classnames, kind="random-token", seeds=1, seed=v)
        assert evaluate_method(single, items)["top1"] == pytest.approx(result["variants_top1"][v])


def test_classifier_ft_starts_at_zero_shot(tiny_vit):
    zs = create_method("zeroshot", tiny_vit, NAMES, template="a photo of a {}.")
    ft = create_method("classifier-ft", tiny_vit, NAMES, template="a photo of a {}.")
    feats = torch.randn(4, tiny_vit.embed_dim)
    with torch.no_grad():
        assert torch.allclose(zs.logits_from_features(feats), ft.logits_from_features(feats), atol=1e-5)
    assert ft.learned.weight.shape == (3, tiny_vit.embed_dim)


def _blobs(n_per_class: int, seed: int, dim: int = 8, k: int = 3):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, dim, generator=torch.Generator().manual_seed(0)) * 2
    y = torch.arange(k).repeat_interleave(n_per_class)
    return centers[y] + torch.randn(len(y), dim, generator=g), y


def test_logistic_regression_fits_separable_data():
    x, y = _blobs(10, 1)
    w, b = fit_logistic(x, y, 3, c=10.0)
    assert ((x @ w.T + b).argmax(-1) == y).float().mean() == 1.0
    # stronger regularisation gives smaller weights
    w_small, _ = fit_logistic(x, y, 3, c=1e-3)
    assert w_small.norm() < w.norm()


def test_linear_probe_searches_c_on_validation(tiny_vit):
    method = create_method("linear-probe", tiny_vit, NAMES, search_steps=2, max_iter=50)
    train, val = _blobs(6, 1, dim=tiny_vit.embed_dim), _blobs(4, 2, dim=tiny_vit.embed_dim)
    info = method.fit_closed_form(train, val)
    tried = [t["C"] for t in info["c_search"]]
    assert {10.0 ** v for v in COARSE_LOG10_C} <= {round(c, 12) for c in tried} | set(tried)
    assert len(tried) > len(COARSE_LOG10_C)  # the binary search added points
    best = max(info["c_search"], key=lambda t: t["val_top1"])["val_top1"]
    assert [t["val_top1"] for t in info["c_search"] if t["C"] == info["C"]] == [best]
    with torch.no_grad():
        assert (method.logits_from_features(val[0]).argmax(-1) == val[1]).float().mean() == best


def test_linear_probe_fixed_c_skips_search(tiny_vit):
    method = create_method("linear-probe", tiny_vit, NAMES, C=0.5, max_iter=20)
    info = method.fit_closed_form(_blobs(3, 1, dim=tiny_vit.embed_dim), None)
    assert info == {"C": 0.5, "C_from": "method.C"}  # no search: the given C, and where it came from
