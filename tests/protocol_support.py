"""Helpers for the protocol and results tests: a tiny backbone with fixed weights, records."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def fixed_backbone(folder: Path, config_path: str) -> str:
    """A spec for the tiny test ViT with weights saved to a file: the checkpoint path users
    take (random-weight specs are the same in every process too, see RANDOM_INIT_SEED)."""
    from vlprompt.backbones import load_backbone

    weights = folder / "tiny-vit.safetensors"
    if not weights.exists():
        torch.manual_seed(0)
        bb = load_backbone(f"openclip:{config_path}")
        save_file({k: v.contiguous() for k, v in bb.model.state_dict().items()}, str(weights))
    return f"openclip:{config_path}@{weights}"


def record(run_hash: str, target: str, **fields) -> dict:
    """A minimal valid store record."""
    base = {"run_hash": run_hash, "target": target, "protocol": "fewshot", "method": "coop", "backbone": "bb",
            "dataset": "d1", "shots": 1, "seed": 1, "top1": 0.5, "config": {"train": {"epochs": 1}}}
    return {**base, **fields}
