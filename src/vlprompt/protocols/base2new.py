"""Base-to-new generalization (CoCoOp): train on the base half of the classes, test on both.

Shots are sampled from the whole train split first and split afterwards (docs/methods.md), so
the base classes see exactly the images of a full few-shot run. Each run has two targets,
`base` and `new`; the new classes are reached through `set_classnames`, so methods that
learn one weight per class (linear probe) only get a base number. The harmonic mean
`HM = 2 B N / (B + N)` is taken of the mean base and new accuracies, per dataset and for
the average over datasets, as the papers report it.

With several `--epochs` values the main tables show each method at its largest budget and
the summary adds the optimality-generalization trade-off: base, new and HM accuracy against
the training budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..metrics import harmonic_mean
from ..results.stats import Stat
from ..results.tables import Figure, Panel, Series, Table
from .base import GridOptions, Protocol, Target
from .presets import DATASET_ORDER
from .summary import (
    average,
    by_backbone,
    method_labeller,
    method_order,
    ordered,
    per_seed,
    slug,
    stat_of,
    validation_note,
    validation_of,
)

HM = "HM (harmonic mean)"


class BaseToNew(Protocol):
    name = "base2new"
    title = "Base-to-new generalization"
    description = "train on base classes, test on base and new classes, harmonic mean"

    part = "base"

    def targets(self, dataset: str, grid: GridOptions) -> tuple[Target, ...]:
        return (Target("base", dataset, "base"), Target("new", dataset, "new"))

    def summarise(self, records: list[dict]) -> tuple[list[Table], list[Figure]]:
        tables: list[Table] = []
        figures: list[Figure] = []
        for backbone, recs in by_backbone(r for r in records if r["target"] in ("base", "new")).items():
            full = _full_budget(recs)
            for shots in sorted({int(r["shots"]) for r in full if int(r["shots"]) > 0}) or [0]:
                sel = [r for r in full if int(r["shots"]) in (0, shots)]
                t, f = _setting_tables(backbone, sel, shots, method_labeller(sel, epochs=False))
                tables += t
                figures += f
            t, f = _tradeoff(backbone, recs)
            tables += t
            figures += f
        return tables, figures


def _full_budget(recs: list[dict]) -> list[dict]:
    """Per (method, shots), the records of the largest `--epochs` override (the preset counts as
    the largest); the smaller budgets appear in the trade-off table only."""
    def budget(r: dict) -> float:
        return math.inf if r.get("epochs") is None else float(r["epochs"])

    def key(r: dict) -> tuple:
        return r["method"], int(r["shots"]), validation_of(r)

    best: dict[tuple, float] = {}
    for r in recs:
        best[key(r)] = max(best.get(key(r), -math.inf), budget(r))
    return [r for r in recs if budget(r) == best[key(r)]]


def _b_n_h(values: dict, method: str, datasets: list[str]) -> tuple[Stat | None, Stat | None, float | None, str]:
    """Average base, new and their harmonic mean over datasets for one method."""
    base, note_b = average({d: values.get((method, d, "base")) for d in datasets}, datasets)
    new, note_n = average({d: values.get((method, d, "new")) for d in datasets}, datasets)
    hm = harmonic_mean(base.mean, new.mean) if base is not None and new is not None else None
    if base is not None and not any(values.get((method, d, "new")) for d in datasets):
        note_n = "no new-class results (the method learns one weight per class and cannot move to new classes)"
    return base, new, hm, note_b or note_n


def _setting_tables(backbone: str, recs: list[dict], shots: int,
                    label: Callable[[dict], str]) -> tuple[list[Table], list[Figure]]:
    values = per_seed(recs, lambda r: (label(r), r["dataset"], r["target"]))
    methods = method_order(label(r) for r in recs)
    datasets = ordered((r["dataset"] for r in recs), DATASET_ORDER)
    tag = f"{shots}shot"
    title_tag = f"{shots} shots"
    rows, notes = [], []
    for m in methods:
        b, n, h, note = _b_n_h(values, m, datasets)
        rows.append([m, b, n, h])
        if note:
            notes.append(f"{m}: {note}")
    explain = (f"{HM} = 2·B·N/(B+N) of the mean base (B) and new (N) top-1 accuracy; B and N: mean ± 95% CI "
               "over seeds (t-distribution), averaged over datasets per seed")
    key = f"base2new_{slug(backbone)}_{tag}"
    tables = [Table(key=f"{key}_average", title=f"Base-to-new, average over {len(datasets)} datasets "
                    f"({title_tag}) — backbone {backbone}", columns=["method", "Base", "New", HM],
                    rows=rows, notes=[*notes, explain] + ([validation_note(recs)] if validation_note(recs) else []))]
    hm_rows = []
    for m in methods:
        row: list = [m]
        for d in datasets:
            b, n = stat_of(values.get((m, d, "base"))), stat_of(values.get((m, d, "new")))
            row.append(harmonic_mean(b.mean, n.mean) if b is not None and n is not None else None)
        row.append(_b_n_h(values, m, datasets)[2])
        hm_rows.append(row)
    tables.append(Table(key=f"{key}_hm", title=f"Base-to-new harmonic mean per dataset ({title_tag}) — {backbone}",
                        columns=["method", *datasets, "Average"], rows=hm_rows,
                        notes=["harmonic mean of the mean base and new accuracy, in %"]))
    panels = [Panel("Average", _bars(methods, {m: rows[i][1:] for i, m in enumerate(methods)}),
                    kind="bars", categories=["Base", "New", "HM"])]
    for d in datasets:
        drows = []
        for m in methods:
            b, n = stat_of(values.get((m, d, "base"))), stat_of(values.get((m, d, "new")))
            drows.append([m, b, n, harmonic_mean(b.mean, n.mean) if b is not None and n is not None else None])
        tables.append(Table(key=f"{key}_{slug(d)}", title=f"Base-to-new on {d} ({title_tag}) — {backbone}",
                            columns=["method", "Base", "New", HM], rows=drows))
        panels.append(Panel(d, _bars(methods, {r[0]: r[1:] for r in drows}), kind="bars",
                            categories=["Base", "New", "HM"]))
    figures = [Figure(key=key, title=f"Base / new / harmonic mean ({title_tag}) — {backbone}", panels=panels)]
    return tables, figures


def _bars(methods: list[str], cells: dict[str, list]) -> list[Series]:
    series = []
    for m in methods:
        b, n, h = cells[m]
        ys = [100 * b.mean if b else float("nan"), 100 * n.mean if n else float("nan"),
              100 * h if h is not None else float("nan")]
        errs = [100 * b.ci if b and b.ci is not None else None, 100 * n.ci if n and n.ci is not None else None, None]
        series.append(Series(m, ["Base", "New", "HM"], ys, errs, style="bar"))
    return series


def _tradeoff(backbone: str, recs: list[dict]) -> tuple[list[Table], list[Figure]]:
    """Base/new/HM vs. the (resolved) number of epochs, per method, when runs differ only in epochs."""
    trained = [r for r in recs if int(r["shots"]) > 0 and r.get("config")]
    budgets = {(r["method"], int(r["shots"])): set() for r in trained}
    for r in trained:
        budgets[(r["method"], int(r["shots"]))].add(int(r["config"]["train"]["epochs"]))
    if not any(len(v) > 1 for v in budgets.values()):
        return [], []
    datasets = ordered((r["dataset"] for r in recs), DATASET_ORDER)
    values = per_seed(trained, lambda r: (r["method"], int(r["shots"]), int(r["config"]["train"]["epochs"]),
                                          r["dataset"], r["target"]))
    rows, panels = [], []
    for (method, shots), eps in sorted(budgets.items()):
        if len(eps) < 2:
            continue
        xs, lines = [], {"Base": [], "New": [], "HM": []}
        for e in sorted(eps):
            sub = {(method, d, t): v for (m, k, ep, d, t), v in values.items() if (m, k, ep) == (method, shots, e)}
            b, n, h, _ = _b_n_h(sub, method, datasets)
            rows.append([method, shots, e, b, n, h])
            if b is not None and n is not None:
                xs.append(e)
                lines["Base"].append(100 * b.mean)
                lines["New"].append(100 * n.mean)
                lines["HM"].append(100 * h)
        panels.append(Panel(f"{method}, {shots} shots", [Series(k, xs, v) for k, v in lines.items()],
                            xlabel="training epochs"))
    table = Table(key=f"base2new_{slug(backbone)}_epochs", title=f"Optimality-generalization trade-off: "
                  f"accuracy vs. training epochs — {backbone}", columns=["method", "shots", "epochs", "Base", "New", HM],
                  rows=rows, notes=["averaged over datasets; longer training fits the base classes better and "
                                    "may lose new-class accuracy"])
    return [table], [Figure(key=f"base2new_{slug(backbone)}_epochs", title=table.title, panels=panels)]
