"""`vlprompt run <protocol>`: a whole evaluation protocol as a resumable grid of runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import config_to_overrides, read_config_file
from ..errors import ConfigError
from ..protocols import PROTOCOLS
from ..protocols.presets import DEFAULT_SHOTS, preset_names
from .common import emit, runtime_from_args
from .gridargs import ints, names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an evaluation protocol as a resumable grid",
                       description="Expand a protocol into runs (methods x datasets x shots x seeds), run those "
                                   "not yet in the results database, and print its tables. Rerunning the same "
                                   "command resumes.")
    psub = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    for name, cls in PROTOCOLS.items():
        q = psub.add_parser(name, help=cls.description, description=cls.description)
        q.add_argument("--methods", required=True, help="comma-separated, e.g. zeroshot,linear-probe,coop")
        q.add_argument("--backbone", default="tiny", help="tiny, openclip:<arch>[@<tag|file>], hf:<id|dir>")
        q.add_argument("--datasets", default="all", help="comma-separated; `all`: the preset's datasets"
                       + (" (sources)" if name in ("domain-generalization", "cross-dataset") else ""))
        if name in ("domain-generalization", "cross-dataset"):
            q.add_argument("--targets", help="comma-separated target datasets (default: the preset's)")
        q.add_argument("--preset", choices=preset_names(),
                       help="dataset lists for `all`: paper (the 11 datasets) or synthetic (offline suite); "
                            "default synthetic for the tiny backbone, paper otherwise")
        q.add_argument("--shots", help=f"comma-separated (default {','.join(map(str, DEFAULT_SHOTS[name]))})")
        q.add_argument("--seeds", default="1,2,3", help="comma-separated (default 1,2,3)")
        q.add_argument("--epochs", help="override the presets' epochs; several values make a grid axis")
        q.add_argument("--db", type=Path, default=Path("results.db"),
                       help="results database, an SQLite file (default results.db)")
        q.add_argument("--out", type=Path, help="run folders (default: <db name>-runs beside the database)")
        q.add_argument("--shard", help="i/n: run every n-th run starting at i (0-based), for job arrays")
        q.add_argument("--root", type=Path, help="the folder holding the benchmark datasets ($DATA)")
        q.add_argument("--config", type=Path, metavar="FILE",
                       help="JSON or YAML file of option values for every run, by section (method, "
                            "train, data; the keys of --set); --set applies on top")
        q.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override an option of every run, e.g. train.lr=0.01, or of one method: "
                            "linear-probe:method.max_iter=200 (repeatable)")
        q.add_argument("--device", default="auto")
        q.add_argument("--dry-run", action="store_true", help="list the runs without running them")
        q.add_argument("--quiet", action="store_true", help="no progress bar, no tables")
        q.add_argument("--json", action="store_true", help="print one JSON object on the last line")
        q.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..api import Grid, run_protocol

    config = read_config_file(args.config) if args.config else {}
    if config.get("protocol", args.protocol) != args.protocol:
        raise ConfigError(f"--config {args.config} is for protocol {config['protocol']}, not {args.protocol}")
    grid = Grid(methods=names(args.methods), backbone=args.backbone, datasets=names(args.datasets),
                shots=ints(args.shots, "--shots"), seeds=ints(args.seeds, "--seeds"),
                epochs=ints(args.epochs, "--epochs"), targets=names(getattr(args, "targets", None)),
                overrides=config_to_overrides(config) + args.overrides)
    result = run_protocol(args.protocol, grid, db=args.db, preset=args.preset, shard=args.shard, out=args.out,
                          dry_run=args.dry_run, runtime=runtime_from_args(args))
    if args.dry_run:
        emit(result, args.json, [*result["runs"], f"{result['planned']} runs planned"])
        return 0
    lines = []
    if not args.quiet:
        from ..results.store import load_records
        from ..results.tables import to_markdown

        tables, _ = PROTOCOLS[result["protocol"]]().summarise(load_records([args.db], result["protocol"]))
        lines += [to_markdown(t) for t in tables]
    lines.append(f"{result['protocol']}: {result['ran']} runs done, {result['skipped']} already stored, "
                 f"{len(result['failed'])} failed; {result['records']} new records in {args.db}")
    lines += [f"failed: {f['run']}: {f['error']}" for f in result["failed"]]
    emit({k: v for k, v in result.items() if k != "runs"}, args.json, lines)
    return 1 if result["failed"] else 0
