"""One RGB conversion for the whole package: transparent pixels on white, 16-bit grey scaled,
and every path that reads an image (the training/evaluation loaders, `predict`, a backbone's
own preprocessing) gives the same RGB pixels (docs/reliability.md, wrong data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlprompt.data import ImageDataset, Item
from vlprompt.data.images import ImageLoader, open_image
from vlprompt.data.images import to_rgb as data_to_rgb
from vlprompt.engine.inference import predict
from vlprompt.methods.registry import create_method
from vlprompt.utils.images import to_rgb

SIZE = 32


def _rgba_array() -> np.ndarray:
    """A colour gradient with alpha from fully transparent (left) to opaque (right)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return np.stack([xx * 8, yy * 8, np.full_like(xx, 40), xx * 255 // (SIZE - 1)], -1).astype(np.uint8)


def _on_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:].astype(np.float64) / 255
    return rgba[..., :3] * alpha + 255 * (1 - alpha)


def _transparent_images(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """name -> (PNG file, the RGB pixels expected from it)."""
    folder.mkdir(parents=True, exist_ok=True)
    rgba = _rgba_array()
    la = np.stack([rgba[..., 0], rgba[..., 3]], -1)
    palette = Image.new("RGB", (SIZE, SIZE), (200, 30, 30))
    palette.paste((0, 0, 0), (0, 0, SIZE // 2, SIZE))  # left half: the transparent entry
    palette = palette.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    black = palette.getpixel((0, 0))
    grey16 = (np.linspace(0, 1, SIZE * SIZE).reshape(SIZE, SIZE) * 65535).astype(np.uint16)
    expected_palette = np.full((SIZE, SIZE, 3), (200, 30, 30), dtype=np.float64)
    expected_palette[:, : SIZE // 2] = 255
    images = {
        "RGBA": (Image.fromarray(rgba, "RGBA"), {}, _on_white(rgba)),
        "LA": (Image.fromarray(la, "LA"), {}, _on_white(np.stack([la[..., 0]] * 3 + [la[..., 1]], -1))),
        "P": (palette, {"transparency": black}, expected_palette),
        "I;16": (Image.fromarray(grey16), {}, np.repeat((grey16 / 257.0)[..., None], 3, -1)),
    }
    out = {}
    for name, (img, save_kw, expected) in images.items():
        path = folder / f"{name.replace(';', '_')}.png"
        img.save(path, **save_kw)
        out[name] = (path, expected)
    return out


@pytest.fixture
def transparent(tmp_path):
    return _transparent_images(tmp_path / "modes")


def test_files_really_have_the_modes_under_test(transparent):
    modes = {name: open_image(path) for name, (path, _) in transparent.items()}
    assert modes["RGBA"].mode == "RGBA" and modes["LA"].mode == "LA"
    assert modes["P"].mode == "P" and "transparency" in modes["P"].info
    assert modes["I;16"].mode.startswith("I;16")


def test_one_conversion_composites_on_white_and_scales_16_bit(transparent):
    assert data_to_rgb is to_rgb  # the loaders' name is the package's one function
    for name, (path, expected) in transparent.items():
        rgb = to_rgb(open_image(path))
        assert rgb.mode == "RGB", name
        assert np.abs(np.asarray(rgb).astype(int) - np.rint(expected)).max() <= 1, name
    rgba = to_rgb(open_image(transparent["RGBA"][0]))
    assert rgba.getpixel((0, 0)) == (255, 255, 255)  # fully transparent: white, not black


def test_every_path_gives_the_same_rgb(transparent, tiny_vit, tmp_path):
    names = list(transparent)
    paths = [transparent[n][0] for n in names]
    # The reference: each file's expected pixels (computed here) saved as a plain RGB PNG.
    plain = []
    for name in names:
        path = tmp_path / f"plain-{name.replace(';', '_')}.png"
        Image.fromarray(np.rint(transparent[name][1]).astype(np.uint8), "RGB").save(path)
        plain.append(path)

    # Training/evaluation loading, before any backbone transform: the RGB pixels themselves.
    raw = ImageDataset([Item(p, 0) for p in paths], lambda img: np.asarray(img))
    pixels = [raw[i][0] for i in range(len(paths))]
    for name, arr in zip(names, pixels, strict=True):
        assert arr.dtype == np.uint8 and arr.shape == (SIZE, SIZE, 3), name
        assert np.abs(arr.astype(int) - np.rint(transparent[name][1])).max() <= 1, name

    transform = tiny_vit.preprocess(train=False)
    loaded = next(iter(ImageLoader([Item(p, 0) for p in paths], transform, batch_size=len(paths))))[0]
    reference = torch.stack([transform(Image.open(p)) for p in plain])
    torch.testing.assert_close(loaded, reference, rtol=0, atol=0)

    # A backbone's own preprocessing, given the undecoded-mode PIL image directly.
    direct = torch.stack([transform(Image.open(p)) for p in paths])
    torch.testing.assert_close(direct, reference, rtol=0, atol=0)

    # predict: the same probabilities as for the plain RGB files.
    method = create_method("zeroshot", tiny_vit, ["red", "green", "blue"])
    got = predict(method, paths, top_k=3, batch_size=len(paths))
    want = predict(method, plain, top_k=3, batch_size=len(plain))
    for g, w, name in zip(got, want, names, strict=True):
        assert [t["class"] for t in g["top"]] == [t["class"] for t in w["top"]], name
        assert [t["prob"] for t in g["top"]] == pytest.approx([t["prob"] for t in w["top"]], abs=1e-6), name


def test_transform_repr_names_the_conversion(tiny_vit):
    # feature caches are keyed by the transform's repr: a change of conversion must show in it
    assert "ToRGB(transparent=white" in repr(tiny_vit.preprocess(train=False))
    assert "ToRGB(transparent=white" in repr(tiny_vit.preprocess(train=True))
