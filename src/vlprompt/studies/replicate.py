"""`vlprompt replicate`: the papers' main claims, checked on a given backbone and suite.

Each claim is a comparison of averages over datasets (few-shot: per shot count; base-to-
new: base or new accuracy) and is reported as `holds`, `does not hold` (with the numbers),
or `not checked` when a method it needs is not registered or has no results. "Matches"
allows the combined 95% CI of the two averages (at least one point); "beats" compares the
means, as the papers do, and the numbers say when the gap lies within that interval. Claims
about runs without validation data (CLAP's realistic setting) compare runs made with
`data.validation=none`; the others use the few-shot validation split. The grids run into a
results database like `vlprompt run`, so a rerun reuses them; the verdicts are stored as
the `claims` analysis and shown by `vlprompt report`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..methods.registry import list_methods
from ..protocols.summary import average, per_seed, validation_of
from ..results.stats import Stat
from ..results.store import ResultStore, load_records
from ..utils.runtime import Runtime, runtime_or_default
from .demo import StudyGrid

FEWSHOT_METHODS = ["zeroshot", "coop", "prograd", "classifier-ft", "vpt", "upt"]
B2N_METHODS = ["zeroshot", "coop", "cocoop", "variational"]
#: Methods on cached features (seconds each): a few-shot grid at their presets' epochs with the
#: few-shot validation split, and one without validation data (`data.validation=none`). CLAP
#: reads no validation data, so it runs only in the second (its 300 epochs take ~6 s a run).
CACHED_METHODS = ["linear-probe", "tip-adapter", "tip-adapter-f", "lp++"]
NO_VAL_METHODS = ["linear-probe", "clap"]
NO_VAL = "data.validation=none"


@dataclass(frozen=True)
class Claim:
    key: str
    paper: str
    statement: str
    check: Callable[[Callable[..., Stat | None], list[int]], tuple[str, str]]


def _pct(s: Stat | None) -> str:
    return "–" if s is None else s.format()


def _tolerance(a: Stat, b: Stat) -> float:
    ci = math.sqrt((a.ci or 0.0) ** 2 + (b.ci or 0.0) ** 2)
    return max(ci, 0.01)


def _gap(a: Stat, b: Stat) -> str:
    """' (within the 95% CI)' when the averages are closer than their combined interval."""
    return " (within the 95% CI)" if abs(a.mean - b.mean) < _tolerance(a, b) else ""


def _coop_from_two(avg, shots):
    rows, ok = [], True
    for k in [k for k in shots if k >= 2]:
        coop, zs = avg("fewshot", "coop", k), avg("fewshot", "zeroshot", k)
        if coop is None or zs is None:
            return "not checked", "needs coop and zeroshot few-shot results at 2+ shots"
        ok &= coop.mean > zs.mean
        rows.append(f"{k}-shot: coop {_pct(coop)} vs zero-shot {_pct(zs)}{_gap(coop, zs)}")
    if not rows:
        return "not checked", "needs a shot count of 2 or more"
    return ("holds" if ok else "does not hold"), "; ".join(rows)


def _prograd_one_shot(avg, shots):
    pg, coop, zs = (avg("fewshot", m, 1) for m in ("prograd", "coop", "zeroshot"))
    if None in (pg, coop, zs):
        return "not checked", "needs prograd, coop and zeroshot at 1 shot"
    text = f"1-shot: prograd {_pct(pg)}, coop {_pct(coop)}, zero-shot {_pct(zs)}{_gap(pg, zs)}"
    if coop.mean >= zs.mean:
        text += " (CoOp does not fall below zero-shot here)"
    return ("holds" if pg.mean >= zs.mean else "does not hold"), text


def _cft_matches_coop(avg, shots):
    k = max(shots)
    cft, coop = avg("fewshot", "classifier-ft", k), avg("fewshot", "coop", k)
    if cft is None or coop is None:
        return "not checked", "needs classifier-ft and coop few-shot results"
    holds = cft.mean >= coop.mean - _tolerance(cft, coop)
    return ("holds" if holds else "does not hold"), f"{k}-shot: classifier-ft {_pct(cft)} vs coop {_pct(coop)}"


def _upt_beats(avg, shots):
    k = max(shots)
    upt, coop, vpt = (avg("fewshot", m, k) for m in ("upt", "coop", "vpt"))
    if None in (upt, coop, vpt):
        return "not checked", "needs upt, coop and vpt few-shot results"
    holds = upt.mean > coop.mean and upt.mean > vpt.mean
    close = _gap(upt, coop) or _gap(upt, vpt)
    return ("holds" if holds else "does not hold"), f"{k}-shot: upt {_pct(upt)}, coop {_pct(coop)}, vpt {_pct(vpt)}{close}"


def _label(method: str, validation: str = "fewshot") -> str:
    """How a claim's numbers name a method's runs."""
    name = "zero-shot" if method == "zeroshot" else method
    return name if validation == "fewshot" else f"{name} (no val)"


def _beats_at_most_shots(method: str, other: str):
    """`method` beats `other` at the grid's most shots."""
    def check(avg, shots):
        k = max(shots)
        m, o = avg("fewshot", method, k), avg("fewshot", other, k)
        if m is None or o is None:
            return "not checked", f"needs {method} and {other} few-shot results"
        return (("holds" if m.mean > o.mean else "does not hold"),
                f"{k}-shot: {_label(method)} {_pct(m)} vs {_label(other)} {_pct(o)}{_gap(m, o)}")
    return check


def _beats_at_every_shot(method: str, other: str, validation: str = "fewshot"):
    """`method` (run with `data.validation=<validation>`) beats `other` at every shot count."""
    def check(avg, shots):
        rows, ok = [], True
        for k in shots:
            m, o = avg("fewshot", method, k, validation=validation), avg("fewshot", other, k)
            if m is None or o is None:
                needs = method if validation == "fewshot" else f"{method} with {NO_VAL}"
                return "not checked", f"needs {needs} and {other} few-shot results at every shot count"
            ok &= m.mean > o.mean
            rows.append(f"{k}-shot: {_label(method, validation)} {_pct(m)} vs {_label(other)} {_pct(o)}{_gap(m, o)}")
        return ("holds" if ok else "does not hold"), "; ".join(rows)
    return check


def _probe_below_zeroshot_without_val(avg, shots):
    if 1 not in shots:
        return "not checked", "needs a 1-shot grid"
    lp, zs = avg("fewshot", "linear-probe", 1, validation="none"), avg("fewshot", "zeroshot", 1)
    if lp is None or zs is None:
        return "not checked", f"needs linear-probe with {NO_VAL} and zeroshot at 1 shot"
    return (("holds" if lp.mean < zs.mean else "does not hold"),
            f"1-shot: linear-probe (no val, default C) {_pct(lp)} vs zero-shot {_pct(zs)}{_gap(lp, zs)}")


def _beats_coop_on_new(method: str):
    def check(avg, shots):
        m, coop = avg("base2new", method, None, "new"), avg("base2new", "coop", None, "new")
        if m is None or coop is None:
            return "not checked", f"needs {method} and coop base-to-new results"
        return (("holds" if m.mean > coop.mean else "does not hold"),
                f"new classes: {method} {_pct(m)} vs coop {_pct(coop)}{_gap(m, coop)}")

    return check


CLAIMS = [
    Claim("coop-beats-zeroshot", "CoOp", "CoOp beats zero-shot CLIP on average from 2 shots on", _coop_from_two),
    Claim("prograd-1shot", "ProGrad", "ProGrad does not fall below zero-shot at 1 shot (where CoOp may)",
          _prograd_one_shot),
    Claim("classifier-ft-matches-coop", "Rethinking prompt learning",
          "classifier fine-tuning matches or beats CoOp on closed-set few-shot", _cft_matches_coop),
    Claim("upt-beats-coop-vpt", "UPT", "UPT beats both CoOp and VPT on average", _upt_beats),
    Claim("cocoop-new", "CoCoOp", "CoCoOp beats CoOp on new classes", _beats_coop_on_new("cocoop")),
    Claim("variational-new", "Variational prompt tuning", "variational prompt tuning beats CoOp on new classes",
          _beats_coop_on_new("variational")),
    Claim("tip-adapter-beats-zeroshot", "Tip-Adapter",
          "the training-free Tip-Adapter beats zero-shot CLIP at the most shots of the grid",
          _beats_at_most_shots("tip-adapter", "zeroshot")),
    Claim("tip-adapter-f-beats-tip-adapter", "Tip-Adapter",
          "fine-tuning the cache keys (Tip-Adapter-F) beats the training-free Tip-Adapter at the most shots",
          _beats_at_most_shots("tip-adapter-f", "tip-adapter")),
    Claim("clap-above-zeroshot-no-val", "CLAP",
          "without validation data, CLAP stays above zero-shot CLIP at every shot count",
          _beats_at_every_shot("clap", "zeroshot", validation="none")),
    Claim("linear-probe-1shot-no-val", "CLAP",
          "without validation data, an unconstrained linear probe (default C) falls below zero-shot at 1 shot",
          _probe_below_zeroshot_without_val),
    Claim("lp++-beats-linear-probe", "LP++", "LP++ beats the CLIP linear probe at every shot count",
          _beats_at_every_shot("lp++", "linear-probe")),
]


def averager(records: list[dict]) -> Callable[..., Stat | None]:
    """avg(protocol, method, shots, target, validation) -> average over the protocol's datasets
    (None if incomplete) of the runs with that `data.validation` setting (default: fewshot;
    0-shot methods use no validation data and match every setting)."""
    datasets = {p: sorted({r["dataset"] for r in records if r["protocol"] == p}) for p in ("fewshot", "base2new")}
    values = per_seed(records, lambda r: (r["protocol"], r["method"], int(r["shots"]), r["target"], r["dataset"],
                                          validation_of(r)))

    def avg(protocol: str, method: str, shots: int | None, target: str = "test",
            validation: str = "fewshot") -> Stat | None:
        groups: dict[str, dict[int, float]] = {}
        for (p, m, k, t, d, val), v in values.items():
            if ((p, m, t) == (protocol, method, target) and (shots is None or k in (shots, 0))
                    and (val == validation or k == 0)):
                groups[d] = v
        return average(groups, datasets[protocol])[0] if groups else None

    return avg


def evaluate_claims(records: list[dict]) -> list[dict]:
    shots = sorted({int(r["shots"]) for r in records if r["protocol"] == "fewshot" and int(r["shots"]) > 0}) or [0]
    avg = averager(records)
    out = []
    for claim in CLAIMS:
        status, numbers = claim.check(avg, shots)
        out.append({"claim": claim.key, "paper": claim.paper, "statement": claim.statement, "status": status,
                    "numbers": numbers})
    return out


#: The grid `replicate` runs when the caller leaves an axis unset.
REPLICATE_SHOTS, REPLICATE_B2N_SHOTS, REPLICATE_SEEDS, REPLICATE_EPOCHS = (1, 2, 4), (4,), (1, 2), 10


def run_replicate(out: str | Path = "replicate", grid: StudyGrid | None = None, *, preset: str | None = None,
                  plots: bool = True, runtime: Runtime | None = None) -> dict:
    """Run the grids the claims need, judge the claims, store them and write the report.
    The grid's `methods` are not used: the claims name the methods they compare."""
    from ..backbones import load_backbone
    from ..protocols.execute import Grid, run_protocol
    from .demo import DEMO_DATASETS, DEMO_OVERRIDES
    from .report import report

    out = Path(out)
    db = out / "replicate.db"
    known = set(list_methods())
    runtime = runtime_or_default(runtime)
    grid = grid or StudyGrid()
    bb = load_backbone(grid.backbone, device=runtime.device)
    axes = dict(backbone=bb, datasets=list(grid.datasets or DEMO_DATASETS), seeds=list(grid.seeds or REPLICATE_SEEDS),
                epochs=grid.epochs or REPLICATE_EPOCHS, overrides=DEMO_OVERRIDES)
    shots, b2n_shots = grid.shots or REPLICATE_SHOTS, grid.b2n_shots or REPLICATE_B2N_SHOTS
    common = dict(db=db, preset=preset or "synthetic", out=out / "replicate-runs", runtime=runtime)
    grids = {"fewshot": run_protocol("fewshot", Grid(methods=[m for m in FEWSHOT_METHODS if m in known],
                                                     shots=list(shots), **axes), **common),
             "base2new": run_protocol("base2new", Grid(methods=[m for m in B2N_METHODS if m in known],
                                                       shots=list(b2n_shots), **axes), **common)}
    # cached-feature methods at their presets' epochs (the caller's epochs when given): seconds each
    cached = {**axes, "epochs": grid.epochs}
    for name, methods, extra in (("fewshot (cached features)", CACHED_METHODS, []),
                                 ("fewshot (no validation)", NO_VAL_METHODS, [NO_VAL])):
        chosen = [m for m in methods if m in known]
        if chosen:
            grids[name] = run_protocol("fewshot", Grid(methods=chosen, shots=list(shots),
                                                       **{**cached, "overrides": [*cached["overrides"], *extra]}),
                                       **common)
    claims = evaluate_claims(load_records([db]))
    with ResultStore(db) as store:
        for c in claims:
            store.put_analysis("claims", f"{bb.spec}|{c['claim']}", {**c, "backbone": bb.spec})
    rep = report(db, out / "report", plots=plots)
    failed = [f for g in grids.values() for f in g["failed"]]
    return {"claims": claims, "db": str(db), "report": rep["files"]["index.html"], "failed": failed}
