"""open_clip's saved format (`open_clip_config.json` with `model_cfg` and `preprocess_cfg`,
plus the weights) loads as `openclip:local-dir:<folder>` with the folder's preprocessing, as
`open_clip.create_model_and_transforms("local-dir:...")` does; `openclip:hf-hub:<id>` reads
the same from the local hub cache and never from the network."""

from __future__ import annotations

import json
import shutil

import open_clip
import pytest
import torch
from PIL import Image

from vlprompt.backbones import load_backbone
from vlprompt.backbones.base import BackboneError
from vlprompt.backbones.registry import ASSETS

TINY = ASSETS / "tiny_clip"
#: The folder's own preprocessing, unlike the tiny CLIP's: squash resizing, bilinear, other stats.
PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bilinear",
              "resize_mode": "squash"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    config = json.loads((TINY / "tiny_clip.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": PREPROCESS}))
    shutil.copy(TINY / "tiny_clip.safetensors", folder / "open_clip_model.safetensors")
    return folder


def test_a_saved_folder_gives_open_clips_features_and_preprocessing(saved):
    bb = load_backbone(f"openclip:local-dir:{saved}", device="cpu")
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{saved}", device="cpu")
    model.eval()
    image = Image.fromarray((torch.rand(50, 90, 3, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy())
    ours, theirs = bb.preprocess()(image), preprocess(image)
    assert torch.equal(ours, theirs)  # squash, bilinear, the folder's mean and std
    texts = ["a photo of a red circle.", "a photo of a blue square."]
    with torch.no_grad():
        assert torch.allclose(bb.encode_texts(texts), model.encode_text(open_clip.get_tokenizer(f"local-dir:{saved}")(texts)),
                              atol=1e-5)
        assert torch.allclose(bb.encode_images(ours[None]), model.encode_image(theirs[None]), atol=1e-5)
    # the same weights as the bundled tiny CLIP
    assert bb.checksum() == load_backbone("tiny", device="cpu").checksum()


def test_saved_folders_and_hub_ids_fail_in_one_line(saved, tmp_path, monkeypatch):
    with pytest.raises(BackboneError, match="is not a folder"):
        load_backbone(f"openclip:local-dir:{tmp_path / 'nope'}", device="cpu")
    with pytest.raises(BackboneError, match="has no open_clip_config.json"):
        load_backbone(f"openclip:local-dir:{tmp_path}", device="cpu")
    empty = tmp_path / "no-weights"
    empty.mkdir()
    shutil.copy(saved / "open_clip_config.json", empty)
    with pytest.raises(BackboneError, match="holds no weights file"):
        load_backbone(f"openclip:local-dir:{empty}", device="cpu")
    with pytest.raises(BackboneError, match="drop the @ part"):
        load_backbone(f"openclip:local-dir:{saved}@openai", device="cpu")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(BackboneError, match="not in the local cache.*openclip:local-dir"):
        load_backbone("openclip:hf-hub:someone/not-cached", device="cpu")


def test_a_hub_id_in_the_local_cache_loads_from_it(saved, tmp_path, monkeypatch):
    """The Hugging Face cache layout: models--<org>--<name>/refs/main names a snapshot folder."""
    repo = tmp_path / "hub" / "models--someone--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    shutil.copytree(saved, repo / "snapshots" / "abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    bb = load_backbone("openclip:hf-hub:someone/tiny", device="cpu")
    assert bb.spec == "openclip:hf-hub:someone/tiny"
    assert bb.checksum() == load_backbone(f"openclip:local-dir:{saved}", device="cpu").checksum()
