"""`vlprompt pretrain-tiny`: rebuild the bundled tiny CLIP from its seed."""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..pretrain.config import add_arguments

    p = sub.add_parser("pretrain-tiny", help="pretrain the bundled tiny CLIP on the synthetic world",
                       description="Contrastive pretraining of the tiny CLIP (see docs/tiny-clip.md).")
    add_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..pretrain.tiny import PretrainConfig, pretrain

    logging.getLogger("vlprompt").setLevel(logging.INFO)
    cfg = PretrainConfig(**{k: getattr(args, k) for k in asdict(PretrainConfig())})
    print(pretrain(cfg, args.out))
    return 0
