"""`vlprompt eval`: test accuracy of a finished run or of a saved prompt file."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import accuracy_line, add_skip_bad_images, emit, runtime_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a finished run or a saved prompt",
                       description="Recompute the test accuracy of a run folder (--run), or evaluate a "
                                   "prompt file on a dataset (--prompt FILE --backbone B --dataset D).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a run folder written by `vlprompt train`")
    src.add_argument("--prompt", type=Path, help="a weights .safetensors with its config.json beside it")
    p.add_argument("--backbone", help="evaluate on this backbone (default: the one it was trained with)")
    p.add_argument("--dataset", help="evaluate on this dataset (default: the run's own)")
    p.add_argument("--root", type=Path, help="the folder holding the benchmark datasets")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_skip_bad_images(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api import evaluate_run

    result = evaluate_run(args.run or args.prompt, dataset=args.dataset, backbone=args.backbone,
                          skip_bad_images=args.skip_bad_images, runtime=runtime_from_args(args))
    lines = [f"{result['method']} on {result['dataset']}: test {accuracy_line(result, result.get('n_classes'))} "
             f"({result['n_images']} images)"]
    emit(result, args.json, lines)
    return 0
