"""`load_backbone(spec)`: one string names any supported model.

- `openclip:<arch>`                random weights, the same in every process (tests, timing)
- `openclip:<arch>@<tag>`          an open_clip weight tag, e.g. `openclip:ViT-B-16@openai`
- `openclip:<arch>@<file>`         a local checkpoint (open_clip, OpenAI .pt, safetensors)
- `openclip:<config.json>[@<file>]` a user's own architecture
- `openclip:local-dir:<folder>`    open_clip's saved format (open_clip_config.json + weights)
- `openclip:hf-hub:<id>`           the same, from the local Hugging Face cache (never the network)
- `hf:<hub id or directory>`       Hugging Face `CLIPModel`
- `tiny`                           the bundled tiny CLIP (offline default)

The prefixes live in a `utils.registry.Registry` (`PREFIXES`); an unknown spec is one line
naming the closest prefix or bundled name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..utils.registry import Registry
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


#: Builds a backbone from the part of a spec after its prefix, and the whole spec (its name).
Builder = Callable[[str, str], VLBackbone]


def _load_openclip(rest: str, spec: str) -> VLBackbone:
    from .openclip import load_openclip

    arch, weights = _split_weights(rest)
    return load_openclip(arch, weights, spec)


def _load_hf(rest: str, spec: str) -> VLBackbone:
    from .hf import load_hf_clip

    return load_hf_clip(rest, spec)


SPEC_HINT = ("(a spec is tiny, openclip:<arch>[@<tag or file>] or hf:<id or dir>; "
             "see `vlprompt list backbones`)")
#: Spec prefixes (with their colon) -> builders; a name without a colon is an alias above.
PREFIXES: Registry[Builder] = Registry("backbone", SPEC_HINT, error=BackboneError)
PREFIXES.register("openclip:", _load_openclip)
PREFIXES.register("hf:", _load_hf)


def _unknown(spec: str) -> BackboneError:
    """`unknown backbone '<spec>' (did you mean ...?)`, matched on the prefix of a prefixed
    spec and against the bundled names and every prefix otherwise."""
    names: Registry[object] = Registry(PREFIXES.kind, PREFIXES.hint)
    for name, entry in [*ALIASES.items(), *PREFIXES.items()]:
        names.register(name, entry)
    prefix, colon, _ = spec.partition(":")
    return BackboneError(names.unknown_message(spec, match=(prefix + colon).lower() if colon else spec))


def load_backbone(spec: str, device: str = "auto") -> VLBackbone:
    """Build a frozen backbone from a spec string (see the module docstring); `device="auto"`
    takes the GPU when there is one."""
    if not isinstance(spec, str) or not spec.strip():
        raise BackboneError("backbone spec is empty; try `tiny` or `openclip:ViT-B-16@openai`")
    spec = spec.strip()
    device = str(check_device(device))
    resolved = ALIASES.get(spec, spec)
    if spec in ALIASES:
        weights = resolved.rsplit("@", 1)[1]
        if not Path(weights).is_file():
            raise BackboneError(
                f"the bundled model {spec!r} is missing its weights ({weights}); reinstall vlprompt "
                "or run `vlprompt pretrain-tiny` to rebuild them")
    kind, colon, rest = resolved.partition(":")
    if not colon or f"{kind}:" not in PREFIXES:
        raise _unknown(spec)
    if not rest:
        raise BackboneError(f"backbone spec {spec!r} names no model after {kind}:; e.g. "
                            "openclip:ViT-B-16@openai or hf:openai/clip-vit-base-patch16 "
                            "(see `vlprompt list backbones`)")
    backbone = PREFIXES[f"{kind}:"](rest, spec)
    fit_threads_to_model(sum(p.numel() for p in backbone.parameters()))
    return backbone.to(device)
