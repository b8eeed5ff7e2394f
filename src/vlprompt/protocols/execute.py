"""Running a grid of run specs into the results store, resumably.

For each spec the full configuration is resolved and hashed; a hash already in the store
is skipped, so rerunning a command resumes a killed grid. A run trains once into
`<out>/<hash[:16]>/` (the engine's per-epoch checkpoints let a run killed mid-training
continue where it stopped) and is then evaluated on each target; all its records are
stored in one transaction, so a kill can never leave half a run behind. A run that fails
is recorded in the store's `failures` table and the grid goes on.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..backbones import VLBackbone
from ..data.classsplit import split_base_new
from ..data.fewshot import sample_fewshot
from ..data.registry import load_dataset
from ..data.types import DatasetSplits
from ..engine.runner import evaluate_run, resolve_data_config, train
from ..engine.runs import RECORD, environment
from ..errors import ConfigError, UserError
from ..results.store import ResultStore
from ..utils.io import run_lock
from ..utils.runtime import Runtime, runtime_or_default
from .base import GridOptions, RunSpec, config_hash, resolved_config
from .presets import DEFAULT_SEEDS, DEFAULT_SHOTS
from .provenance import PeakMemory, git_commit, host

log = logging.getLogger(__name__)


@dataclass
class GridResult:
    planned: int = 0
    skipped: int = 0
    ran: int = 0
    records: int = 0
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"planned": self.planned, "skipped": self.skipped, "ran": self.ran, "records": self.records,
                "failed": self.failed, "seconds": round(self.seconds, 2)}


class DatasetCache:
    """Each dataset loaded once per grid."""

    def __init__(self, root: str | Path | None):
        self.root = root
        self._data: dict[str, DatasetSplits] = {}

    def __call__(self, name: str) -> DatasetSplits:
        if name not in self._data:
            self._data[name] = load_dataset(name, root=self.root)
        return self._data[name]


def _train(spec: RunSpec, backbone: VLBackbone, data: DatasetSplits, run_dir: Path, runtime: Runtime) -> dict:
    config = {"protocol": spec.protocol, **({"train": {"epochs": spec.epochs}} if spec.epochs else {})}
    kw = dict(shots=spec.shots, seed=spec.seed, out=run_dir, config=config, overrides=spec.overrides,
              runtime=runtime)
    try:
        return train(spec.method, backbone, data, resume=True, **kw)
    except ConfigError as exc:
        if "checkpoint" not in str(exc):
            raise
        log.warning("%s: %s; starting this run over", spec.describe(), exc)
        shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
        return train(spec.method, backbone, data, resume=False, **kw)


def per_class_keys(classnames: list[str]) -> list[str]:
    """Class names as dict keys; a repeated name (ImageNet has two 'crane') gets ' #<label>'
    so no class's accuracy overwrites another's."""
    seen: set[str] = set()
    keys = []
    for label, name in enumerate(classnames):
        keys.append(name if name not in seen else f"{name} #{label}")
        seen.add(name)
    return keys


def execute_run(spec: RunSpec, config: dict, run_hash: str, backbone: VLBackbone, datasets: DatasetCache,
                out_dir: Path, runtime: Runtime | None = None) -> list[dict]:
    """Train one spec and evaluate it on its targets; returns its records (not yet stored).
    `runtime`: how the run's training and evaluation run (no progress bars by default)."""
    runtime = runtime or Runtime(progress=False)
    t0 = time.perf_counter()
    run_dir = out_dir / run_hash[:16]
    full = datasets(spec.dataset)
    dcfg = resolve_data_config(None, spec.overrides)
    validation = dcfg.validation
    data = (sample_fewshot(full, spec.shots, spec.seed, strict=dcfg.strict_shots, validation=validation)
            if spec.shots > 0 else full)
    data = split_base_new(data, spec.part)  # shots first, then the class split
    with PeakMemory() as memory:
        _train(spec, backbone, data, run_dir, runtime)
        run_record = json.loads((run_dir / RECORD).read_text())
        results = []
        for target in spec.targets:
            t_eval = time.perf_counter()
            if (target.dataset, target.part) == (spec.dataset, spec.part):
                metrics, classnames = run_record["metrics"]["test"], data.classnames
                seconds = run_record["seconds"].get("test")
            else:
                tdata = split_base_new(datasets(target.dataset), target.part)
                classnames = tdata.classnames
                try:
                    metrics = evaluate_run(run_dir, dataset=tdata, backbone=backbone,
                                           runtime=runtime.but(progress=False))
                except ConfigError as exc:
                    if classnames == data.classnames or "other class names" not in str(exc):
                        raise
                    log.warning("%s: no result on %s (%s)", spec.describe(), target.name, exc)
                    continue
                seconds = time.perf_counter() - t_eval
            results.append((target, metrics, classnames, seconds))
    secs = run_record["seconds"]
    fit_seconds = sum(v for k, v in secs.items() if k in ("features", "train", "fit"))
    common = {
        "run_hash": run_hash, "protocol": spec.protocol, "method": spec.method, "backbone": spec.backbone,
        "backbone_checksum": config["backbone_checksum"], "dataset": spec.dataset, "classes": spec.part,
        "shots": spec.shots, "seed": spec.seed, "epochs": spec.epochs, "config": config,
        "versions": environment(), "git_commit": git_commit(), "seconds_fit": round(fit_seconds, 4),
        "seconds_total": round(time.perf_counter() - t0, 4), "peak_rss_mb": memory.peak_rss_mb,
        "peak_gpu_mb": memory.peak_gpu_mb, "run_dir": str(run_dir), "host": host(), "created_at": time.time(),
    }
    records = []
    for target, metrics, classnames, seconds in results:
        per_class = metrics.get("per_class")
        extra = {k: metrics[k] for k in ("variants_top1", "n_classes") if k in metrics}
        extra.update(selected_epoch=run_record.get("selected_epoch"), fit_info=run_record.get("fit_info"),
                     validation=run_record.get("validation") or {"setting": validation},
                     train_history=[{k: h.get(k) for k in ("epoch", "loss", "acc", "val_top1") if k in h}
                                    for h in run_record.get("history") or []])
        records.append({**common, "target": target.name, "target_dataset": target.dataset,
                        "target_classes": target.part, "top1": metrics["top1"], "top5": metrics.get("top5"),
                        "mean_per_class": metrics.get("mean_per_class"), "n_test": metrics.get("n_images"),
                        "per_class": dict(zip(per_class_keys(classnames), per_class, strict=True))
                        if per_class else None,
                        "metrics": extra, "seconds_eval": round(seconds, 4) if seconds is not None else None})
    return records


def plan(specs: Sequence[RunSpec], backbone: VLBackbone) -> list[tuple[RunSpec, dict, str]]:
    """(spec, resolved config, hash) for each spec, in order."""
    out = []
    for spec in specs:
        config = resolved_config(spec, backbone.checksum())
        out.append((spec, config, config_hash(config)))
    return out


def run_grid(specs: Sequence[RunSpec], backbone: VLBackbone, db: str | Path, *, out_dir: str | Path,
             runtime: Runtime | None = None, run_progress: bool = False,
             on_record: Callable[[dict], None] | None = None) -> GridResult:
    """Run every spec whose hash is not stored yet; see the module docstring. The runtime's
    progress flag drives the grid's bar; `run_progress` each run's own bars."""
    t0 = time.perf_counter()
    rt = runtime_or_default(runtime)
    progress, run_runtime = rt.progress, rt.but(progress=run_progress)
    out_dir = Path(out_dir)
    result = GridResult(planned=len(specs))
    datasets = DatasetCache(rt.root)
    with ResultStore(db) as store:
        done = store.completed_runs()
        todo = [p for p in plan(specs, backbone) if p[2] not in done]
        result.skipped = len(specs) - len(todo)
        bar = tqdm(total=len(todo), desc="grid", unit="run", disable=not progress, file=sys.stderr,
                   dynamic_ncols=True)
        # Identical grids started at once share the work: a run another process is running
        # (its lock is taken) is put off; at the end this process waits for it, then finds it
        # stored and skips it (or runs it, if that process died).
        busy: list[tuple[RunSpec, dict, str]] = []
        for blocking, queue in ((False, todo), (True, busy)):
            for spec, config, run_hash in queue:
                bar.set_postfix_str(spec.describe())
                with run_lock(out_dir / f".{run_hash[:16]}.lock", blocking=blocking) as mine:
                    if not mine:
                        busy.append((spec, config, run_hash))
                        continue
                    bar.update()
                    if store.has_run(run_hash):  # another process stored it meanwhile
                        result.skipped += 1
                        continue
                    try:
                        records = execute_run(spec, config, run_hash, backbone, datasets, out_dir, run_runtime)
                    except (UserError, RuntimeError, ValueError) as exc:
                        log.error("run failed: %s: %s", spec.describe(), exc,
                                  exc_info=not isinstance(exc, UserError))
                        store.add_failure(run_hash, spec.to_dict(), f"{type(exc).__name__}: {exc}")
                        result.failed.append({"run": spec.describe(), "error": f"{type(exc).__name__}: {exc}"})
                        continue
                    result.records += store.add_run(records)
                result.ran += 1
                for rec in records:
                    if on_record is not None:
                        on_record(rec)
        bar.close()
    result.seconds = time.perf_counter() - t0
    return result


def check_datasets(names: set[str], root: str | Path | None) -> None:
    """Fail before the first run when a dataset is unknown or not under the data root."""
    from ..data.registry import DatasetError, dataset_status

    for name in sorted(names):
        status = dataset_status(name, root)
        if status != "present":
            raise DatasetError(f"dataset {name} is {status} under --root {root}; see `vlprompt list datasets`")


def default_out_dir(db: str | Path) -> Path:
    """Run folders live beside the database: `results.db` -> `results-runs/`."""
    db = Path(db)
    return db.with_name(db.stem + "-runs")


@dataclass
class Grid:
    """The axes of a protocol grid as a caller gives them; unset axes take the protocol's
    defaults (`protocols/presets.py`): shots per protocol, seeds 1, 2, 3, the preset's datasets.

    `epochs`: one budget or several (None: each method's preset); `targets`: the transfer
    protocols' target datasets; `overrides`: `--set` texts for every run, or for one method
    as `method-name:section.key=value` (`data.validation=none`: no validation data).
    """

    methods: Sequence[str]
    backbone: str | VLBackbone = "tiny"
    datasets: Sequence[str] = ("all",)
    shots: Sequence[int] | None = None
    seeds: Sequence[int] | None = None
    epochs: Sequence[int | None] | int | None = None
    targets: Sequence[str] | None = None
    overrides: Sequence[str] = ()

    def options(self, protocol: str, preset: str) -> GridOptions:
        """The grid's resolved axes for `protocol` under `preset`."""
        from .presets import resolve_datasets

        spec = self.backbone if isinstance(self.backbone, str) else self.backbone.spec
        epochs = [self.epochs] if isinstance(self.epochs, int) or self.epochs is None else list(self.epochs)
        return GridOptions(methods=list(self.methods), backbone=spec,
                           datasets=resolve_datasets(protocol, list(self.datasets), preset),
                           shots=list(self.shots or DEFAULT_SHOTS[protocol]), seeds=list(self.seeds or DEFAULT_SEEDS),
                           epochs=epochs, targets=list(self.targets) if self.targets else None,
                           overrides=list(self.overrides))


def run_protocol(protocol: str, grid: Grid, *, db: str | Path, preset: str | None = None,
                 shard: str | None = None, out: str | Path | None = None, dry_run: bool = False,
                 runtime: Runtime | None = None) -> dict:
    """Expand a protocol over `grid` into runs and execute those not yet in `db`; returns counts
    and the specs.

    Rerunning the same call resumes; `shard="i/n"` runs every n-th run starting at i. `preset`
    names the dataset/backbone preset (default: the backbone's). `out`: the run folders
    (default: beside `db`). `runtime`: device, data root, progress bar, workers and
    feature-cache folder.
    """
    rt = runtime_or_default(runtime)
    from ..backbones import load_backbone
    from . import get_protocol
    from .base import parse_shard, select_shard
    from .presets import default_preset

    if not isinstance(grid, Grid):
        raise ConfigError(f"run_protocol takes a Grid of methods, datasets, shots, ..., got {type(grid).__name__}")
    backbone = grid.backbone
    spec_name = backbone if isinstance(backbone, str) else backbone.spec
    preset = preset or default_preset(spec_name)
    proto = get_protocol(protocol, preset)
    specs = select_shard(proto.expand(grid.options(proto.name, preset)), parse_shard(shard))
    check_datasets({t.dataset for s in specs for t in s.targets} | {s.dataset for s in specs}, rt.root)
    summary = {"protocol": proto.name, "preset": preset, "db": str(db), "runs": [s.describe() for s in specs]}
    if dry_run:
        for spec in specs:  # every option checked, as a real run would before its first run
            resolved_config(spec, "")
        return {**summary, "planned": len(specs)}
    bb = load_backbone(backbone, device=rt.device) if isinstance(backbone, str) else backbone
    result = run_grid(specs, bb, db, out_dir=Path(out) if out else default_out_dir(db), runtime=rt)
    return {**summary, **result.as_dict()}
