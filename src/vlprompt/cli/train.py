"""`vlprompt train`: few-shot training of one method, then test accuracy, saved run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import read_config_file
from ..errors import ConfigError
from ..methods.presets import DEFAULT_PROTOCOL, PROTOCOLS
from .common import (
    accuracy_line,
    add_data_arguments,
    add_skip_bad_images,
    dataset_from_args,
    emit,
    runtime_from_args,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a method on K shots per class and evaluate it",
                       description="Train a method (see `vlprompt list methods`) on a few-shot subset, "
                                   "evaluate on the test split and save the learned weights.")
    add_train_arguments(p)
    p.set_defaults(handler=run)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of one training run, shared by `train` and `ddp-train`."""
    p.add_argument("--method", required=True, help="coop, cocoop, prograd, kgcoop, linear-probe, ...")
    p.add_argument("--backbone", default="tiny", help="tiny, openclip:<arch>[@<tag|file>], hf:<id|dir>")
    add_data_arguments(p)
    p.add_argument("--shots", type=int, required=True, help="training images per class (1, 2, 4, 8, 16)")
    p.add_argument("--seed", type=int, default=1, help="few-shot subset and training seed")
    p.add_argument("--out", type=Path, required=True, help="run folder (weights, config, run record)")
    p.add_argument("--epochs", type=int, help="override the preset's epoch count")
    p.add_argument("--protocol", choices=PROTOCOLS,
                   help=f"whose reference settings the preset takes (default: the --config file's "
                        f"protocol, else {DEFAULT_PROTOCOL}; `vlprompt list methods --options` shows "
                        "each method's table)")
    p.add_argument("--strict-shots", action="store_true",
                   help="fail when a class has fewer training images than --shots (default: take all, warn)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--force", action="store_true",
                   help="write into --out even if it holds files vlprompt did not write (they may be replaced)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="JSON or YAML file of option values by section, e.g. {\"train\": {\"lr\": 0.01}} "
                        "(the keys of --set), and optionally protocol; the other options apply on top")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option, e.g. method.n_ctx=4 or train.lr=0.01 (repeatable)")
    p.add_argument("--device", default="auto")  # help: cli/common.SHARED_HELP
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_skip_bad_images(p)


def train_options(args: argparse.Namespace) -> dict:
    """`runner.train`'s keyword options from the parsed `add_train_arguments`: the config file,
    then `--protocol`, `--strict-shots`, `--skip-bad-images` and `--epochs` on top of it, then
    `--set`."""
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError("--epochs must be at least 1")
    config = read_config_file(args.config) if args.config else {}
    if args.protocol is not None:
        config["protocol"] = args.protocol
    flags = [f"data.{name}=true" for name in ("strict_shots", "skip_bad_images") if getattr(args, name)]
    epochs = [f"train.epochs={args.epochs}"] if args.epochs is not None else []
    return dict(shots=args.shots, seed=args.seed, out=args.out, resume=args.resume, config=config,
                overrides=[*flags, *epochs, *args.overrides], runtime=runtime_from_args(args))


def run(args: argparse.Namespace) -> int:
    from ..api import train
    from ..engine.runner import claim_run_dir
    from ..utils.io import release_output_dir

    new_folder = not args.out.exists()
    claim_run_dir(args.out, args.force)  # before any work: a foreign folder is refused at once
    try:
        dataset = dataset_from_args(args)
        result = train(args.method, args.backbone, dataset, **train_options(args))
    except BaseException:
        if new_folder:
            release_output_dir(args.out)
        raise
    lines = [f"{result['method']} on {result['dataset']} ({args.shots} shots, seed {args.seed}), "
             f"backbone {result['backbone']}"]
    if "top1" in result:
        lines.append(f"test {accuracy_line(result, dataset.num_classes)}")
    lines.append(f"saved to {result['run_dir']}")
    emit(result, args.json, lines)
    return 0
