"""`vlprompt results merge|export|failures`: maintenance of result databases."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="merge shard databases, export records, list failed runs")
    rsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    m = rsub.add_parser("merge", help="copy the records of shard databases into one")
    m.add_argument("--into", type=Path, required=True, help="the database to merge into (created if missing)")
    m.add_argument("sources", nargs="+", type=Path, help="shard databases")
    m.set_defaults(handler=run_merge)
    e = rsub.add_parser("export", help="write every record as CSV and/or JSON")
    e.add_argument("--db", type=Path, required=True)
    e.add_argument("--csv", type=Path)
    e.add_argument("--json-out", type=Path, help="JSON file to write")
    e.set_defaults(handler=run_export)
    f = rsub.add_parser("failures", help="runs that failed (they are retried on the next `run`)")
    f.add_argument("--db", type=Path, required=True)
    f.set_defaults(handler=run_failures)
    for q in (m, e, f):
        q.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def run_merge(args: argparse.Namespace) -> int:
    from ..api import merge_results

    result = merge_results(args.into, args.sources)
    emit(result, args.json, [f"{result['added']} records added; {result['total']} in {args.into}"])
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..api import export_results

    result = export_results(args.db, csv=args.csv, json=args.json_out)
    emit(result, args.json, [f"{result['records']} records -> {', '.join(result['files'])}"])
    return 0


def run_failures(args: argparse.Namespace) -> int:
    from ..results.store import ResultStore

    with ResultStore(args.db, create=False) as store:
        failures = store.failures()
    emit({"failures": failures}, args.json,
         [f"{f['spec']['method']} {f['spec']['dataset']} {f['spec']['shots']}-shot seed {f['spec']['seed']}: "
          f"{f['error']} ({f['attempts']} attempts)" for f in failures] or ["no failed runs"])
    return 0
