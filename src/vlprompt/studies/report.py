"""`vlprompt report`: tables, plots and one self-contained HTML page from result stores.

Several stores (shards of one grid) are read together, each (run, target) once. The
output folder gets `tables.md`, `csv/<table>.csv`, `plots/<figure>.png|svg`,
`records.csv`/`records.json` (every merged record) and `index.html`, which embeds its
plots as inline SVG so it can be mailed or archived as one file.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..results import plots, sections
from ..results.store import COLUMNS, load_analyses, load_records
from ..results.tables import Figure, Table, to_csv, to_html, to_markdown
from ..utils.io import atomic_write_text, claim_output_dir

log = logging.getLogger(__name__)


@dataclass
class Report:
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    sections: list[tuple[str, list[Table], list[Figure]]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    n_records: int = 0


def build(records: list[dict], analyses: list[dict]) -> Report:
    """Protocol summaries then analyses, as named sections."""
    from ..protocols import PROTOCOLS

    report = Report(n_records=len(records))
    for name, cls in PROTOCOLS.items():
        recs = [r for r in records if r["protocol"] == name]
        if recs:
            tables, figures = cls().summarise(recs)
            report.sections.append((f"{cls.title} ({name}): {cls.description}", tables, figures))
    var_tables, var_figures = sections.variance(records, analyses)
    extra = [("Claims of the papers", sections.claims(analyses), []),
             ("Optimisation time", sections.timing(records), []),
             ("Variance analysis (UPT App. A)", var_tables, var_figures),
             ("Nearest words of learned prompts", sections.words(analyses), []),
             ("Feature projections", [], sections.projections(analyses))]
    report.sections += [s for s in extra if s[1] or s[2]]
    for _, tables, figures in report.sections:
        report.tables += tables
        report.figures += figures
    return report


#: Paths every report writes: an unmarked folder holding them was written by an older vlprompt.
REPORT_FILES = ("tables.md", "records.json", "index.html")


def write_report(dbs: Sequence[str | Path], out: str | Path, *, plots_enabled: bool = True,
                 force: bool = False) -> Report:
    """Read the stores, write every output file; returns the report with `files` filled."""
    if not dbs:
        raise UserError("no results database given (--db FILE)")
    records = load_records(dbs)
    if not records:
        raise UserError(f"no results in {', '.join(map(str, dbs))}; run `vlprompt run ...` first")
    analyses = load_analyses(dbs)
    report = build(records, analyses)
    out = Path(out)
    if claim_output_dir(out, "report", force=force, legacy=REPORT_FILES):
        _remove_previous(out)  # our own folder: a table or plot the new report lacks must not linger
    (out / "csv").mkdir(parents=True, exist_ok=True)
    md = [f"# vlprompt report\n\n{len(records)} records from {', '.join(map(str, dbs))}\n"]
    for title, tables, _ in report.sections:
        md.append(f"\n## {title}\n")
        md += [to_markdown(t) for t in tables]
    atomic_write_text(out / "tables.md", "\n".join(md))
    report.files["tables.md"] = str(out / "tables.md")
    for t in report.tables:
        atomic_write_text(out / "csv" / f"{t.key}.csv", to_csv(t))
    _write_records(records, out)
    svgs: dict[str, str] = {}
    if plots_enabled and plots.available():
        for fig in report.figures:
            _, _, svg = plots.write(fig, out / "plots")
            svgs[fig.key] = svg
    elif plots_enabled:
        log.warning("matplotlib is not installed; plots skipped (pip install 'vlprompt[plot]')")
    atomic_write_text(out / "index.html", _html(report, dbs, svgs))
    report.files["index.html"] = str(out / "index.html")
    return report


def _remove_previous(out: Path) -> None:
    """The tables and plots of an earlier report in this (vlprompt's) folder."""
    for sub, suffixes in (("csv", (".csv",)), ("plots", (".png", ".svg"))):
        folder = out / sub
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.is_file() and entry.suffix in suffixes:
                    entry.unlink()


def _write_records(records: list[dict], out: Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for r in records:
        row = []
        for c in COLUMNS:
            value = r.get(c[:-5]) if c.endswith("_json") else r.get(c)
            row.append("" if value is None else json.dumps(value, sort_keys=True) if c.endswith("_json") else value)
        writer.writerow(row)
    atomic_write_text(out / "records.csv", buf.getvalue())
    atomic_write_text(out / "records.json", json.dumps(records, indent=1, sort_keys=True) + "\n")


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
th{background:#f3f3f3}.note{color:#555;font-size:12px;margin:.2em 0}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}h2{border-bottom:1px solid #ddd}
.tw{max-width:100%;overflow-x:auto}td{max-width:36em;overflow-wrap:anywhere}"""


def _svg_body(svg: str) -> str:
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def _html(report: Report, dbs: Sequence[str | Path], svgs: dict[str, str]) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>vlprompt report</title>"
             f"<style>{_CSS}</style></head><body><h1>vlprompt report</h1>"
             f"<p>{report.n_records} records from {html.escape(', '.join(map(str, dbs)))}; written {now}.</p>"]
    toc = "".join(f"<li><a href='#s{i}'>{html.escape(t)}</a></li>" for i, (t, _, _) in enumerate(report.sections))
    parts.append(f"<ul>{toc}</ul>")
    for i, (title, tables, figures) in enumerate(report.sections):
        parts.append(f"<h2 id='s{i}'>{html.escape(title)}</h2>")
        parts += [f"<div class='tw'>{to_html(t)}</div>" for t in tables]  # wide tables scroll, not overflow
        for fig in figures:
            if fig.key in svgs:  # the title is drawn in the figure; no caption repeating it
                parts.append(f"<figure aria-label='{html.escape(fig.title, quote=True)}'>"
                             f"{_svg_body(svgs[fig.key])}</figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def report(db: str | Path | Sequence[str | Path], out: str | Path, *, plots: bool = True,
           force: bool = False) -> dict:
    """Write tables, plots and an HTML page for one or more result databases (shards are merged).

    `out` must be new, empty or a folder vlprompt wrote, unless `force`."""
    dbs = [db] if isinstance(db, str | Path) else list(db)
    rep = write_report(dbs, out, plots_enabled=plots, force=force)
    return {"records": rep.n_records, "tables": len(rep.tables), "figures": len(rep.figures), "files": rep.files,
            "out": str(out)}
