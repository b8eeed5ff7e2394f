"""Transfer protocols: train on a source dataset, test on the source and on target datasets.

Domain generalization (ImageNet -> V2, Sketch, A, R) keeps the source's classes, though
A and R are 200-class subsets whose prompts are rebuilt from their class names; cross-
dataset transfer (ImageNet -> the other 10) moves to entirely new classes. Both are the
same code path: a target whose class names differ from the source's goes through
`set_classnames`, and methods that cannot change classes get no number for it.
"""

from __future__ import annotations

from collections.abc import Callable

from ..results.tables import Figure, Panel, Series, Table
from .base import GridOptions, Protocol, Target
from .presets import default_targets
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

DEFAULT_SHOTS = 16


class Transfer(Protocol):
    """Base of the two transfer protocols; `preset` picks default targets per source."""

    preset = "paper"

    def targets(self, dataset: str, grid: GridOptions) -> tuple[Target, ...]:
        names = grid.targets or default_targets(self.name, dataset, self.preset)
        return (Target(dataset, dataset), *(Target(t, t) for t in names if t != dataset))

    def summarise(self, records: list[dict]) -> tuple[list[Table], list[Figure]]:
        tables: list[Table] = []
        figures: list[Figure] = []
        for backbone, recs in by_backbone(records).items():
            groups: dict[tuple, list[dict]] = {}
            for r in recs:
                groups.setdefault((r["dataset"],), []).append(r)
            for (source,), sel in groups.items():
                label = method_labeller(sel)
                for shots in sorted({int(r["shots"]) for r in sel if int(r["shots"]) > 0}) or [0]:
                    sub = [r for r in sel if int(r["shots"]) in (0, shots)]
                    t, f = self._table(backbone, source, sub, shots, label)
                    tables.append(t)
                    figures.append(f)
        return tables, figures

    def _table(self, backbone: str, source: str, recs: list[dict], shots: int,
               label: Callable[[dict], str]) -> tuple[Table, Figure]:
        values = per_seed(recs, lambda r: (label(r), r["target"]))
        methods = method_order(label(r) for r in recs)
        targets = [t for t in ordered((r["target"] for r in recs), []) if t != source]
        rows, notes = [], []
        for m in methods:
            avg, note = average({t: values.get((m, t)) for t in targets}, targets)
            if note:
                notes.append(f"{m}: {note}")
            rows.append([m, stat_of(values.get((m, source))), *[stat_of(values.get((m, t))) for t in targets], avg])
        tag = f"{shots} shots"
        key = f"{self.name}_{slug(backbone)}_{slug(source)}_{shots}shot"
        notes.append("top-1 % mean ± 95% CI over seeds (t-distribution); Average: over the targets, per seed")
        if validation_note(recs):
            notes.append(validation_note(recs))
        table = Table(key=key, title=f"{self.title}: {source} → targets ({tag}) — backbone {backbone}",
                      columns=["method", f"{source} (source)", *targets, "Average (targets)"], rows=rows, notes=notes)
        cats = [source, *targets]
        series = []
        for row in rows:
            stats = row[1:-1]
            series.append(Series(row[0], cats, [100 * s.mean if s else float("nan") for s in stats],
                                 [100 * s.ci if s and s.ci is not None else None for s in stats], style="bar"))
        figure = Figure(key=key, title=table.title, panels=[Panel(f"{source} → targets", series, kind="bars",
                                                                  categories=cats)])
        return table, figure


class DomainGeneralization(Transfer):
    name = "domain-generalization"
    title = "Domain generalization"
    description = "train on a source (ImageNet), test on its shifted versions (V2, Sketch, A, R)"


class CrossDataset(Transfer):
    name = "cross-dataset"
    title = "Cross-dataset transfer"
    description = "train on a source (ImageNet), test on other datasets with other classes"
