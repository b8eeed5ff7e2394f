"""Summary statistics over seeds: mean and a t-distribution confidence interval.

The papers report mean +- 95% CI over three seeds; with so few samples the normal
quantile (1.96) would understate the interval, so the half-width uses Student's t with
n - 1 degrees of freedom. One sample has no interval (None), never a made-up zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stat:
    """Mean of n values and the half-width of its confidence interval (None when n < 2)."""

    mean: float
    ci: float | None
    n: int

    def format(self, scale: float = 100.0, digits: int = 2) -> str:
        """`71.23 ± 0.45` (values scaled, e.g. fractions to percent)."""
        text = f"{self.mean * scale:.{digits}f}"
        return text if self.ci is None else f"{text} ± {self.ci * scale:.{digits}f}"


def t_half_width(values: Sequence[float], confidence: float = 0.95) -> float | None:
    """Half-width `t_{(1+c)/2, n-1} * s / sqrt(n)` of the CI of the mean; None for n < 2."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    from scipy import stats  # on first use: the CLI's help must not pay for scipy

    return float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> Stat:
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values to summarise")
    return Stat(mean=sum(vals) / len(vals), ci=t_half_width(vals, confidence), n=len(vals))


def average_over_groups(by_group: dict[str, dict[int, float]], confidence: float = 0.95) -> tuple[Stat | None, str]:
    """Average over groups (datasets) of per-seed values, with a CI over seeds.

    For each seed present in every group, the groups' values are averaged; the mean and CI
    are taken over those per-seed averages. When no seed is common to all groups, the
    result is the mean of the group means without an interval. Returns (stat, note).
    """
    if not by_group:
        return None, "no groups"
    common = set.intersection(*(set(v) for v in by_group.values()))
    if common:
        per_seed = [sum(g[s] for g in by_group.values()) / len(by_group) for s in sorted(common)]
        return mean_ci(per_seed, confidence), ""
    means = [sum(g.values()) / len(g) for g in by_group.values() if g]
    return Stat(sum(means) / len(means), None, len(means)), "no seed common to all datasets: mean of means"


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None with fewer than three points or a constant variable."""
    if len(x) != len(y) or len(x) < 3:
        return None
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx <= 0 or syy <= 0:
        return None
    return sxy / math.sqrt(sxx * syy)
