"""`vlprompt zeroshot`: classify a dataset's images with hand-crafted prompts."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .common import (
    accuracy_line,
    add_data_arguments,
    add_runtime_arguments,
    add_skip_bad_images,
    dataset_from_args,
    emit,
    runtime_from_args,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zeroshot", help="zero-shot classification with prompts",
                       description="Zero-shot CLIP: accuracy of hand-crafted (or ensembled) prompts.")
    p.add_argument("--backbone", default="tiny", help="tiny, openclip:<arch>[@<tag|file>], hf:<id|dir>")
    add_data_arguments(p)
    tmpl = p.add_mutually_exclusive_group()
    tmpl.add_argument("--template", help="one template with {} for the class name")
    tmpl.add_argument("--ensemble", help="imagenet80, select7, dataset, or a '+' join (dataset+select7)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    p.add_argument("--out", type=Path, help="also write the result JSON to this file")
    add_runtime_arguments(p)
    add_skip_bad_images(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api import zeroshot_evaluate
    from ..utils.io import atomic_write_json

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    dataset = dataset_from_args(args)
    result = zeroshot_evaluate(args.backbone, dataset, templates=args.template, ensemble=args.ensemble,
                               split=args.split, batch_size=args.batch_size,
                               skip_bad_images=args.skip_bad_images, runtime=runtime_from_args(args))
    lines = [f"dataset {result['dataset']} ({result['n_classes']} classes, {result['n_images']} images, "
             f"split {args.split})",
             f"backbone {result['backbone']}, {len(result['templates'])} template(s)",
             accuracy_line(result, result["n_classes"])]
    emit(result, args.json, lines)  # printed first: a failed write below does not lose the result
    if args.out:
        atomic_write_json(args.out, result)
    return 0
