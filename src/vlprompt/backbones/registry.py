"""`load_backbone(spec)`: one string names any supported model.

- `openclip:<arch>`                random weights, the same in every process (tests, timing)
- `openclip:<arch>@<tag>`          an open_clip weight tag, e.g. `openclip:ViT-B-16@openai`
- `openclip:<arch>@<file>`         a local checkpoint (open_clip, OpenAI .pt, safetensors)
- `openclip:<config.json>[@<file>]` a user's own architecture
- `hf:<hub id or directory>`       Hugging Face `CLIPModel`
- `tiny`                           the bundled tiny CLIP (offline default)
"""

from __future__ import annotations

from pathlib import Path

from ..utils.runtime import check_device, fit_threads_to_model
from .base import BackboneError, VLBackbone

ASSETS = Path(__file__).resolve().parent.parent / "assets"

#: Short names of bundled models -> their full spec.
ALIASES: dict[str, str] = {
    "tiny": f"openclip:{ASSETS / 'tiny_clip' / 'tiny_clip.json'}@{ASSETS / 'tiny_clip' / 'tiny_clip.safetensors'}",
}

#: Well-known names listed by `vlprompt list backbones` (any open_clip arch/tag also works).
KNOWN = [
    "tiny",
    "openclip:RN50@openai",
    "openclip:RN101@openai",
    "openclip:ViT-B-32@openai",
    "openclip:ViT-B-16@openai",
    "openclip:ViT-L-14@openai",
    "hf:openai/clip-vit-base-patch16",
]


def available_backbones() -> list[str]:
    """Named backbones users most often want; any open_clip architecture also works."""
    return list(KNOWN)


def _split_weights(rest: str) -> tuple[str, str | None]:
    # The last '@' separates weights; Windows-free paths never contain one in practice.
    if "@" in rest:
        arch, weights = rest.rsplit("@", 1)
        return arch, weights or None
    return rest, None


def load_backbone(spec: str, device: str = "cpu") -> VLBackbone:
    """Build a frozen backbone from a spec string (see the module docstring)."""
    if not isinstance(spec, str) or not spec.strip():
        raise BackboneError("backbone spec is empty; try `tiny` or `openclip:ViT-B-16@openai`")
    spec = spec.strip()
    check_device(device)
    resolved = ALIASES.get(spec, spec)
    if spec in ALIASES:
        weights = resolved.rsplit("@", 1)[1]
        if not Path(weights).is_file():
            raise BackboneError(
                f"the bundled model {spec!r} is missing its weights ({weights}); reinstall vlprompt "
                "or run `vlprompt pretrain-tiny` to rebuild them")
    kind, _, rest = resolved.partition(":")
    if kind == "openclip" and rest:
        from .openclip import load_openclip

        arch, weights = _split_weights(rest)
        backbone: VLBackbone = load_openclip(arch, weights, spec)
    elif kind == "hf" and rest:
        from .hf import load_hf_clip

        backbone = load_hf_clip(rest, spec)
    else:
        raise BackboneError(
            f"unknown backbone {spec!r}: use tiny, openclip:<arch>[@<tag or file>] or hf:<id or dir> "
            "(see `vlprompt list backbones`)")
    fit_threads_to_model(sum(p.numel() for p in backbone.parameters()))
    return backbone.to(device)
