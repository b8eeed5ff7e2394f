"""How good is a backbone on the synthetic suite: zero-shot vs. a 16-shot linear probe.

Measures, per task of the suite, test-split top-1 accuracy of (1) zero-shot classification
with the task's class names and template (normalised image features against the text
classifier), and (2) for tasks with a train split, the library's `linear-probe` method
trained on K shots per class through the same code path as `vlprompt train`
(`engine.runner.train`: frozen, unaugmented image features, logistic regression fitted with
L-BFGS, its inverse regularisation C searched on the few-shot validation split, never on
test). Used to accept the bundled tiny CLIP (floors and few-shot headroom guarded by
tests/test_tiny_clip.py) and to write the table in docs/tiny-clip.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..backbones import VLBackbone, load_backbone
from ..data.registry import load_dataset
from ..data.synthetic.suite import TASKS
from ..data.types import Item
from ..engine.evaluation import make_loader
from ..engine.runner import train
from ..methods.zeroshot import text_classifier
from ..utils.runtime import Runtime


@dataclass
class TaskReport:
    task: str
    classes: int
    chance: float
    zero_shot: float
    linear_probe: float | None


@torch.no_grad()
def image_features(backbone: VLBackbone, items: list[Item], batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised features (N, D) and labels (N,) of items, unaugmented."""
    loader = make_loader(items, backbone.preprocess(train=False), batch_size=batch_size)
    feats, labels = [], []
    for images, y, _ in loader:
        feats.append(F.normalize(backbone.encode_images(images), dim=-1))
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


@torch.no_grad()
def zero_shot(backbone: VLBackbone, task: str) -> float:
    """Zero-shot test accuracy on `synthetic:<task>` with its class names and template."""
    data = load_dataset(f"synthetic:{task}")
    x, y = image_features(backbone, data.test)
    w = text_classifier(backbone, data.classnames, data.templates)
    return float(((x @ w.T).argmax(-1) == y).float().mean())


def linear_probe(backbone: VLBackbone, task: str, shots: int = 16, seed: int = 1,
                 cache_dir: str | Path | None = None) -> float:
    """Test accuracy of the library's `linear-probe` method trained on `shots` per class.

    The run (weights, record) goes to a temporary folder and is discarded; image features
    go to `cache_dir` (default: the library's feature cache, `$VLPROMPT_CACHE/features`).
    """
    with tempfile.TemporaryDirectory(prefix="vlprompt-report-") as tmp:
        summary = train("linear-probe", backbone, load_dataset(f"synthetic:{task}"), shots=shots,
                        seed=seed, out=Path(tmp) / task, runtime=Runtime(progress=False, cache_dir=cache_dir))
    return float(summary["top1"])


def suite_report(backbone: VLBackbone, shots: int = 16, seed: int = 1, tasks: list[str] | None = None,
                 cache_dir: str | Path | None = None) -> list[TaskReport]:
    """Zero-shot and (for tasks with a train split) linear-probe accuracy per task."""
    rows = []
    for name in tasks or list(TASKS):
        task = TASKS[name]
        k = len(task.classnames)
        probe = None if task.test_only else linear_probe(backbone, name, shots, seed, cache_dir)
        rows.append(TaskReport(name, k, 1.0 / k, zero_shot(backbone, name), probe))
    return rows


def markdown_table(rows: list[TaskReport]) -> str:
    lines = ["| task | classes | chance | zero-shot | 16-shot linear probe |", "|---|---|---|---|---|"]
    for r in rows:
        probe = "-" if r.linear_probe is None else f"{100 * r.linear_probe:.1f}"
        lines.append(f"| {r.task} | {r.classes} | {100 * r.chance:.1f} | {100 * r.zero_shot:.1f} | {probe} |")
    trained = [r for r in rows if r.linear_probe is not None]
    zs = sum(r.zero_shot for r in trained) / len(trained)
    lp = sum(r.linear_probe for r in trained) / len(trained)
    lines.append(f"| average (tasks with a train split) | | | {100 * zs:.1f} | {100 * lp:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Zero-shot and linear-probe accuracy on the synthetic suite.")
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-dir", default=None, help="feature cache folder (default: the library's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = suite_report(load_backbone(args.backbone), args.shots, args.seed, cache_dir=args.cache_dir)
    print(markdown_table(rows))
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
