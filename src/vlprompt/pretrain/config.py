"""The options of `vlprompt pretrain-tiny`, apart from the training code so that the CLI's
help does not load torch."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields
from pathlib import Path

HELP = {
    "steps": "optimiser steps", "batch_size": "captioned scenes per step", "lr": "AdamW learning rate",
    "weight_decay": "AdamW weight decay", "warmup": "linear warm-up steps",
    "aux_weight": "weight of the auxiliary attribute heads' loss",
    "shape_aux_weight": "extra weight of the shape head (captions let the model skip shape)",
    "shape_pair_rate": "share of batches made of scene pairs that differ only in shape",
    "seed": "seed of the world stream and the initial weights", "workers": "DataLoader worker processes",
    "threads": "torch CPU threads", "bf16": "bf16 autocast (about 15x slower than fp32 on these CPUs)",
    "eval_every": "steps between zero-shot probes",
}


@dataclass
class PretrainConfig:
    steps: int = 1600
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 100
    aux_weight: float = 1.0
    shape_aux_weight: float = 3.0  # shape is the attribute captions let the model skip
    shape_pair_rate: float = 0.5
    seed: int = 0
    workers: int = 1
    threads: int = 2
    bf16: bool = False  # bf16 autocast is ~15x slower than fp32 on these CPUs (measured)
    eval_every: int = 200


def command_line(cfg: PretrainConfig, out_dir: Path) -> str:
    """The `vlprompt pretrain-tiny` command that reproduces `cfg` (options that differ from the
    defaults), whether pretraining was started from the command line or from Python."""
    defaults = asdict(PretrainConfig())
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in asdict(cfg).items() if v != defaults[k]]
    return " ".join(["vlprompt pretrain-tiny", *flags, f"--out {out_dir}"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for field in fields(PretrainConfig):
        default = field.default
        kind = type(default)
        text = f"{HELP[field.name]} (default {default})"
        if kind is bool:
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=lambda s: s.lower() in ("1", "true", "yes"),
                                default=default, help=text)
        else:
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=default, help=text)
    parser.add_argument("--out", type=Path, default=Path("pretrain_runs/tiny"),
                        help="output folder (default pretrain_runs/tiny)")
