"""Bad data: each problem names the file and the remedy, or is handled as documented in docs/reliability.md."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_image_folder
from protocol_support import fixed_backbone
from reliability_support import cli, one_line_error, train_argv
from vlprompt.data import ImageDataset, Item, load_dataset
from vlprompt.data.datasets.common import SPLIT_NAMES


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, model_configs) -> str:
    return fixed_backbone(tmp_path_factory.mktemp("bb"), model_configs["vit"])


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


#: name -> bytes of a file that is not a readable image
BAD_FILES = {
    "text.png": b"this is not an image",
    "empty.jpg": b"",
    "truncated.jpg": _jpeg_bytes()[:600],
    "png-header-only.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    "gif-garbage.gif": b"GIF89a" + bytes(range(256)) * 4,
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_unreadable_image_is_one_line_naming_file_and_remedy(capsys, backbone, image_folder, name):
    (image_folder / "dog" / name).write_bytes(BAD_FILES[name])
    line = one_line_error(*cli(capsys, "zeroshot", "--backbone", backbone, "--data", image_folder,
                               "--split", "all", "--quiet")[::2])
    assert name in line and "--skip-bad-images" in line


def test_skip_bad_images_through_zeroshot_train_and_eval(capsys, backbone, image_folder, tmp_path):
    for name, content in BAD_FILES.items():
        (image_folder / "cat" / name).write_bytes(content)
    code, out, err = cli(capsys, "zeroshot", "--backbone", backbone, "--data", image_folder, "--split", "all",
                         "--quiet", "--json", "--skip-bad-images")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["skipped_images"] == len(BAD_FILES) and result["n_images"] == 12
    assert err.startswith(f"vlprompt: warning: left out {len(BAD_FILES)} unreadable image(s)")

    run = tmp_path / "run"
    code, out, err = cli(capsys, *train_argv(backbone, image_folder, run, "--epochs", 1, "--skip-bad-images"))
    assert code == 0, err
    record = json.loads((run / "run.json").read_text())
    skipped = record["skipped_images"]
    assert json.loads(out.strip().splitlines()[-1])["skipped_images"] == len(skipped)
    assert all(Path(s["path"]).name in BAD_FILES and s["split"] in SPLIT_NAMES and s["reason"] for s in skipped)
    assert {s["split"] for s in skipped} >= {"test"}  # the test split is kept whole, so its bad files show up

    code, out, err = cli(capsys, "eval", "--run", run, "--quiet", "--json")
    line = one_line_error(code, err)  # without the flag, eval stops at the first bad test image
    assert "--skip-bad-images" in line
    code, out, err = cli(capsys, "eval", "--run", run, "--quiet", "--json", "--skip-bad-images")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["top1"] == record["metrics"]["test"]["top1"]


def test_split_file_naming_a_missing_file(capsys, backbone, tmp_path):
    images = make_image_folder(tmp_path / "data" / "dtd" / "images", {"banded": 4, "dotted": 4})
    rows = [[f"{c}/{i}.png", label, c] for label, c in enumerate(["banded", "dotted"]) for i in range(4)]
    rows.append(["dotted/gone.png", 1, "dotted"])
    split = {"train": rows[:2] + rows[4:6], "val": rows[2:3] + rows[6:7], "test": rows[3:4] + rows[7:]}
    (images.parent / "split_zhou_DescribableTextures.json").write_text(json.dumps(split))
    line = one_line_error(*cli(capsys, "zeroshot", "--backbone", backbone, "--dataset", "dtd",
                               "--root", tmp_path / "data", "--quiet")[::2])
    assert "gone.png is missing" in line and "fix the list that names it" in line


def test_duplicated_class_names_keep_distinct_labels(capsys, backbone, tmp_path):
    """CLIP's ImageNet names repeat ('crane', 'maillot'); here 'red_fox' and 'red fox' both read 'red fox'."""
    folder = make_image_folder(tmp_path / "dup", {"red_fox": 4, "red fox": 4, "owl": 4})
    data = load_dataset(f"folder:{folder}")
    assert data.classnames == ["owl", "red fox", "red fox"]
    assert {it.label for it in data.train + data.val + data.test} == {0, 1, 2}
    code, out, err = cli(capsys, *train_argv(backbone, folder, tmp_path / "run", "--epochs", 1))
    assert code == 0, err
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(record["metrics"]["test"]["per_class"]) == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["classnames"] == data.classnames


def _non_rgb_images(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    images = {
        "L": Image.fromarray((ramp * 255).astype(np.uint8)),
        "LA": Image.fromarray((ramp * 255).astype(np.uint8)).convert("LA"),
        "1": Image.fromarray((ramp * 255).astype(np.uint8)).convert("1"),
        "P": Image.new("RGB", (32, 32), (200, 30, 30)).convert("P"),
        "RGBA": Image.new("RGBA", (32, 32), (10, 200, 10, 0)),
        "CMYK": Image.new("CMYK", (32, 32), (0, 255, 255, 0)),
        "I;16": Image.fromarray((ramp * 65535).astype(np.uint16)),
        "F": Image.fromarray((ramp * 255).astype(np.float32)),
    }
    paths = {}
    for mode, img in images.items():
        ext = {"CMYK": ".jpg", "F": ".tif"}.get(mode, ".png")
        path = folder / f"{mode.replace(';', '_')}{ext}"
        img.save(path)
        paths[mode] = path
    return paths


def test_non_rgb_images_become_8_bit_rgb(tmp_path):
    paths = _non_rgb_images(tmp_path / "modes")
    dataset = ImageDataset([Item(p, 0) for p in paths.values()], lambda img: np.asarray(img))
    arrays = {mode: dataset[i][0] for i, mode in enumerate(paths)}
    assert Image.open(paths["I;16"]).mode.startswith("I;16")
    for mode, arr in arrays.items():
        assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8, mode
    grey8 = arrays["L"].astype(int)
    assert np.abs(arrays["I;16"].astype(int) - grey8).max() <= 1  # scaled, not clipped to white
    assert np.abs(arrays["F"].astype(int) - grey8).max() <= 1
    assert tuple(arrays["CMYK"][0, 0]) == (255, 0, 0)
    assert tuple(arrays["RGBA"][0, 0]) == (255, 255, 255)  # fully transparent: composited on white


def test_non_rgb_and_unicode_paths_through_the_cli(capsys, backbone, tmp_path):
    root = tmp_path / "données"
    _non_rgb_images(root / "café_crème")
    _non_rgb_images(root / "日本")
    raw = os.fsencode(str(root / "日本")) + b"/latin1-\xe9t\xe9.png"  # not valid UTF-8
    with open(raw, "wb") as fh:
        Image.new("RGB", (8, 8), (1, 2, 3)).save(fh, format="PNG")
    code, out, err = cli(capsys, "zeroshot", "--backbone", backbone, "--data", root, "--split", "all",
                         "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["n_images"] == 17
    code, out, err = cli(capsys, *train_argv(backbone, root, tmp_path / "rün", "--epochs", 1))
    assert code == 0, err
    assert json.loads((tmp_path / "rün" / "config.json").read_text())["classnames"] == ["café crème", "日本"]


def test_decompression_bomb_is_refused_by_name(capsys, backbone, image_folder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses images over twice this
    Image.new("RGB", (50, 50)).save(image_folder / "cat" / "huge.png")  # 2500 pixels; the others have 1600
    line = one_line_error(*cli(capsys, "zeroshot", "--backbone", backbone, "--data", image_folder,
                               "--split", "all", "--quiet")[::2])
    assert "huge.png is too large to decode safely" in line and "downscale it" in line
    code, out, err = cli(capsys, "zeroshot", "--backbone", backbone, "--data", image_folder,
                         "--split", "all", "--quiet", "--json", "--skip-bad-images")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["skipped_images"] == 1, err


def test_per_class_results_keep_duplicated_names_apart():
    from vlprompt.protocols.execute import per_class_keys

    keys = per_class_keys(["crane", "owl", "crane", "crane"])
    assert keys == ["crane", "owl", "crane #2", "crane #3"] and len(set(keys)) == 4
