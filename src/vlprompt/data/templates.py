"""Prompt templates: CLIP's 80 ImageNet templates, the 7-template selection, and named sets."""

from __future__ import annotations

from ..errors import ConfigError

#: The 80 hand-written templates CLIP ensembles for ImageNet.
IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.",
    "graffiti of a {}.", "a bad photo of the {}.", "a cropped photo of the {}.", "a tattoo of a {}.",
    "the embroidered {}.", "a photo of a hard to see {}.", "a bright photo of a {}.",
    "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.", "a drawing of a {}.",
    "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.", "a close-up photo of a {}.",
    "a black and white photo of the {}.", "a painting of the {}.", "a painting of a {}.",
    "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.",
    "a good photo of the {}.", "a rendering of the {}.", "a {} in a video game.", "a photo of one {}.",
    "a doodle of a {}.", "a close-up photo of the {}.", "a photo of a {}.", "the origami {}.",
    "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.", "a origami {}.",
    "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.",
    "a photo of a nice {}.", "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.",
    "art of a {}.", "a sketch of the {}.", "a embroidered {}.", "a pixelated photo of a {}.",
    "itap of the {}.", "a jpeg corrupted photo of the {}.", "a good photo of a {}.", "a plushie {}.",
    "a photo of the nice {}.", "a photo of the small {}.", "a photo of the weird {}.",
    "the cartoon {}.", "art of the {}.", "a drawing of the {}.", "a photo of the large {}.",
    "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.", "itap of a {}.",
    "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)

#: The 7 templates CLIP's authors selected from the 80 (used by CoOp's ensemble baseline).
SELECT_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
    "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
)

#: The first 60 of the 80: the set PromptSRC averages its frozen text features over
#: (PromptSRC repo trainers/imagenet_templates.py IMAGENET_TEMPLATES, the same 60 reordered).
IMAGENET60_TEMPLATES: tuple[str, ...] = IMAGENET_TEMPLATES[:60]

#: Named template sets for `--ensemble`; "dataset" means the dataset's own template(s).
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "imagenet80": IMAGENET_TEMPLATES,
    "imagenet60": IMAGENET60_TEMPLATES,
    "select7": SELECT_TEMPLATES,
}


def resolve_templates(name_or_template: str, dataset_templates: list[str], *, sets_only: bool = False) -> list[str]:
    """A set name (`imagenet80`, `select7`, `dataset`, `dataset+select7`) or one template
    (not with `sets_only`, as for `--ensemble`)."""
    parts = name_or_template.split("+")
    unknown = [p for p in parts if p not in TEMPLATE_SETS and p != "dataset"]
    if sets_only and unknown:
        raise ConfigError(f"unknown template set {unknown[0]!r} in --ensemble; use "
                          f"{', '.join([*sorted(TEMPLATE_SETS), 'dataset'])} or a '+' join of them "
                          "(dataset+select7); for a template of your own use --template 'a photo of a {}.'")
    if all(p in TEMPLATE_SETS or p == "dataset" for p in parts):
        out: list[str] = []
        for p in parts:
            for t in dataset_templates if p == "dataset" else TEMPLATE_SETS[p]:
                if t not in out:
                    out.append(t)
        return out
    return [check_template(name_or_template)]


def check_template(template: str) -> str:
    """A template must contain exactly one `{}` where the class name goes."""
    if template.count("{}") != 1:
        raise ConfigError(f"template {template!r} must contain exactly one '{{}}' for the class name")
    return template
