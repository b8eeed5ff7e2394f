"""Image preprocessing that travels with a backbone's weights.

Test: as the weights were evaluated (`resize_mode`): `shortest` resizes the short side and
crops the centre (CLIP's), `squash` resizes to a square ignoring the aspect ratio, `longest`
resizes the long side and pads to a square with `fill_color` (open_clip's own transforms for
the last), then normalise. Train: the references' augmentation,
random resized crop with scale 0.08-1 and a horizontal flip (the flip can be switched off
for data where left and right carry meaning). Both start with the package's one RGB
conversion (`utils.images.to_rgb`), so a PIL image handed straight to
`backbone.preprocess()` gives the same tensor as the same file read by the loaders or by
`predict`.
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image
from torchvision import transforms as T

from ..utils.images import ToRGB

#: The mean/std OpenAI's CLIP was trained with (the default when weights carry none).
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

_INTERPOLATION = {
    "bicubic": T.InterpolationMode.BICUBIC,
    "bilinear": T.InterpolationMode.BILINEAR,
    "nearest": T.InterpolationMode.NEAREST,
}


def build_transform(
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    train: bool = False,
    interpolation: str = "bicubic",
    flip: bool = True,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    resize_mode: str = "shortest",
    fill_color: int = 0,
) -> Callable[[Image.Image], object]:
    """A torchvision pipeline PIL -> (3, size, size) float tensor."""
    mode = _INTERPOLATION.get(interpolation, T.InterpolationMode.BICUBIC)
    steps: list[Callable] = [ToRGB()]  # the package's one RGB conversion (transparent -> white)
    if train:
        steps.append(T.RandomResizedCrop(size, scale=crop_scale, interpolation=mode))
        if flip:
            steps.append(T.RandomHorizontalFlip())
    elif resize_mode == "squash":
        steps.append(T.Resize((size, size), interpolation=mode))
    elif resize_mode == "longest":
        from open_clip.transform import CenterCropOrPad, ResizeKeepRatio

        steps += [ResizeKeepRatio(size, interpolation=mode, longest=1), CenterCropOrPad(size, fill=fill_color)]
    elif resize_mode == "shortest":
        steps += [T.Resize(size, interpolation=mode), T.CenterCrop(size)]
    else:
        raise ValueError(f"unknown resize_mode {resize_mode!r} (shortest, squash or longest)")
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)
