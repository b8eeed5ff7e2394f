"""The Hugging Face CLIP adapter: same features as transformers, exact truncation, prompt
splicing where the interface promises it, and one clear error when weights are missing."""

from __future__ import annotations

import json
import sys
import time

import pytest
import torch

transformers = pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from conftest import HF_TINY_CONTEXT, HF_TINY_MEAN, HF_TINY_STD  # noqa: E402
from vlprompt.backbones import BackboneError, load_backbone  # noqa: E402
from vlprompt.backbones.hf import HFClipBackbone, load_hf_clip  # noqa: E402

TEXTS = ["a photo of a cat.", "a photo of a very small and rather fluffy dog on a red sofa.", "x"]
WIDTH = 32  # hidden size of both towers of the tiny model


def _features(out) -> torch.Tensor:
    """transformers 5 returns a ModelOutput with the projected pooler_output; 4.x a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@pytest.fixture(scope="module")
def backbone(hf_clip_dir) -> HFClipBackbone:
    return load_backbone(f"hf:{hf_clip_dir}")


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def reference(request, hf_clip_dir):
    """The model loaded by transformers itself, with each attention implementation."""
    model = transformers.CLIPModel.from_pretrained(str(hf_clip_dir),
                                                   attn_implementation=request.param)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_clip_dir))
    return model.eval(), tokenizer


def test_loads_frozen_fp32_with_its_sizes(backbone, hf_clip_dir):
    assert isinstance(backbone, HFClipBackbone) and backbone.spec == f"hf:{hf_clip_dir}"
    params = list(backbone.parameters())
    assert params and all(not p.requires_grad and p.dtype == torch.float32 for p in params)
    assert not backbone.model.training
    assert backbone.embed_dim == 16 and backbone.context_length == HF_TINY_CONTEXT
    assert (backbone.text_tower.width, backbone.text_tower.depth) == (WIDTH, 2)
    assert (backbone.vision_tower.width, backbone.vision_tower.depth) == (WIDTH, 2)
    assert backbone.is_vit and backbone.image_size == 32
    assert torch.allclose(backbone.logit_scale, torch.tensor(2.6592).exp(), atol=1e-3)
    assert backbone.image_mean_std == (HF_TINY_MEAN, HF_TINY_STD)  # from preprocessor_config.json


def test_preprocess_uses_checkpoint_size_and_stats(backbone):
    image = Image.new("RGB", (50, 40), (128, 64, 32))
    x = backbone.preprocess()(image)
    assert x.shape == (3, 32, 32)
    expected = (128 / 255 - HF_TINY_MEAN[0]) / HF_TINY_STD[0]
    assert abs(float(x[0, 16, 16]) - expected) < 1e-4
    assert backbone.preprocess(train=True, flip=False)(image).shape == (3, 32, 32)


def test_image_features_equal_transformers(backbone, reference):
    model, _ = reference
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = _features(model.get_image_features(pixel_values=images))
    assert ref.shape == (3, 16)
    assert torch.allclose(backbone.encode_images(images), ref, atol=1e-5)


def test_text_features_equal_transformers(backbone, reference):
    model, tokenizer = reference
    enc = tokenizer(TEXTS, padding="max_length", max_length=HF_TINY_CONTEXT, truncation=True,
                    return_tensors="pt")
    ids = backbone.tokenize(TEXTS)
    assert ids.dtype == torch.long and ids.shape == (3, HF_TINY_CONTEXT)
    assert torch.equal(ids, enc["input_ids"])
    with torch.no_grad():
        ref = _features(model.get_text_features(input_ids=enc["input_ids"],
                                                attention_mask=enc["attention_mask"]))
    assert torch.allclose(backbone.encode_texts(TEXTS), ref, atol=1e-5)


def test_prompted_text_encoding_works_with_either_attention(hf_clip_dir, reference):
    # The adapter runs the layers itself: the causal mask it builds must suit both kernels.
    model, tokenizer = reference
    b = HFClipBackbone(model, tokenizer, {}, "hf:test")
    enc = tokenizer(TEXTS, padding="max_length", max_length=HF_TINY_CONTEXT, truncation=True,
                    return_tensors="pt")
    with torch.no_grad():
        ref = _features(model.get_text_features(**enc))
    assert torch.allclose(b.encode_texts(TEXTS), ref, atol=1e-5)


def test_eot_is_the_first_end_token(backbone):
    ids = backbone.tokenize(TEXTS)
    eos = backbone._tokenizer.eos_token_id
    lengths = (ids != eos).sum(dim=-1)  # start + words; padding repeats the end token
    assert torch.equal(backbone.eot_index(ids), lengths)
    assert int(ids[1, -1]) == eos  # an over-long text keeps its end token after truncation


def test_legacy_eos_config_pools_at_the_highest_id(hf_clip_dir):
    model = transformers.CLIPModel.from_pretrained(str(hf_clip_dir))
    model.config.text_config.eos_token_id = 2  # as configs from before transformers#24773
    b = HFClipBackbone(model, transformers.AutoTokenizer.from_pretrained(str(hf_clip_dir)), {}, "x")
    ids = torch.tensor([[5, 9, 3, 1, 0, 0]])
    assert b.eot_index(ids).tolist() == [1]


def test_truncated_text_encoding_is_exact(backbone):
    ids = backbone.tokenize(TEXTS[::2])  # short texts, so the cut is real
    emb = backbone.embed_tokens(ids)
    emb[:, 1:3] = torch.randn(2, 2, WIDTH)  # learned vectors spliced in, as prompt learning does
    eot = backbone.eot_index(ids)
    assert int(eot.max()) + 1 < HF_TINY_CONTEXT
    full = backbone.encode_text_embeddings(emb, eot, truncate=False)
    cut = backbone.encode_text_embeddings(emb, eot, truncate=True)
    assert torch.allclose(full, cut, atol=1e-5)


def test_token_embeddings_and_decoding(backbone):
    ids = backbone.tokenize(["photo"])
    table = backbone.token_embedding_table
    assert table.shape == (len(backbone._tokenizer), WIDTH)
    assert torch.equal(backbone.embed_tokens(ids), table[ids])
    assert backbone.decode_token(int(ids[0, 1])) == "photo"
    assert backbone.tokenize([]).shape == (0, HF_TINY_CONTEXT)


def _layer_inputs(layers: torch.nn.ModuleList) -> tuple[list[torch.Tensor], list]:
    """Record the hidden states entering every layer."""
    seen: list[torch.Tensor] = []
    handles = [layer.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
               for layer in layers]
    return seen, handles


def test_deep_text_prompts_enter_layers_after_the_first(backbone):
    ids = backbone.tokenize(TEXTS)
    emb, eot = backbone.embed_tokens(ids), backbone.eot_index(ids)
    deep = [torch.randn(3, WIDTH)]
    seen, handles = _layer_inputs(backbone.model.text_model.encoder.layers)
    try:
        out = backbone.encode_text_embeddings(emb, eot, deep_prompts=deep)
    finally:
        for h in handles:
            h.remove()
    assert len(seen) == 2
    # layer 0 sees token + position embeddings; layer 1 sees the deep prompt at positions 1..3
    positions = backbone.model.text_model.embeddings.position_embedding.weight
    assert torch.allclose(seen[0], emb[:, :seen[0].shape[1]] + positions[:seen[0].shape[1]])
    assert torch.equal(seen[1][:, 1:4], deep[0].expand(3, -1, -1))
    assert not torch.allclose(out, backbone.encode_text_embeddings(emb, eot), atol=1e-4)
    full = backbone.encode_text_embeddings(emb, eot, deep_prompts=deep, truncate=False)
    assert torch.allclose(out, full, atol=1e-5)


def test_visual_prompts_of_length_zero_change_nothing(backbone):
    images = torch.randn(2, 3, 32, 32)
    plain = backbone.encode_images(images)
    empty = backbone.encode_images(images, visual_prompts=torch.zeros(0, WIDTH))
    assert torch.allclose(plain, empty, atol=1e-5)
    prompted = backbone.encode_images(images, visual_prompts=torch.randn(2, 3, WIDTH))
    assert prompted.shape == (2, 16)
    assert not torch.allclose(plain, prompted, atol=1e-4)


def test_visual_prompts_go_after_the_class_token_and_deep_ones_replace_them(backbone):
    images = torch.randn(2, 3, 32, 32)
    vision = backbone.model.vision_model
    shallow = torch.randn(3, WIDTH)
    deep = [torch.randn(3, WIDTH)]
    seen, handles = _layer_inputs(vision.encoder.layers)
    try:
        backbone.encode_images(images, visual_prompts=shallow, deep_visual_prompts=deep)
    finally:
        for h in handles:
            h.remove()
    embedded = vision.embeddings(images)  # (2, 1 + 16, W): class, patches, positions
    tokens = torch.cat([embedded[:, :1], shallow.expand(2, -1, -1), embedded[:, 1:]], dim=1)
    assert torch.allclose(seen[0], vision.pre_layrnorm(tokens), atol=1e-6)
    assert seen[1].shape == (2, 1 + 3 + 16, WIDTH)
    assert torch.equal(seen[1][:, 1:4], deep[0].expand(2, -1, -1))
    with pytest.raises(ValueError, match="first-layer"):
        backbone.encode_images(images, deep_visual_prompts=deep)


def test_prompts_receive_gradients(backbone):
    prompts = torch.zeros(2, WIDTH, requires_grad=True)
    backbone.encode_images(torch.randn(1, 3, 32, 32), visual_prompts=prompts).sum().backward()
    assert prompts.grad is not None and prompts.grad.abs().sum() > 0


def test_checksum_is_stable(backbone, hf_clip_dir):
    again = load_hf_clip(str(hf_clip_dir))
    assert again.checksum() == backbone.checksum()
    assert backbone.backbone_id.startswith(f"hf:{hf_clip_dir}#")


def test_loading_prints_nothing(hf_clip_dir, capfd):
    load_hf_clip(str(hf_clip_dir))
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


# ---------------------------------------------------------------- errors
def test_missing_directory_is_named(tmp_path):
    with pytest.raises(BackboneError, match="does not exist"):
        load_backbone(f"hf:{tmp_path / 'no-such-model'}")


def test_unknown_hub_id_offline_says_how_to_use_a_local_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(BackboneError) as info:
        load_backbone("hf:vlprompt-tests/no-such-clip")
    message = str(info.value)
    assert "vlprompt-tests/no-such-clip" in message and "config.json" in message
    assert "hf:/path/to/DIR" in message and "save_pretrained" in message
    assert "offline" in message
    assert info.value.__cause__ is None  # one message, not a chain of tracebacks
    assert time.perf_counter() - start < 10


def test_directory_without_tokenizer_says_so(hf_clip_dir, tmp_path):
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((hf_clip_dir / name).read_bytes())
    with pytest.raises(BackboneError, match="tokenizer"):
        load_hf_clip(str(tmp_path))


@pytest.mark.parametrize("config", ["SiglipConfig", "Siglip2Config"])
def test_directory_of_another_model_type_is_refused(tmp_path, config):
    """SiglipModel and SigLIP 2 are refused by their model type, before any weights load."""
    if not hasattr(transformers, config):
        pytest.skip(f"transformers {transformers.__version__} has no {config}")
    getattr(transformers, config)().save_pretrained(str(tmp_path))
    model_type = json.loads((tmp_path / "config.json").read_text())["model_type"]
    with pytest.raises(BackboneError, match=f"is a '{model_type}' model"):
        load_hf_clip(str(tmp_path))


def test_a_file_is_not_a_model_directory(hf_clip_dir):
    with pytest.raises(BackboneError, match="is a file"):
        load_hf_clip(str(hf_clip_dir / "config.json"))


def test_missing_transformers_says_what_to_install(hf_clip_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(BackboneError, match=r"pip install vlprompt\[hf\]"):
        load_hf_clip(str(hf_clip_dir))
