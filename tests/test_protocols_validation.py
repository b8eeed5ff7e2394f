"""`data.validation`: few-shot, none or full validation data, in runs, grids, records and the report."""

from __future__ import annotations

import json

import pytest

from protocol_support import fixed_backbone, record
from vlprompt.api import Grid, report, run_protocol
from vlprompt.data.fewshot import sample_fewshot
from vlprompt.data.registry import DatasetError, load_dataset
from vlprompt.engine.runner import train
from vlprompt.errors import ConfigError
from vlprompt.protocols import get_protocol
from vlprompt.protocols.summary import method_labeller, validation_of
from vlprompt.results.store import load_records
from vlprompt.utils.runtime import Runtime

DATA = "synthetic:counting"  # 4 classes; 128 train, 32 val, 160 test images
RT = Runtime(progress=False)


@pytest.fixture(scope="module")
def backbone_spec(tmp_path_factory, model_configs):
    return fixed_backbone(tmp_path_factory.mktemp("bb"), model_configs["vit"])


def test_sample_fewshot_validation_settings(tmp_path):
    data = load_dataset(DATA)
    few, none, full = (sample_fewshot(data, 2, 3, manifest_dir=tmp_path, validation=v)
                       for v in ("fewshot", "none", "full"))
    assert few.train == none.train == full.train  # the same shots: the settings compare paired runs
    assert len(few.val) == 2 * 4 and none.val == [] and full.val == list(data.val)
    assert (none.info["fewshot"]["validation"], none.info["fewshot"]["n_val"]) == ("none", 0)
    assert full.info["fewshot"]["n_val"] == 32 and full.info["fewshot"]["val_shots"] is None
    with pytest.raises(DatasetError, match="validation must be one of"):
        sample_fewshot(data, 2, 3, manifest_dir=tmp_path, validation="half")
    from dataclasses import replace
    with pytest.raises(DatasetError, match="no validation split"):
        sample_fewshot(replace(data, val=[]), 2, 3, manifest_dir=tmp_path, validation="full")


class _Spy:
    """Wraps Trainer.fit to see the validation items a run hands to the method."""

    def __init__(self, monkeypatch):
        from vlprompt.engine import trainer

        self.seen: list[int] = []
        original = trainer.Trainer.fit

        def fit(inner, train_items, val=(), resume=False):
            self.seen.append(len(val))
            return original(inner, train_items, val, resume)

        monkeypatch.setattr(trainer.Trainer, "fit", fit)


def test_runs_see_no_full_or_fewshot_validation(tmp_path, backbone_spec, monkeypatch):
    spy = _Spy(monkeypatch)
    cheap = ["method.max_iter=20", "method.search_steps=1"]
    runs = {}
    for v in ("none", "full", "fewshot"):
        runs[v] = train("linear-probe", backbone_spec, DATA, shots=1, out=tmp_path / v,
                        overrides=[*cheap, f"data.validation={v}"], runtime=RT)
    assert spy.seen == [0, 32, 4]
    recs = {v: json.loads((tmp_path / v / "run.json").read_text()) for v in runs}
    assert recs["none"]["validation"] == {"setting": "none", "n_val": 0, "fallbacks": {}}
    assert recs["none"]["fit_info"]["C_from"] == "method.default_C (no validation data)"
    assert recs["none"]["fit_info"]["C"] == pytest.approx(0.316)
    assert recs["full"]["validation"]["n_val"] == 32 and recs["full"]["fit_info"]["C_from"] == "validation search"
    assert recs["fewshot"]["config"]["data"]["validation"] == "fewshot"
    # Tip-Adapter without validation keeps its initial alpha and beta, and says so
    tip = train("tip-adapter", backbone_spec, DATA, shots=1, out=tmp_path / "tip",
                config={"data": {"validation": "none"}}, runtime=RT)
    info = json.loads((tmp_path / "tip" / "run.json").read_text())["fit_info"]
    assert tip["top1"] > 0 and info["searched"] is False and "no validation data" in info["alpha_beta_from"]


def test_val_selection_falls_back_or_is_refused(tmp_path, backbone_spec):
    # cross-modal-lp's preset selects the best val epoch: without validation data, the last one
    train("cross-modal-lp", backbone_spec, DATA, shots=1, out=tmp_path / "a", runtime=RT,
          overrides=["train.epochs=1", "data.validation=none"])
    rec = json.loads((tmp_path / "a" / "run.json").read_text())
    assert rec["selection"] == "last" and rec["validation"]["fallbacks"] == {
        "train.select": "last (the preset's val selection has no data)"}
    with pytest.raises(ConfigError, match="train.select=val"):
        train("coop", backbone_spec, DATA, shots=1, out=tmp_path / "b", runtime=RT,
              overrides=["train.epochs=1", "train.select=val", "data.validation=none"])


def test_grid_records_hash_and_report(tmp_path, backbone_spec, caplog):
    axes = dict(methods=["zeroshot", "lp++"], backbone=backbone_spec, datasets=[DATA], shots=[1], seeds=[1])
    db = tmp_path / "g.db"
    first = run_protocol("fewshot", Grid(**axes), db=db, runtime=RT)
    second = run_protocol("fewshot", Grid(**axes, overrides=["data.validation=none"]), db=db, runtime=RT)
    third = run_protocol("fewshot", Grid(**{**axes, "methods": ["lp++"]}, overrides=["data.validation=full"]),
                         db=db, runtime=RT)
    assert not first["failed"] and not second["failed"] and not third["failed"]
    # the run trains on the grid's subset as it is: the shared manifest is never rewritten
    assert "sampling again" not in caplog.text
    assert second["ran"] == 2  # a changed setting is a new run (its hash differs), zero-shot included
    recs = load_records([db])
    lpp = {validation_of(r): r for r in recs if r["method"] == "lp++"}
    assert set(lpp) == {"fewshot", "none", "full"}
    assert lpp["full"]["metrics"]["validation"]["n_val"] == 32  # the whole val split of the task
    assert lpp["none"]["metrics"]["validation"]["n_val"] == 0
    assert lpp["none"]["metrics"]["fit_info"]["selected_iteration"] == "last (300); no validation data"
    assert lpp["fewshot"]["metrics"]["validation"]["n_val"] == 4
    report(db, tmp_path / "rep", plots=False)
    md = (tmp_path / "rep" / "tables.md").read_text()
    assert "| lp++ (no val) |" in md and "| lp++ (full val) |" in md and "| lp++ |" in md
    assert "| zeroshot (no val)" not in md
    assert "no val: data.validation=none (no validation data: each method's fixed defaults)" in md
    assert "| fewshot | lp++ (no val) |" in md  # timed apart: no search to pay for


def test_a_dry_run_checks_the_setting():
    grid = Grid(methods=["coop"], datasets=[DATA], shots=[1], seeds=[1])
    assert run_protocol("fewshot", Grid(**{**vars(grid), "overrides": ["data.validation=full"]}), db="x.db",
                        dry_run=True)["planned"] == 1
    with pytest.raises(ConfigError, match="data.validation"):
        run_protocol("fewshot", Grid(**{**vars(grid), "overrides": ["data.validation=half"]}), db="x.db", dry_run=True)


def test_labels_keep_settings_apart():
    recs = [record("a", "test", method="clap", metrics={"validation": {"setting": "none"}}),
            record("b", "test", method="clap", metrics={"validation": {"setting": "full"}}, epochs=3),
            record("c", "test", method="clap", epochs=5),  # stored before the option: few-shot validation
            record("z", "test", method="zeroshot", shots=0, metrics={"validation": {"setting": "none"}})]
    label = method_labeller(recs)
    assert [label(r) for r in recs] == ["clap (no val)", "clap (3 ep, full val)", "clap (5 ep)", "zeroshot"]
    tables, _ = get_protocol("fewshot").summarise(recs)
    assert any("full val: data.validation=full" in n for n in tables[0].notes)
