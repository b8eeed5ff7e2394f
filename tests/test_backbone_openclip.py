"""The open_clip adapter: same features as the library, exact truncation, checkpoints, errors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import open_clip
import pytest
import torch

from vlprompt.backbones import BackboneError, NeedsViTError, load_backbone
from vlprompt.backbones.checkpoints import TRUST_TORCHSCRIPT, UnsafeFileError, read_state_dict

TEXTS = ["a photo of a cat.", "a photo of a very small and rather fluffy dog on a red sofa.", "x"]


def test_features_equal_library(tiny_vit):
    images = torch.randn(3, 3, 32, 32)
    assert torch.allclose(tiny_vit.encode_images(images), tiny_vit.model.encode_image(images), atol=1e-6)
    ids = tiny_vit.tokenize(TEXTS)
    assert ids.shape == (3, 77)
    ref = tiny_vit.model.encode_text(ids)
    assert torch.allclose(tiny_vit.encode_texts(TEXTS), ref, atol=1e-5)


def test_truncated_text_encoding_is_exact(tiny_vit):
    ids = tiny_vit.tokenize(TEXTS)
    emb = tiny_vit.embed_tokens(ids)
    # learned vectors spliced into the sequence, as prompt learning does
    emb[:, 1:5] = torch.randn(3, 4, emb.shape[-1])
    eot = tiny_vit.eot_index(ids)
    full = tiny_vit.encode_text_embeddings(emb, eot, truncate=False)
    cut = tiny_vit.encode_text_embeddings(emb, eot, truncate=True)
    assert torch.allclose(full, cut, atol=1e-5)
    assert int(eot.max()) + 1 < 77  # the cut really was shorter


def test_standard_architecture_shapes():
    b = load_backbone("openclip:ViT-B-16")
    assert b.embed_dim == 512 and b.context_length == 77 and b.image_size == 224
    assert (b.text_tower.width, b.text_tower.depth) == (512, 12)
    assert (b.vision_tower.width, b.vision_tower.depth) == (768, 12)
    with torch.no_grad():
        assert b.encode_images(torch.randn(1, 3, 224, 224)).shape == (1, 512)
        assert b.encode_texts(["a photo of a dog."]).shape == (1, 512)


def test_resnet_backbone_refuses_visual_prompts(model_configs):
    b = load_backbone(f"openclip:{model_configs['rn']}")
    assert b.vision_tower is None and not b.is_vit
    images = torch.randn(2, 3, 64, 64)
    assert torch.allclose(b.encode_images(images), b.model.encode_image(images), atol=1e-6)
    with pytest.raises(NeedsViTError, match="ViT"):
        b.encode_images(images, visual_prompts=torch.zeros(2, 16))


def test_visual_prompts_of_length_zero_change_nothing(tiny_vit):
    images = torch.randn(2, 3, 32, 32)
    plain = tiny_vit.encode_images(images)
    empty = tiny_vit.encode_images(images, visual_prompts=torch.zeros(0, 64))
    assert torch.allclose(plain, empty, atol=1e-6)
    prompted = tiny_vit.encode_images(images, visual_prompts=torch.randn(3, 64))
    assert not torch.allclose(plain, prompted, atol=1e-4)


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_openai_format_state_dict_round_trip(tmp_path, model_configs, tiny_vit, fmt):
    state = {k: v.clone() for k, v in tiny_vit.model.state_dict().items()}
    if fmt == "pt":
        # OpenAI's files carry three scalars beside the tensors
        state.update(input_resolution=torch.tensor(32), context_length=torch.tensor(77),
                     vocab_size=torch.tensor(49408))
        path = tmp_path / "model.pt"
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = load_backbone(f"openclip:{model_configs['vit']}@{path}")
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.encode_images(images), tiny_vit.encode_images(images))
    assert torch.equal(loaded.encode_texts(TEXTS), tiny_vit.encode_texts(TEXTS))
    assert loaded.checksum() == tiny_vit.checksum()


def test_torchscript_archive_is_built_as_openai_clip(tmp_path):
    # heads = width // 64 in OpenAI's layout, so use widths that are multiples of 64
    cfg = {"embed_dim": 64, "quick_gelu": True,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}}
    config = tmp_path / "vlp-test-openai.json"
    config.write_text(__import__("json").dumps(cfg))
    torch.manual_seed(1)
    ref = load_backbone(f"openclip:{config}")
    with torch.no_grad():  # OpenAI's weights are fp16 values; open_clip keeps them so
        for p in ref.model.parameters():
            p.copy_(p.half().float())
    scripted = torch.jit.script(ref.model)
    path = tmp_path / "ViT-tiny.pt"
    torch.jit.save(scripted, str(path))
    reference = {k: v.float() for k, v in torch.jit.load(str(path)).state_dict().items()}
    with pytest.MonkeyPatch.context() as mp:  # the archive is read as data: no TorchScript runs
        mp.setattr(torch.jit, "load", lambda *a, **k: pytest.fail("torch.jit.load was called"))
        state = read_state_dict(path)
        loaded = load_backbone(f"openclip:{config}@{path}")
    assert set(state) == set(reference) and all(torch.equal(state[k], reference[k]) for k in reference)
    images = torch.randn(2, 3, 32, 32)
    assert torch.allclose(loaded.encode_images(images), ref.encode_images(images), atol=1e-5)
    assert torch.allclose(loaded.encode_texts(TEXTS), ref.encode_texts(TEXTS), atol=1e-5)
    # QuickGELU, as OpenAI trained it
    act = loaded.model.visual.transformer.resblocks[0].mlp.gelu
    assert type(act).__name__ == "QuickGELU"


def test_fp16_torchscript_archive_reads_as_fp32(tmp_path):
    module = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2)).half())
    path = tmp_path / "half.pt"
    torch.jit.save(module, str(path))
    state = read_state_dict(path)
    assert list(state) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert all(v.dtype == torch.float32 for v in state.values())
    assert torch.equal(state["0.weight"], module.state_dict()["0.weight"].float())
    with pytest.MonkeyPatch.context() as mp:  # the opt-in for archives the reader refuses
        mp.setenv(TRUST_TORCHSCRIPT, "1")
        trusted = read_state_dict(path)
    assert all(torch.equal(trusted[k], v) for k, v in state.items())


class _WithListAttributes(torch.nn.Module):
    """A module whose TorchScript pickle tags its lists (build_intlist, restore_type_tag)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.sizes: list[int] = [1, 2, 3]
        self.names: list[str] = ["a"]
        self.register_buffer("steps", torch.tensor(3))

    def forward(self, x):
        return self.lin(x)


def test_torchscript_archive_with_typed_lists(tmp_path):
    path = tmp_path / "lists.pt"
    torch.jit.save(torch.jit.script(_WithListAttributes()), str(path))
    state = read_state_dict(path)
    reference = torch.jit.load(str(path)).state_dict()
    assert set(state) == set(reference) == {"lin.weight", "lin.bias", "steps"}
    assert state["steps"].dtype == torch.int64 and int(state["steps"]) == 3


def _archive_with_pickle(path, payload: bytes) -> None:
    """A zip laid out like a TorchScript archive whose data.pkl is `payload`."""
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evil/data.pkl", payload)
        zf.writestr("evil/constants.pkl", pickle.dumps(()))
        zf.writestr("evil/version", "3\n")


def test_torchscript_archive_that_would_run_code_is_refused(tmp_path, capfd):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    _archive_with_pickle(path, pickle.dumps({"weight": Evil()}, protocol=2))
    with pytest.raises(UnsafeFileError, match=r"names __builtin__\.print"):
        read_state_dict(path)
    assert "pwned" not in capfd.readouterr().out
    _archive_with_pickle(path, b"not a pickle")
    with pytest.raises(BackboneError, match="not a readable TorchScript archive"):
        read_state_dict(path)


def test_pickle_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": Evil()}, fh)
    with pytest.raises(UnsafeFileError, match="refusing"):
        read_state_dict(path)


def test_checksum_identifies_weights(model_configs, tiny_vit):
    other = load_backbone(f"openclip:{model_configs['vit']}")
    assert other.checksum() == tiny_vit.checksum()
    with torch.no_grad():
        other.model.text_projection[0, 0] += 1e-3
    other._checksum = None  # noqa: SLF001 - the cached digest of the unchanged weights
    assert other.checksum() != tiny_vit.checksum()
    assert tiny_vit.backbone_id.startswith(tiny_vit.spec)


@pytest.mark.slow
def test_random_weights_are_the_same_in_every_process(model_configs, tiny_vit):
    """Random-weight specs must not depend on the caller's RNG, nor change it (run hashes and
    feature caches of a random-weight backbone then hold across processes)."""
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    again = load_backbone(f"openclip:{model_configs['vit']}")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert again.checksum() == tiny_vit.checksum()
    code = ("import sys; from vlprompt.backbones import load_backbone; "
            "print(load_backbone('openclip:' + sys.argv[1]).checksum())")
    out = subprocess.run([sys.executable, "-c", code, model_configs["vit"]], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == tiny_vit.checksum()


@pytest.mark.parametrize("spec, pattern", [
    ("openclip:NoSuchNet-99", "unknown open_clip architecture"),
    ("nonsense", "unknown backbone"),
    ("", "empty"),
    ("openclip:ViT-B-16@/no/such/file.pt", "does not exist"),
    ("openclip:ViT-B-16@not-a-tag", "neither a file nor a weight tag"),
])
def test_bad_specs_give_clear_errors(spec, pattern):
    with pytest.raises(BackboneError, match=pattern):
        load_backbone(spec)


def test_weights_that_cannot_be_fetched_say_what_to_do(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("must not try to download when offline")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(open_clip.factory, "download_pretrained", never)
    start = time.perf_counter()
    with pytest.raises(BackboneError) as info:
        load_backbone("openclip:ViT-B-16@openai")
    message = str(info.value)
    assert "ViT-B-16@openai" in message and "open_clip_pytorch_model.bin" in message
    assert "openclip:ViT-B-16-quickgelu@/path/to/file" in message
    assert time.perf_counter() - start < 30


def test_cached_tag_weights_are_used_without_network(monkeypatch, tmp_path):
    from safetensors.torch import save_file

    import vlprompt.backbones.openclip as adapter

    torch.manual_seed(0)
    ref = load_backbone("openclip:RN50-quickgelu")
    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in ref.model.state_dict().items()}, str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(adapter, "_cached_tag_file", lambda cfg: str(path))
    loaded = load_backbone("openclip:RN50@openai")
    assert type(loaded.model.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    assert loaded.checksum() == ref.checksum()


@pytest.mark.parametrize("change, words", [
    ({"text_cfg": {"pool_type": "last"}}, "causal text tower is read at the last padded position"),
    ({"text_cfg": {"pool_type": "eos", "eos_id": 2}}, "pools the 'eos' token"),
    ({"text_cfg": {"embed_cls": True}}, "learned CLS token"),
    ({"text_cfg": {"hf_model_name": "xlm-roberta-base", "hf_tokenizer_name": "xlm-roberta-base"}},
     "Hugging Face model xlm-roberta-base"),
])
def test_families_we_would_get_wrong_are_refused_by_name(model_configs, tmp_path, change, words):
    """Pooling we do not reproduce, CoCa's CLS token and Hugging Face text towers would give
    features other than the library's: refused before any work, in one line."""
    config = json.loads(Path(model_configs["vit"]).read_text())
    for key, value in change.items():
        if isinstance(value, dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = tmp_path / f"family_{len(words)}.json"
    path.write_text(json.dumps(config))
    with pytest.raises(BackboneError, match=words) as info:
        load_backbone(f"openclip:{path}")
    assert "not supported yet" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("resize_mode, fill", [("shortest", 0), ("squash", 0), ("longest", 0), ("longest", 255)])
def test_test_preprocessing_follows_the_weights_resize_mode(resize_mode, fill):
    """The evaluation transform equals open_clip's own (`image_transform_v2`) for every resize
    mode its weight tags use (DFN, SigLIP and CLIPA tags squash or pad the longest side)."""
    import numpy as np
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from PIL import Image

    from vlprompt.backbones.transforms import OPENAI_MEAN, OPENAI_STD, build_transform

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (45, 80, 3), dtype=np.uint8))  # wide, not square
    ours = build_transform(32, OPENAI_MEAN, OPENAI_STD, resize_mode=resize_mode, fill_color=fill)(image)
    cfg = PreprocessCfg(size=32, mean=OPENAI_MEAN, std=OPENAI_STD, interpolation="bicubic",
                        resize_mode=resize_mode, fill_color=fill)
    theirs = image_transform_v2(cfg, is_train=False)(image)
    assert ours.shape == (3, 32, 32)
    assert torch.equal(ours, theirs)


def test_known_resize_modes_load_and_unknown_ones_are_refused(tiny_vit):
    from vlprompt.backbones.openclip import refuse_unsupported

    for mode in ("shortest", "squash", "longest", None):
        refuse_unsupported(tiny_vit.model, {"resize_mode": mode}, "tiny")
    with pytest.raises(BackboneError, match="resize_mode 'stretchy'"):
        refuse_unsupported(tiny_vit.model, {"resize_mode": "stretchy"}, "tiny")


def test_a_siglip_style_text_tower_gives_the_librarys_logits_and_refuses_text_prompts(model_configs, tmp_path):
    """No causal mask, read at the last position, a logit bias: the whole padded sequence is
    encoded, the bias is in the logits, and prompt methods are refused by name."""
    from vlprompt.methods.registry import create_method
    from vlprompt.methods.zeroshot import ZeroShotClassifier

    config = json.loads(Path(model_configs["vit"]).read_text())
    config["text_cfg"] = {**config["text_cfg"], "pool_type": "last", "no_causal_mask": True}
    config["init_logit_bias"] = -10.0
    path = tmp_path / "last_pool.json"  # a name with "siglip" makes open_clip fetch its tokenizer
    path.write_text(json.dumps(config))
    bb = load_backbone(f"openclip:{path}")
    model = bb.model
    texts = ["a photo of a cat.", "a photo of a very small dog."]
    images = torch.randn(2, 3, bb.image_size, bb.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(bb.encode_texts(texts), model.encode_text(bb.tokenize(texts)), atol=1e-5)
        ours = ZeroShotClassifier(bb, ["cat", "dog"], ["a photo of a {}."]).logits_from_features(bb.encode_images(images))
        text = model.encode_text(bb.tokenize(["a photo of a cat.", "a photo of a dog."]), normalize=True)
        theirs = model.logit_scale.exp() * model.encode_image(images, normalize=True) @ text.T + model.logit_bias
    assert torch.allclose(ours, theirs, atol=1e-4) and float(bb.logit_bias) == -10.0
    assert bb.text_encoding() == "no causal mask: the whole padded sequence, read at the last position"
    with pytest.raises(BackboneError, match="no causal mask"):
        create_method("coop", bb, ["cat", "dog"])
    assert create_method("linear-probe", bb, ["cat", "dog"]) is not None  # frozen features work
