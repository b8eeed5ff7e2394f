"""Pretrain the bundled tiny CLIP on the synthetic captioned world.

Contrastive image-text training (CLIP's symmetric cross-entropy) plus auxiliary attribute
heads on the image features. Captions let the model lower its loss with colour and size
first and ignore shape; the auxiliary heads (shape, colour, fill, size, count, position,
background) make the image tower learn every attribute, and half of each batch comes in
pairs that differ only in shape, so only shape words tell their captions apart. The heads
are dropped afterwards: the result is an ordinary open_clip CLIP.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..backbones.openclip import load_openclip
from ..data.synthetic import world
from .config import PretrainConfig, add_arguments, command_line

log = logging.getLogger(__name__)
CONFIG_JSON = Path(__file__).resolve().parent.parent / "assets" / "tiny_clip" / "tiny_clip.json"
MAX_TOKENS = 48  # captions are short; longer ids are cut (EOT kept)


class WorldStream(IterableDataset):
    """An endless stream of (image, token ids, attribute labels) from the synthetic world."""

    def __init__(self, seed: int, transform, tokenize, pair_rate: float):
        self.seed, self.transform, self.tokenize, self.pair_rate = seed, transform, tokenize, pair_rate

    def __iter__(self):
        info = get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        banned = world.held_out_combos()
        while True:
            scene = world.sample_scene(rng, exclude=banned)
            group = [scene]
            if rng.random() < self.pair_rate:
                for _ in range(20):
                    other = world.sample_scene(rng, exclude=banned, **{
                        k: getattr(scene, k) for k in ("color", "fill", "size", "count", "position",
                                                       "background")})
                    if other.shape != scene.shape:
                        group.append(other)
                        break
            for s in group:
                ids = self.tokenize([world.caption(s, rng)])[0]
                labels = torch.tensor(list(s.as_labels().values()))
                yield self.transform(world.render(s)), ids, labels


def _zero_shot_probe(backbone, transform, n: int = 400, seed: int = 12345) -> dict[str, float]:
    """Zero-shot accuracy of shape and colour on fresh scenes (progress signal only)."""
    rng = np.random.default_rng(seed)
    scenes = [world.sample_scene(rng, count=1) for _ in range(n)]
    images = torch.stack([transform(world.render(s)) for s in scenes])
    out = {}
    with torch.no_grad():
        f = F.normalize(backbone.encode_images(images), dim=-1)
        for attr, names, tmpl in (("shape", world.SHAPES, "a photo of a {}."),
                                  ("color", list(world.COLORS), "a photo of a {} shape.")):
            t = F.normalize(backbone.encode_texts([tmpl.format(c) for c in names]), dim=-1)
            pred = (f @ t.T).argmax(-1)
            gold = torch.tensor([names.index(getattr(s, attr)) for s in scenes])
            out[attr] = float((pred == gold).float().mean())
    return out


def pretrain(cfg: PretrainConfig, out_dir: Path) -> Path:
    """Train, then write `tiny_clip.safetensors` (fp16) and its provenance into out_dir."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    backbone = load_openclip(str(CONFIG_JSON), None, "tiny-pretraining")
    model = backbone.model
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    heads = nn.ModuleDict({k: nn.Linear(backbone.embed_dim, v) for k, v in world.ATTRIBUTE_SIZES.items()})
    params = list(model.parameters()) + list(heads.parameters())
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * t))

    transform = backbone.preprocess(train=False)
    stream = WorldStream(cfg.seed, transform, backbone.tokenize, cfg.shape_pair_rate)
    loader = DataLoader(stream, batch_size=cfg.batch_size, num_workers=cfg.workers,
                        persistent_workers=cfg.workers > 0)
    log_path = out_dir / "pretrain_log.jsonl"
    log_file = log_path.open("w")
    t0 = time.time()
    bar = tqdm(total=cfg.steps, desc="pretrain tiny CLIP", file=sys.stderr, mininterval=5)
    for step, (images, ids, labels) in enumerate(loader):
        if step >= cfg.steps:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        ids = ids[:, :MAX_TOKENS]
        eot = backbone.eot_index(ids)
        eot = torch.where(eot == 0, torch.full_like(eot, MAX_TOKENS - 1), eot)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            img = backbone.encode_images(images)
            txt = backbone.encode_text_embeddings(backbone.embed_tokens(ids), eot)
        img, txt = img.float(), txt.float()
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
        target = torch.arange(len(ids))
        clip_loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        aux = {k: F.cross_entropy(h(img), labels[:, i]) for i, (k, h) in enumerate(heads.items())}
        weights = {k: cfg.shape_aux_weight if k == "shape" else cfg.aux_weight for k in aux}
        loss = clip_loss + sum(weights[k] * v for k, v in aux.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", clip=f"{clip_loss.item():.3f}")
        if step % 25 == 0 or step == cfg.steps - 1:
            rec = {"step": step, "loss": loss.item(), "clip_loss": clip_loss.item(),
                   **{f"aux_{k}": v.item() for k, v in aux.items()},
                   "lr": lr_at(step), "images_per_s": (step + 1) * cfg.batch_size / (time.time() - t0)}
            if step % cfg.eval_every == 0 or step == cfg.steps - 1:
                model.eval()
                rec.update({f"zs_{k}": v for k, v in _zero_shot_probe(backbone, transform).items()})
                model.train()
                log.info("step %d %s", step, {k: round(v, 3) for k, v in rec.items()})
            log_file.write(json.dumps(rec) + "\n")
            log_file.flush()
        if step % 500 == 0 and step:
            _save(model, out_dir / "checkpoint.safetensors", save_file)
    bar.close()
    log_file.close()
    model.eval()
    weights = out_dir / "tiny_clip.safetensors"
    _save(model, weights, save_file, half=True)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    provenance = {
        "command": command_line(cfg, out_dir),
        "config": asdict(cfg), "sha256": digest, "seconds": time.time() - t0,
        "torch": torch.__version__, "held_out_combos": sorted(map(list, world.held_out_combos())),
    }
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2))
    return weights


def _save(model: nn.Module, path: Path, save_file, half: bool = False) -> None:
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vlprompt pretrain-tiny", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = PretrainConfig(**{k: getattr(args, k) for k in asdict(PretrainConfig())})
    path = pretrain(cfg, args.out)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
