"""`vlprompt predict`: top-k classes with probabilities for image files and folders."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from ..errors import ConfigError, VLPromptWarning
from .common import add_skip_bad_images, emit


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a run folder written by `vlprompt train`")
    src.add_argument("--prompt", type=Path, help="a weights .safetensors with its config.json beside it")
    p.add_argument("--backbone", help="use this backbone (default: the one it was trained with)")
    p.add_argument("--device", default="auto")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files with a saved method",
                       description="Print the top-k classes and probabilities of each image.")
    p.add_argument("images", nargs="+", help="image files or folders")
    add_source_arguments(p)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    add_skip_bad_images(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api import load_method, predict

    if args.top_k < 1:
        raise ConfigError("--top-k must be at least 1")
    method = load_method(args.run or args.prompt, backbone=args.backbone, device=args.device)
    skipped: list[dict] | None = [] if args.skip_bad_images else None
    results = predict(method, args.images, top_k=args.top_k, skipped=skipped)
    if skipped:
        warnings.warn(f"left out {len(skipped)} unreadable image(s) (--skip-bad-images); first: "
                      f"{skipped[0]['reason']}", VLPromptWarning, stacklevel=1)
    lines = []
    for r in results:
        lines.append(r["path"])
        lines += [f"  {t['prob']:.3f}  {t['class']}" for t in r["top"]]
    emit({"predictions": results, **({"skipped_images": skipped} if skipped is not None else {})}, args.json, lines)
    return 0
