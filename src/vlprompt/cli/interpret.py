"""`vlprompt interpret`: the nearest vocabulary words of each learned context vector."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from .common import emit
from .predict import add_source_arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interpret", help="nearest words of a learned prompt's context vectors",
                       description="For each context vector, the closest token embeddings (Euclidean), "
                                   "as in the CoOp paper.")
    add_source_arguments(p)
    p.add_argument("--top", type=int, default=3, help="words per vector")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api import load_method, nearest_words

    if args.top < 1:
        raise ConfigError("--top must be at least 1")
    method = load_method(args.run or args.prompt, backbone=args.backbone, device=args.device)
    words = nearest_words(method, top=args.top)
    lines = [f"V{i + 1}: " + ", ".join(f"{w['token']} ({w['distance']:.3f})" for w in row)
             for i, row in enumerate(words)]
    emit({"method": method.name, "nearest": words}, args.json, lines)
    return 0
