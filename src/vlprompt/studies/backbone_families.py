"""Every open_clip architecture, scaled down, measured against open_clip itself.

For each name in `open_clip.list_models()` the model config is shrunk (two layers, width 32,
32-pixel images, random weights) while every switch that changes the code path is kept (text
pooling, causal mask, CLS embedding, logit bias, pooling and layer norms of the image tower,
Hugging Face or timm towers). vlprompt then either refuses it by name at load time, or loads
it and must give open_clip's own features:

- text: `encode_texts` (our tokens -> embeddings -> blocks path) against `encode_text`;
- truncation: the prompt cut after the last end-of-text token against the full sequence;
- image: `encode_images` against `encode_image`, and the visual-prompt path with zero
  prompt tokens against `encode_image` (it re-implements the tower's forward);
- one CoCoOp-free training step each of CoOp (text prompts) and VPT (visual prompts), with a
  finite, non-zero gradient, or VPT's refusal naming the image tower.

Configs that shrink to the same thing are built once, so the whole matrix takes seconds.
timm image towers cannot be shrunk through open_clip's config, so timm's own small test
models (`test_convnext`, `test_vit`) stand in for them, inside the same open_clip wrapper:
vlprompt calls that wrapper's forward unchanged and refuses visual prompts for it.
`benchmarks/backbone_families.py` prints the table that docs/backbones.md keeps.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

#: The shrunken sizes: small enough to build every family in milliseconds.
WIDTH, HEADS, LAYERS, EMBED, IMAGE, PATCH = 32, 2, 2, 32, 32, 8
TOLERANCE = 1e-5  # max |difference| of fp32 features allowed against open_clip's own
SCALED_VIT = {"image_size": IMAGE, "layers": LAYERS, "width": WIDTH, "head_width": WIDTH // HEADS,
              "patch_size": PATCH}


@dataclass
class FamilyCheck:
    """What the matrix measured for one architecture."""

    arch: str
    family: str
    status: str  # "supported" | "refused"
    reason: str = ""  # the loader's message when refused
    text_max_diff: float | None = None
    truncation_exact: bool | None = None
    image_max_diff: float | None = None
    prompt_path_max_diff: float | None = None  # visual-prompt forward with no prompt tokens
    logits_max_diff: float | None = None  # zero-shot logits (scale, and SigLIP's bias) against open_clip's
    causal: bool | None = None  # the text tower's attention (truncation applies only when causal)
    coop_step: str = ""  # "ok", "refused: ..." or what failed
    vpt_step: str = ""  # "ok", "refused: ..." or what failed
    stand_in: str = ""  # the small timm model measured in place of the config's timm tower

    def as_dict(self) -> dict:
        return asdict(self)


def family_of(config: dict) -> str:
    """A short name of the code paths a config takes (what the docs' table groups by)."""
    text, vision = config.get("text_cfg") or {}, config.get("vision_cfg") or {}
    if vision.get("timm_model_name"):
        image = "timm " + vision["timm_model_name"].split("_")[0]
    elif isinstance(vision.get("layers"), list | tuple):
        image = "ResNet"
    else:
        image = "ViT" + (f" ({vision['pool_type']} pool)" if vision.get("pool_type", "tok") != "tok" else "") + \
            (" (attentional pool)" if vision.get("attentional_pool") else "")
    if text.get("hf_model_name"):
        words = "HF text"
    else:
        words = f"text {text.get('pool_type', 'argmax')} pool" + (", non-causal" if text.get("no_causal_mask") else "")
    extras = [w for w, on in (("CoCa", "multimodal_cfg" in config),
                              ("logit bias", config.get("init_logit_bias") is not None)) if on]
    return " + ".join([image, words, *extras])


def timm_stand_in(name: str) -> str:
    """timm's small test model of the same kind as the timm tower `name`."""
    return "test_convnext" if name.startswith("convnext") else "test_vit"


@functools.cache
def _timm_width(name: str) -> int:
    """The stand-in's feature width (built once: every timm config of the matrix asks)."""
    import timm

    return int(timm.create_model(name, pretrained=False).num_features)


def scaled_config(config: dict) -> dict:
    """`config` shrunk to WIDTH/LAYERS/IMAGE with every code-path switch kept."""
    c = copy.deepcopy(config)
    c["embed_dim"] = EMBED
    vision = c["vision_cfg"]
    if vision.get("timm_model_name"):
        vision.update(timm_model_name=timm_stand_in(vision["timm_model_name"]), image_size=IMAGE,
                      timm_model_pretrained=False)
        if vision.get("timm_proj") in (None, "", "none"):  # the trunk's own width is the embedding (SigLIP)
            c["embed_dim"] = _timm_width(vision["timm_model_name"])
    elif isinstance(vision.get("layers"), list | tuple):
        vision.update(layers=[1, 1, 1, 1], width=8, image_size=IMAGE)
    else:
        vision.update(SCALED_VIT)
        if "attn_pooler_heads" in vision:
            vision["attn_pooler_heads"] = HEADS
    text = c["text_cfg"]
    if not text.get("hf_model_name"):
        # without a projection the text width is the embedding's (SigLIP i18n)
        text.update(width=c["embed_dim"] if text.get("proj_type") == "none" else WIDTH, heads=HEADS, layers=LAYERS)
        if text.pop("hf_tokenizer_name", None) is not None:  # offline: open_clip's own tokenizer, its vocabulary
            text.pop("tokenizer_kwargs", None)
            text["vocab_size"] = 49408
    if "multimodal_cfg" in c:
        c["multimodal_cfg"].update(width=WIDTH, heads=HEADS, layers=1, attn_pooler_heads=HEADS)
    return c


def _write(config: dict, folder: Path, name: str) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def _grad_ok(method) -> str:
    grads = [p.grad for p in method.learned.parameters() if p.requires_grad]
    if not grads or any(g is None for g in grads):
        return "no gradient reached the learned parameters"
    if not all(torch.isfinite(g).all() for g in grads) or all(float(g.abs().sum()) == 0 for g in grads):
        return "the gradient is zero or not finite"
    return "ok"


def _training_step(name: str, backbone, images: torch.Tensor) -> str:
    """One step of `name` on two classes; "ok", "refused: <message>" or what failed."""
    from ..backbones.base import BackboneError
    from ..methods.base import Batch
    from ..methods.registry import create_method

    labels = torch.tensor([0, 1])
    try:
        method = create_method(name, backbone, ["cat", "dog"], generator=torch.Generator().manual_seed(0))
    except BackboneError as exc:
        return f"refused: {exc}"
    method.train()
    out = method.training_step(Batch(labels, images=images))
    out.loss.backward()
    return _grad_ok(method)


CLASSES, TEMPLATE = ["cat", "dog"], "a photo of a {}."


def _zero_shot_logits(backbone, images: torch.Tensor) -> torch.Tensor:
    from ..methods.zeroshot import ZeroShotClassifier

    return ZeroShotClassifier(backbone, CLASSES, [TEMPLATE]).logits_from_features(backbone.encode_images(images))


def _library_logits(model, backbone, images: torch.Tensor) -> torch.Tensor:
    """open_clip's own zero-shot logits: scale * cos (+ the learned bias where the model has one)."""
    text = model.encode_text(backbone.tokenize([TEMPLATE.format(c) for c in CLASSES]), normalize=True)
    logits = model.logit_scale.exp() * model.encode_image(images, normalize=True) @ text.T
    bias = getattr(model, "logit_bias", None)
    return logits if bias is None else logits + bias


def _measure(check: FamilyCheck, path: Path, with_steps: bool) -> None:
    from ..backbones import load_backbone

    bb = load_backbone(f"openclip:{path}")
    model = bb.model
    check.causal = bb.text_prompt_problem() is None
    texts = ["a photo of a cat.", "a small red dog on a long white sofa at noon."]
    ids = bb.tokenize(texts)
    with torch.no_grad():
        ours = bb.encode_texts(texts)
        check.text_max_diff = _max_diff(ours, model.encode_text(ids))
        emb, eot = bb.embed_tokens(ids), bb.eot_index(ids)
        check.truncation_exact = _max_diff(bb.encode_text_embeddings(emb, eot, truncate=True),
                                           bb.encode_text_embeddings(emb, eot, truncate=False)) <= TOLERANCE
        images = torch.randn(2, 3, bb.image_size, bb.image_size, generator=torch.Generator().manual_seed(0))
        check.image_max_diff = _max_diff(bb.encode_images(images), model.encode_image(images))
        check.logits_max_diff = _max_diff(_zero_shot_logits(bb, images), _library_logits(model, bb, images))
        if bb.vision_tower is not None:
            empty = torch.zeros(0, bb.vision_tower.width)
            check.prompt_path_max_diff = _max_diff(bb.encode_images(images, visual_prompts=empty),
                                                   model.encode_image(images))
    if with_steps:
        check.coop_step = _training_step("coop", bb, images)
        check.vpt_step = _training_step("vpt", bb, images)


def check_architecture(arch: str, folder: Path, with_steps: bool = True) -> FamilyCheck:
    """Load the scaled `arch` as vlprompt does and measure it against open_clip (see above)."""
    import open_clip

    from ..backbones.base import BackboneError

    config = open_clip.get_model_config(arch)
    check = FamilyCheck(arch=arch, family=family_of(config), status="supported")
    timm_name = config["vision_cfg"].get("timm_model_name")
    if timm_name:
        check.stand_in = timm_stand_in(timm_name)
    # a neutral name: open_clip picks some tokenizers by the model's name (e.g. "siglip")
    name = "scaled-" + hashlib.sha1(arch.encode()).hexdigest()[:12]
    try:
        _measure(check, _write(scaled_config(config), folder, name), with_steps)
    except BackboneError as exc:
        check.status, check.reason = "refused", str(exc)
    return check


def builtin_architectures() -> list[str]:
    """open_clip's own architectures: `list_models()` also lists configs registered since
    (`openclip:<config.json>` specs register theirs)."""
    import open_clip

    folder = Path(open_clip.__file__).parent / "model_configs"
    own = {p.stem for p in folder.glob("*.json")}
    return [name for name in open_clip.list_models() if name in own]


def check_all(folder: Path, archs: Iterable[str] | None = None) -> list[FamilyCheck]:
    """Every architecture; those whose scaled configs are equal share one measurement, and
    the CoOp and VPT steps run once per family (they exercise the family's code path)."""
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    done: dict[str, FamilyCheck] = {}
    stepped: dict[str, FamilyCheck] = {}
    out = []
    for arch in archs or builtin_architectures():
        config = open_clip.get_model_config(arch)
        key = json.dumps(scaled_config(config), sort_keys=True)
        if key not in done:
            family = family_of(config)
            done[key] = check_architecture(arch, folder, with_steps=family not in stepped)
            if done[key].coop_step or done[key].status == "refused":
                stepped.setdefault(family, done[key])
            elif family in stepped:
                done[key].coop_step, done[key].vpt_step = stepped[family].coop_step, stepped[family].vpt_step
        out.append(FamilyCheck(**{**done[key].as_dict(), "arch": arch}))
    return out


def _cell(values: list, fmt) -> str:
    values = [v for v in values if v is not None and v != ""]
    return fmt(values) if values else "-"


def family_table(checks: list[FamilyCheck]) -> str:
    """Markdown: one row per family with what the matrix measured."""
    rows = {}
    for c in checks:
        rows.setdefault(c.family, []).append(c)
    lines = ["| family | models | status | zero-shot (max diff) | text prompts (CoOp) | visual prompts (VPT) "
             "| truncation exact |", "|---|---:|---|---|---|---|---|"]
    for family, cs in sorted(rows.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        status = sorted({c.status for c in cs})
        reason = cs[0].reason.split(": ", 1)[-1].split(" (vlprompt supports")[0] if cs[0].reason else ""
        diffs = [max(d for d in (c.text_max_diff, c.image_max_diff, c.prompt_path_max_diff, c.logits_max_diff)
                     if d is not None)
                 for c in cs if c.text_max_diff is not None]
        stand_in = f" ({cs[0].stand_in} image tower)" if cs[0].stand_in else ""
        zs = _cell(diffs, lambda v, note=stand_in: f"{max(v):.1e}{note}")
        coop = _cell([c.coop_step for c in cs],
                     lambda v: "ok" if all(x == "ok" for x in v) else "refused" if v[0].startswith("refused") else v[0])
        vpt = _cell([c.vpt_step for c in cs],
                    lambda v: "ok" if all(x == "ok" for x in v) else "refused" if v[0].startswith("refused") else v[0])
        trunc = _cell([c.truncation_exact for c in cs if c.causal],
                      lambda v: "yes" if all(v) else "no") if any(c.causal for c in cs) else \
            ("n/a (full sequence)" if any(c.causal is False for c in cs) else "-")
        text = "/".join(status) + (f": {reason}" if reason else "")
        lines.append(f"| {family} | {len(cs)} | {text} | {zs} | {coop} | {vpt} | {trunc} |")
    return "\n".join(lines)


@dataclass
class PreprocessCheck:
    """vlprompt's evaluation transform against open_clip's for one weight tag."""

    arch: str
    tag: str
    preprocess: dict
    max_diff: float | None  # None: refused
    reason: str = ""


def tag_preprocess_cfg(arch: str, tag: str) -> dict:
    """The preprocess config vlprompt's loader gives `arch@tag` (the model config's image
    size and defaults, with the tag's own settings on top), without building the model."""
    import open_clip
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    from ..backbones.openclip import tag_preprocess

    size = open_clip.get_model_config(arch)["vision_cfg"].get("image_size", 224)
    base = PreprocessCfg(size=size)
    return merge_preprocess_dict(base, tag_preprocess(open_clip.get_pretrained_cfg(arch, tag)))


def check_preprocessing(pairs: Iterable[tuple[str, str]] | None = None) -> list[PreprocessCheck]:
    """For every open_clip weight tag (distinct configs measured once): the max difference of
    vlprompt's and open_clip's (`image_transform_v2`) evaluation transforms on a non-square
    image, or the refusal."""
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from PIL import Image

    from ..backbones.openclip import preprocess_problems, transform_from_cfg

    rng = torch.Generator().manual_seed(0)
    image = Image.fromarray((torch.rand(61, 97, 3, generator=rng) * 255).byte().numpy())
    done: dict[str, tuple[float | None, str]] = {}
    out = []
    for arch, tag in pairs or open_clip.list_pretrained():
        pp = tag_preprocess_cfg(arch, tag)
        key = json.dumps(pp, sort_keys=True)
        if key not in done:
            problems = preprocess_problems(pp)
            if problems:
                done[key] = (None, "; ".join(problems))
            else:
                ours = transform_from_cfg(pp)(image)
                theirs = image_transform_v2(PreprocessCfg(**pp), is_train=False)(image)
                done[key] = (_max_diff(ours, theirs) if ours.shape == theirs.shape else math.inf, "")
        out.append(PreprocessCheck(arch, tag, pp, *done[key]))
    return out
