"""`vlprompt analyze variance|words|projection`: paper analyses stored in a results database."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import emit, runtime_from_args
from .gridargs import names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="variance, nearest-word and projection analyses (shown by `report`)")
    asub = p.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)
    v = asub.add_parser("variance", help="intra-class visual / inter-class text variance per dataset (UPT App. A)")
    v.add_argument("--datasets", help="comma-separated (default: the datasets of the database's few-shot runs)")
    v.set_defaults(handler=run_variance)
    w = asub.add_parser("words", help="nearest vocabulary words of learned context vectors (CoOp Table 4)")
    w.add_argument("--top", type=int, default=3, help="words per context vector")
    w.set_defaults(handler=run_words)
    j = asub.add_parser("projection", help="2-D PCA of image and class text features (UPT Fig. 2)")
    j.add_argument("--dataset", required=True)
    j.add_argument("--run", help="a run folder whose learned text features to project (default: zero-shot)")
    j.set_defaults(handler=run_projection)
    for q in (v, w, j):
        q.add_argument("--db", type=Path, required=True, help="results database")
        q.add_argument("--device", default="auto")
        q.add_argument("--json", action="store_true", help="print one JSON object on the last line")
        if q is not w:
            q.add_argument("--backbone", help="default: the database's only backbone")
            q.add_argument("--root", type=Path, help="the folder holding the benchmark datasets ($DATA)")


def run_variance(args: argparse.Namespace) -> int:
    from ..api import analyze_variance

    rows = analyze_variance(args.db, backbone=args.backbone, datasets=names(args.datasets),
                            runtime=runtime_from_args(args))
    emit({"variance": rows}, args.json, [f"{r['dataset']}: intra-class visual {r['intra_visual']:.4f}, "
                                         f"inter-class text {r['inter_text']:.4f}" for r in rows])
    return 0


def run_words(args: argparse.Namespace) -> int:
    from ..api import analyze_words

    rows = analyze_words(args.db, top=args.top, runtime=runtime_from_args(args))
    emit({"words": rows}, args.json, [f"{r['method']} {r['dataset']} {r['shots']}-shot: "
                                      + " | ".join(" ".join(w) for w in r["words"]) for r in rows]
         or ["no stored run learns context vectors"])
    return 0


def run_projection(args: argparse.Namespace) -> int:
    from ..api import analyze_projection

    result = analyze_projection(args.db, args.dataset, backbone=args.backbone, run=args.run,
                                runtime=runtime_from_args(args))
    emit({k: result[k] for k in ("dataset", "method", "explained")}, args.json,
         [f"{result['dataset']} ({result['method']}): PCA explains "
          f"{100 * sum(result['explained']):.0f}% of the variance; stored in {args.db}"])
    return 0
