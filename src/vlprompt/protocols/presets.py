"""Dataset presets: the papers' benchmark lists and their synthetic counterparts.

`--datasets all` means the preset's list. The `paper` preset is the CoOp benchmark (11
datasets; ImageNet -> V2/Sketch/A/R; ImageNet -> the other 10). The `synthetic` preset
runs offline on the synthetic suite:
- few-shot and base-to-new: every suite task with a train split;
- domain generalization: `shapes` -> its shifted test-only domains (noise, sketch, new
  background, inverted colours), the analogue of ImageNet -> V2/Sketch/A/R (same classes);
- cross-dataset: the 80-class fine-grained `shape_color` (the big source, like ImageNet)
  -> every other task with a train split (new class names, some never seen together).
"""

from __future__ import annotations

from ..errors import ConfigError

PAPER_FEWSHOT = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
                 "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101"]
SYNTHETIC_FEWSHOT = [f"synthetic:{t}" for t in ("shapes", "colors", "shape_color", "textures", "rare_names",
                                                "counting", "position", "heldout_combos")]

#: Table column order for known datasets.
DATASET_ORDER = PAPER_FEWSHOT + SYNTHETIC_FEWSHOT

PRESETS: dict[str, dict] = {
    "paper": {
        "fewshot": PAPER_FEWSHOT,
        "base2new": PAPER_FEWSHOT,
        "domain-generalization": {"imagenet": ["imagenet_v2", "imagenet_sketch", "imagenet_a", "imagenet_r"]},
        "cross-dataset": {"imagenet": [d for d in PAPER_FEWSHOT if d != "imagenet"]},
    },
    "synthetic": {
        "fewshot": SYNTHETIC_FEWSHOT,
        "base2new": SYNTHETIC_FEWSHOT,
        "domain-generalization": {"synthetic:shapes": [f"synthetic:shapes_{d}" for d in
                                                       ("noise", "sketch", "newbg", "inverted")]},
        "cross-dataset": {"synthetic:shape_color": [d for d in SYNTHETIC_FEWSHOT if d != "synthetic:shape_color"]},
    },
}


#: Shots and seeds of a grid when the command line gives none.
DEFAULT_SHOTS = {"fewshot": [1, 2, 4, 8, 16], "base2new": [16], "domain-generalization": [16],
                 "cross-dataset": [16]}
DEFAULT_SEEDS = [1, 2, 3]


def preset_names() -> list[str]:
    return list(PRESETS)


def _preset(name: str) -> dict:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None


def default_preset(backbone: str) -> str:
    """The synthetic suite for the bundled tiny model, the papers' datasets otherwise."""
    return "synthetic" if backbone == "tiny" else "paper"


def resolve_datasets(protocol: str, datasets: list[str], preset: str) -> list[str]:
    """`all` -> the preset's datasets (sources for transfer protocols); other names kept."""
    entry = _preset(preset)[protocol]
    names = list(entry) if isinstance(entry, dict) else list(entry)
    out: list[str] = []
    for d in datasets:
        for name in names if d == "all" else [d]:
            if name not in out:
                out.append(name)
    return out


def default_targets(protocol: str, source: str, preset: str) -> list[str]:
    """The preset's targets of a transfer protocol for this source (any preset that knows it)."""
    for name in [preset, *PRESETS]:
        table = PRESETS[name][protocol]
        if source in table:
            return list(table[source])
    raise ConfigError(f"no default targets for source {source!r} in {protocol}; pass --targets d1,d2")
