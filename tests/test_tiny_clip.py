"""The bundled tiny CLIP: it ships, it loads offline, it clears the accuracy floors, and
few-shot learning has headroom on the synthetic suite (docs/tiny-clip.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from vlprompt.backbones import load_backbone
from vlprompt.backbones.registry import ASSETS
from vlprompt.data.synthetic.suite import TASKS
from vlprompt.pretrain.report import suite_report, zero_shot

WEIGHTS = ASSETS / "tiny_clip" / "tiny_clip.safetensors"
TRAINED_TASKS = [name for name, task in TASKS.items() if not task.test_only]


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("tiny")


def test_shipped_weights_match_their_provenance():
    assert WEIGHTS.stat().st_size < 25 * 2**20
    provenance = json.loads((ASSETS / "tiny_clip" / "provenance.json").read_text())
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == provenance["sha256"]
    assert provenance["command"].startswith("vlprompt pretrain-tiny")


def test_tiny_is_an_ordinary_open_clip_vit(tiny):
    assert tiny.is_vit and tiny.image_size == 64 and tiny.embed_dim == 128
    assert tiny.context_length == 77 and tiny.token_embedding_table.shape[0] == 49408


@pytest.mark.parametrize("task", list(TASKS))
def test_zero_shot_floors(tiny, task):
    chance = 1.0 / len(TASKS[task].classnames)
    acc = zero_shot(tiny, task)
    assert acc >= 2 * chance, f"{task}: {acc:.3f} < twice chance"
    if task == "shapes":
        assert acc >= 0.60
    if task == "colors":
        assert acc >= 0.90
    if task == "heldout_combos":  # pairs never seen in pretraining: composition works
        assert acc >= 0.5


@pytest.fixture(scope="module")
def suite_rows(tiny):
    """Zero-shot and 16-shot linear-probe (seed 1) accuracy on the tasks with a train split."""
    return suite_report(tiny, shots=16, seed=1, tasks=TRAINED_TASKS)


@pytest.mark.slow
def test_few_shot_headroom(suite_rows):
    # The suite's design goal (docs/tiny-clip.md): on the average, a 16-shot linear probe beats
    # zero-shot by >= 5 points.
    assert len(suite_rows) == len(TRAINED_TASKS) == 10
    zero_shot_mean = sum(r.zero_shot for r in suite_rows) / len(suite_rows)
    probe_mean = sum(r.linear_probe for r in suite_rows) / len(suite_rows)
    assert probe_mean - zero_shot_mean >= 0.05, (
        f"16-shot probe {100 * probe_mean:.1f} vs zero-shot {100 * zero_shot_mean:.1f}: "
        f"headroom {100 * (probe_mean - zero_shot_mean):.1f} < 5 points")


def test_docs_state_the_recorded_pretraining_time():
    # docs/tiny-clip.md quotes the wall time that provenance.json records, in minutes
    seconds = json.loads((ASSETS / "tiny_clip" / "provenance.json").read_text())["seconds"]
    doc = (Path(__file__).resolve().parent.parent / "docs" / "tiny-clip.md").read_text()
    assert f"{round(seconds / 60)} minutes" in doc and f"{round(seconds):,} s" in doc
    assert "under an hour" not in doc and "about an hour" not in doc
