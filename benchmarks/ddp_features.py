"""Feature encoding of a CoOp run: one process vs. `torchrun` with N processes (each its share).

Each configuration trains the same CoOp run (1 epoch; the figure is the run record's
`seconds.features`: the augmented training views and the test split encoded into a fresh
feature cache). Every process gets one torch thread, so N processes use N cores; on GPUs
the same split gives each GPU 1/N of the images.
Usage: python benchmarks/ddp_features.py [--backbone openclip:ViT-B-16] [--dataset synthetic:shapes]
       [--shots 4] [--views 2] [--procs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(procs: int, args: argparse.Namespace, work: Path) -> float:
    """Seconds the run spent encoding features, with `procs` processes (1: no torchrun)."""
    out = work / f"run-{procs}"
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1",
           "VLPROMPT_CACHE": str(work / f"cache-{procs}")}
    shared = ["--method", "coop", "--backbone", args.backbone, "--dataset", args.dataset,
              "--shots", str(args.shots), "--epochs", "1", "--set", f"train.views={args.views}",
              "--out", str(out), "--quiet"]
    if procs == 1:
        command = [sys.executable, "-m", "vlprompt", "ddp-train", *shared]
    else:
        torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
        command = [torchrun, "--standalone", "--nproc_per_node", str(procs), "-m", "vlprompt", "ddp-train",
                   *shared]
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads((out / "run.json").read_text())["seconds"]["features"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="openclip:ViT-B-16")
    p.add_argument("--dataset", default="synthetic:shapes")
    p.add_argument("--shots", type=int, default=4)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--procs", type=int, default=2)
    args = p.parse_args()
    print(f"backbone {args.backbone}, {args.dataset} {args.shots}-shot, {args.views} views; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          "1 torch thread per process")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # render the dataset once, outside the timing (both runs then read the same images)
        subprocess.run([sys.executable, "-c", f"import vlprompt; vlprompt.load_dataset({args.dataset!r})"],
                       env={**os.environ, "PYTHONPATH": SRC, "VLPROMPT_CACHE": str(work / "cache-1")}, check=True)
        shutil.copytree(work / "cache-1", work / f"cache-{args.procs}")
        one = run(1, args, work)
        many = run(args.procs, args, work)
    print(f"feature encoding: 1 process {one:.1f}s, {args.procs} processes {many:.1f}s: {one / many:.2f}x")


if __name__ == "__main__":
    main()
