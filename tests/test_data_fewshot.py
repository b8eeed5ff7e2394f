"""Few-shot sampling with manifests, and base/new class splitting."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from PIL import Image

from vlprompt.data import DatasetError, load_dataset, sample_fewshot, split_base_new
from vlprompt.data.classsplit import base_new_labels
from vlprompt.data.fewshot import default_manifest_dir
from vlprompt.errors import VLPromptWarning


def build_dtd(root: Path, counts: dict[str, int]) -> Path:
    """A DTD copy without split file (cut 50/20/30 per class)."""
    for c, (name, n) in enumerate(counts.items()):
        folder = root / "dtd" / "images" / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (c * 40, i, 0)).save(folder / f"{name}_{i:03d}.jpg")
    return root


@pytest.fixture
def dtd(tmp_path):
    return load_dataset("dtd", root=build_dtd(tmp_path / "data", {"banded": 20, "dotted": 20, "woven": 20}))


def per_class(items) -> dict[int, int]:
    out: dict[int, int] = {}
    for it in items:
        out[it.label] = out.get(it.label, 0) + 1
    return out


def test_k_shots_per_class_val_min_k_4_test_whole(dtd, tmp_path):
    few = sample_fewshot(dtd, shots=8, seed=1, manifest_dir=tmp_path / "m")
    assert per_class(few.train) == {0: 8, 1: 8, 2: 8}
    assert per_class(few.val) == {0: 4, 1: 4, 2: 4}
    assert few.test == dtd.test
    assert set(few.train) <= set(dtd.train) and set(few.val) <= set(dtd.val)
    assert few.classnames == dtd.classnames and few.templates == dtd.templates
    assert per_class(sample_fewshot(dtd, shots=2, seed=1, manifest_dir=tmp_path / "m").val) == {0: 2, 1: 2, 2: 2}


def test_deterministic_per_seed_and_different_across_seeds(dtd, tmp_path):
    a = sample_fewshot(dtd, shots=4, seed=1, manifest_dir=tmp_path / "a")
    b = sample_fewshot(dtd, shots=4, seed=1, manifest_dir=tmp_path / "b")  # sampled afresh
    c = sample_fewshot(dtd, shots=4, seed=2, manifest_dir=tmp_path / "a")
    assert not a.info["fewshot"]["reused"] and not b.info["fewshot"]["reused"]
    assert a.train == b.train and a.val == b.val
    assert c.train != a.train
    assert sample_fewshot(dtd, shots=4, seed=1, use_manifest=False).train == a.train


def test_manifest_is_readable_json_and_reused(dtd, tmp_path):
    first = sample_fewshot(dtd, shots=4, seed=7, manifest_dir=tmp_path / "m")
    path = Path(first.info["fewshot"]["manifest"])
    data = json.loads(path.read_text())
    assert (data["shots"], data["val_shots"], data["seed"], data["strict"]) == (4, 4, 7, False)
    assert data["source_hash"].startswith("sha256:")
    assert all(not Path(rel).is_absolute() and ".." not in rel for rel, _ in data["train"] + data["val"])
    assert data["train"][0][0].startswith("dtd/images/")
    assert [p.suffix for p in (tmp_path / "m").iterdir()] == [".json"]  # no pickles, no temp files
    again = sample_fewshot(dtd, shots=4, seed=7, manifest_dir=tmp_path / "m")
    assert again.info["fewshot"]["reused"] and again.train == first.train


def test_manifest_survives_a_move_of_the_data_root(tmp_path):
    old = build_dtd(tmp_path / "old", {"banded": 12, "dotted": 12})
    first = sample_fewshot(load_dataset("dtd", root=old), shots=3, seed=1, manifest_dir=tmp_path / "m")
    path = Path(first.info["fewshot"]["manifest"])
    # rewrite the manifest's choice so that only reading it back can reproduce it
    data = json.loads(path.read_text())
    data["train"] = data["train"][::-1]
    path.write_text(json.dumps(data))
    new = tmp_path / "new"
    shutil.move(old, new)
    moved = sample_fewshot(load_dataset("dtd", root=new), shots=3, seed=1, manifest_dir=tmp_path / "m")
    assert moved.info["fewshot"]["reused"]
    assert [it.path.relative_to(new) for it in moved.train] == \
        [it.path.relative_to(old) for it in first.train][::-1]
    assert all(it.path.is_file() for it in moved.train + moved.val)


def test_changed_source_split_invalidates_the_manifest(tmp_path, caplog):
    root = build_dtd(tmp_path / "data", {"banded": 12, "dotted": 12})
    first = sample_fewshot(load_dataset("dtd", root=root), shots=2, seed=1, manifest_dir=tmp_path / "m")
    build_dtd(root, {"woven": 12})
    with caplog.at_level(logging.WARNING):
        second = sample_fewshot(load_dataset("dtd", root=root), shots=2, seed=1, manifest_dir=tmp_path / "m")
    assert not second.info["fewshot"]["reused"]
    assert second.info["fewshot"]["source_hash"] != first.info["fewshot"]["source_hash"]
    assert "changed" in caplog.text
    assert per_class(second.train) == {0: 2, 1: 2, 2: 2}


def test_short_classes_warn_once_or_fail_when_strict(tmp_path, caplog):
    data = load_dataset("dtd", root=build_dtd(tmp_path / "d", {"banded": 20, "dotted": 6, "woven": 4}))
    # class 2 (silently wrong data): a shortfall is a visible VLPromptWarning, not a log line
    with pytest.warns(VLPromptWarning) as caught:
        few = sample_fewshot(data, shots=5, seed=1, manifest_dir=tmp_path / "m")
    assert per_class(few.train) == {0: 5, 1: 3, 2: 2}
    shown = [str(w.message) for w in caught if "fewer than 5" in str(w.message)]
    assert len(shown) == 1 and "'dotted' (3)" in shown[0]
    manifest = json.loads(Path(few.info["fewshot"]["manifest"]).read_text())
    assert manifest["strict"] is False
    assert manifest["short_classes"] == [[1, "dotted", 3], [2, "woven", 2]]
    with pytest.raises(DatasetError, match="fewer than 5"):
        sample_fewshot(data, shots=5, seed=1, manifest_dir=tmp_path / "m", strict=True)  # from manifest
    with pytest.raises(DatasetError, match="fewer than 5"):
        sample_fewshot(data, shots=5, seed=1, manifest_dir=tmp_path / "other", strict=True)
    assert not (tmp_path / "other").exists()
    ok = sample_fewshot(data, shots=2, seed=1, manifest_dir=tmp_path / "m", strict=True)
    assert json.loads(Path(ok.info["fewshot"]["manifest"]).read_text())["strict"] is True


def test_bad_requests_and_damaged_manifests(dtd, tmp_path, caplog):
    with pytest.raises(DatasetError, match="positive"):
        sample_fewshot(dtd, shots=0)
    with pytest.raises(DatasetError, match="no train split"):
        sample_fewshot(dtd.with_splits(train=[]), shots=1, use_manifest=False)
    few = sample_fewshot(dtd, shots=1, seed=1, manifest_dir=tmp_path)
    path = Path(few.info["fewshot"]["manifest"])
    path.write_text("{broken")
    with caplog.at_level(logging.WARNING):
        again = sample_fewshot(dtd, shots=1, seed=1, manifest_dir=tmp_path)
    assert "unreadable" in caplog.text and again.train == few.train
    data = json.loads(path.read_text())
    data["train"][0][0] = "../../etc/passwd"
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="must not contain"):
        sample_fewshot(dtd, shots=1, seed=1, manifest_dir=tmp_path)


def test_default_manifest_dir_follows_vlprompt_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path))
    assert default_manifest_dir() == tmp_path / "fewshot"
    monkeypatch.delenv("VLPROMPT_CACHE")
    assert default_manifest_dir() == Path.home() / ".cache" / "vlprompt" / "fewshot"


# ----------------------------------------------------------------------------- base / new


def test_base_new_split_after_sampling(tmp_path):
    data = load_dataset("dtd", root=build_dtd(tmp_path, {n: 10 for n in "abcde"}))
    few = sample_fewshot(data, shots=2, seed=1, use_manifest=False)
    base, new = split_base_new(few, "base"), split_base_new(few, "new")
    assert base_new_labels(5) == (range(3), range(3, 5))
    assert base.classnames == ["a", "b", "c"] and new.classnames == ["d", "e"]
    assert per_class(base.train) == {0: 2, 1: 2, 2: 2} and per_class(new.train) == {0: 2, 1: 2}
    assert [it.path for it in new.test] == [it.path for it in few.test if it.label >= 3]
    assert {it.label for it in new.test} == {0, 1}
    assert new.info["class_split"]["original_labels"] == [3, 4]
    assert split_base_new(few, "all") is few
    with pytest.raises(ValueError):
        split_base_new(few, "old")


def test_base_new_keeps_imagenet_mapping_aligned(tmp_path):
    data = load_dataset("dtd", root=build_dtd(tmp_path, {n: 4 for n in "abcd"}))
    data = data.with_splits()
    data.info["imagenet_labels"] = [10, 20, 30, 40]
    assert split_base_new(data, "new").info["imagenet_labels"] == [30, 40]
