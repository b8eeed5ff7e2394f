"""Zero-shot classification: ensembling, accuracy against a direct computation, templates."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import vlprompt
from vlprompt.data.images import open_image
from vlprompt.data.templates import IMAGENET_TEMPLATES, SELECT_TEMPLATES, resolve_templates
from vlprompt.errors import ConfigError
from vlprompt.methods.zeroshot import text_classifier
from vlprompt.utils.runtime import Runtime


def test_ensemble_averages_normalised_features(tiny_vit):
    names = ["cat", "dog"]
    t1, t2 = "a photo of a {}.", "art of the {}."
    f1 = F.normalize(tiny_vit.encode_texts([t1.format(n) for n in names]), dim=-1)
    f2 = F.normalize(tiny_vit.encode_texts([t2.format(n) for n in names]), dim=-1)
    expected = F.normalize((f1 + f2) / 2, dim=-1)
    got = text_classifier(tiny_vit, names, [t1, t2])
    assert torch.allclose(got, expected, atol=1e-6)
    # a single template is just its normalised features
    assert torch.allclose(text_classifier(tiny_vit, names, [t1]), f1, atol=1e-6)


def test_accuracy_matches_direct_computation(tiny_vit, image_folder):
    data = vlprompt.load_dataset(f"folder:{image_folder}")
    result = vlprompt.zeroshot_evaluate(tiny_vit, data, split="all", batch_size=5, runtime=Runtime(progress=False))
    items = [*data.train, *data.val, *data.test]
    pre = tiny_vit.preprocess(train=False)
    images = torch.stack([pre(open_image(i.path)) for i in items])
    labels = torch.tensor([i.label for i in items])
    texts = [f"a photo of a {c}." for c in data.classnames]
    img = F.normalize(tiny_vit.model.encode_image(images), dim=-1)
    txt = F.normalize(tiny_vit.model.encode_text(tiny_vit.tokenize(texts)), dim=-1)
    logits = img @ txt.T
    top1 = (logits.argmax(-1) == labels).float().mean().item()
    assert result["top1"] == pytest.approx(top1)
    assert result["top5"] == 1.0  # three classes: always within the top five
    assert result["n_images"] == 12 and result["n_classes"] == 3
    assert data.classnames == ["cat", "dog", "red fox"]
    per_class = [(logits.argmax(-1)[labels == c] == c).float().mean().item() for c in range(3)]
    assert result["per_class"] == pytest.approx(per_class)


def test_template_sets():
    assert len(IMAGENET_TEMPLATES) == 80 and len(set(IMAGENET_TEMPLATES)) == 80
    assert len(SELECT_TEMPLATES) == 7 and set(SELECT_TEMPLATES) <= set(IMAGENET_TEMPLATES)
    both = resolve_templates("dataset+select7", ["a photo of a {}, a type of pet."])
    assert both[0] == "a photo of a {}, a type of pet." and len(both) == 8
    assert resolve_templates("a {} texture.", []) == ["a {} texture."]
    with pytest.raises(ConfigError, match="exactly one"):
        resolve_templates("no placeholder", [])
