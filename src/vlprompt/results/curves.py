"""Training curves of stored runs, from each run record's history (`vlprompt report --curves`).

The run record (`<run_dir>/run.json`) keeps one history row per epoch (loss and its parts,
learning rate, accuracy, validation top-1 when evaluated); the store keeps each run's
folder. Curves are drawn per (protocol, dataset, method), one line per run (shots and
seed), in two panels: the training loss and the validation top-1. Runs without a history
(zero-shot, closed-form fits) or whose folder is gone are counted, not drawn. The same
numbers are written as `csv/curves.csv`, so nothing depends on matplotlib.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections import defaultdict
from pathlib import Path

from .tables import Figure, Panel, Series

CSV_COLUMNS = ["protocol", "dataset", "method", "shots", "seed", "epochs", "run_dir", "epoch", "loss", "lr",
               "acc", "val_top1"]


def run_histories(records: list[dict]) -> tuple[list[dict], int]:
    """One entry per stored run with an epoch history ({protocol, dataset, method, shots, seed,
    epochs, run_dir, history}), and how many runs had none to show."""
    seen: dict[str, dict] = {}
    for r in records:
        run_dir = r.get("run_dir")
        if run_dir and run_dir not in seen:
            seen[run_dir] = r
    runs, without = [], 0
    for run_dir, r in sorted(seen.items(), key=lambda kv: (str(kv[1].get("dataset")), str(kv[1].get("method")),
                                                           int(kv[1].get("shots") or 0), int(kv[1].get("seed") or 0))):
        try:
            history = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8")).get("history") or []
        except (OSError, ValueError, AttributeError):
            history = []
        if not history:
            without += 1
            continue
        runs.append({"protocol": r.get("protocol"), "dataset": r.get("dataset"), "method": r.get("method"),
                     "shots": r.get("shots"), "seed": r.get("seed"), "epochs": r.get("epochs"),
                     "run_dir": run_dir, "history": history})
    return runs, without


def _label(run: dict) -> str:
    epochs = f", {run['epochs']} epochs" if run.get("epochs") is not None else ""
    return f"{run['shots']} shots, seed {run['seed']}{epochs}"


def curve_figures(runs: list[dict]) -> list[Figure]:
    """One figure per (protocol, dataset, method): training loss and validation top-1 (%) by epoch."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["protocol"], run["dataset"], run["method"])].append(run)
    figures = []
    for (protocol, dataset, method), group in groups.items():
        loss = [Series(_label(r), [row["epoch"] + 1 for row in r["history"]], [row["loss"] for row in r["history"]])
                for r in group]
        val = [Series(_label(r), [row["epoch"] + 1 for row in r["history"] if "val_top1" in row],
                      [100 * row["val_top1"] for row in r["history"] if "val_top1" in row]) for r in group]
        panels = [Panel("training loss", loss, xlabel="epoch", ylabel="loss")]
        if any(s.x for s in val):
            panels.append(Panel("validation top-1", [s for s in val if s.x], xlabel="epoch",
                                ylabel="accuracy (%)"))
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{protocol}-{dataset}-{method}").strip("_")[-80:]
        figures.append(Figure(key=f"curves-{slug}", title=f"{method} on {dataset} ({protocol}): training curves",
                              panels=panels))
    return figures


def curves_csv(runs: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for run in runs:
        for row in run["history"]:
            writer.writerow([run["protocol"], run["dataset"], run["method"], run["shots"], run["seed"],
                             "" if run["epochs"] is None else run["epochs"], run["run_dir"], row["epoch"] + 1,
                             row.get("loss"), row.get("lr"), row.get("acc"), row.get("val_top1", "")])
    return buf.getvalue()


def curves_html(figures: list[Figure], svgs: dict[str, str], n_runs: int, without: int) -> str:
    """The report's "Training curves" section (figures as inline SVG)."""
    note = (f"{n_runs} runs with an epoch history (loss of each epoch, validation top-1 where it was "
            f"evaluated); {without} without one (zero-shot, closed-form fits, or the run folder is gone). "
            "Numbers: csv/curves.csv.")
    parts = ["<h2 id='curves'>Training curves</h2>", f"<p class='note'>{html.escape(note)}</p>"]
    for fig in figures:
        svg = svgs.get(fig.key)
        if svg is not None:
            start = svg.find("<svg")
            parts.append(f"<figure aria-label='{html.escape(fig.title, quote=True)}'>"
                         f"{svg[start:] if start >= 0 else svg}</figure>")
    return "\n".join(parts)


def add_curves(out: str | Path, records: list[dict], *, plots_enabled: bool = True) -> dict:
    """Add the curves to a written report in `out`: `csv/curves.csv`, `plots/curves-*.png/svg`
    and a section at the end of `index.html`. Returns counts."""
    from ..utils.io import atomic_write_text
    from . import plots

    out = Path(out)
    runs, without = run_histories(records)
    figures = curve_figures(runs)
    atomic_write_text(out / "csv" / "curves.csv", curves_csv(runs))
    svgs = {}
    if plots_enabled and plots.available():
        for fig in figures:
            svgs[fig.key] = plots.write(fig, out / "plots")[2]
    index = out / "index.html"
    page = index.read_text(encoding="utf-8")
    section = curves_html(figures, svgs, len(runs), without)
    cut = page.rfind("</body>")
    page = page[:cut] + section + "\n" + page[cut:] if cut >= 0 else page + section
    toc = page.find("</ul>")  # the report's table of contents comes first
    if toc >= 0:
        page = page[:toc] + "<li><a href='#curves'>Training curves</a></li>" + page[toc:]
    atomic_write_text(index, page)
    return {"runs": len(runs), "without_history": without, "figures": len(svgs)}
