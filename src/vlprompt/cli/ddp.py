"""`vlprompt ddp-train`: one training run over the processes started by `torchrun`."""

from __future__ import annotations

import argparse

from .common import dataset_from_args, emit
from .train import add_train_arguments, train_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ddp-train", help="train one run with distributed data parallel (launch with torchrun)",
                       description="Like `vlprompt train`, across processes: `torchrun --nproc_per_node N -m "
                                   "vlprompt ddp-train ...` (gloo on CPUs, NCCL on GPUs; --nnodes for several "
                                   "machines). Each process takes a share of every batch and gradients are summed, "
                                   "weighted by the shares, so the result matches a single-process run. Without torchrun it "
                                   "runs in one process.")
    add_train_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.distributed import train_distributed
    from ..engine.runner import claim_run_dir

    options = train_options(args)
    claim_run_dir(args.out, args.force)
    result = train_distributed(args.method, args.backbone, dataset_from_args(args),
                               **{k: options.pop(k) for k in ("shots", "seed", "out", "runtime")}, **options)
    if result["rank"] == 0:
        lines = [f"{result['method']} on {result['dataset']} over {result['world_size']} process(es)"]
        if "top1" in result:
            lines.append(f"test top-1 {100 * result['top1']:.2f}%")
        emit(result, args.json, lines)
    return 0
