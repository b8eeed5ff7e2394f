"""The one conversion of a decoded image to 8-bit RGB, used by every path that reads images
(training and evaluation loaders, `predict`, the feature cache, a backbone's preprocessing).

Why here: both `data` (the loaders) and `backbones` (the preprocessing pipelines) need it,
and those two layers must not import each other; `utils` lies below both.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: What transparent pixels are composited on.
BACKGROUND = (255, 255, 255)

#: Modes that carry an alpha channel (straight or premultiplied).
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def has_transparency(img: Image.Image) -> bool:
    """Whether `img` has transparent pixels by its mode: an alpha channel, or a transparent
    palette entry / colour key (`transparency` in a P, L or RGB PNG's info)."""
    return img.mode in _ALPHA_MODES or (
        img.mode in ("P", "L", "RGB", "1") and "transparency" in img.info)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image -> 8-bit RGB, the same way on every path of the package.

    - **Transparent pixels are composited on white** (RGBA, LA, PA, premultiplied modes, and
      P / L / RGB images with a transparent palette entry or colour key). Why white: the
      transparent images users bring are mostly PNG icons, logos and cut-outs, drawn to be
      shown on a white page; composited on white they look as they do in a browser or viewer.
      Dropping the alpha channel (PIL's plain `convert("RGB")`) instead shows whatever colour
      the file stores under fully transparent pixels, usually black and sometimes garbage, so
      the same icon saved by two programs would give two different images. A partly
      transparent pixel is blended with white by its alpha.
    - 16-bit, 32-bit and float grey images (`I;16*`, `I`, `F`) are scaled to 8 bits rather
      than clipped: `I;16` images, and any values up to 65535, are divided by 257; larger
      ranges are divided by their maximum.
    - Everything else (grey, bilevel, palette, CMYK, YCbCr, LAB, HSV) goes through PIL's
      `convert("RGB")`, as CLIP's own preprocessing does.
    """
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if has_transparency(img):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = float(arr.max()) if arr.size else 0.0
        if img.mode.startswith("I;16") or 255 < top <= 65535:
            arr = arr / 257.0
        elif top > 65535:
            arr = arr * (255.0 / top)
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return img.convert("RGB")


class ToRGB:
    """`to_rgb` as a transform step; its repr names the choice, so feature caches keyed by
    the transform's repr change when the conversion does."""

    def __call__(self, img: Image.Image) -> Image.Image:
        return to_rgb(img)

    def __repr__(self) -> str:
        return "ToRGB(transparent=white, 16bit=scaled)"
