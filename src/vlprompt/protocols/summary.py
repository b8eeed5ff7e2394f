"""Helpers that protocols use to turn records into per-seed values.

Records are grouped by backbone (one set of tables each) and by a method label. The label
carries the `--epochs` override when a protocol's records hold more than one, and the
validation setting when it is not the default (`data.validation`), so runs with different
budgets or validation data are never averaged together.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable

from ..results.stats import Stat, average_over_groups, mean_ci
from ..results.validation import VALIDATION_MEANING, VALIDATION_TAGS, validation_of


def by_backbone(records: Iterable[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        out[rec["backbone"]].append(rec)
    return dict(out)


def method_labeller(records: list[dict], epochs: bool = True) -> Callable[[dict], str]:
    """rec -> "coop", or "coop (5 ep)" when several epoch overrides occur (unless not
    `epochs`), with the validation setting when it is not the default: "clap (no val)"."""
    multi = epochs and len({r.get("epochs") for r in records if r.get("epochs") is not None}) > 1

    def label(rec: dict) -> str:
        marks = [f"{rec['epochs']} ep"] if multi and rec.get("epochs") is not None else []
        tag = VALIDATION_TAGS[validation_of(rec)]
        marks += [tag] if tag else []
        return f"{rec['method']} ({', '.join(marks)})" if marks else rec["method"]

    return label


def validation_note(records: Iterable[dict]) -> str:
    """The tables' note on which validation data the runs used (every table says it)."""
    used = sorted({validation_of(r) for r in records if int(r.get("shots") or 0) > 0},
                  key=list(VALIDATION_TAGS).index)
    if not used:
        return ""
    parts = [f"{VALIDATION_TAGS[v] or 'unmarked'}: data.validation={v} ({VALIDATION_MEANING[v]})" for v in used]
    return "validation data — " + "; ".join(parts)


def per_seed(records: Iterable[dict], key: Callable[[dict], Hashable],
             value: str = "top1") -> dict[Hashable, dict[int, float]]:
    """key -> {seed: value}; a later record for the same key and seed wins."""
    out: dict[Hashable, dict[int, float]] = defaultdict(dict)
    for rec in records:
        if rec.get(value) is not None:
            out[key(rec)][int(rec["seed"])] = float(rec[value])
    return dict(out)


def stat_of(values: dict[int, float] | None) -> Stat | None:
    return mean_ci(values.values()) if values else None


def average(groups: dict[str, dict[int, float] | None], expected: Iterable[str]) -> tuple[Stat | None, str]:
    """Average over `expected` groups; None (with a note) unless every group has values."""
    expected = list(expected)
    present = {g: v for g, v in groups.items() if v}
    missing = [g for g in expected if g not in present]
    if missing:
        return None, f"average left out: no results for {', '.join(missing)}"
    return average_over_groups({g: present[g] for g in expected})


def ordered(values: Iterable[str], preferred: list[str]) -> list[str]:
    """Distinct values, those in `preferred` first in its order, the rest in first-seen order."""
    seen = list(dict.fromkeys(values))
    return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]


def method_order(values: Iterable[str]) -> list[str]:
    """Method names (or labels) in registry order: zero-shot first, as the papers' tables."""
    from ..methods.registry import list_methods

    seen = list(dict.fromkeys(values))
    rank = {m: i for i, m in enumerate(list_methods())}
    return sorted(seen, key=lambda v: (rank.get(v.split(" (")[0], len(rank)), seen.index(v)))

def slug(text: str) -> str:
    """A file-name-safe short form of a backbone spec or dataset name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text.rsplit("/", 1)[-1]).strip("-")[:40] or "x"
