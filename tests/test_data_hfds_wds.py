"""Hugging Face datasets (`hfds:`) and WebDataset shards (`wds:`): built on the fly from the
synthetic suite and checked against the same images as an image folder."""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from vlprompt.data import DatasetError, load_dataset, sample_fewshot
from vlprompt.data.images import drop_unreadable
from vlprompt.data.types import ImageSource

datasets = pytest.importorskip("datasets")

PER_CLASS = {"train": 6, "val": 2, "test": 6}  # 10 classes: 140 images


def _folder(base: Path) -> Path:
    """base/{train,val,test}/<class>/<n>.png from the first images of synthetic:shapes."""
    src = load_dataset("synthetic:shapes")
    for split, n in PER_CLASS.items():
        taken = {c: 0 for c in range(src.num_classes)}
        for item in getattr(src, split):
            if taken[item.label] < n:
                out = base / split / src.classnames[item.label] / f"{split}{taken[item.label]:03d}.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(item.path, out)
                taken[item.label] += 1
    return base


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_wds(data, base: Path, per_shard: int = 25, bad_test: bool = False) -> Path:
    """The CLIP benchmark's layout: split folders of numbered shards, names and templates."""
    for split in ("train", "val", "test"):
        items = getattr(data, split)
        folder = base / split
        folder.mkdir(parents=True)
        shards = [items[i:i + per_shard] for i in range(0, len(items), per_shard)]
        for s, chunk in enumerate(shards):
            with tarfile.open(folder / f"{s}.tar", "w") as tar:
                for i, item in enumerate(chunk):
                    key = f"s{s:02d}_{i:04d}"
                    _add(tar, f"{key}.png", Path(item.path).read_bytes())
                    _add(tar, f"{key}.cls", str(item.label).encode())
                if bad_test and split == "test" and s == 0:
                    _add(tar, "zz_bad.png", b"not an image")
                    _add(tar, "zz_bad.cls", b"0")
        (folder / "nshards.txt").write_text(str(len(shards)))
    (base / "classnames.txt").write_text("\n".join(data.classnames) + "\n")
    (base / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
    return base


def _hf_dict(data, bad_test: bool = False):
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=list(data.classnames))})
    parts = {}
    for ours, theirs in (("train", "train"), ("val", "validation"), ("test", "test")):
        items = getattr(data, ours)
        rows = {"image": [{"bytes": Path(it.path).read_bytes(), "path": None} for it in items],
                "label": [it.label for it in items]}
        if bad_test and ours == "test":
            rows["image"].append({"bytes": b"not an image", "path": None})
            rows["label"].append(0)
        parts[theirs] = datasets.Dataset.from_dict(rows, features=features)
    return datasets.DatasetDict(parts)


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """The same 140 images as a folder, WebDataset shards, a saved dataset and parquet files."""
    base = tmp_path_factory.mktemp("homes")
    folder = _folder(base / "folder")
    data = load_dataset(f"folder:{folder}")
    hf = _hf_dict(data)
    hf.save_to_disk(str(base / "saved"))
    (base / "parquet").mkdir()
    for split, ds in hf.items():
        ds.to_parquet(str(base / "parquet" / f"{split}-00000-of-00001.parquet"))
    saved = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = str(base / "hf-cache")  # the parquet conversion lands here
    try:
        yield {"folder": f"folder:{folder}", "wds": f"wds:{write_wds(data, base / 'wds')}",
               "hfds": f"hfds:{base / 'saved'}", "parquet": f"hfds:{base / 'parquet'}"}
    finally:
        datasets.config.HF_DATASETS_CACHE = saved


@pytest.mark.parametrize("kind", ["wds", "hfds", "parquet"])
def test_same_splits_names_and_images_as_the_folder(homes, kind):
    folder = load_dataset(homes["folder"])
    data = load_dataset(homes[kind])
    assert data.classnames == folder.classnames
    assert data.templates == ["a photo of a {}."]
    for split in ("train", "val", "test"):
        mine, theirs = getattr(data, split), getattr(folder, split)
        assert [it.label for it in mine] == [it.label for it in theirs]
        assert all(isinstance(it.path, ImageSource) for it in mine)
        assert mine[3].path.read_bytes() == Path(theirs[3].path).read_bytes()
    assert data.info["root"] and data.info["split_source"]
    assert load_dataset(data.name).train == data.train  # the name reloads the dataset (eval of a saved run)


@pytest.mark.parametrize("kind", ["wds", "hfds"])
def test_loading_and_sampling_read_no_image(homes, kind, monkeypatch, tmp_path):
    data = load_dataset(homes[kind])
    cls = type(data.train[0].path)
    reads = []
    original = cls.read_bytes
    monkeypatch.setattr(cls, "read_bytes", lambda self: reads.append(str(self)) or original(self))
    data = load_dataset(homes[kind])
    few = sample_fewshot(data, 2, seed=1, manifest_dir=tmp_path)
    assert reads == []
    from vlprompt.data.images import open_image

    assert open_image(few.train[0].path).size == _size(few.train[0].path)
    assert reads == [str(few.train[0].path)] * 2


def _size(source: ImageSource):
    from PIL import Image

    return Image.open(io.BytesIO(source.read_bytes())).size


@pytest.mark.parametrize("kind", ["wds", "hfds"])
def test_fewshot_manifest_is_relative_and_reused(homes, kind, tmp_path):
    data = load_dataset(homes[kind])
    few = sample_fewshot(data, 2, seed=3, manifest_dir=tmp_path)
    manifest = json.loads(Path(few.info["fewshot"]["manifest"]).read_text())
    assert len(manifest["train"]) == 2 * data.num_classes and "::" in manifest["train"][0][0]
    assert not manifest["train"][0][0].startswith("/")  # relative to the dataset's folder
    again = sample_fewshot(load_dataset(homes[kind]), 2, seed=3, manifest_dir=tmp_path)
    assert again.info["fewshot"]["reused"] and again.train == few.train
    folder = sample_fewshot(load_dataset(homes["folder"]), 2, seed=3, manifest_dir=tmp_path)
    assert [it.label for it in few.train] == [it.label for it in folder.train]


def test_shard_index_is_kept_and_renewed_when_a_shard_changes(homes, tmp_path, monkeypatch):
    copy = tmp_path / "wds"
    shutil.copytree(Path(homes["wds"][4:]), copy)
    first = load_dataset(f"wds:{copy}")
    with monkeypatch.context() as m:
        m.setattr(tarfile, "open", lambda *a, **k: pytest.fail("an unchanged shard was read again"))
        assert load_dataset(f"wds:{copy}").train == first.train
    shard = copy / "test" / "0.tar"
    with tarfile.open(shard, "a") as tar:  # a new sample: size and mtime change
        _add(tar, "zz_new.png", first.test[0].path.read_bytes())
        _add(tar, "zz_new.cls", b"3")
    again = load_dataset(f"wds:{copy}")
    assert len(again.test) == len(first.test) + 1  # shard 0 held 25 samples; the new one follows them
    assert again.test[25].label == 3 and str(again.test[25].path).endswith("0.tar::zz_new.png")


def test_val_is_cut_from_train_when_missing(homes, tmp_path):
    wds = Path(homes["wds"][4:])
    copy = tmp_path / "wds"
    shutil.copytree(wds, copy)
    shutil.rmtree(copy / "val")
    data = load_dataset(f"wds:{copy}")
    full = load_dataset(homes["wds"])
    assert len(data.train) + len(data.val) == len(full.train) and len(data.val) == 10
    assert "val cut from train" in data.info["split_source"]
    saved = datasets.load_from_disk(homes["hfds"][5:])
    datasets.DatasetDict({"train": saved["train"], "test": saved["test"]}).save_to_disk(str(tmp_path / "nv"))
    nv = load_dataset(f"hfds:{tmp_path / 'nv'}")
    assert len(nv.val) == 10 and "val cut from train" in nv.info["split_source"]


def test_split_and_column_mapping(homes, tmp_path):
    data = load_dataset(f"{homes['hfds']}@val=test,test=validation")
    assert len(data.val) == 60 and len(data.test) == 20
    assert data.name.endswith("@val=test,test=validation")
    with pytest.raises(DatasetError, match="no split 'dev'"):
        load_dataset(f"{homes['hfds']}@val=dev")
    with pytest.raises(DatasetError, match="no column 'img'"):
        load_dataset(f"{homes['hfds']}@image=img")
    with pytest.raises(DatasetError, match="bad mapping"):
        load_dataset(f"{homes['hfds']}@colour=red")


def test_errors_name_what_is_missing(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="offline.*save_to_disk"):
        load_dataset("hfds:nobody-vlprompt-test/not-cached")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"hfds:{tmp_path / 'none'}")
    with pytest.raises(DatasetError, match="classnames.txt"):
        load_dataset(f"wds:{tmp_path}")
    (tmp_path / "classnames.txt").write_text("a\nb\n")
    (tmp_path / "train").mkdir()
    with tarfile.open(tmp_path / "train" / "0.tar", "w") as tar:
        _add(tar, "k.png", b"x")
        _add(tar, "k.cls", b"7")
    with pytest.raises(DatasetError, match="label '7'"):
        load_dataset(f"wds:{tmp_path}")
    with tarfile.open(tmp_path / "train" / "0.tar", "w:gz") as tar:
        _add(tar, "k.png", b"x")
    with pytest.raises(DatasetError, match="uncompressed"):
        load_dataset(f"wds:{tmp_path}")
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DatasetError, match=r"vlprompt\[hf\]"):
        load_dataset(f"hfds:{tmp_path}")


def test_skip_bad_images_in_shards_and_rows(homes, tmp_path):
    folder = load_dataset(homes["folder"])
    bad_wds = load_dataset(f"wds:{write_wds(folder, tmp_path / 'wds', bad_test=True)}")
    _hf_dict(folder, bad_test=True).save_to_disk(str(tmp_path / "saved"))
    bad_hf = load_dataset(f"hfds:{tmp_path / 'saved'}")
    for data in (bad_wds, bad_hf):
        with pytest.raises(DatasetError, match="cannot be read"):
            from vlprompt.data.images import open_image

            open_image(data.test[-1].path if data is bad_hf else
                       next(it.path for it in data.test if "zz_bad" in str(it.path)))
        kept, skipped = drop_unreadable(data, splits=("test",))
        assert len(skipped) == 1 and len(kept.test) == len(data.test) - 1
        assert "::" in skipped[0]["path"]


@pytest.fixture(scope="module")
def tiny():
    from vlprompt.backbones import load_backbone

    return load_backbone("tiny", device="cpu")


@pytest.fixture(scope="module")
def folder_run(homes, tiny, tmp_path_factory):
    from vlprompt.api import train
    from vlprompt.utils.runtime import Runtime

    base = tmp_path_factory.mktemp("runs")
    rt = Runtime(device="cpu", progress=False, cache_dir=base / "features")
    return train("coop", tiny, homes["folder"], shots=2, seed=1, overrides=["train.epochs=2"], out=base / "folder", runtime=rt)


@pytest.mark.parametrize("kind", ["wds", "hfds", "parquet"])
def test_a_run_equals_the_run_on_the_folder_and_hits_the_cache(homes, tiny, folder_run, kind, tmp_path):
    from vlprompt.api import train
    from vlprompt.utils.runtime import Runtime

    rt = Runtime(device="cpu", progress=False, cache_dir=tmp_path / "features")
    first = train("coop", tiny, homes[kind], shots=2, seed=1, overrides=["train.epochs=2"], out=tmp_path / "a", runtime=rt)
    assert first["top1"] == folder_run["top1"] and first["n_test"] == folder_run["n_test"]
    second = train("coop", tiny, homes[kind], shots=2, seed=1, overrides=["train.epochs=2"], out=tmp_path / "b", runtime=rt)
    record = json.loads((tmp_path / "b" / "run.json").read_text())
    assert record["feature_cache"]["misses"] == 0 and record["feature_cache"]["hits"] >= 2
    assert record["fewshot"]["reused"] and second["top1"] == first["top1"]


@pytest.mark.parametrize("kind", ["wds", "hfds"])
def test_a_protocol_grid_runs_on_each(homes, tiny, kind, tmp_path):
    import vlprompt.api as api
    from vlprompt.utils.runtime import Runtime

    rt = Runtime(device="cpu", progress=False, cache_dir=tmp_path / "features")
    axes = dict(methods=["zeroshot", "coop"], datasets=[homes[kind]], shots=[1], seeds=[1], epochs=1,
                backbone=tiny)
    if hasattr(api, "Grid"):  # the API takes the grid's axes as one Grid
        result = api.run_protocol("fewshot", api.Grid(**axes), db=tmp_path / "r.db", runtime=rt)
    else:
        result = api.run_protocol("fewshot", **axes, db=tmp_path / "r.db", runtime=rt)
    assert result["failed"] == [] and result["ran"] == 2 and result["records"] >= 2
