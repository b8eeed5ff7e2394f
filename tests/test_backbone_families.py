"""Every open_clip architecture, scaled down, is either loaded with open_clip's own features
and preprocessing or refused by name (`studies/backbone_families.py`). The list comes from
`open_clip.list_models()` and `list_pretrained()`, so a new open_clip release is covered
without editing this file."""

from __future__ import annotations

import logging
from pathlib import Path

import open_clip
import pytest

from vlprompt.studies.backbone_families import (
    TOLERANCE,
    builtin_architectures,
    check_all,
    check_preprocessing,
    family_table,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "backbones.md"


@pytest.fixture(scope="module")
def checks(tmp_path_factory) -> dict:
    logging.disable(logging.WARNING)  # open_clip warns that random weights are random
    try:
        return {c.arch: c for c in check_all(tmp_path_factory.mktemp("families"))}
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("arch", builtin_architectures())
def test_each_architecture_is_right_or_refused_by_name(checks, arch):
    c = checks[arch]
    if c.status == "refused":
        assert "is not supported yet: its " in c.reason, c.reason
        return
    assert c.text_max_diff <= TOLERANCE and c.image_max_diff <= TOLERANCE, c
    assert c.logits_max_diff <= 10 * TOLERANCE, c  # logit scale (and SigLIP's bias) included
    if c.prompt_path_max_diff is not None:  # the visual-prompt forward, with no prompt tokens
        assert c.prompt_path_max_diff <= TOLERANCE, c
    if c.causal:
        assert c.truncation_exact and c.coop_step == "ok", c
    else:  # text prompts need a causal text tower: refused by name
        assert c.coop_step.startswith("refused") and "no causal mask" in c.coop_step, c
    assert c.vpt_step == "ok" or ("refused" in c.vpt_step and "needs a ViT image tower" in c.vpt_step), c
    assert (c.vpt_step == "ok") == (c.prompt_path_max_diff is not None), c


def test_every_family_ran_its_training_steps(checks):
    families = {c.family for c in checks.values() if c.status == "supported"}
    assert {"ViT + text argmax pool", "ResNet + text argmax pool"} <= families
    for family in families:
        steps = [c.coop_step for c in checks.values() if c.family == family]
        assert steps and all(s == "ok" or s.startswith("refused") for s in steps), family
    siglip = checks["ViT-B-16-SigLIP"]  # zero-shot with the library's features and biased logits
    assert siglip.status == "supported" and not siglip.causal and siglip.logits_max_diff <= 10 * TOLERANCE


def test_the_docs_table_is_what_the_matrix_measures(checks):
    """docs/backbones.md keeps the table (`python benchmarks/backbone_families.py` prints it);
    each family's row, with its status and training-step columns, must match."""
    docs = DOCS.read_text()
    for row in family_table(list(checks.values())).splitlines()[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        family, models, status, _, coop, vpt, trunc = cells
        expected = f"| {family} | {models} | {status} |"
        assert expected in docs, f"docs/backbones.md lacks or differs on: {expected}"
        line = next(line for line in docs.splitlines() if line.startswith(expected))
        assert line.rstrip().endswith(f"| {coop} | {vpt} | {trunc} |"), line


def test_every_weight_tag_is_preprocessed_as_open_clip_does():
    results = check_preprocessing()
    assert len(results) == len(open_clip.list_pretrained())
    wrong = [(r.arch, r.tag, r.max_diff) for r in results if r.max_diff is not None and r.max_diff > 1e-6]
    assert not wrong
    assert all(r.reason for r in results if r.max_diff is None)
    assert {r.preprocess["resize_mode"] for r in results} >= {"shortest", "squash"}
