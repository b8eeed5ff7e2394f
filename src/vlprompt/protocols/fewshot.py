"""Few-shot classification (CoOp Fig. 3): accuracy vs. shots per dataset and on average.

Each method trains on K shots per class of a dataset's train split and is tested on the
full test split, for every K and seed. Methods that learn nothing (zero-shot) run once per
dataset and seed with 0 shots and appear as a flat line in every shots column.
"""

from __future__ import annotations

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
)


class FewShot(Protocol):
    name = "fewshot"
    title = "Few-shot classification"
    description = "K shots per class from train, tested on the full test split"

    def targets(self, dataset: str, grid: GridOptions) -> tuple[Target, ...]:
        return (Target("test", dataset),)

    def summarise(self, records: list[dict]) -> tuple[list[Table], list[Figure]]:
        tables: list[Table] = []
        figures: list[Figure] = []
        for backbone, recs in by_backbone(r for r in records if r["target"] == "test").items():
            t, f = self._summarise_backbone(backbone, recs)
            tables += t
            figures += f
        return tables, figures

    def _summarise_backbone(self, backbone: str, recs: list[dict]) -> tuple[list[Table], list[Figure]]:
        label = method_labeller(recs)
        values = per_seed(recs, lambda r: (label(r), r["dataset"], int(r["shots"])))
        labels = method_order(label(r) for r in recs)
        datasets = ordered((r["dataset"] for r in recs), DATASET_ORDER)
        shots = sorted({int(r["shots"]) for r in recs if int(r["shots"]) > 0}) or [0]
        constant = {m for m in labels if all(k[2] == 0 for k in values if k[0] == m)}

        def cell(m: str, d: str, k: int):
            return values.get((m, d, 0 if m in constant else k))

        tables = []
        for k in shots:
            rows, notes = [], []
            for m in labels:
                groups = {d: cell(m, d, k) for d in datasets}
                avg, note = average(groups, datasets)
                if note and m not in constant:
                    notes.append(f"{m}: {note}")
                rows.append([m, *[stat_of(groups[d]) for d in datasets], avg])
            notes.append("mean ± 95% CI over seeds (t-distribution), top-1 accuracy in %; "
                         "Average: per-seed mean over datasets" + ("; 0-shot methods repeat in every column"
                                                                    if constant else ""))
            if validation_note(recs):
                notes.append(validation_note(recs))
            tables.append(Table(key=f"fewshot_{slug(backbone)}_{k}shot",
                                title=f"Few-shot, {k}-shot — backbone {backbone}",
                                columns=["method", *datasets, "Average"], rows=rows, notes=notes))
        panels = []
        for d in ["Average", *datasets]:
            series = []
            for m in labels:
                points = []
                for k in shots:
                    stat = (average({x: cell(m, x, k) for x in datasets}, datasets)[0] if d == "Average"
                            else stat_of(cell(m, d, k)))
                    if stat is not None:
                        points.append((k, stat))
                if points:
                    series.append(Series(m, [p[0] for p in points], [100 * p[1].mean for p in points],
                                         [None if p[1].ci is None else 100 * p[1].ci for p in points],
                                         style="hline" if m in constant else "line"))
            panels.append(Panel(d, series, xlabel="shots per class", log2_x=True))
        figure = Figure(key=f"fewshot_{slug(backbone)}", title=f"Few-shot accuracy vs. shots — {backbone}",
                        panels=panels)
        return tables, [figure]

