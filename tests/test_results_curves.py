"""`vlprompt report --curves`: each stored run's loss and validation curves from its run record."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from vlprompt.cli.main import main
from vlprompt.results.curves import curve_figures, run_histories
from vlprompt.results.store import load_records
from vlprompt.utils.runtime import Runtime


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    import vlprompt.api as api
    from vlprompt.backbones import load_backbone

    base = tmp_path_factory.mktemp("curves")
    rt = Runtime(device="cpu", progress=False, cache_dir=base / "features")
    axes = dict(methods=["zeroshot", "coop"], datasets=["synthetic:counting"], shots=[1], seeds=[1], epochs=2,
                backbone=load_backbone("tiny", device="cpu"), overrides=["coop:train.eval_every=1"])
    if hasattr(api, "Grid"):  # the API takes the grid's axes as one Grid
        result = api.run_protocol("fewshot", api.Grid(**axes), db=base / "r.db", runtime=rt)
    else:
        result = api.run_protocol("fewshot", **axes, db=base / "r.db", runtime=rt)
    assert result["failed"] == []
    return base / "r.db"


def test_histories_and_figures_come_from_the_run_records(db):
    runs, without = run_histories(load_records([db]))
    assert len(runs) == 1 and without == 1  # zero-shot has no epochs
    for run in runs:
        record = json.loads((Path(run["run_dir"]) / "run.json").read_text())
        assert run["history"] == record["history"] and len(run["history"]) == 2
    (figure,) = curve_figures(runs)
    loss, val = figure.panels
    assert [s.y for s in loss.series] == [[row["loss"] for row in r["history"]] for r in runs]
    assert [s.y for s in val.series] == [[100 * row["val_top1"] for row in r["history"]] for r in runs]
    assert loss.series[0].x == [1, 2] and "seed 1" in loss.series[0].label


def test_report_curves_adds_the_section_and_the_numbers(db, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--db", str(db), "--out", str(out), "--curves"]) == 0
    assert "training curves of 1 run(s)" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    assert "<h2 id='curves'>Training curves</h2>" in page and "href='#curves'" in page
    from vlprompt.results import plots

    if plots.available():
        assert page.count("<svg") > page[:page.index("id='curves'")].count("<svg")
        assert list((out / "plots").glob("curves-*.svg"))
    rows = list(csv.DictReader((out / "csv" / "curves.csv").open()))
    assert len(rows) == 2 and {r["method"] for r in rows} == {"coop"}
    plain = tmp_path / "plain"
    assert main(["report", "--db", str(db), "--out", str(plain), "--no-plots"]) == 0
    assert "Training curves" not in (plain / "index.html").read_text()
