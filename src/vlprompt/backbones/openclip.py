"""Any open_clip model behind the `VLBackbone` interface.

Specs: `openclip:<arch>` (random weights from a fixed seed), `openclip:<arch>@<tag>` (an open_clip weight tag
such as `openai`), `openclip:<arch>@<file>` (a local checkpoint: open_clip or OpenAI state
dict, safetensors, or the original `clip` package's TorchScript archive), and
`openclip:<config.json>[@<file>]` for a user's own model config.
"""

from __future__ import annotations

import logging
import os
import socket
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    BackboneError,
    TowerInfo,
    VLBackbone,
    causal_mask,
    insert_prompt_tokens,
    replace_text_prompt_tokens,
)
from .checkpoints import read_state_dict
from .prefix import BlockParts
from .transforms import OPENAI_MEAN, OPENAI_STD, build_transform

log = logging.getLogger(__name__)
#: Random-weight specs (`openclip:<arch>`, `openclip:<config.json>`) draw their weights from
#: this seed, so they are the same model, checksum and run hashes in every process.
RANDOM_INIT_SEED = 0


def _open_clip():
    try:
        import open_clip
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise BackboneError("open_clip is not installed: pip install open_clip_torch") from exc
    return open_clip


def register_model_config(path: str | Path) -> str:
    """Make a user's model config JSON known to open_clip; returns the architecture name."""
    path = Path(path)
    if not path.is_file():
        raise BackboneError(f"model config {path} does not exist")
    _open_clip().add_model_config(path)
    return path.stem


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in zf.namelist())


class _DropRandomInitWarning(logging.Filter):
    """open_clip warns "initialized randomly" before we load a checkpoint ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


def _create_for_checkpoint(oc, arch: str) -> nn.Module:
    root = logging.getLogger()
    quiet = _DropRandomInitWarning()
    root.addFilter(quiet)
    try:
        return oc.create_model(arch, pretrained=None, device="cpu")
    finally:
        root.removeFilter(quiet)


def _unknown_arch_error(arch: str) -> BackboneError:
    names = _open_clip().list_models()
    close = [n for n in names if arch.lower().replace("/", "-") in n.lower()][:8]
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return BackboneError(
        f"unknown open_clip architecture {arch!r}.{hint} See `vlprompt list backbones`, "
        "or pass a model config JSON file.")


def _tag_sources(cfg: dict) -> tuple[str | None, list[str], str | None]:
    """(hub repo, candidate file names, url) where open_clip would fetch a tag's weights."""
    hub = cfg.get("hf_hub") or ""
    if hub:
        repo, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        return repo, names, None
    return None, [], cfg.get("url") or None


def _cached_tag_file(cfg: dict) -> str | None:
    """The tag's weight file if an earlier download left it in the local cache."""
    repo, names, url = _tag_sources(cfg)
    if repo:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - a dependency of open_clip
            return None
        for name in names:
            found = try_to_load_from_cache(repo_id=repo, filename=name)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    if url:
        local = Path.home() / ".cache" / "clip" / os.path.basename(url)
        if local.is_file():
            return str(local)
    return None


def _network_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """One cheap look-up instead of a library's retry loop against a closed network."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or os.environ.get("VLPROMPT_OFFLINE"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline_error(arch: str, tag: str, cfg: dict, reason: str) -> BackboneError:
    repo, names, url = _tag_sources(cfg)
    wanted = f"{' or '.join(names)} from the Hugging Face Hub repo {repo}" if repo else (url or "its weights")
    quick = "-quickgelu" if cfg.get("quick_gelu") and "quickgelu" not in arch else ""
    return BackboneError(
        f"could not fetch the weights of {arch}@{tag} ({reason}); wanted {wanted}. Copy that "
        f"file to this machine and use openclip:{arch}{quick}@/path/to/file "
        "(open_clip .bin/.safetensors or OpenAI .pt); files already in the Hugging Face cache "
        "(HF_HOME) are found automatically.")


def build_open_clip_model(arch: str, weights: str | None) -> tuple[nn.Module, dict]:
    """Build the torch model and its preprocessing config from an arch name and weights."""
    oc = _open_clip()
    if arch.endswith(".json"):
        arch = register_model_config(arch)
    if weights and Path(weights).expanduser().exists():
        path = Path(weights).expanduser()
        if _is_torchscript(path):
            log.info("%s is a TorchScript archive of the original clip package: building OpenAI CLIP", path)
            state = {k: v for k, v in read_state_dict(path).items() if not k.endswith("attn_mask")}
            from open_clip.model import build_model_from_openai_state_dict

            model = build_model_from_openai_state_dict(state, quick_gelu=True, cast_dtype=None)
            model = model.float()
            pp = {"size": model.visual.image_size, "mean": OPENAI_MEAN, "std": OPENAI_STD,
                  "interpolation": "bicubic"}
            if isinstance(pp["size"], tuple | list):
                pp["size"] = pp["size"][0]
            return model, pp
        if oc.get_model_config(arch) is None:
            raise _unknown_arch_error(arch)
        model = _create_for_checkpoint(oc, arch)
        state = read_state_dict(path)
        for key in ("input_resolution", "context_length", "vocab_size", "attn_mask"):
            state.pop(key, None)  # OpenAI state dicts carry these as plain entries
        own = model.state_dict()
        wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
                 if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)]
        if wrong:
            key, theirs, ours = wrong[0]
            raise BackboneError(
                f"checkpoint {path} does not fit architecture {arch!r}: {len(wrong)} tensors have other "
                f"shapes, e.g. {key} is {theirs} in the file but {ours} in {arch}; it was saved from "
                "another architecture: name that one, openclip:<its arch or config.json>@<file>")
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k != "logit_bias"]
        if missing or unexpected:
            raise BackboneError(
                f"checkpoint {path} does not fit architecture {arch!r}: "
                f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        return model, dict(model.visual.preprocess_cfg)
    if oc.get_model_config(arch) is None:
        raise _unknown_arch_error(arch)
    if weights:
        tags = oc.list_pretrained_tags_by_model(arch)
        cfg = oc.get_pretrained_cfg(arch, weights)
        if not cfg:
            raise BackboneError(
                f"{weights!r} is neither a file nor a weight tag of {arch} "
                f"(tags: {', '.join(tags) or 'none'})")
        force_quick = bool(cfg.get("quick_gelu")) and "quickgelu" not in arch
        source = _cached_tag_file(cfg)
        if source is None and not _network_reachable():
            raise _offline_error(arch, weights, cfg, "no network and not in the local cache")
        try:
            model = oc.create_model(arch, pretrained=source or weights, device="cpu",
                                    force_quick_gelu=force_quick, force_preprocess_cfg=tag_preprocess(cfg))
        except Exception as exc:  # noqa: BLE001 - network failures come in many types
            raise _offline_error(arch, weights, cfg, type(exc).__name__) from None
        return model, dict(model.visual.preprocess_cfg)
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(RANDOM_INIT_SEED)
        model = oc.create_model(arch, pretrained=None, device="cpu")
    return model, dict(model.visual.preprocess_cfg)


#: The preprocessing keys a weight tag may set (open_clip's `PreprocessCfg` besides the size).
TAG_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode", "fill_color")


def tag_preprocess(tag_cfg: dict) -> dict:
    """The preprocessing a weight tag's config sets; the model config gives the rest."""
    return {k: tag_cfg[k] for k in TAG_PREPROCESS_KEYS if k in tag_cfg}


def transform_from_cfg(pp: dict, train: bool = False, flip: bool = True) -> Callable:
    """vlprompt's image transform for an open_clip preprocess config (`model.visual.preprocess_cfg`)."""
    size = pp.get("size", 224)
    return build_transform(int(size[0] if isinstance(size, tuple | list) else size),
                           tuple(pp.get("mean", OPENAI_MEAN)), tuple(pp.get("std", OPENAI_STD)), train=train,
                           interpolation=pp.get("interpolation", "bicubic"), flip=flip,
                           resize_mode=pp.get("resize_mode") or "shortest", fill_color=int(pp.get("fill_color") or 0))


class OpenClipBackbone(VLBackbone):
    """An open_clip `CLIP` or `CustomTextCLIP` model, frozen, in fp32."""

    def __init__(self, model: nn.Module, tokenizer: Callable, preprocess_cfg: dict, spec: str):
        super().__init__()
        self.spec = spec
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._tokenizer = tokenizer
        self._pp = preprocess_cfg
        self._text = model.text if hasattr(model, "text") else model
        needed = ("token_embedding", "positional_embedding", "transformer", "ln_final")
        self._text_ok = all(hasattr(self._text, n) for n in needed) and getattr(self._text, "cls_emb", None) is None
        self._causal = getattr(self._text, "attn_mask", None) is not None
        # "argmax": at EOT; "last": the last position (a CLIP model keeps it as text_pool_type)
        self._pool = getattr(self._text, "pool_type", getattr(model, "text_pool_type", "argmax"))
        visual = model.visual
        self._vit = all(hasattr(visual, n) for n in ("conv1", "class_embedding", "transformer", "ln_pre")) \
            and getattr(visual, "pool_type", "tok") == "tok" and getattr(visual, "attn_pool", None) is None

    # ------------------------------------------------------------------ description
    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[-1] if isinstance(self.model.text_projection, torch.Tensor)
                   else self.model.text_projection.out_features) if hasattr(self.model, "text_projection") \
            else int(self._text.output_dim)

    @property
    def text_tower(self) -> TowerInfo:
        tr = self._text.transformer
        return TowerInfo(width=int(tr.width), depth=int(tr.layers))

    @property
    def vision_tower(self) -> TowerInfo | None:
        if not self._vit:
            return None
        tr = self.model.visual.transformer
        return TowerInfo(width=int(tr.width), depth=int(tr.layers))

    def image_tower_kind(self) -> str:
        visual = self.model.visual
        if hasattr(visual, "trunk"):
            return f"the timm model {type(visual.trunk).__name__}"
        if hasattr(visual, "class_embedding"):
            pool = getattr(visual, "pool_type", "tok")
            return ("a ViT with attentional pooling" if getattr(visual, "attn_pool", None) is not None
                    else f"a ViT pooled by {pool!r}, where prompt tokens would enter the pooled feature")
        return f"a {type(visual).__name__} (convolutional)"

    @property
    def context_length(self) -> int:
        return int(self._text.positional_embedding.shape[0])

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()

    @property
    def logit_bias(self) -> torch.Tensor | None:
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else bias.detach()

    def text_encoding(self) -> str:
        if self._causal:
            return super().text_encoding()
        where = "the last position" if self._pool == "last" else "the end-of-text token"
        return f"no causal mask: the whole padded sequence, read at {where}"

    def text_prompt_problem(self) -> str | None:
        if not self._text_ok:
            return "its text tower cannot be fed token embeddings"
        if not self._causal:
            return ("its text tower has no causal mask (SigLIP, CLIPA, MobileCLIP 2): context vectors "
                    "spliced after the start token would need the full padded sequence")
        return None

    @property
    def image_size(self) -> int:
        size = self._pp.get("size", 224)
        return int(size[0] if isinstance(size, tuple | list) else size)

    @property
    def image_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return tuple(self._pp.get("mean", OPENAI_MEAN)), tuple(self._pp.get("std", OPENAI_STD))

    def preprocess(self, train: bool = False, flip: bool = True) -> Callable:
        return transform_from_cfg(self._pp, train=train, flip=flip)

    # ------------------------------------------------------------------ text side
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self._tokenizer(list(texts)).long()

    def eot_index(self, ids: torch.Tensor) -> torch.Tensor:
        eot = getattr(self._tokenizer, "eot_token_id", None)
        if eot is None:
            return ids.argmax(dim=-1)
        return (ids == eot).int().argmax(dim=-1)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self._text.token_embedding(ids.to(self.device))

    @property
    def token_embedding_table(self) -> torch.Tensor:
        return self._text.token_embedding.weight

    def decode_token(self, token_id: int) -> str:
        decoder = getattr(self._tokenizer, "decoder", None)
        if decoder is not None and token_id in decoder:
            return decoder[token_id].replace("</w>", "")
        return self._tokenizer.decode([token_id]) if hasattr(self._tokenizer, "decode") else str(token_id)

    def encode_text_embeddings(self, embeddings, eot_index, deep_prompts=None, truncate=True):
        if not self._text_ok:
            raise BackboneError(f"{self.spec}: its text tower cannot be fed token embeddings")
        text = self._text
        n, length, _ = embeddings.shape  # (N, L, W)
        eot_index = eot_index.to(embeddings.device)
        if truncate and self._causal:
            length = int(eot_index.max().item()) + 1
        x = embeddings[:, :length] + text.positional_embedding[:length].to(embeddings.dtype)
        mask = None
        if self._causal:
            mask = causal_mask(length, x.device, x.dtype)
        x = self._run_blocks(text.transformer, x, mask, deep_prompts, replace_text_prompt_tokens)
        return self._text_head(x, eot_index)

    def _text_head(self, x: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """Hidden states (N, L, W) -> projected features read at `eot_index` (N,)."""
        text = self._text
        x = text.ln_final(x)  # per token, so before or after the pooling gives the same
        if self._pool == "last":  # the whole padded sequence was encoded (no causal mask)
            x = x[:, -1]
        else:
            x = x[torch.arange(x.shape[0], device=x.device), eot_index]  # (N, W)
        proj = text.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj

    def _block_parts(self) -> list[BlockParts] | None:
        """open_clip's standard residual blocks as `BlockParts`, or None for other block types."""
        if not (self._text_ok and self._causal):
            return None
        parts = []
        for block in self._text.transformer.resblocks:
            attn = getattr(block, "attn", None)
            if (type(block).__name__ != "ResidualAttentionBlock" or not isinstance(attn, nn.MultiheadAttention)
                    or not attn._qkv_same_embed_dim or (attn.dropout and self.training)):
                return None
            parts.append(BlockParts(
                ln_1=block.ln_1, heads=attn.num_heads, ln_2=block.ln_2, mlp=block.mlp,
                qkv=lambda x, a=attn: F.linear(x, a.in_proj_weight, a.in_proj_bias),
                out_proj=attn.out_proj, ls_1=block.ls_1, ls_2=block.ls_2))
        return parts

    def _text_positions(self) -> torch.Tensor:
        return self._text.positional_embedding

    @staticmethod
    def _run_blocks(transformer: nn.Module, x: torch.Tensor, mask: torch.Tensor | None,
                    deep: Sequence[torch.Tensor] | None, splice: Callable) -> torch.Tensor:
        """Run a batch-first (N, L, W) sequence through the blocks, splicing deep prompts."""
        batch_first = getattr(transformer, "batch_first", True)
        for i, block in enumerate(transformer.resblocks):
            if deep is not None and 1 <= i <= len(deep):
                x = splice(x, deep[i - 1])
            if not batch_first:
                x = block(x.transpose(0, 1), attn_mask=mask).transpose(0, 1)
            else:
                x = block(x, attn_mask=mask)
        return x

    # ------------------------------------------------------------------ image side
    def encode_images(self, images, visual_prompts=None, deep_visual_prompts=None):
        visual = self.model.visual
        if visual_prompts is None and deep_visual_prompts is None:
            return visual(images)
        self.require_vit("visual prompts")
        x = visual.conv1(images)  # (B, W, g, g)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # (B, g*g, W)
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)  # (B, 1+g*g, W)
        n = 0
        if visual_prompts is not None:
            x = insert_prompt_tokens(x, visual_prompts)
            n = visual_prompts.shape[-2]
        x = visual.patch_dropout(x)
        x = visual.ln_pre(x)
        if deep_visual_prompts is not None and visual_prompts is None:
            raise ValueError("deep visual prompts need first-layer prompts too")

        def splice(tokens: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
            return insert_prompt_tokens(tokens, prompts, replace=n)

        x = self._run_blocks(visual.transformer, x, None, deep_visual_prompts, splice)
        pooled, _ = visual._pool(x)
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return pooled


SUPPORTED = ("vlprompt supports open_clip text towers read at end-of-text, or at the last position "
             "without a causal mask (SigLIP)")


def config_problems(config: dict) -> list[str]:
    """What in an open_clip model config vlprompt does not handle yet, in words (empty: none).
    Read from the config alone, so a family is refused before any weights load or any
    tokenizer is fetched."""
    text, vision = config.get("text_cfg") or {}, config.get("vision_cfg") or {}
    problems = []
    if text.get("hf_model_name"):
        problems.append(f"its text tower is the Hugging Face model {text['hf_model_name']}, not open_clip's "
                        "TextTransformer")
    else:
        pool = text.get("pool_type", "argmax")
        if pool not in ("argmax", "last"):
            problems.append(f"its text tower pools the {pool!r} token instead of the end-of-text token")
        if pool == "last" and not text.get("no_causal_mask"):
            problems.append("its causal text tower is read at the last padded position")
        if text.get("embed_cls"):
            problems.append("its text tower appends a learned CLS token (CoCa)")
    if "multimodal_cfg" in config:
        problems.append("it is a captioning model (CoCa) with a multimodal decoder")
    timm_name = vision.get("timm_model_name")
    if timm_name:
        try:
            import timm  # noqa: F401 - open_clip builds timm image towers with it
        except ImportError:
            problems.append(f"its image tower is the timm model {timm_name}, and timm is not installed "
                            "(pip install timm)")
    return problems


def preprocess_problems(preprocess_cfg: dict) -> list[str]:
    """What in a weight tag's preprocessing vlprompt's transforms do not reproduce (empty: none)."""
    resize = preprocess_cfg.get("resize_mode") or "shortest"
    if resize not in ("shortest", "squash", "longest"):
        return [f"its weights are evaluated with resize_mode {resize!r}"]
    return []


def refuse_unsupported(model: nn.Module, preprocess_cfg: dict, arch: str) -> None:
    """Refuse, by name, a built model whose features or preprocessing vlprompt would get wrong
    without a word (checkpoints and archives carry no config to check first): Hugging Face
    text towers, text pooling other than at EOT or, without a causal mask, at the last
    position, and resize modes it does not know."""
    text = model.text if hasattr(model, "text") else model
    problems = []
    if not all(hasattr(text, n) for n in ("token_embedding", "positional_embedding", "transformer")):
        problems.append(f"its text tower is {type(text).__name__} (a Hugging Face text tower), not open_clip's "
                        "TextTransformer")
    else:
        pool = getattr(text, "pool_type", getattr(model, "text_pool_type", "argmax"))
        causal = getattr(text, "attn_mask", None) is not None
        if pool not in ("argmax", "last") or (pool == "last" and causal):
            problems.append(f"its text tower pools the {pool!r} token instead of the end-of-text token")
    problems += preprocess_problems(preprocess_cfg)
    if problems:
        raise unsupported(arch, problems)


def unsupported(name: str, problems: list[str]) -> BackboneError:
    """The one-line refusal of a model family, naming what is missing."""
    return BackboneError(f"open_clip model {name} is not supported yet: {'; '.join(problems)} ({SUPPORTED})")


#: open_clip's own formats of a model with its config: a folder (`local-dir:`) and a hub
#: repository in the local Hugging Face cache (`hf-hub:`).
SCHEMAS = ("local-dir:", "hf-hub:")


def _hub_snapshot(repo: str, spec: str) -> Path:
    """The cached snapshot folder of hub repository `repo`; never goes to the network."""
    from huggingface_hub import try_to_load_from_cache  # an open_clip dependency

    found = try_to_load_from_cache(repo, "open_clip_config.json")
    if not isinstance(found, str):
        raise BackboneError(
            f"{spec} wants open_clip_config.json and the weights of {repo} from the Hugging Face hub, "
            "and they are not in the local cache (~/.cache/huggingface/hub, or $HF_HUB_CACHE); download "
            f"the repository where there is network (huggingface-cli download {repo}) and copy the cache "
            "here, or copy the repository's files into a folder and use openclip:local-dir:<folder>")
    return Path(found).parent


def load_saved_model(name: str, spec: str) -> tuple[nn.Module, dict, str]:
    """A model saved in open_clip's hub format (`open_clip_config.json` with `model_cfg` and
    `preprocess_cfg`, plus the weights file) from a folder or the hub cache: the model, the
    folder's preprocessing, and the `local-dir:` name open_clip reads it by."""
    oc = _open_clip()
    if name.startswith("hf-hub:"):
        folder = _hub_snapshot(name[len("hf-hub:"):], spec)
    else:
        folder = Path(name[len("local-dir:"):]).expanduser()
        if not folder.is_dir():
            raise BackboneError(f"{spec}: {folder} is not a folder")
        if not (folder / "open_clip_config.json").is_file():
            raise BackboneError(f"{spec}: {folder} has no open_clip_config.json (open_clip's saved format: "
                                "that config, with model_cfg and preprocess_cfg, and the weights file)")
    source = f"local-dir:{folder}"
    try:
        config = oc.get_model_config(source)
    except ValueError as exc:
        raise BackboneError(f"{spec}: {folder / 'open_clip_config.json'} is not a usable config ({exc})") from None
    problems = config_problems(config or {})
    if problems:
        raise unsupported(spec, problems)
    if not any(any(folder.glob(pattern)) for pattern in ("*.safetensors", "*.bin", "*.pth")):
        raise BackboneError(f"{spec}: {folder} holds no weights file (open_clip_model.safetensors, "
                            "open_clip_pytorch_model.bin, ...)")
    model = oc.create_model(source, device="cpu")
    return model, dict(model.visual.preprocess_cfg), source


def _tokenizer(oc, name: str, config: dict, spec: str) -> Callable:
    """open_clip's tokenizer for `name`; one that comes from the Hugging Face hub (SigLIP's,
    CLIPA's) is read from the local cache only, with a one-line error when it is not there."""
    hub_name = (config.get("text_cfg") or {}).get("hf_tokenizer_name") or (
        "SigLIP's sentencepiece vocabulary" if "siglip" in name.lower() else None)  # open_clip goes by the name
    if not hub_name:
        return oc.get_tokenizer(name)
    saved = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        return oc.get_tokenizer(name)
    except Exception as exc:  # noqa: BLE001 - transformers and the hub raise many kinds
        raise BackboneError(
            f"{spec}: its tokenizer {hub_name} is not in the local Hugging Face cache ({type(exc).__name__}); "
            f"download it where there is network (huggingface-cli download {hub_name}) and copy the cache here, "
            "or save the model with its tokenizer files in a folder and use openclip:local-dir:<folder>") from None
    finally:
        if saved is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved


def load_openclip(arch: str, weights: str | None, spec: str) -> OpenClipBackbone:
    """Build an `OpenClipBackbone` from an architecture (or config JSON) and optional weights,
    or from a saved folder or cached hub repository (`local-dir:<folder>`, `hf-hub:<id>`)."""
    oc = _open_clip()
    if arch.startswith(SCHEMAS):
        if weights:
            raise BackboneError(f"{spec}: a {arch.split(':')[0]} model takes its weights from its folder; "
                                "drop the @ part")
        model, pp, source = load_saved_model(arch, spec)
        refuse_unsupported(model, pp, arch)
        return OpenClipBackbone(model.float(), oc.get_tokenizer(source), pp, spec)
    if weights and not Path(weights).expanduser().exists() and (os.sep in weights or weights.endswith(
            (".pt", ".bin", ".safetensors", ".pth"))):
        raise BackboneError(f"checkpoint file {weights} does not exist")
    name = register_model_config(arch) if arch.endswith(".json") else arch
    config = oc.get_model_config(name) or {}
    problems = config_problems(config)
    if problems:
        raise unsupported(arch, problems)
    model, pp = build_open_clip_model(arch, weights)
    refuse_unsupported(model, pp, arch)
    tokenizer = _tokenizer(oc, name, config, spec) if oc.get_model_config(name) is not None \
        else oc.get_tokenizer("ViT-B-32")
    ctx = int((model.text if hasattr(model, "text") else model).positional_embedding.shape[0])
    if getattr(tokenizer, "context_length", ctx) != ctx:
        tokenizer.context_length = ctx
    return OpenClipBackbone(model.float(), tokenizer, pp, spec)
