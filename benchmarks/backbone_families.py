"""Print the backbone-family table of docs/backbones.md: every open_clip architecture, scaled
down, measured against open_clip (vlprompt.studies.backbone_families), and the weight tags'
preprocessing. Run: python benchmarks/backbone_families.py"""

from __future__ import annotations

import collections
import logging
import tempfile
import time
from pathlib import Path

import open_clip

from vlprompt.studies.backbone_families import check_all, check_preprocessing, family_table


def main() -> None:
    logging.disable(logging.WARNING)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        checks = check_all(Path(folder))
    t1 = time.perf_counter()
    tags = check_preprocessing()
    t2 = time.perf_counter()
    print(f"open_clip {open_clip.__version__}: {len(checks)} architectures in {t1 - t0:.1f} s, "
          f"{len(tags)} weight tags in {t2 - t1:.1f} s\n")
    print(family_table(checks))
    modes = collections.Counter(t.preprocess.get("resize_mode") for t in tags)
    worst = max((t.max_diff for t in tags if t.max_diff is not None), default=None)
    print(f"\nweight tags by resize_mode: {dict(modes)}; largest difference to open_clip's transform: {worst}")


if __name__ == "__main__":
    main()
