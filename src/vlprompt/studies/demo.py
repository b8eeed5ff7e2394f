"""`vlprompt demo`: the whole pipeline offline in a few minutes on a laptop CPU.

On the bundled tiny CLIP and a few tasks of the synthetic suite it runs a small few-shot
grid and a base-to-new grid for every method that exists and fits the budget, the
variance, nearest-word and projection analyses, and writes the report. Everything goes
into one folder (`demo.db`, `demo-runs/`, `report/`); running it again reuses the
stored runs and only rewrites the report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..utils.runtime import Runtime, runtime_or_default

log = logging.getLogger(__name__)

DEMO_DATASETS = ["synthetic:shapes", "synthetic:textures", "synthetic:counting", "synthetic:position"]
#: Per grid, those that are registered. Methods that encode images at every step (visual prompts)
#: are left out because they cost far more than the rest on a CPU; CoCoOp (the most expensive of
#: the rest) runs where it matters, on new classes; classifiers with one weight per class (linear
#: probe, classifier fine-tuning) only in the few-shot grid, since they cannot reach new classes.
#: Of the adapters on cached features (about a second a run on the tiny model), Tip-Adapter,
#: CLAP and LP++; only CLAP (a classifier from class names) moves to new classes.
DEMO_METHODS = {"fewshot": ["zeroshot", "linear-probe", "classifier-ft", "coop", "prograd", "kgcoop",
                            "tip-adapter", "clap", "lp++"],
                "base2new": ["zeroshot", "coop", "cocoop", "prograd", "kgcoop", "clap"]}
DEMO_SHOTS = [1, 2, 4]
DEMO_SEEDS = [1, 2, 3]
DEMO_B2N_SHOTS = [4]
DEMO_EPOCHS = 10
#: Shorter budgets for CoOp in the base-to-new grid: the optimality-generalization trade-off.
DEMO_SWEEP = ("coop", [2, 5])
#: Cheaper settings for the demo only (the papers' defaults search C much longer).
DEMO_OVERRIDES = ["linear-probe:method.max_iter=100", "linear-probe:method.search_steps=2"]


def demo_methods(protocol: str, requested: Sequence[str] | None = None) -> list[str]:
    """The requested methods, or the registered ones among `DEMO_METHODS[protocol]`."""
    from ..methods.registry import list_methods

    if requested:
        return list(requested)
    known = set(list_methods())
    return [m for m in DEMO_METHODS[protocol] if m in known]


@dataclass(frozen=True)
class StudyGrid:
    """The axes of the demo's and `replicate`'s grids; unset axes take the study's defaults."""

    backbone: str = "tiny"
    datasets: Sequence[str] | None = None
    methods: Sequence[str] | None = None  # the demo's; `replicate` runs the methods its claims name
    shots: Sequence[int] | None = None  # the few-shot grid
    b2n_shots: Sequence[int] | None = None  # the base-to-new grid
    seeds: Sequence[int] | None = None
    epochs: int | None = None  # every method's training epochs


def run_demo(out: str | Path = ".", grid: StudyGrid | None = None, *, analyses: bool = True,
             plots: bool = True, threads: int | None = 1, echo: Callable[[str], None] = print,
             runtime: Runtime | None = None) -> dict:
    """Run the demo grids into `<out>/demo.db` and write `<out>/report/`; returns paths and timings.

    `threads`: CPU threads for torch during the demo (None: leave as is). One is the default:
    the tiny model's operations are too small to gain from more, and on a busy machine extra
    threads only contend (measured 3-5x slower with two threads while other jobs ran).
    """
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_demo(Path(out), grid or StudyGrid(), analyses=analyses, plots=plots,
                         runtime=runtime_or_default(runtime), echo=echo)
    finally:
        torch.set_num_threads(previous)


def _run_demo(out: Path, grid: StudyGrid, *, analyses: bool, plots: bool, runtime: Runtime,
              echo: Callable[[str], None]) -> dict:
    from ..backbones import load_backbone
    from ..protocols import get_protocol
    from ..protocols.execute import Grid, run_protocol
    from ..results.store import load_records
    from ..results.tables import to_markdown
    from .analyses import analyze_projection, analyze_variance, analyze_words
    from .report import report

    t0 = time.perf_counter()
    db = out / "demo.db"
    datasets = list(grid.datasets or DEMO_DATASETS)
    bb = load_backbone(grid.backbone, device=runtime.device)  # fails at once, with its message, if weights are missing
    epochs = grid.epochs or DEMO_EPOCHS
    axes = dict(backbone=bb, datasets=datasets, seeds=list(grid.seeds or DEMO_SEEDS), overrides=DEMO_OVERRIDES)
    common = dict(db=db, preset="synthetic", out=out / "demo-runs", runtime=runtime)
    timings: dict[str, float] = {}
    grid_shots = {"fewshot": list(grid.shots or DEMO_SHOTS), "base2new": list(grid.b2n_shots or DEMO_B2N_SHOTS)}
    grids = {}
    for protocol, k in grid_shots.items():
        chosen = demo_methods(protocol, grid.methods)
        echo(f"vlprompt demo, {protocol}: {', '.join(chosen)} on {', '.join(datasets)}, shots {k} "
             f"(backbone {grid.backbone}) -> {out}")
        t = time.perf_counter()
        grids[protocol] = run_protocol(protocol, Grid(methods=chosen, shots=k, epochs=epochs, **axes), **common)
        budgets = [e for e in DEMO_SWEEP[1] if e < epochs]
        if protocol == "base2new" and DEMO_SWEEP[0] in chosen and budgets:
            sweep = run_protocol(protocol, Grid(methods=[DEMO_SWEEP[0]], shots=k, epochs=budgets, **axes), **common)
            for key in ("ran", "skipped"):
                grids[protocol][key] += sweep[key]
            grids[protocol]["failed"] += sweep["failed"]
        timings[protocol] = time.perf_counter() - t
    if analyses:
        t = time.perf_counter()
        analyze_variance(db, backbone=bb, datasets=datasets, runtime=runtime)
        analyze_words(db, backbones={bb.spec: bb}, runtime=runtime)
        analyze_projection(db, datasets[0], backbone=bb, runtime=runtime)
        timings["analyses"] = time.perf_counter() - t
    t = time.perf_counter()
    rep = report(db, out / "report", plots=plots)
    timings["report"] = time.perf_counter() - t
    for name in ("fewshot", "base2new"):
        tables, _ = get_protocol(name).summarise(load_records([db], name))
        shown = [tables[-1]] if name == "fewshot" else tables[:1]  # the most shots; the average over datasets
        for table in shown:
            echo(to_markdown(table))
    failed = [f for g in grids.values() for f in g["failed"]]
    for f in failed:
        echo(f"failed: {f['run']}: {f['error']}")
    total = time.perf_counter() - t0
    echo(f"report: {rep['files']['index.html']}  ({total:.0f} s; rerun to reuse the stored runs)")
    return {"db": str(db), "report": rep["files"]["index.html"], "seconds": round(total, 1),
            "timings": {k: round(v, 1) for k, v in timings.items()}, "failed": failed,
            "runs": {k: {"ran": g["ran"], "skipped": g["skipped"]} for k, g in grids.items()}}
