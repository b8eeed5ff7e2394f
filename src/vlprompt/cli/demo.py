"""`vlprompt demo`: few-shot and base-to-new grids, analyses and the report, offline, in minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .common import emit, runtime_from_args
from .gridargs import ints, names


def _csv(values) -> str:
    return ",".join(map(str, values))


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..studies.demo import (
        DEMO_B2N_SHOTS,
        DEMO_DATASETS,
        DEMO_EPOCHS,
        DEMO_METHODS,
        DEMO_SEEDS,
        DEMO_SHOTS,
    )

    p = sub.add_parser("demo", help="run small few-shot and base-to-new grids offline and write the report",
                       description="The whole pipeline on the bundled tiny CLIP and the synthetic suite: a "
                                   "few-shot grid and a base-to-new grid for the available methods, analyses, "
                                   "printed tables and an HTML report. Rerunning reuses the stored runs.")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for demo.db, demo-runs/ and report/ (default .)")
    p.add_argument("--backbone", default="tiny", help="default: the bundled tiny CLIP; any backbone spec works")
    p.add_argument("--datasets", help=f"default {_csv(DEMO_DATASETS)}")
    p.add_argument("--methods", help=f"for both grids (default few-shot: {', '.join(DEMO_METHODS['fewshot'])}; "
                                     f"base-to-new: {', '.join(DEMO_METHODS['base2new'])})")
    p.add_argument("--shots", help=f"few-shot grid (default {_csv(DEMO_SHOTS)})")
    p.add_argument("--b2n-shots", help=f"base-to-new grid (default {_csv(DEMO_B2N_SHOTS)})")
    p.add_argument("--seeds", help=f"default {_csv(DEMO_SEEDS)}")
    p.add_argument("--epochs", type=int, help=f"training epochs of every method (default {DEMO_EPOCHS})")
    p.add_argument("--no-analyses", action="store_true", help="skip variance, nearest words, projection")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api import StudyGrid, demo

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError("--epochs must be at least 1")
    grid = StudyGrid(backbone=args.backbone, datasets=names(args.datasets), methods=names(args.methods),
                     shots=ints(args.shots, "--shots"), b2n_shots=ints(args.b2n_shots, "--b2n-shots"),
                     seeds=ints(args.seeds, "--seeds"), epochs=args.epochs)
    result = demo(args.out, grid, analyses=not args.no_analyses,
                  plots=not args.no_plots, runtime=runtime_from_args(args),
                  threads=None)  # --threads is applied by main (common.prepare_runtime)
    emit(result, args.json, [])
    return 1 if result["failed"] else 0
