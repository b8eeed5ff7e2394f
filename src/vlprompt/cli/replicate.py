"""`vlprompt replicate`: run the grids behind the papers' main claims and judge each one."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import emit, runtime_from_args
from .gridargs import ints, names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replicate", help="check the papers' main claims (holds / does not hold, with numbers)",
                       description="Runs few-shot and base-to-new grids for the methods the claims compare "
                                   "(those registered), then reports each claim as holds / does not hold / not "
                                   "checked with its numbers. Offline on the bundled tiny CLIP by default; "
                                   "rerunning reuses the stored runs.")
    p.add_argument("--out", type=Path, default=Path("replicate"), help="folder for the database and report")
    p.add_argument("--backbone", default="tiny")
    p.add_argument("--datasets", help="default: the demo's synthetic tasks")
    p.add_argument("--preset", choices=["paper", "synthetic"], help="dataset lists when --datasets is all")
    p.add_argument("--root", type=Path, help="the folder holding the benchmark datasets ($DATA)")
    p.add_argument("--shots", default="1,2,4", help="few-shot grid (default 1,2,4)")
    p.add_argument("--b2n-shots", default="4", help="base-to-new grid (default 4)")
    p.add_argument("--seeds", default="1,2", help="default 1,2")
    p.add_argument("--epochs", type=int, default=10, help="training epochs of every method (default 10)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api import StudyGrid, replicate

    grid = StudyGrid(backbone=args.backbone, datasets=names(args.datasets), shots=ints(args.shots, "--shots"),
                     b2n_shots=ints(args.b2n_shots, "--b2n-shots"), seeds=ints(args.seeds, "--seeds"),
                     epochs=args.epochs)
    result = replicate(args.out, grid, preset=args.preset, plots=not args.no_plots, runtime=runtime_from_args(args))
    lines = [f"[{c['status']}] {c['paper']}: {c['statement']} — {c['numbers']}" for c in result["claims"]]
    lines += [f"failed: {f['run']}: {f['error']}" for f in result["failed"]]
    lines.append(f"report: {result['report']}")
    emit(result, args.json, lines)
    return 1 if result["failed"] else 0
