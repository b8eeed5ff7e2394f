"""A Hugging Face `transformers.CLIPModel` behind the `VLBackbone` interface.

Spec: `hf:<hub id or local directory>`, e.g. `hf:openai/clip-vit-base-patch16` or
`hf:/models/clip-b16` (a directory written by `save_pretrained` holding the model, its
tokenizer and, optionally, its `preprocessor_config.json`). Hub downloads already cached in
HF_HOME are used without touching the network; with HF_HUB_OFFLINE set nothing else is tried.

The text tower is driven layer by layer here (not through `CLIPTextModel.forward`) so that
prompt learners can feed token embeddings and splice deep prompts between layers.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .base import (
    BackboneError,
    TowerInfo,
    VLBackbone,
    causal_mask,
    insert_prompt_tokens,
    replace_text_prompt_tokens,
)
from .prefix import BlockParts
from .transforms import OPENAI_MEAN, OPENAI_STD, build_transform

log = logging.getLogger(__name__)


#: PIL resampling codes as stored in `preprocessor_config.json` -> torchvision names.
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}

#: Attention implementations that take an additive float mask of shape (N, 1, L, L).
_MASKED_ATTENTION = (None, "eager", "sdpa")

_TOKENIZER_FILES = "the tokenizer (tokenizer.json, or vocab.json and merges.txt)"


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise BackboneError(
            "hf: backbones need Hugging Face transformers, which is not installed: "
            "pip install vlprompt[hf]") from exc
    return transformers


def _offline() -> bool:
    """Whether the user asked Hugging Face libraries never to use the network."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _looks_like_path(source: str) -> bool:
    """A hub id is `name` or `owner/name`; anything else can only be meant as a directory."""
    return (source.startswith(("/", ".", "~")) or "\\" in source or source.endswith("/")
            or source.count("/") > 1)


@contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """Silence transformers' logging, progress bars and warnings while loading.

    Failures are turned into one `BackboneError`; the library's own retries, bars and
    fallback warnings would only bury that message.
    """
    tf_log = transformers.utils.logging
    level = tf_log.get_verbosity()
    bars = tf_log.is_progress_bar_enabled()
    tf_log.set_verbosity_error()
    tf_log.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        tf_log.set_verbosity(level)
        if bars:
            tf_log.enable_progress_bar()


class _Stage:
    """Remembers which file was being fetched, so a failure can name it."""

    def __init__(self) -> None:
        self.wanted = "config.json"


def _find_file(transformers: Any, source: str, name: str, local_only: bool) -> str | None:
    """Local path of one file of a checkpoint (fetched if allowed), or None when absent."""
    return transformers.utils.cached_file(
        source, name, local_files_only=local_only,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False)


def _read_preprocess_config(transformers: Any, source: str, local_only: bool) -> dict:
    """`preprocessor_config.json` as a dict, or {} when the checkpoint has none."""
    path = _find_file(transformers, source, "preprocessor_config.json", local_only)
    if not path:
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _load_parts(transformers: Any, source: str, local_only: bool, stage: _Stage
                ) -> tuple[nn.Module, Any, dict]:
    """Model (fp32), tokenizer and preprocessing config of one checkpoint."""
    stage.wanted = "config.json"
    config = transformers.AutoConfig.from_pretrained(source, local_files_only=local_only)
    if getattr(config, "model_type", None) != "clip":
        raise BackboneError(
            f"hf:{source} is a {getattr(config, 'model_type', 'unknown')!r} model; the hf: "
            "backbone loads CLIPModel checkpoints (model_type 'clip') only")
    stage.wanted = "the weights (model.safetensors or pytorch_model.bin)"
    try:
        model, info = transformers.CLIPModel.from_pretrained(
            source, config=config, local_files_only=local_only, output_loading_info=True)
    except RuntimeError as exc:
        if "size mismatch" not in str(exc) and "shape" not in str(exc):
            raise
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc)[:200])
        raise BackboneError(f"the weights of hf:{source} do not fit its config.json ({first}); "
                            "the weights and config.json come from different models") from None
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
    mismatched = list(info.get("mismatched_keys", ()))
    if missing or mismatched:
        raise BackboneError(
            f"the weights of hf:{source} do not fill a CLIPModel: {len(missing)} missing "
            f"(e.g. {sorted(missing)[:3]}), {len(mismatched)} of the wrong shape; is it a "
            "CLIPVisionModel/CLIPTextModel checkpoint? Save the full CLIPModel instead")
    stage.wanted = _TOKENIZER_FILES
    # Without its files transformers 5 would quietly build a CLIPTokenizer with a 3-token
    # vocabulary; insist on the real one.
    if not any(_find_file(transformers, source, name, local_only)
               for name in ("tokenizer.json", "vocab.json")):
        raise FileNotFoundError("neither tokenizer.json nor vocab.json was found")
    tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    vocab = int(config.text_config.vocab_size)
    if len(tokenizer) > vocab:
        raise BackboneError(
            f"the tokenizer of hf:{source} has {len(tokenizer)} tokens but the text tower embeds "
            f"only {vocab}; tokenizer and model come from different checkpoints")
    stage.wanted = "preprocessor_config.json"
    pp = _read_preprocess_config(transformers, source, local_only)
    return model.float(), tokenizer, pp


def _reason(exc: Exception) -> str:
    """The exception's type and first line: enough to tell 'not cached' from 'gated'."""
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _hub_error(repo: str, wanted: str, exc: Exception, offline: bool) -> BackboneError:
    mode = " in offline mode (HF_HUB_OFFLINE)" if offline else ""
    return BackboneError(
        f"could not load the Hugging Face model {repo!r}{mode}: wanted {wanted} from "
        f"https://huggingface.co/{repo} ({_reason(exc)}). Without network access, on a "
        f"machine with it run `CLIPModel.from_pretrained('{repo}').save_pretrained(DIR)` and "
        f"`CLIPProcessor.from_pretrained('{repo}').save_pretrained(DIR)`, copy DIR here and "
        "use hf:/path/to/DIR; downloads already cached in HF_HOME are found automatically.")


def _dir_error(path: Path, wanted: str, exc: Exception) -> BackboneError:
    return BackboneError(
        f"directory {path} cannot be loaded as a Hugging Face CLIP model: {wanted} is missing "
        f"or unreadable ({_reason(exc)}). "
        "Make the directory with `CLIPModel.save_pretrained(DIR)` plus "
        "`CLIPProcessor.save_pretrained(DIR)` (tokenizer and image processor).")


class HFClipBackbone(VLBackbone):
    """A `transformers.CLIPModel`, frozen, in fp32, with its tokenizer and preprocessing."""

    def __init__(self, model: nn.Module, tokenizer: Any, preprocess_cfg: dict, spec: str):
        super().__init__()
        self.spec = spec
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._tokenizer = tokenizer
        self._pp = dict(preprocess_cfg)
        text_cfg = model.config.text_config
        eos = getattr(text_cfg, "eos_token_id", None)
        if eos is None:
            eos = getattr(tokenizer, "eos_token_id", None)
        # transformers' own rule: configs from before its PR #24773 say eos_token_id == 2
        # and pool at the highest id (the EOT token is the last entry of CLIP's vocabulary).
        self._eot_id: int | None = None if eos in (None, 2) else int(eos)
        impl = getattr(model.config, "_attn_implementation", None)
        if impl not in _MASKED_ATTENTION:
            raise BackboneError(
                f"{spec}: attention implementation {impl!r} cannot take the causal mask that "
                "prompted text encoding needs; load the model with attn_implementation='sdpa' "
                "or 'eager'")
        layer_cls = type(model.text_model.encoder.layers[0])
        # transformers < 4.5x: layer(x, attention_mask, causal_attention_mask) -> tuple.
        self._legacy_layers = "causal_attention_mask" in inspect.signature(layer_cls.forward).parameters

    # ------------------------------------------------------------------ description
    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def text_tower(self) -> TowerInfo:
        cfg = self.model.config.text_config
        return TowerInfo(width=int(cfg.hidden_size), depth=int(cfg.num_hidden_layers))

    @property
    def vision_tower(self) -> TowerInfo | None:
        cfg = self.model.config.vision_config
        return TowerInfo(width=int(cfg.hidden_size), depth=int(cfg.num_hidden_layers))

    @property
    def context_length(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()

    @property
    def image_size(self) -> int:
        """The size the vision tower's position embeddings were made for (authoritative)."""
        return int(self.model.config.vision_config.image_size)

    @property
    def image_mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        mean = self._pp.get("image_mean") or OPENAI_MEAN
        std = self._pp.get("image_std") or OPENAI_STD
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)

    def preprocess(self, train: bool = False, flip: bool = True) -> Callable:
        mean, std = self.image_mean_std
        interpolation = _RESAMPLE.get(self._pp.get("resample", 3), "bicubic")
        return build_transform(self.image_size, mean, std, train=train,
                               interpolation=interpolation, flip=flip)

    # ------------------------------------------------------------------ text side
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        texts = list(texts)
        if not texts:
            return torch.zeros(0, self.context_length, dtype=torch.long)
        enc = self._tokenizer(texts, padding="max_length", max_length=self.context_length,
                              truncation=True, return_tensors="pt")
        return enc["input_ids"].long()  # (N, context_length)

    def eot_index(self, ids: torch.Tensor) -> torch.Tensor:
        if self._eot_id is None:
            return ids.argmax(dim=-1)
        # the first EOT: padding may use the same token
        return (ids == self._eot_id).int().argmax(dim=-1)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.text_model.embeddings.token_embedding(ids.to(self.device))

    @property
    def token_embedding_table(self) -> torch.Tensor:
        return self.model.text_model.embeddings.token_embedding.weight

    def decode_token(self, token_id: int) -> str:
        token = self._tokenizer.convert_ids_to_tokens(int(token_id))
        if token is None:
            return str(token_id)
        return token.replace("</w>", "")

    def encode_text_embeddings(self, embeddings, eot_index, deep_prompts=None, truncate=True):
        text = self.model.text_model
        n, length, _ = embeddings.shape  # (N, L, W)
        if length > self.context_length:
            raise ValueError(f"{length} text tokens, but the model has {self.context_length} positions")
        eot_index = eot_index.to(embeddings.device)
        if truncate:
            length = int(eot_index.max().item()) + 1
        positions = text.embeddings.position_embedding.weight[:length]  # (L, W)
        x = embeddings[:, :length] + positions.to(embeddings.dtype)
        # (N, 1, L, L): additive; the same mask works for eager and sdpa attention
        mask = causal_mask(length, x.device, x.dtype).expand(n, 1, length, length)
        x = self._run_layers(text.encoder.layers, x, mask, deep_prompts, replace_text_prompt_tokens)
        return self._text_head(x, eot_index)

    def _text_head(self, x: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """Hidden states (N, L, W) -> projected features read at `eot_index` (N,)."""
        x = self.model.text_model.final_layer_norm(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index]  # (N, W)
        return self.model.text_projection(x)  # (N, embed_dim)

    def _block_parts(self) -> list[BlockParts] | None:
        """transformers' CLIPEncoderLayer blocks as `BlockParts`, or None for other layouts."""
        parts = []
        for layer in self.model.text_model.encoder.layers:
            attn = getattr(layer, "self_attn", None)
            if not all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "out_proj", "num_heads")) \
                    or not all(hasattr(layer, n) for n in ("layer_norm1", "layer_norm2", "mlp")) \
                    or (getattr(attn, "dropout", 0.0) and self.training):
                return None
            parts.append(BlockParts(
                ln_1=layer.layer_norm1, heads=int(attn.num_heads), ln_2=layer.layer_norm2, mlp=layer.mlp,
                qkv=lambda x, a=attn: torch.cat([a.q_proj(x), a.k_proj(x), a.v_proj(x)], dim=-1),
                out_proj=attn.out_proj))
        return parts

    def _text_positions(self) -> torch.Tensor:
        return self.model.text_model.embeddings.position_embedding.weight

    def _run_layers(self, layers: nn.ModuleList, x: torch.Tensor, mask: torch.Tensor | None,
                    deep: Sequence[torch.Tensor] | None, splice: Callable) -> torch.Tensor:
        """Run (N, L, W) through the encoder layers, splicing deep prompts before layer i >= 1."""
        for i, layer in enumerate(layers):
            if deep is not None and 1 <= i <= len(deep):
                x = splice(x, deep[i - 1])
            out = layer(x, None, mask) if self._legacy_layers else layer(x, mask)
            x = out[0] if isinstance(out, tuple) else out
        return x

    # ------------------------------------------------------------------ image side
    def encode_images(self, images, visual_prompts=None, deep_visual_prompts=None):
        if visual_prompts is None and deep_visual_prompts is None:
            out = self.model.get_image_features(pixel_values=images)
            # transformers 5 returns a ModelOutput whose pooler_output is projected; 4.x a tensor
            return out if isinstance(out, torch.Tensor) else out.pooler_output
        self.require_vit("visual prompts")
        if visual_prompts is None:
            raise ValueError("deep visual prompts need first-layer prompts too")
        vision = self.model.vision_model
        x = vision.embeddings(images)  # (B, 1+g*g, W): class + patches, positions added
        x = insert_prompt_tokens(x, visual_prompts)  # (B, 1+n+g*g, W)
        n = visual_prompts.shape[-2]
        x = vision.pre_layrnorm(x)

        def splice(tokens: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
            return insert_prompt_tokens(tokens, prompts, replace=n)

        x = self._run_layers(vision.encoder.layers, x, None, deep_visual_prompts, splice)
        pooled = vision.post_layernorm(x[:, 0])  # (B, W)
        return self.model.visual_projection(pooled)  # (B, embed_dim)


def load_hf_clip(source: str, spec: str | None = None) -> HFClipBackbone:
    """Build an `HFClipBackbone` from a hub id or a `save_pretrained` directory.

    Everything is tried from local files first (a directory, or the HF cache), so a cached
    model loads without network; the hub is asked only when that fails and HF_HUB_OFFLINE
    is not set. Any failure becomes one `BackboneError` naming the missing file.
    """
    source = source.strip()
    spec = spec or f"hf:{source}"
    path = Path(source).expanduser()
    if path.exists() and not path.is_dir():
        raise BackboneError(
            f"{source} is a file; hf: wants a directory written by `save_pretrained` or a hub id "
            "(for a single checkpoint file use openclip:<arch>@<file>)")
    if not path.is_dir() and _looks_like_path(source):
        raise BackboneError(
            f"directory {source} does not exist; hf: wants a directory written by "
            "`CLIPModel.save_pretrained` and `CLIPProcessor.save_pretrained`, or a hub id "
            "such as openai/clip-vit-base-patch16")
    transformers = _transformers()
    stage = _Stage()
    if path.is_dir():
        try:
            with _quiet(transformers):
                model, tokenizer, pp = _load_parts(transformers, str(path), True, stage)
        except BackboneError:
            raise
        except Exception as exc:  # noqa: BLE001 - loaders fail with many types
            raise _dir_error(path, stage.wanted, exc) from None
        if not pp:
            log.info("%s has no preprocessor_config.json; using OpenAI's mean/std", path)
        return HFClipBackbone(model, tokenizer, pp, spec)
    offline = _offline()
    error: Exception | None = None
    for local_only in ((True,) if offline else (True, False)):
        try:
            with _quiet(transformers):
                model, tokenizer, pp = _load_parts(transformers, source, local_only, stage)
        except BackboneError:
            raise
        except Exception as exc:  # noqa: BLE001 - network failures come in many types
            error = exc
            continue
        if not pp:
            log.info("hf:%s has no preprocessor_config.json; using OpenAI's mean/std", source)
        return HFClipBackbone(model, tokenizer, pp, spec)
    assert error is not None
    raise _hub_error(source, stage.wanted, error, offline) from None
