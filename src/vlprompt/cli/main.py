"""Entry point of the `vlprompt` command."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import warnings
from collections.abc import Sequence

from ..errors import UserError, VLPromptWarning
from ..results.store import store_error_message
from ..utils.io import os_error_message
from ..version import __version__
from . import (
    analyze,
    ddp,
    demo,
    evaluate,
    export,
    interpret,
    listing,
    predict,
    pretrain,
    replicate,
    report,
    results,
    run,
    train,
    zeroshot,
)
from .common import (
    add_shared_runtime_arguments,
    add_threads_argument,
    computing_parsers,
    fill_shared_help,
    prepare_runtime,
    subcommand_parsers,
)

#: Subcommand modules, each with `add_parser(subparsers)`; order is the order of `--help`.
COMMANDS = (demo, zeroshot, train, evaluate, predict, export, interpret, listing, pretrain, run, report, results,
            analyze, replicate, ddp)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vlprompt",
        description="Few-shot adaptation of CLIP-like vision-language models.",
    )
    parser.add_argument("--version", action="version", version=f"vlprompt {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log library messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    for computing in computing_parsers(parser):
        if not any(a.dest == "threads" for a in computing._actions):
            add_threads_argument(computing)
        add_shared_runtime_arguments(computing)
    for command in subcommand_parsers(parser):
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="log library messages (also accepted before the command)")
    fill_shared_help(parser)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings as one `vlprompt: warning:` line; others as Python prints them."""
    if issubclass(category, VLPromptWarning):
        print(f"vlprompt: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors are one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        warnings.filterwarnings("ignore")
    warnings.filterwarnings("always", category=VLPromptWarning)
    warnings.showwarning = _show_warning
    import torch  # here, not at the top: `vlprompt --help` must not wait for torch

    from ..utils.runtime import set_threads

    threads = torch.get_num_threads()
    try:
        prepare_runtime(args)
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"vlprompt: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `vlprompt list methods | head`: the reader left, nothing is wrong
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return 0
    except OSError as exc:  # permission, full disk, read-only folders: one line naming the path
        print(f"vlprompt: error: {os_error_message(exc)}", file=sys.stderr)
        return 2
    except sqlite3.OperationalError as exc:
        print(f"vlprompt: error: {store_error_message(None, exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vlprompt: interrupted; {_resume_hint(args)}", file=sys.stderr)
        return 130
    finally:
        set_threads(None)
        torch.set_num_threads(threads)  # in-process callers (tests, notebooks) keep their setting


def _resume_hint(args: argparse.Namespace) -> str:
    if args.command in ("train", "ddp-train"):
        return "rerun the same command with --resume to continue from the last finished epoch"
    if args.command in ("run", "demo", "replicate"):
        return "rerun the same command to continue: finished runs are kept and skipped"
    return "nothing was saved"


if __name__ == "__main__":
    raise SystemExit(main())
