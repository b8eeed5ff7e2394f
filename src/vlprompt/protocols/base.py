"""What every protocol shares: run specifications, grid options, sharding, the hash.

A protocol turns grid options (methods x datasets x shots x seeds, plus its own
evaluation targets) into `RunSpec`s, and turns stored records back into tables. A run
spec is everything that decides a run's result; `resolved_config` adds the method's and
the engine's fully resolved options and the backbone checksum, and its SHA-256 is the
run's identity in the results store (a stored hash is never run again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from ..errors import ConfigError

Part = str  # "all" | "base" | "new": which classes of a dataset


@dataclass(frozen=True)
class Target:
    """One evaluation of a trained run: the test split of `dataset` restricted to `part`."""

    name: str
    dataset: str
    part: Part = "all"


@dataclass(frozen=True)
class RunSpec:
    """One training run and the targets it is evaluated on."""

    protocol: str
    method: str
    backbone: str
    dataset: str
    part: Part
    shots: int  # 0: no training data (zero-shot baselines)
    seed: int
    targets: tuple[Target, ...]
    epochs: int | None = None
    overrides: tuple[str, ...] = ()

    def describe(self) -> str:
        part = "" if self.part == "all" else f"[{self.part}]"
        ep = "" if self.epochs is None else f" {self.epochs}ep"
        return f"{self.method} {self.dataset}{part} {self.shots}-shot seed {self.seed}{ep}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["targets"] = [asdict(t) for t in self.targets]
        data["overrides"] = list(self.overrides)
        return data


@dataclass
class GridOptions:
    """The resolved axes of a grid (`execute.Grid.options`: presets expanded, defaults filled)."""

    methods: list[str]
    backbone: str
    datasets: list[str]
    shots: list[int]
    seeds: list[int]
    epochs: list[int | None] = field(default_factory=lambda: [None])
    targets: list[str] | None = None  # transfer protocols: target datasets
    overrides: list[str] = field(default_factory=list)  # "key=value", or "method-name:key=value"

    def overrides_for(self, method: str) -> tuple[str, ...]:
        """Overrides without a method prefix, plus those prefixed with `method:`."""
        out = []
        for text in self.overrides:
            prefix, sep, rest = text.partition(":")
            if sep and "=" not in prefix:
                if prefix == method:
                    out.append(rest)
            else:
                out.append(text)
        return tuple(out)


#: Part of every run hash; raised when the same config trains differently, so stored runs
#: are not reused. 2: datasets may forbid augmentation (the synthetic suite does).
#: 3: the warm-up then cosine schedule is Dassl's (the cosine starts after the warm-up), the
#: variational KL is averaged over dimensions, presets depend on protocol and dataset, and a
#: run of E epochs encodes min(V, E) augmented views.
RUN_FORMAT = "vlprompt.run/3"


def resolved_config(spec: RunSpec, backbone_checksum: str) -> dict:
    """The full configuration of a run: its spec plus every resolved method/train option."""
    from ..config import to_dict
    from ..engine.runner import resolve_config, resolve_data_config, validation_fallbacks

    mcfg, tcfg = resolve_config(spec.method, spec.shots, protocol=spec.protocol, dataset=spec.dataset,
                                epochs=spec.epochs, overrides=spec.overrides)
    dcfg = resolve_data_config(None, spec.overrides)  # checked before the first run; the overrides are in the spec
    tcfg, _ = validation_fallbacks(tcfg, dcfg, overrides=spec.overrides)
    return {**spec.to_dict(), "method_config": to_dict(mcfg), "train": to_dict(tcfg),
            "backbone_checksum": backbone_checksum, "format": RUN_FORMAT}


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`i/n` (0 <= i < n) -> (i, n); None for no sharding."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text}: need 0 <= i < n (shards are numbered from 0)")
    return i, n


def select_shard(specs: Sequence[RunSpec], shard: tuple[int, int] | None) -> list[RunSpec]:
    """Round-robin over the expansion order: shard i of n takes specs i, i+n, i+2n, ..."""
    if shard is None:
        return list(specs)
    i, n = shard
    return [s for k, s in enumerate(specs) if k % n == i]


def fits_without_data(method: str) -> bool:
    """Methods that learn nothing (zero-shot) run once per dataset and seed, with 0 shots."""
    from ..methods.registry import get_method_class

    return get_method_class(method).SPEC.fit == "none"


class Protocol:
    """Base class: `expand` grid options into run specs, `summarise` records into tables."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""

    part: ClassVar[Part] = "all"  # which classes of the source dataset a run trains on

    def targets(self, dataset: str, grid: GridOptions) -> tuple[Target, ...]:
        """What a run trained on `dataset` is evaluated on."""
        raise NotImplementedError

    def expand(self, grid: GridOptions) -> list[RunSpec]:
        """Datasets x seeds x shots x methods x epochs, in that nesting (shards depend on it).

        Methods that learn nothing run with 0 shots and no epochs, once per dataset and seed.
        """
        self._check(grid)
        specs: dict[tuple, RunSpec] = {}
        for dataset in grid.datasets:
            targets = self.targets(dataset, grid)
            for seed in grid.seeds:
                for shots in sorted(grid.shots):
                    for method in grid.methods:
                        k = self._shots_for(method, [shots])[0]
                        for epochs in self._epochs_for(method, grid.epochs):
                            spec = RunSpec(self.name, method, grid.backbone, dataset, self.part, k,
                                           seed, targets, epochs, grid.overrides_for(method))
                            specs.setdefault((method, dataset, k, seed, epochs), spec)
        return list(specs.values())

    def summarise(self, records: list[dict]) -> list:
        """Tables (see `results.tables.Table`) from this protocol's records."""
        raise NotImplementedError

    def _check(self, grid: GridOptions) -> None:
        from ..methods.registry import get_method_class

        for m in grid.methods:
            get_method_class(m)  # unknown names fail before anything runs
        if not grid.methods or not grid.datasets or not grid.seeds:
            raise ConfigError("a grid needs at least one method, dataset and seed")
        if any(s < 1 for s in grid.shots):
            raise ConfigError("--shots must be positive integers")
        if any(e is not None and e < 1 for e in grid.epochs):
            raise ConfigError("--epochs must be positive integers")

    def _shots_for(self, method: str, shots: Sequence[int]) -> list[int]:
        return [0] if fits_without_data(method) else list(shots)

    def _epochs_for(self, method: str, epochs: Sequence[int | None]) -> list[int | None]:
        """Only SGD-trained methods have epochs; the others run once whatever `--epochs` says."""
        from ..methods.registry import get_method_class

        return list(epochs) if get_method_class(method).SPEC.fit == "sgd" else [None]
