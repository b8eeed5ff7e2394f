"""`vlprompt export`: a saved method's classifier as a plain K x D weight file."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import emit
from .predict import add_source_arguments


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the classifier weights (K x D) for use with open_clip alone",
                       description="Export the class weights of a text classifier (zero-shot, CoOp, "
                                   "ProGrad, KgCoOp, classifier-ft, linear probe); see docs/export.md.")
    add_source_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api import export_classifier, load_method

    method = load_method(args.run or args.prompt, backbone=args.backbone, device=args.device)
    result = export_classifier(method, args.out)
    emit(result, args.json, [f"wrote {result['path']} ({' x '.join(map(str, result['shape']))})"])
    return 0
