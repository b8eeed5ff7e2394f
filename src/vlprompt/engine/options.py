"""Training options shared by every method (the `train` section of a run's config).

Defaults are the reference implementations' shared settings (docs/methods.md); a method's
preset (`methods/presets.py`, by protocol, dataset and shots) overrides some of them, and `--set train.key=value`
overrides anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import option
from ..errors import ConfigError


@dataclass
class TrainConfig:
    """How to train; see `vlprompt list methods --options` for every field's help."""

    epochs: int = option(50, "training epochs (the method's preset sets it from the shot count)",
                         "CoOp paper Sec. 4.1 (each method's preset sets it)")
    batch_size: int = option(32, "training batch size",
                             "Dassl configs used by every reference (batch 32)")
    lr: float = option(0.002, "base learning rate",
                       "CoOp configs/trainers/CoOp/*.yaml (OPTIM.LR 0.002)")
    optimizer: Literal["sgd", "adam", "adamw"] = option(
        "sgd", "sgd (momentum, as the papers), adam (weight decay as an L2 term, Dassl's 'adam') or adamw",
        "Dassl configs of every reference (OPTIM.NAME sgd)")
    adam_eps: float = option(1e-8, "epsilon of adam and adamw",
                             "torch.optim.Adam/AdamW default (Tip-Adapter-F's preset sets 1e-4)")
    momentum: float = option(0.9, "SGD momentum",
                             "Dassl dassl/config/defaults.py (MOMENTUM 0.9)")
    weight_decay: float = option(5e-4, "weight decay",
                                 "Dassl dassl/config/defaults.py (WEIGHT_DECAY 5e-4)")
    schedule: Literal["cosine", "constant"] = option("cosine", "learning-rate schedule after warm-up",
                                                     "reference configs (LR_SCHEDULER cosine)")
    warmup_epochs: int = option(1, "epochs at the constant warm-up learning rate",
                                "reference configs (WARMUP_EPOCH 1)")
    warmup_lr: float = option(1e-5, "the constant warm-up learning rate",
                              "reference configs (WARMUP_CONS_LR 1e-5)")
    grad_clip: float = option(0.0, "clip the gradient norm to this value (0: off)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto", "autocast dtype; auto: bf16 on GPUs that run it, else fp16 with a loss scaler; fp32 on "
                "CPUs (CPU autocast is slower here)")
    feature_precision: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "auto", "dtype the frozen image features (cached views, evaluation splits) are encoded in; they are "
                "stored in fp32. auto: bf16 on GPUs that run it, and on CPUs with native bf16 (AVX-512 BF16 "
                "or AMX) for backbones over 20M parameters; fp32 otherwise. fp16 needs a GPU",
        "vlprompt docs/performance.md (bf16 vs fp32 features and accuracy, measured)")
    augment: bool = option(True, "random resized crop + flip on training images, where the dataset "
                                 "allows it (the synthetic suite does not)",
                           "reference configs (random_resized_crop, random_flip)")
    views: int = option(10, "augmented views per image kept in the feature cache",
                        "vlprompt benchmarks/cache_views.py (10 cached views)")
    cache_features: bool = option(True, "cache frozen image features on disk (methods that allow it)")
    eval_every: int = option(0, "evaluate on the few-shot val split every N epochs (0: never)")
    select: Literal["last", "val"] = option("last", "model selection: last epoch, or best few-shot val",
                                            "reference trainers (the last epoch's model is evaluated)")
    eval_batch_size: int = option(128, "batch size for encoding and evaluation")
    drop_last: bool = option(True, "drop the last incomplete batch when there are enough images")

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "views", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1")
        for name in ("lr", "warmup_lr", "adam_eps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive")
        if self.warmup_epochs < 0 or self.grad_clip < 0 or self.eval_every < 0 or self.weight_decay < 0:
            raise ConfigError("train.warmup_epochs, grad_clip, eval_every, weight_decay must be >= 0")


@dataclass
class DataConfig:
    """How the run's data is taken (the `data` section of a run's config: `--set data.key=value`,
    a `--config` file's `data:`, or the API's `config={"data": {...}}`)."""

    strict_shots: bool = option(False, "fail when a class has fewer training images than the shots "
                                       "asked for (default: take all it has, and warn)")
    skip_bad_images: bool = option(False, "leave out unreadable images, with a warning and a list in "
                                          "the run record (default: stop at the first one)")
    validation: Literal["fewshot", "none", "full"] = option(
        "fewshot", "data for model selection and hyper-parameter search: fewshot (min(K, 4) images per class "
                   "of the val split), none (no validation data: every method keeps its fixed defaults, as a "
                   "few-shot user must) or full (the whole val split, as some papers searched)",
        "CoOp's few-shot val split (min(K, 4) per class); CLAP paper Sec. 3 (no validation set, the "
        "realistic setting); Tip-Adapter and LP++ searched on the full val split")
