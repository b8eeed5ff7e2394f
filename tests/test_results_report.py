"""Statistics and the report, on records written by the test with known numbers."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats

from protocol_support import record
from vlprompt.metrics import harmonic_mean
from vlprompt.protocols import get_protocol
from vlprompt.results.stats import Stat, average_over_groups, mean_ci, pearson, t_half_width
from vlprompt.results.store import ResultStore
from vlprompt.studies.report import write_report


def test_t_confidence_interval():
    values = [0.5, 0.6, 0.7]
    sd = math.sqrt(sum((v - 0.6) ** 2 for v in values) / 2)
    assert t_half_width(values) == pytest.approx(stats.t.ppf(0.975, 2) * sd / math.sqrt(3))
    assert t_half_width(values) == pytest.approx(0.248414, abs=1e-6)  # t(0.975, 2) = 4.3027
    assert mean_ci([0.3]) == Stat(0.3, None, 1)
    assert mean_ci([0.4, 0.4]).ci == 0.0
    assert pearson([1, 2, 3], [2, 4, 6.5]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 6.5])[0, 1])
    assert pearson([1, 2], [1, 2]) is None


def test_average_over_datasets_is_per_seed():
    avg, note = average_over_groups({"a": {1: 0.2, 2: 0.4, 3: 0.9}, "b": {1: 0.6, 2: 0.8}})
    assert note == "" and avg.n == 2  # seeds 1 and 2 are common
    assert avg.mean == pytest.approx((0.4 + 0.6) / 2)
    assert avg.ci == pytest.approx(t_half_width([0.4, 0.6]))
    avg, note = average_over_groups({"a": {1: 0.2}, "b": {2: 0.6}})
    assert avg.ci is None and avg.mean == pytest.approx(0.4) and "mean of means" in note


FEWSHOT = {  # (method, dataset, shots) -> top-1 per seed 1, 2, 3
    ("zeroshot", "synthetic:shapes", 0): [0.40, 0.40, 0.40],
    ("zeroshot", "synthetic:colors", 0): [0.30, 0.30, 0.30],
    ("coop", "synthetic:shapes", 2): [0.50, 0.56, 0.62],
    ("coop", "synthetic:colors", 2): [0.70, 0.72, 0.77],
}
BASE2NEW = {("coop", "synthetic:shapes"): ([0.9, 0.8, 0.85], [0.5, 0.6, 0.55]),
            ("coop", "synthetic:colors"): ([0.7, 0.74, 0.72], [0.4, 0.3, 0.35])}


def _write(db):
    with ResultStore(db) as store:
        for (method, dataset, shots), values in FEWSHOT.items():
            for seed, v in enumerate(values, 1):
                store.add_run([record(f"f{method}{dataset}{seed}", "test", method=method, dataset=dataset,
                                      shots=shots, seed=seed, top1=v, seconds_fit=2.0, seconds_total=3.0)])
        for (method, dataset), (base, new) in BASE2NEW.items():
            for seed, (b, n) in enumerate(zip(base, new, strict=True), 1):
                store.add_run([record(f"b{dataset}{seed}", t, protocol="base2new", method=method, dataset=dataset,
                                      shots=16, seed=seed, top1=v, classes="base")
                               for t, v in (("base", b), ("new", n))])


def _mean(xs):
    return sum(xs) / len(xs)


def test_summaries_hold_the_right_numbers(tmp_path):
    _write(tmp_path / "r.db")
    with ResultStore(tmp_path / "r.db") as store:
        tables, figures = get_protocol("fewshot").summarise(store.records("fewshot"))
        b2n_tables, _ = get_protocol("base2new").summarise(store.records("base2new"))
    (table,) = tables
    assert table.columns == ["method", "synthetic:shapes", "synthetic:colors", "Average"]
    rows = {r[0]: r for r in table.rows}
    assert list(rows) == ["zeroshot", "coop"]
    coop = FEWSHOT[("coop", "synthetic:shapes", 2)]
    assert rows["coop"][1].mean == pytest.approx(_mean(coop))
    assert rows["coop"][1].ci == pytest.approx(t_half_width(coop))
    per_seed = [(a + b) / 2 for a, b in zip(coop, FEWSHOT[("coop", "synthetic:colors", 2)], strict=True)]
    assert rows["coop"][3].mean == pytest.approx(_mean(per_seed))
    assert rows["coop"][3].ci == pytest.approx(t_half_width(per_seed))
    assert rows["zeroshot"][3].mean == pytest.approx(0.35)  # zero-shot repeats in every shots column
    assert figures[0].panels[0].title == "Average"
    average = b2n_tables[0]
    assert "harmonic mean" in average.columns[3]
    base = [_mean([a, b]) for a, b in zip(*(BASE2NEW[k][0] for k in BASE2NEW), strict=True)]
    new = [_mean([a, b]) for a, b in zip(*(BASE2NEW[k][1] for k in BASE2NEW), strict=True)]
    (_, b, n, hm), = average.rows
    assert b.mean == pytest.approx(_mean(base)) and n.mean == pytest.approx(_mean(new))
    assert hm == pytest.approx(harmonic_mean(_mean(base), _mean(new)))
    assert hm == pytest.approx(2 * _mean(base) * _mean(new) / (_mean(base) + _mean(new)))
    per_dataset = {t.key.rsplit("_", 1)[-1]: t for t in b2n_tables}
    (_, b, n, hm), = per_dataset["synthetic-shapes"].rows
    assert hm == pytest.approx(harmonic_mean(0.85, 0.55))


def test_report_files_hold_the_database_numbers(tmp_path):
    pytest.importorskip("matplotlib")
    _write(tmp_path / "r.db")
    out = tmp_path / "report"
    rep = write_report([tmp_path / "r.db"], out)
    md = (out / "tables.md").read_text()
    page = (out / "index.html").read_text()
    coop = FEWSHOT[("coop", "synthetic:shapes", 2)]
    cell = f"{100 * _mean(coop):.2f} ± {100 * t_half_width(coop):.2f}"
    assert cell in md and cell in page
    hm = 100 * harmonic_mean(0.85, 0.55)
    assert f"{hm:.2f}" in md and f"{hm:.2f}" in page and "harmonic mean" in md
    assert "<svg" in page and "<img" not in page  # self-contained: plots inline
    for fig in rep.figures:
        assert (out / "plots" / f"{fig.key}.png").stat().st_size > 1000
        assert (out / "plots" / f"{fig.key}.svg").read_text().lstrip().startswith("<?xml")
    rows = list(csv.DictReader((out / "csv" / "fewshot_bb_2shot.csv").open()))
    coop_row = next(r for r in rows if r["method"] == "coop")
    assert float(coop_row["synthetic:shapes"]) == pytest.approx(100 * _mean(coop), abs=1e-3)
    assert float(coop_row["synthetic:shapes ci95"]) == pytest.approx(100 * t_half_width(coop), abs=1e-3)
    assert len(list(csv.DictReader((out / "records.csv").open()))) == 12 + 12


def test_report_cli_merges_shards_and_fails_in_one_line(tmp_path, capsys):
    from vlprompt.cli.main import main

    _write(tmp_path / "a.db")
    with ResultStore(tmp_path / "b.db") as store:
        store.add_run([record("extra", "test", method="coop", dataset="synthetic:shapes", shots=4, top1=0.9)])
    assert main(["report", "--db", f"{tmp_path / 'a.db'},{tmp_path / 'b.db'}", "--out", str(tmp_path / "o"),
                 "--no-plots"]) == 0
    assert "25 records" in capsys.readouterr().out
    assert "Few-shot, 4-shot" in (tmp_path / "o" / "tables.md").read_text()
    assert main(["report", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


def test_timing_compares_runs_of_one_size():
    """One row per protocol, dataset, method, shots and epochs, at the most shots of a dataset:
    a 1-shot run and another dataset's runs never enter a 16-shot cell."""
    from vlprompt.results.sections import timing

    def rec(h, dataset, method, shots, seed, fit, epochs=None):
        return record(h, "test", dataset=dataset, method=method, shots=shots, seed=seed, epochs=epochs,
                      seconds_fit=fit, seconds_total=fit + 1, peak_rss_mb=100.0)

    records = [rec("a", "big", "coop", 16, 1, 10.0), rec("b", "big", "coop", 16, 2, 14.0),
               rec("c", "big", "coop", 1, 1, 1.0), rec("d", "small", "coop", 16, 1, 2.0),
               rec("e", "big", "zeroshot", 0, 1, 0.0), rec("f", "big", "coop", 16, 1, 5.0, epochs=5),
               rec("a", "big", "coop", 16, 1, 10.0)]  # a second target of run "a": counted once
    (table,) = timing(records)
    rows = {(r[3], r[1], r[4], r[5]): r for r in table.rows}
    assert set(rows) == {("big", "coop", 16, "preset"), ("big", "coop", 16, 5), ("small", "coop", 16, "preset"),
                         ("big", "zeroshot", 0, "preset")}
    cell = rows[("big", "coop", 16, "preset")]
    assert cell[6] == 2 and cell[7].mean == pytest.approx(12.0) and cell[8].mean == pytest.approx(13.0)
    assert rows[("small", "coop", 16, "preset")][7].mean == pytest.approx(2.0)
