"""Options and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..data.types import DatasetSplits


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dataset", help="registered name (eurosat, synthetic:shapes, folder:<dir>, csv:<file>, hfds:<dir|hub id>, wds:<dir>; see docs/data.md)")
    group.add_argument("--data", type=Path, help="an image folder <dir>/<class>/*.jpg (same as --dataset folder:<dir>)")
    parser.add_argument("--root", type=Path, default=None, help="the folder holding the benchmark datasets ($DATA)")
    parser.add_argument("--classnames", type=Path, default=None, metavar="FILE",
                        help="class-name mapping for folder:/csv: data: JSON {\"0\": \"cat\"} or lines "
                             "'<label>,<name>' (labels that are numbers or codes become readable prompts)")
    parser.add_argument("--write-split", action="store_true",
                        help="without a split file, write the 50/20/30 cut next to the data")


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help=SHARED_HELP["--device"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help=SHARED_HELP["--workers"])
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def runtime_from_args(args: argparse.Namespace):
    """The one `Runtime` of a command, from the shared options it declares."""
    from ..utils.runtime import Runtime

    return Runtime(device=getattr(args, "device", None) or "cpu", workers=getattr(args, "workers", None),
                   progress=not getattr(args, "quiet", False), cache_dir=getattr(args, "cache_dir", None),
                   root=getattr(args, "root", None), log=",".join(getattr(args, "log", None) or ()))


def add_shared_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """The runtime options every computing command takes (those it does not declare itself)."""
    declared = {opt for a in parser._actions for opt in a.option_strings}
    if "--workers" not in declared:
        parser.add_argument("--workers", type=int, default=None, help=SHARED_HELP["--workers"])
    if "--quiet" not in declared:
        parser.add_argument("--quiet", action="store_true", help=SHARED_HELP["--quiet"])
    if "--cache-dir" not in declared:
        parser.add_argument("--cache-dir", type=Path, default=None, help=SHARED_HELP["--cache-dir"])
    if "--epochs" in declared and "--log" not in declared:  # the commands that train take --epochs
        parser.add_argument("--log", action="append", default=[], metavar="tensorboard|wandb",
                            help=SHARED_HELP["--log"])


def add_skip_bad_images(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="leave out images that cannot be read (screened first, counted and reported) "
                             "instead of stopping at the first one")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", default="auto", metavar="N|auto",
                        help="CPU threads for torch (default auto: 1 for a backbone as small as the tiny CLIP, "
                             "else the cores this process may use; 0: torch's default); see docs/performance.md")


#: Help of the options many subcommands share, written once: a subcommand that declares one
#: without its own help gets this text (`fill_shared_help`).
SHARED_HELP = {
    "--device": "auto (default: CUDA, then Apple MPS, then the CPU), cpu, cuda, cuda:1, mps; checked before any work",
    "--workers": "DataLoader worker processes (default: 0 on CPUs, where decoding would take cores "
                 "from encoding; up to 4 with a GPU)",
    "--batch-size": "images per batch when encoding",
    "--quiet": "no progress bars",
    "--cache-dir": "folder of the frozen image features reused across runs (default: $VLPROMPT_CACHE/features, else ~/.cache/vlprompt/features)",
    "--json": "print one JSON object on the last line",
    "--log": "mirror each epoch's losses, learning rate, validation accuracy and time to tensorboard "
             "(<run>/tb/, needs vlprompt[tb]) or wandb (offline unless WANDB_MODE says otherwise, needs "
             "vlprompt[wandb]); repeatable or comma-separated; run.json stays the record",
    "--root": "the folder holding the benchmark datasets ($DATA)",
    "--dataset": "registered name (eurosat, synthetic:shapes, folder:<dir>, csv:<file>, hfds:<dir|hub id>, wds:<dir>)",
    "--method": "a method of `vlprompt list methods` (coop, cocoop, prograd, ...)",
    "--backbone": "tiny, openclip:<arch>[@<tag|file>], hf:<id|dir>",
    "--shots": "training images per class",
    "--seed": "few-shot subset and training seed",
    "--out": "output folder",
    "--epochs": "override the preset's epoch count",
    "--resume": "continue from the run folder's last checkpoint",
    "--set": "override an option, e.g. method.n_ctx=4 or train.lr=0.01 (repeatable)",
    "--db": "results database (an SQLite file)",
    "--csv": "write CSV instead of JSON",
    "--split": "which split to score (train, val, test or all)",
    "--top-k": "how many classes to print per image",
    "--no-plots": "tables only, no plots",
    "what": "what to list",
}


def _children(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The subcommand parsers directly below `parser` (aliases counted once)."""
    return [sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for sub in dict.fromkeys(action.choices.values())]


def all_parsers(parser: argparse.ArgumentParser):
    """`parser` and every (sub)command parser below it, nested ones included."""
    for sub in _children(parser):
        yield from all_parsers(sub)
    yield parser


def fill_shared_help(parser: argparse.ArgumentParser) -> None:
    """Give every option of every (sub)command without help text the shared one."""
    for each in all_parsers(parser):
        for action in each._actions:
            if action.help or isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            for name in action.option_strings or [action.dest]:
                if name in SHARED_HELP:
                    action.help = SHARED_HELP[name]
                    break


def subcommand_parsers(parser: argparse.ArgumentParser):
    """Every parser below `parser` that runs a command (the leaves of the subcommand tree)."""
    return (each for each in all_parsers(parser) if each is not parser and not _children(each))


def computing_parsers(parser: argparse.ArgumentParser):
    """Every (sub)command parser that computes, i.e. takes --device, nested ones included."""
    return (each for each in all_parsers(parser) if any(a.dest == "device" for a in each._actions))


def prepare_runtime(args: argparse.Namespace) -> None:
    """Checks and settings every command shares, before it reads data or loads a model:
    the device exists, seeds are not negative, and torch uses the chosen threads."""
    from ..utils.runtime import check_device, set_threads

    if getattr(args, "device", None) is not None:
        check_device(args.device)
    seed = getattr(args, "seed", None)
    if isinstance(seed, int) and seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {seed}")
    if hasattr(args, "threads"):
        set_threads(args.threads)


def dataset_from_args(args: argparse.Namespace) -> DatasetSplits:
    from ..data.registry import load_dataset

    classnames = getattr(args, "classnames", None)
    extra = {"classnames": classnames} if classnames is not None else {}
    if args.data is not None:
        return load_dataset(f"folder:{args.data}", **extra)
    if extra and not args.dataset.startswith(("folder:", "csv:")):
        raise ConfigError("--classnames applies to your own data (--data, folder:<dir>, csv:<file>); "
                          f"{args.dataset} names its classes itself")
    options = {"write_split": True} if getattr(args, "write_split", False) else {}
    return load_dataset(args.dataset, root=args.root, **options, **extra)


def accuracy_line(result: dict, n_classes: int | None) -> str:
    """`top-1 X%` and, for tasks of more than five classes (where it means something), `top-5 Y%`."""
    line = f"top-1 {100 * result['top1']:.2f}%"
    if result.get("top5") is not None and (n_classes is None or n_classes > 5):
        line += f"  top-5 {100 * result['top5']:.2f}%"
    return line


def emit(result: dict, as_json: bool, lines: list[str]) -> None:
    """Human lines first, then (with --json) one JSON object as the last line."""
    for line in lines:
        print(line)
    if as_json:
        print(json.dumps(result, sort_keys=True))
