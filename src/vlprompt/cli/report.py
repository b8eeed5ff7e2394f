"""`vlprompt report`: tables, plots and an HTML page from one or more result databases."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import emit
from .gridargs import names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="tables, plots and an HTML page from result databases",
                       description="Summarise result databases (several: shards of one grid, merged) into "
                                   "Markdown/CSV tables with mean and 95% CI over seeds, PNG/SVG plots and one "
                                   "self-contained HTML page.")
    p.add_argument("--db", default="results.db", help="results database(s), comma-separated (default results.db)")
    p.add_argument("--out", type=Path, default=Path("report"), help="output folder (default report)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument("--force", action="store_true",
                   help="write into --out even if it holds files vlprompt did not write (they may be replaced)")
    p.add_argument("--curves", action="store_true",
                   help="add the training loss and validation curves of each stored run (from its run.json "
                        "history) to the page, with their numbers in csv/curves.csv")
    p.add_argument("--print", dest="print_tables", action="store_true", help="print the Markdown tables")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api import report

    result = report(names(args.db), args.out, plots=not args.no_plots, force=args.force)
    if args.curves:
        from ..results.curves import add_curves
        from ..results.store import load_records

        result["curves"] = add_curves(args.out, load_records(names(args.db)), plots_enabled=not args.no_plots)
    lines = [Path(result["files"]["tables.md"]).read_text()] if args.print_tables else []
    lines.append(f"{result['records']} records, {result['tables']} tables, {result['figures']} figures -> "
                 f"{result['files']['index.html']}")
    if args.curves:
        c = result["curves"]
        lines.append(f"training curves of {c['runs']} run(s) ({c['figures']} figures; {c['without_history']} "
                     "runs without an epoch history)")
    emit(result, args.json, lines)
    return 0
