"""One training loop for every method.

The method's spec decides the path: no fit (zero-shot baselines), a closed-form fit on
cached features (linear probe), or SGD/AdamW with the papers' schedule. Methods whose image
features are frozen train on cached features (V augmented views per image, one drawn per
image and epoch; one unaugmented view with augmentation off); the others read images.
Both paths draw the same batch order from (seed, epoch), so with augmentation off they
produce the same losses. After every epoch a checkpoint is written for `--resume`.

A non-finite loss, or weights that become non-finite, stop the run with a
`NumericalError` naming the epoch and step before anything is written, so the checkpoint
on disk stays the last good one. With fp16 the loss scaler skips the steps whose
gradients overflow and lowers its scale; its state is checkpointed with the rest.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.types import Item
from ..errors import ConfigError, NumericalError
from ..methods.base import Batch, Method
from ..utils.runtime import check_loggers
from .checkpoint import (
    config_hash,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
)
from .data import epoch_batches, epoch_generator, image_loader, mix_seed
from .evaluation import Distribute, evaluate_method
from .feature_cache import FeatureCache, feature_dtype_for
from .loggers import open_loggers
from .options import TrainConfig
from .schedule import build_optimizer, lr_at, set_lr

log = logging.getLogger(__name__)
#: Augmented views in the cache are a fixed sample (seed 0), shared by all runs and seeds.
VIEW_SEED = 0


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    selected_epoch: int | None = None
    info: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    resumed_from: int | None = None


def amp_dtype_for(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype. `auto`: bf16 on GPUs that run it, fp16 (with a loss scaler) on
    older ones, none (fp32) on CPUs, where autocast is slower here."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError("train.precision=fp16 needs a GPU (fp16 matmuls crawl on CPUs); use fp32 or bf16")
        return torch.float16
    return torch.bfloat16


class Trainer:
    """Fits a method on few-shot items; see the module docstring."""

    def __init__(self, method: Method, cfg: TrainConfig, *, seed: int, out_dir: str | Path | None = None,
                 cache: FeatureCache | None = None, workers: int = 0, flip: bool = True,
                 augment: bool = True, progress: bool = True, run_config: dict | None = None,
                 loggers: Sequence[str] = (), on_epoch: Callable[[dict], None] | None = None):
        self.method = method
        self.cfg = cfg
        self.seed = seed
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.workers = workers
        self.flip = flip
        self.augment = cfg.augment and augment  # `augment`: the data allows it (DatasetSplits.augment_ok)
        self.progress = progress
        self.device = method.backbone.device
        self.amp_dtype = amp_dtype_for(cfg.precision, self.device)
        #: the dtype frozen image features are encoded in (None: fp32); stored in fp32 either way
        self.feature_dtype = feature_dtype_for(cfg.feature_precision, method.backbone)
        use_cache = cfg.cache_features and method.spec.frozen_image_features
        self.cache = cache if cache is not None else FeatureCache(enabled=use_cache)
        self.use_features = method.spec.frozen_image_features
        self.run_config = run_config or {}
        self.batch_fraction = 1.0
        # Mirrors of the history (engine/loggers.py) and a caller's hook: each epoch's row as appended.
        self.loggers, self.on_epoch, self._open = check_loggers(loggers), on_epoch, []

    # ------------------------------------------------------------------ features
    def train_features(self, items: Sequence[Item], epochs: int | None = None) -> torch.Tensor:
        """(V, N, D): V augmented views, or one unaugmented view. A run of E epochs draws one
        view per image and epoch, so it never reads more than E of them: with `epochs`, only
        min(V, E) views are encoded (the cache keeps the same view files either way)."""
        bb = self.method.backbone
        kw = dict(batch_size=self.cfg.eval_batch_size, workers=self.workers, amp_dtype=self.feature_dtype,
                  progress=self.progress)
        if self.augment:
            n_views = self.cfg.views if epochs is None else max(1, min(self.cfg.views, epochs))
            return self.cache.views(bb, items, bb.preprocess(train=True, flip=self.flip), n_views,
                                    aug_seed=VIEW_SEED, **kw)
        return self.cache.features(bb, items, bb.preprocess(train=False), **kw)[None]

    def eval_features(self, items: Sequence[Item]) -> torch.Tensor | None:
        if not self.use_features:
            return None
        bb = self.method.backbone
        return self.cache.features(bb, items, bb.preprocess(train=False), batch_size=self.cfg.eval_batch_size,
                                   workers=self.workers, amp_dtype=self.feature_dtype, progress=self.progress)

    def evaluate(self, items: Sequence[Item], desc: str = "evaluate",
                 class_subset: Sequence[int] | None = None) -> dict:
        return evaluate_method(self.method, items, features=self.eval_features(items),
                               batch_size=self.cfg.eval_batch_size, workers=self.workers,
                               amp_dtype=self.amp_dtype, progress=self.progress, desc=desc,
                               class_subset=class_subset, distribute=self.distribute_evaluation())

    def distribute_evaluation(self) -> Distribute | None:
        """How evaluation on images is shared between processes; None: this process does it all."""
        return None

    # ------------------------------------------------------------------ fitting
    def fit(self, train: Sequence[Item], val: Sequence[Item] = (), resume: bool = False) -> FitResult:
        kind = self.method.spec.fit
        if kind == "none":
            return FitResult()
        if not train:
            raise ConfigError("the training split is empty")
        if kind == "closed-form":
            return self._fit_closed_form(train, val)
        return self._fit_sgd(train, val, resume)

    def _fit_closed_form(self, train: Sequence[Item], val: Sequence[Item]) -> FitResult:
        t0 = time.perf_counter()
        x = self.train_features(train)  # (V, N, D)
        y = torch.tensor([it.label for it in train])
        prepared = self._prepare_fit(train, x, y)
        x, y = x.flatten(0, 1), y.repeat(x.shape[0])
        v = (self.eval_features(val), torch.tensor([it.label for it in val])) if val else None
        t1 = time.perf_counter()
        info = {**prepared, **self.method.fit_closed_form((x, y), v)}
        return FitResult(info=info, seconds={"features": t1 - t0, "fit": time.perf_counter() - t1})

    def _batches(self, train: Sequence[Item], feats: torch.Tensor | None, labels: torch.Tensor,
                 epoch: int) -> Iterator[Batch]:
        g = epoch_generator(self.seed, epoch)
        batches, fractions = self._split(epoch_batches(len(train), self.cfg.batch_size, g, self.cfg.drop_last))
        if feats is not None:
            views = feats.shape[0]
            pick = torch.randint(views, (len(train),), generator=g) if views > 1 else torch.zeros(
                len(train), dtype=torch.long)
            for b, fraction in zip(batches, fractions, strict=True):
                self.batch_fraction = fraction
                yield Batch(labels=labels[b], features=feats[pick[b], b])
            return
        bb = self.method.backbone
        transform = bb.preprocess(train=self.augment, flip=self.flip)
        seed = mix_seed(self.seed, epoch) if self.augment else None  # image i: seed (seed, i), whoever loads it
        loader = image_loader(train, transform, seed=seed, batches=batches, workers=self.workers,
                              device=self.device)
        for (images, y, _), fraction in zip(loader, fractions, strict=True):
            self.batch_fraction = fraction
            yield Batch(labels=y, images=images)

    def _prepare_fit(self, train: Sequence[Item], feats: torch.Tensor | None, labels: torch.Tensor) -> dict:
        """Hand the support set's features to a method that builds state from them
        (`Method.prepare_fit`); encodes them here only for such a method when none are cached."""
        if not self.method.prepares_fit():
            return {}
        if feats is None:
            feats = self.train_features(train, epochs=self.cfg.epochs)
        return self.method.prepare_fit(feats.to(self.device), labels.to(self.device)) or {}

    def _split(self, batches: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[float]]:
        """The examples of each batch this process computes, and their fraction of the batch
        (`batch_fraction` while it trains on it): all of them here; a distributed rank's share."""
        return batches, [1.0] * len(batches)

    def _fit_sgd(self, train: Sequence[Item], val: Sequence[Item], resume: bool) -> FitResult:
        cfg, method = self.cfg, self.method
        if cfg.select == "val" and not val:
            raise ConfigError("train.select=val needs a validation split; it is empty")
        result = FitResult()
        t0 = time.perf_counter()
        feats = self.train_features(train, epochs=cfg.epochs) if self.use_features and cfg.cache_features else None
        labels = torch.tensor([it.label for it in train])
        # before the optimiser (it may create the learned tensors) and before a resume's checkpoint
        result.info.update(self._prepare_fit(train, feats, labels))
        result.seconds["features"] = time.perf_counter() - t0
        params = method.trainable_parameters()
        if not params:
            raise ConfigError(f"method {method.name} has nothing to train")
        optimizer = build_optimizer(params, cfg)
        scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None
        best: tuple[float, dict] | None = None
        start = 0
        ckpt_dir = self.out_dir / "checkpoint" if self.out_dir is not None else None
        identity = {**self.run_config, "classnames": list(method.classnames)}
        chash = config_hash(identity)
        if resume and ckpt_dir is not None:
            loaded = load_checkpoint(ckpt_dir, chash, identity)
            if loaded is not None:
                tensors, meta = loaded
                if scaler is not None and meta.get("scaler"):
                    scaler.load_state_dict(meta["scaler"])
                method.load_learned({k[len("learned."):]: v.to(self.device) for k, v in tensors.items()
                                     if k.startswith("learned.")})
                optimizer_from_flat(optimizer, tensors, meta["optimizer"])
                for name, gen in self._method_generators().items():
                    if f"rng.{name}" in tensors:
                        gen.set_state(tensors[f"rng.{name}"])
                result.history = meta["history"]
                start = meta["epoch"] + 1
                result.resumed_from = meta["epoch"]
                if meta.get("best_score") is not None:
                    best = (meta["best_score"], {k[len("best."):]: v for k, v in tensors.items()
                                                 if k.startswith("best.")})
                    result.selected_epoch = meta.get("best_epoch")
                log.info("resuming after epoch %d", meta["epoch"] + 1)
        t_train = time.perf_counter()
        self._open = open_loggers(self.loggers, self.out_dir, self.run_config) if self._logs_here() else []
        bar = tqdm(total=cfg.epochs, initial=start, desc=f"train {method.name}", disable=not self.progress,
                   file=sys.stderr, unit="epoch")
        for epoch in range(start, cfg.epochs):
            with self._epoch_rng(epoch):
                record = self._epoch(epoch, train, feats, labels, optimizer, scaler)
            method.end_epoch(epoch, cfg.epochs)  # before validation and the checkpoint (GPA)
            due = bool(cfg.eval_every) and (epoch + 1) % cfg.eval_every == 0
            selecting = cfg.select == "val" and (not cfg.eval_every or epoch == cfg.epochs - 1)
            if val and (due or selecting):
                metrics = self.evaluate(val, desc="val")
                record["val_top1"] = metrics["top1"]
                if cfg.select == "val" and (best is None or metrics["top1"] > best[0]):
                    # copies: on the CPU learned_state() shares the live parameters' memory
                    best = (metrics["top1"], {k: v.clone() for k, v in method.learned_state().items()})
                    result.selected_epoch = epoch
            result.history.append(record)
            self._epoch_done(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['acc']:.3f}",
                            **({"val": f"{record['val_top1']:.3f}"} if "val_top1" in record else {}))
            if ckpt_dir is not None:
                self._save_checkpoint(ckpt_dir, chash, identity, epoch, optimizer, scaler, result, best)
        bar.close()
        for logger in self._open:
            logger.close()
        if cfg.select == "val" and best is not None:
            method.load_learned({k: v.to(self.device) for k, v in best[1].items()})
        elif cfg.select == "last":
            result.selected_epoch = cfg.epochs - 1
        if method.finishes_fit():  # e.g. Tip-Adapter-F's alpha/beta search
            val_feats = self.eval_features(val) if val else None
            result.info.update(method.finish_fit(
                None if val_feats is None else (val_feats, torch.tensor([it.label for it in val]))))
        result.seconds["train"] = time.perf_counter() - t_train
        return result

    def _epoch(self, epoch: int, train: Sequence[Item], feats: torch.Tensor | None, labels: torch.Tensor,
               optimizer: torch.optim.Optimizer, scaler) -> dict:
        cfg, method = self.cfg, self.method
        lr = lr_at(epoch, cfg)
        set_lr(optimizer, lr)
        method.train()
        params = method.trainable_parameters()
        t0 = time.perf_counter()
        total, correct, loss_sum, parts_sum, steps = 0, 0, 0.0, {}, 0
        autocast = (torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
                    if self.amp_dtype is not None else nullcontext())
        for step, batch in enumerate(self._batches(train, feats, labels, epoch)):
            batch = batch.to(self.device)
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                out = method.training_step(batch)
            loss_value = float(out.loss.detach())
            if not math.isfinite(loss_value):
                self._diverged(f"the loss is {loss_value}", epoch, step)
            method.backward(out, scaler.scale if scaler is not None else (lambda x: x))
            if scaler is not None:
                scaler.unscale_(optimizer)
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if not all(bool(torch.isfinite(p).all()) for p in params):
                self._diverged("the weights became non-finite after the update", epoch, step)
            n = len(batch.labels)
            total += n
            steps += 1
            loss_sum += loss_value * n
            correct += int((out.logits.detach().argmax(-1) == batch.labels).sum())
            for k, v in out.parts.items():
                if k != "loss":
                    parts_sum[k] = parts_sum.get(k, 0.0) + float(v.detach()) * n
        total = max(total, 1)
        return {"epoch": epoch, "lr": lr, "steps": steps, "loss": loss_sum / total, "acc": correct / total,
                **{k: v / total for k, v in parts_sum.items()}, "seconds": time.perf_counter() - t0}

    def _epoch_done(self, row: dict) -> None:
        """Hand the epoch's history row to the loggers and the caller's hook (they only read it)."""
        for logger in self._open:
            logger.log(row)
        if self.on_epoch is not None:
            self.on_epoch(dict(row))

    def _logs_here(self) -> bool:
        """Whether this process writes the curves (one of several distributed ranks does)."""
        return True

    @contextmanager
    def _epoch_rng(self, epoch: int) -> Iterator[None]:
        """Torch's global generators seeded from (seed, epoch) for one epoch, then restored.

        Why: dropout and anything else drawing from the global generator then depends on the
        run's seed and the epoch only, so a resumed run draws what the uninterrupted one drew.
        """
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(mix_seed(self.seed, epoch, 0xD20))
            yield

    def _method_generators(self) -> dict[str, torch.Generator]:
        """Generators a method keeps for its own sampling (e.g. variational noise); checkpointed."""
        return {k: v for k, v in vars(self.method).items() if isinstance(v, torch.Generator)}

    def _diverged(self, what: str, epoch: int, step: int):
        """Stop a diverged run; the checkpoint on disk (if any) is the last good epoch's."""
        kept = ""
        if self.out_dir is not None and epoch > 0:
            kept = f"; the checkpoint of epoch {epoch} (the last good one) is kept in {self.out_dir / 'checkpoint'}"
        raise NumericalError(
            f"training stopped: {what} at epoch {epoch + 1}, step {step + 1}{kept}. Lower train.lr, set "
            "train.grad_clip, or use train.precision=fp32")

    def _save_checkpoint(self, ckpt_dir: Path, chash: str, identity: dict, epoch: int,
                         optimizer: torch.optim.Optimizer, scaler, result: FitResult,
                         best: tuple[float, dict] | None) -> None:
        tensors = {f"learned.{k}": v for k, v in self.method.learned_state().items()}
        opt_tensors, opt_meta = optimizer_to_flat(optimizer)
        tensors.update(opt_tensors)
        tensors.update({f"rng.{name}": gen.get_state() for name, gen in self._method_generators().items()})
        if best is not None:
            tensors.update({f"best.{k}": v.cpu() for k, v in best[1].items()})
        save_checkpoint(ckpt_dir, tensors=tensors, meta={
            "epoch": epoch, "config_hash": chash, "identity": identity, "history": result.history,
            "optimizer": opt_meta, "scaler": scaler.state_dict() if scaler is not None else None,
            "best_score": best[0] if best is not None else None, "best_epoch": result.selected_epoch})
