"""Protocol grids: expansion, sharding, a killed grid that resumes, transfer targets, CLI errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocol_support import fixed_backbone
from vlprompt.api import Grid, report, run_protocol
from vlprompt.backbones import load_backbone
from vlprompt.cli.main import main
from vlprompt.protocols import GridOptions, get_protocol
from vlprompt.protocols.base import parse_shard, select_shard
from vlprompt.protocols.execute import plan
from vlprompt.results.store import ResultStore, load_records
from vlprompt.utils.runtime import Runtime

SRC = str(Path(__file__).resolve().parents[1] / "src")
DATA = "synthetic:counting"  # 4 classes, 160 test images: the cheapest task


@pytest.fixture(scope="module")
def backbone_spec(tmp_path_factory, model_configs):
    return fixed_backbone(tmp_path_factory.mktemp("bb"), model_configs["vit"])


def test_expansion():
    grid = GridOptions(methods=["zeroshot", "coop", "linear-probe"], backbone="b", datasets=["d1", "d2"],
                       shots=[1, 2], seeds=[1, 2], epochs=[3, 5], overrides=["linear-probe:method.max_iter=5"])
    specs = get_protocol("fewshot").expand(grid)
    by_method = {m: [s for s in specs if s.method == m] for m in grid.methods}
    assert {s.shots for s in by_method["zeroshot"]} == {0} and len(by_method["zeroshot"]) == 4
    assert len(by_method["coop"]) == 2 * 2 * 2 * 2  # datasets x seeds x shots x epochs
    assert {s.epochs for s in by_method["linear-probe"]} == {None} and len(by_method["linear-probe"]) == 8
    assert by_method["linear-probe"][0].overrides == ("method.max_iter=5",)
    assert by_method["coop"][0].overrides == ()
    b2n = get_protocol("base2new").expand(grid)
    assert {s.part for s in b2n} == {"base"}
    assert [(t.name, t.part) for t in b2n[0].targets] == [("base", "base"), ("new", "new")]
    dg = get_protocol("domain-generalization", "synthetic").expand(
        GridOptions(methods=["coop"], backbone="b", datasets=["synthetic:shapes"], shots=[16], seeds=[1]))
    assert [t.name for t in dg[0].targets] == ["synthetic:shapes", "synthetic:shapes_noise", "synthetic:shapes_sketch",
                                               "synthetic:shapes_newbg", "synthetic:shapes_inverted"]
    cross = get_protocol("cross-dataset").expand(
        GridOptions(methods=["coop"], backbone="b", datasets=["imagenet"], shots=[16], seeds=[1]))
    assert len(cross[0].targets) == 11  # ImageNet and the other 10
    shards = [select_shard(specs, parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(len(s) for s in shards) == [9, 9, 10]
    assert sorted(map(repr, sum(shards, []))) == sorted(map(repr, specs))


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with ResultStore(db) as store:
            return store.count()
    except Exception:  # noqa: BLE001 - the writer may be creating the file right now
        return 0


@pytest.mark.slow
def test_killed_grid_resumes_without_duplicates_or_losses(tmp_path, backbone_spec):
    db = tmp_path / "grid.db"
    args = ["fewshot", "--methods", "zeroshot,coop", "--backbone", backbone_spec, "--datasets", DATA,
            "--shots", "1,2", "--seeds", "1,2,3", "--epochs", "3", "--db", str(db)]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "vlprompt", "run", *args, "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while _count(db) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    stored = _count(db)
    assert 2 <= stored < 9, f"kill did not land mid-grid ({stored} records): {err[-2000:]}"
    grid = Grid(methods=["zeroshot", "coop"], backbone=backbone_spec, datasets=[DATA], shots=[1, 2], seeds=[1, 2, 3],
                epochs=3)
    result = run_protocol("fewshot", grid, db=db, runtime=Runtime(progress=False))
    assert result["planned"] == 9 and result["skipped"] == stored and result["ran"] == 9 - stored
    assert not result["failed"]
    with ResultStore(db) as store:
        rows = store.records()
    specs = get_protocol("fewshot").expand(GridOptions(
        methods=["zeroshot", "coop"], backbone=backbone_spec, datasets=[DATA], shots=[1, 2], seeds=[1, 2, 3],
        epochs=[3]))
    expected = {h for _, _, h in plan(specs, load_backbone(backbone_spec))}
    assert len(rows) == 9 and {r["run_hash"] for r in rows} == expected
    again = run_protocol("fewshot", grid, db=db, runtime=Runtime(progress=False))
    assert again["ran"] == 0 and again["skipped"] == 9
    rec = rows[-1]
    assert rec["config"]["train"]["epochs"] == 3 and rec["versions"]["torch"] and rec["backbone_checksum"]
    assert rec["seconds_fit"] is not None and rec["peak_rss_mb"] > 0 and len(rec["per_class"]) == 4


def test_shards_merge_in_the_report(tmp_path, backbone_spec):
    grid = Grid(methods=["zeroshot", "coop"], backbone=backbone_spec, datasets=[DATA], shots=[1], seeds=[1, 2], epochs=1)
    results = [run_protocol("base2new", grid, db=tmp_path / f"s{i}.db", shard=f"{i}/2", runtime=Runtime(progress=False))
               for i in range(2)]
    assert [r["planned"] for r in results] == [2, 2] and all(not r["failed"] for r in results)
    merged = load_records([tmp_path / "s0.db", tmp_path / "s1.db"])
    assert len(merged) == 8  # 4 runs x (base, new)
    rep = report([tmp_path / "s0.db", tmp_path / "s1.db"], tmp_path / "rep", plots=False)
    assert rep["records"] == 8
    md = (tmp_path / "rep" / "tables.md").read_text()
    coop_base = [r["top1"] for r in merged if r["method"] == "coop" and r["target"] == "base"]
    assert f"{100 * sum(coop_base) / 2:.2f}" in md


def test_transfer_targets_and_class_changes(tmp_path, backbone_spec):
    grid = Grid(methods=["zeroshot", "coop", "linear-probe"], backbone=backbone_spec, datasets=["synthetic:shapes"],
                targets=["synthetic:shapes_noise"], shots=[1], seeds=[1], epochs=1,
                overrides=["linear-probe:method.max_iter=20", "linear-probe:method.search_steps=1"])
    result = run_protocol("domain-generalization", grid, db=tmp_path / "dg.db", runtime=Runtime(progress=False))
    assert not result["failed"] and result["ran"] == 3
    rows = load_records([tmp_path / "dg.db"])
    assert {(r["method"], r["target"]) for r in rows} == {
        (m, t) for m in ("zeroshot", "coop", "linear-probe") for t in ("synthetic:shapes", "synthetic:shapes_noise")}
    b2n = run_protocol("base2new", Grid(methods=["linear-probe"], backbone=backbone_spec, datasets=[DATA], shots=[1],
                                        seeds=[1], overrides=["method.max_iter=20"]),
                       db=tmp_path / "b.db", runtime=Runtime(progress=False))
    assert not b2n["failed"]
    # the linear probe cannot move to the new classes: only its base record exists
    assert [r["target"] for r in load_records([tmp_path / "b.db"])] == ["base"]


def _one_line_error(capsys, argv, needle):
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and needle in err[0], err


def test_cli_dry_run_and_errors(tmp_path, capsys):
    db = str(tmp_path / "x.db")
    assert main(["run", "fewshot", "--methods", "zeroshot,coop", "--datasets", DATA, "--shots", "1,2",
                 "--seeds", "1", "--db", db, "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["planned"] == 3 and not Path(db).exists()
    _one_line_error(capsys, ["run", "fewshot", "--methods", "nope", "--datasets", DATA, "--db", db], "unknown method")
    _one_line_error(capsys, ["run", "fewshot", "--methods", "coop", "--datasets", DATA, "--db", db,
                             "--shard", "2/2"], "--shard")
    _one_line_error(capsys, ["run", "base2new", "--methods", "coop", "--datasets", "nodata", "--db", db,
                             "--dry-run"], "nodata")
    _one_line_error(capsys, ["run", "fewshot", "--methods", "coop", "--datasets", DATA, "--db", db,
                             "--shots", "1,x"], "--shots")
