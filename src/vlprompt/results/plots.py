"""Figures (see `tables.Figure`) drawn with matplotlib's Agg backend into PNG and SVG.

matplotlib is optional (`pip install vlprompt[plot]`): without it the report keeps its
tables and says that plots were skipped.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from .tables import Figure, Panel

MAX_LEGEND = 12


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _draw(ax, panel: Panel) -> None:
    if panel.kind == "bars":
        cats = panel.categories or []
        n = max(len(panel.series), 1)
        width = 0.8 / n
        for i, s in enumerate(panel.series):
            xs = [cats.index(x) + (i - (n - 1) / 2) * width for x in s.x]
            err = [e if e is not None else 0.0 for e in s.err] if s.err else None
            ax.bar(xs, s.y, width=width, label=s.label, yerr=err, capsize=2)
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels([c.replace("synthetic:", "") for c in cats], rotation=30 if len(cats) > 3 else 0,
                           ha="right" if len(cats) > 3 else "center", fontsize=7)
    else:
        xs_all = [x for s in panel.series for x in s.x]
        point_colors = []  # one per scatter series (a class's images)
        for s in panel.series:
            if s.style == "hline" and s.y:
                ax.axhline(s.y[0], linestyle="--", linewidth=1, label=s.label, color="gray")
            elif s.style == "scatter":
                points = ax.scatter(s.x, s.y, s=8, alpha=0.6, label=s.label)
                point_colors.append(points.get_facecolor()[0])
            elif s.style == "marker":
                # each star its own colour: its class's image colour when there is one per class
                if len(point_colors) == len(s.x):
                    colors = point_colors
                else:
                    import matplotlib

                    cmap = matplotlib.colormaps["tab20"]
                    colors = [cmap(i % 20) for i in range(len(s.x))]
                ax.scatter(s.x, s.y, s=160, marker="*", c=colors, edgecolors="black", linewidths=0.6,
                           label=s.label)
            else:
                err = [e if e is not None else 0.0 for e in s.err] if s.err and any(e for e in s.err) else None
                ax.errorbar(s.x, s.y, yerr=err, marker="o", markersize=3, capsize=2, label=s.label)
        if panel.log2_x and xs_all and min(xs_all) > 0:
            ax.set_xscale("log", base=2)
            ticks = sorted(set(xs_all))
            ax.set_xticks(ticks)
            ax.set_xticklabels([str(t) for t in ticks])
    if panel.ylabel.startswith("accuracy") and panel.kind != "scatter":
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo, 0.0), min(hi, 102.0))  # 95% CIs of few seeds may reach past 0..100
    ax.set_title(panel.title.replace("synthetic:", ""), fontsize=9)
    ax.set_xlabel(panel.xlabel, fontsize=8)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def render(figure: Figure) -> tuple[bytes, str]:
    """(PNG bytes, SVG text) of a figure: its panels on a grid with one shared legend."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    n = max(len(figure.panels), 1)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    size = (7.5, 4.6) if n == 1 else (3.4 * cols, 2.8 * rows + 0.6)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    for ax, panel in zip(axes.flat, figure.panels, strict=False):
        _draw(ax, panel)
    for ax in list(axes.flat)[len(figure.panels):]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    handles, labels = handles[:MAX_LEGEND], [lab.replace("synthetic:", "") for lab in labels[:MAX_LEGEND]]
    fig.suptitle(figure.title, fontsize=10)
    if n == 1:  # one panel: legend on the right
        if handles:
            fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.74, 0.5), fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0, 0.74 if handles else 1, 0.94))
    else:
        if handles:
            fig.legend(handles, labels, loc="lower center", fontsize=7, ncol=min(len(labels), 6), frameon=False)
        fig.tight_layout(rect=(0, 0.07 if rows == 1 else 0.04, 1, 0.95))
    png, svg = io.BytesIO(), io.StringIO()
    fig.savefig(png, format="png", dpi=110)
    fig.savefig(svg, format="svg")
    plt.close(fig)
    return png.getvalue(), svg.getvalue()


def write(figure: Figure, folder: str | Path) -> tuple[Path, Path, str]:
    """Write `<key>.png` and `<key>.svg`; returns their paths and the SVG text."""
    from ..utils.io import atomic_write_bytes, atomic_write_text

    folder = Path(folder)
    png, svg = render(figure)
    atomic_write_bytes(folder / f"{figure.key}.png", png)
    atomic_write_text(folder / f"{figure.key}.svg", svg)
    return folder / f"{figure.key}.png", folder / f"{figure.key}.svg", svg
