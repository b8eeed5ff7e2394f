"""`vlprompt ddp-train`: one training run over the processes started by `torchrun`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .common import emit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ddp-train", help="train one run with distributed data parallel (launch with torchrun)",
                       description="Like `vlprompt train`, across processes: `torchrun --nproc_per_node N -m "
                                   "vlprompt ddp-train ...` (gloo on CPUs, NCCL on GPUs; --nnodes for several "
                                   "machines). Each process takes a share of every batch and gradients are summed, "
                                   "weighted by the shares, so the result matches a single-process run. Without torchrun it "
                                   "runs in one process.")
    p.add_argument("--method", required=True)
    p.add_argument("--backbone", default="tiny")
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", type=Path)
    p.add_argument("--shots", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--force", action="store_true",
                   help="write into --out even if it holds files vlprompt did not write (same names are replaced)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", default="cpu", help="cpu or cuda (each process takes cuda:LOCAL_RANK)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line (rank 0)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.distributed import train_distributed
    from ..utils.io import claim_output_dir

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError("--epochs must be at least 1")
    claim_output_dir(args.out, "run", force=args.force, legacy=("checkpoint/state.safetensors",))
    result = train_distributed(args.method, args.backbone, args.dataset, shots=args.shots, seed=args.seed,
                               out=args.out, device=args.device, epochs=args.epochs, resume=args.resume,
                               overrides=args.overrides, root=args.root, progress=not args.quiet)
    if result["rank"] == 0:
        lines = [f"{result['method']} on {result['dataset']} over {result['world_size']} process(es)"]
        if "top1" in result:
            lines.append(f"test top-1 {100 * result['top1']:.2f}%")
        emit(result, args.json, lines)
    return 0
