"""Report sections beyond the protocol tables: cost per method and the stored analyses.

- optimisation time per method (the rethinking paper's Table 3), from the run records;
- intra-class visual and inter-class text variance per dataset (UPT App. A) and the
  correlation of each method's few-shot gain over zero-shot with them;
- nearest words of learned context vectors (CoOp Table 4);
- 2-D projections of image and class text features (UPT Fig. 2).
The analyses themselves are computed by `vlprompt analyze` and stored in the database.
"""

from __future__ import annotations

from collections import defaultdict

from .stats import mean_ci, pearson
from .tables import Figure, Panel, Series, Table
from .validation import validation_tag

ZERO_SHOT = "zeroshot"


def timing(records: list[dict]) -> list[Table]:
    """Optimisation time per method, dataset and protocol at the most shots run there (the
    rethinking paper's Table 3): mean ± 95% CI over seeds, so that every cell compares runs
    of the same size."""
    runs: dict[str, dict] = {}
    for r in records:
        runs.setdefault(r["run_hash"], r)
    most_shots: dict[tuple, int] = defaultdict(int)
    for r in runs.values():
        key = (r["protocol"], r["backbone"], r["dataset"])
        most_shots[key] = max(most_shots[key], int(r["shots"]))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs.values():
        if int(r["shots"]) in (0, most_shots[(r["protocol"], r["backbone"], r["dataset"])]):
            epochs = "preset" if r.get("epochs") is None else int(r["epochs"])
            tag = validation_tag(r)  # runs without validation data skip the searches: timed apart
            method = f"{r['method']} ({tag})" if tag else r["method"]
            groups[(r["protocol"], r["backbone"], r["dataset"], method, int(r["shots"]), epochs)].append(r)
    rows = []
    def order(key: tuple) -> tuple:
        return (*key[:5], -1 if key[5] == "preset" else key[5])

    for (protocol, backbone, dataset, method, shots, epochs), rs in sorted(groups.items(), key=lambda kv: order(kv[0])):
        fit = [r["seconds_fit"] for r in rs if r.get("seconds_fit") is not None]
        total = [r["seconds_total"] for r in rs if r.get("seconds_total") is not None]
        mem = [r["peak_rss_mb"] for r in rs if r.get("peak_rss_mb") is not None]
        gpu = [r["peak_gpu_mb"] for r in rs if r.get("peak_gpu_mb") is not None]
        rows.append([protocol, method, backbone, dataset, shots, epochs, len(rs), mean_ci(fit) if fit else None,
                     mean_ci(total) if total else None, max(mem) if mem else None, max(gpu) if gpu else None])
    if not rows:
        return []
    return [Table(key="timing", title="Optimisation time per method", percent=False,
                  columns=["protocol", "method", "backbone", "dataset", "shots", "epochs", "runs", "fit seconds",
                           "total seconds (with eval)", "peak RSS MB", "peak GPU MB"], rows=rows,
                  notes=["at the most shots run on each dataset (0: methods that learn nothing); fit: feature "
                         "extraction + training, mean ± 95% CI over seeds; total adds "
                         "the evaluations. Feature-cache hits make later runs faster than the first."])]


def _gains(records: list[dict], backbone: str) -> dict[str, dict[str, float]]:
    """method -> dataset -> few-shot top-1 minus zero-shot top-1 (seed means), at the most shots."""
    recs = [r for r in records if r["protocol"] == "fewshot" and r["target"] == "test" and r["backbone"] == backbone]
    zs: dict[str, list[float]] = defaultdict(list)
    for r in recs:
        if r["method"] == ZERO_SHOT:
            zs[r["dataset"]].append(r["top1"])
    best_shots: dict[tuple, int] = {}
    for r in recs:
        if r["method"] != ZERO_SHOT:
            key = (r["method"], r["dataset"])
            best_shots[key] = max(best_shots.get(key, 0), int(r["shots"]))
    acc: dict[tuple, list[float]] = defaultdict(list)
    for r in recs:
        key = (r["method"], r["dataset"])
        if r["method"] != ZERO_SHOT and int(r["shots"]) == best_shots[key]:
            acc[key].append(r["top1"])
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (method, dataset), values in acc.items():
        if zs.get(dataset):
            out[method][dataset] = sum(values) / len(values) - sum(zs[dataset]) / len(zs[dataset])
    return dict(out)


def variance(records: list[dict], analyses: list[dict]) -> tuple[list[Table], list[Figure]]:
    items = [a for a in analyses if a["kind"] == "variance"]
    if not items:
        return [], []
    tables, figures = [], []
    for backbone in sorted({a["backbone"] for a in items}):
        var = {a["dataset"]: a for a in items if a["backbone"] == backbone}
        gains = _gains(records, backbone)
        rows = []
        for d, a in sorted(var.items()):
            rows.append([d, a["n_classes"], a["n_images"], a["intra_visual"], a["inter_text"],
                         *[gains[m].get(d) for m in sorted(gains)]])
        tables.append(Table(
            key=f"variance_{len(tables)}", title=f"Intra-class visual and inter-class text variance — {backbone}",
            columns=["dataset", "classes", "images", "intra-class visual var.", "inter-class text var.",
                     *[f"gain {m} (pts)" for m in sorted(gains)]],
            rows=[[*r[:5], *[None if g is None else round(100 * g, 2) for g in r[5:]]] for r in rows],
            percent=False,
            notes=["variances of L2-normalised features (UPT App. A): intra = mean over classes of the mean squared "
                   "distance of a class's test image features to their centroid; inter = mean squared distance of "
                   "the class text features to their centroid. gain = few-shot top-1 at the most shots minus "
                   "zero-shot, in points."]))
        corr_rows, panels = [], {"intra": [], "inter": []}
        for m in sorted(gains):
            ds = [d for d in sorted(var) if d in gains[m]]
            g = [gains[m][d] for d in ds]
            intra, inter = [var[d]["intra_visual"] for d in ds], [var[d]["inter_text"] for d in ds]
            r_intra, r_inter = pearson(intra, g), pearson(inter, g)
            corr_rows.append([m, len(ds), None if r_intra is None else round(r_intra, 3),
                              None if r_inter is None else round(r_inter, 3)])
            panels["intra"].append(Series(m, intra, [100 * x for x in g], style="scatter"))
            panels["inter"].append(Series(m, inter, [100 * x for x in g], style="scatter"))
        if corr_rows:
            tables.append(Table(key=f"variance_corr_{len(tables)}", percent=False,
                                title=f"Correlation of the gain over zero-shot with the variances — {backbone}",
                                columns=["method", "datasets", "r(gain, intra visual)", "r(gain, inter text)"],
                                rows=corr_rows, notes=["Pearson r over datasets (needs at least 3)"]))
            figures.append(Figure(key=f"variance_{len(figures)}", title=f"Gain over zero-shot vs. variance — {backbone}",
                                  panels=[Panel("intra-class visual variance", panels["intra"], kind="scatter",
                                                xlabel="variance", ylabel="gain (points)"),
                                          Panel("inter-class text variance", panels["inter"], kind="scatter",
                                                xlabel="variance", ylabel="gain (points)")]))
    return tables, figures


def words(analyses: list[dict]) -> list[Table]:
    items = [a for a in analyses if a["kind"] == "words"]
    if not items:
        return []
    width = max(len(a["words"]) for a in items)
    rows = [[a["method"], a["dataset"], a["shots"], a["seed"], *[", ".join(w) for w in a["words"]],
             *[""] * (width - len(a["words"]))] for a in items]
    return [Table(key="nearest_words", title="Nearest words of learned context vectors", percent=False,
                  columns=["method", "dataset", "shots", "seed", *[f"ctx {i + 1}" for i in range(width)]], rows=rows,
                  notes=["nearest vocabulary tokens (Euclidean, token embedding space) to each learned vector, "
                         "closest first; class-specific contexts list the first class"])]


def projections(analyses: list[dict]) -> list[Figure]:
    items = [a for a in analyses if a["kind"] == "projection"]
    figures = []
    for i, a in enumerate(items):
        series = []
        names = a["classnames"]
        for c, name in enumerate(names):
            pts = [p for p, y in zip(a["image_xy"], a["image_labels"], strict=True) if y == c]
            if pts:
                series.append(Series(name, [p[0] for p in pts], [p[1] for p in pts], style="scatter"))
        series.append(Series("class text features", [p[0] for p in a["text_xy"]], [p[1] for p in a["text_xy"]],
                             style="marker"))
        title = f"{a['dataset']}: image and class text features ({a['method']}, PCA to 2-D)"
        figures.append(Figure(key=f"projection_{i}", title=title, panels=[Panel(
            "PCA of L2-normalised features", series, kind="scatter", xlabel=f"PC1 ({100 * a['explained'][0]:.0f}%)",
            ylabel=f"PC2 ({100 * a['explained'][1]:.0f}%)")]))
    return figures


def claims(analyses: list[dict]) -> list[Table]:
    items = [a for a in analyses if a["kind"] == "claims"]
    if not items:
        return []
    rows = [[a["paper"], a["statement"], a["status"], a["numbers"]] for a in items]
    return [Table(key="claims", title="Papers' claims on this backbone and suite", percent=False,
                  columns=["paper", "claim", "verdict", "numbers (top-1 %, mean ± 95% CI over seeds)"], rows=rows,
                  notes=["averages over the datasets of the grid; `vlprompt replicate` runs the grids and judges"])]
