"""Frozen-feature encoding: one decoding per image for all its views, the cache's keys and
hits, and the feature precision (bf16 encoding stored in fp32, the `auto` rule)."""

from __future__ import annotations

import types

import pytest
import torch

from vlprompt.data.registry import load_dataset
from vlprompt.engine import data as engine_data
from vlprompt.engine import feature_cache as fc
from vlprompt.engine.data import SeededImageDataset, ViewsDataset, image_loader, mix_seed
from vlprompt.engine.feature_cache import FeatureCache, encode_items, feature_dtype_for
from vlprompt.errors import ConfigError


@pytest.fixture
def reads(monkeypatch) -> list:
    """Every image decoding of the feature path, by path."""
    seen = []
    original = engine_data.open_image

    def counting(path):
        seen.append(path)
        return original(path)

    monkeypatch.setattr(engine_data, "open_image", counting)
    return seen


def test_each_image_is_decoded_once_for_all_its_views(tiny_vit, image_folder, tmp_path, reads):
    items = load_dataset(f"folder:{image_folder}").train
    cache = FeatureCache(tmp_path)
    views = cache.views(tiny_vit, items, tiny_vit.preprocess(train=True), 3, aug_seed=0, batch_size=4)
    assert views.shape == (3, len(items), tiny_vit.embed_dim) and views.dtype == torch.float32
    assert sorted(map(str, reads)) == sorted(str(it.path) for it in items)  # once each, not 3 times
    assert (cache.misses, cache.hits) == (3, 0)
    reads.clear()
    longer = cache.views(tiny_vit, items, tiny_vit.preprocess(train=True), 4, aug_seed=0, batch_size=4)
    assert (cache.misses, cache.hits) == (4, 3) and len(reads) == len(items)  # only view 3 is made
    assert torch.equal(longer[:3], views)
    reads.clear()
    cache.views(tiny_vit, items, tiny_vit.preprocess(train=True), 2, aug_seed=0)
    assert (cache.misses, cache.hits) == (4, 5) and not reads
    assert len(list(tmp_path.glob("*.safetensors"))) == 4  # one file per view, as before


def test_views_are_the_one_view_loaders_images_bit_for_bit(tiny_vit, image_folder):
    """View v of image i is the image a one-view pass (seed (0, v)) made, so one decoding
    changes no input; only the batches' composition (B items x V views) differs."""
    items = load_dataset(f"folder:{image_folder}").train
    aug = tiny_vit.preprocess(train=True)
    seeds = [mix_seed(0, v) for v in range(3)]
    together = ViewsDataset(items, aug, seeds)
    for i in (0, len(items) - 1):
        for v, seed in enumerate(seeds):
            assert torch.equal(together[i][0][v], SeededImageDataset(items, aug, seed)[i][0])
    feats = encode_items(tiny_vit, items, aug, view_seeds=seeds, batch_size=6)  # (N, V, D)
    for v in range(3):
        one = encode_items(tiny_vit, items, aug, view_seeds=[mix_seed(0, v)], batch_size=6)[:, 0]
        assert torch.allclose(feats[:, v], one, atol=1e-5)


def test_one_view_features_equal_the_earlier_path_bit_for_bit(tiny_vit, image_folder):
    """Unaugmented (evaluation, the synthetic suite) features: the same batches as the
    earlier one-loader-per-view path, so the same numbers."""
    items = load_dataset(f"folder:{image_folder}").test + load_dataset(f"folder:{image_folder}").train
    pre = tiny_vit.preprocess(train=False)
    with torch.no_grad():
        earlier = torch.cat([tiny_vit.encode_images(x) for x, _, _ in image_loader(items, pre, batch_size=5)])
    assert torch.equal(encode_items(tiny_vit, items, pre, batch_size=5), earlier)


def test_bf16_features_are_stored_in_fp32_under_their_own_key(tiny_vit, image_folder, tmp_path):
    items = load_dataset(f"folder:{image_folder}").test
    pre = tiny_vit.preprocess(train=False)
    before = {k: v.clone() for k, v in tiny_vit.state_dict().items()}
    cache = FeatureCache(tmp_path)
    fp32 = cache.features(tiny_vit, items, pre)
    bf16 = cache.features(tiny_vit, items, pre, amp_dtype=torch.bfloat16)
    assert cache.misses == 2 and bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)
    assert torch.nn.functional.cosine_similarity(fp32, bf16, dim=-1).min() > 0.99
    assert torch.equal(cache.features(tiny_vit, items, pre, amp_dtype=torch.bfloat16), bf16)
    assert cache.hits == 1
    key = cache.key(tiny_vit, items, pre, 0, None, None)
    assert key.dtype == "float32"  # the fp32 key is the earlier one: those files stay valid
    assert cache.key(tiny_vit, items, pre, 0, None, torch.bfloat16).digest() != key.digest()
    # the backbone's own weights come back as they were, also when encoding fails
    after = tiny_vit.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    with pytest.raises(RuntimeError), fc.encoding_precision(tiny_vit, torch.bfloat16):
        assert next(tiny_vit.parameters()).dtype == torch.bfloat16
        raise RuntimeError("encoding failed")
    assert all(torch.equal(tiny_vit.state_dict()[k], v) for k, v in before.items())


def test_auto_precision_rule(tiny_vit, monkeypatch):
    cpu_tiny = tiny_vit
    monkeypatch.setattr(fc, "native_bf16_cpu", lambda: True)
    assert feature_dtype_for("auto", cpu_tiny) is None  # small model: fp32 (figures unchanged)
    monkeypatch.setattr(fc, "SMALL_MODEL_PARAMS", 0)
    assert feature_dtype_for("auto", cpu_tiny) == torch.bfloat16  # a large model on a native-bf16 CPU
    monkeypatch.setattr(fc, "native_bf16_cpu", lambda: False)
    assert feature_dtype_for("auto", cpu_tiny) is None  # emulated bf16 is slower than fp32
    assert feature_dtype_for("bf16", cpu_tiny) == torch.bfloat16 and feature_dtype_for("fp32", cpu_tiny) is None
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        feature_dtype_for("fp16", cpu_tiny)
    gpu = types.SimpleNamespace(device=torch.device("cuda"), parameters=lambda: iter(()))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert feature_dtype_for("auto", gpu) == torch.bfloat16 and feature_dtype_for("fp16", gpu) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert feature_dtype_for("auto", gpu) is None


def test_the_run_record_names_the_feature_precision(tiny_vit, image_folder, tmp_path):
    import json

    from vlprompt.api import train
    from vlprompt.utils.runtime import Runtime

    train("coop", tiny_vit, f"folder:{image_folder}", shots=1, out=tmp_path / "run",
          overrides=["train.epochs=1", "train.feature_precision=bf16"],
          runtime=Runtime(progress=False, cache_dir=tmp_path / "cache"))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["ran_on"]["feature_encoding"] == "bfloat16"
    with pytest.raises(ConfigError):
        train("coop", tiny_vit, f"folder:{image_folder}", shots=1, out=tmp_path / "run2",
              overrides=["train.epochs=1", "train.feature_precision=fp16"], runtime=Runtime(progress=False))
