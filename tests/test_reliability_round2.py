"""Reliability, round two (docs/reliability.md, section 8): each test names the class of defect it covers.

Class 2: silently wrong data. Class 3: one-line errors. Class 4: foreign files.
Class 5: reproducible files. Class 1: threads. Class 6: small things.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_image_folder
from protocol_support import fixed_backbone
from reliability_support import cli, one_line_error, train_argv
from vlprompt.data import DatasetError, load_dataset
from vlprompt.errors import VLPromptWarning
from vlprompt.utils.runtime import Runtime


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, model_configs) -> str:
    return fixed_backbone(tmp_path_factory.mktemp("bb"), model_configs["vit"])


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """cat, dog, red_fox with 6 images each (read-only use: tests copy rows, not files)."""
    return make_image_folder(tmp_path_factory.mktemp("round2") / "imgs", {"cat": 6, "dog": 6, "red_fox": 6})


def write_csv(images: Path, rows: list[str], name: str = "data.csv") -> Path:
    path = images / name
    path.write_text("\n".join(rows) + "\n")
    return path


def split_rows(images: Path, classes=("cat", "dog", "red_fox"), labels=None) -> list[str]:
    """path,label,split rows: images 0-3 train, 4 val, 5 test of each class."""
    labels = labels or classes
    rows = []
    for c, lab in zip(classes, labels, strict=True):
        for i in range(6):
            split = "train" if i < 4 else "val" if i == 4 else "test"
            rows.append(f"{c}/{i}.png,{lab},{split}")
    return rows


# ---------------------------------------------------------------- class 2: silently wrong data


def test_class2_repeated_rows_are_removed_with_a_counted_warning(images):
    rows = split_rows(images)
    path = write_csv(images, rows + rows[:3] + rows[:1] + [f"./{rows[5]}"], "repeated.csv")
    with pytest.warns(VLPromptWarning, match="removed 5 repeated listing"):
        data = load_dataset(f"csv:{path}")
    assert (len(data.train), len(data.val), len(data.test)) == (12, 3, 3)


def test_class2_byte_identical_copies_in_two_splits_are_warned(tmp_path):
    """The same picture under two names, one in train and one in test, is a leak a path check
    cannot see: warned with a count (content is hashed only where file sizes collide)."""
    import shutil
    import warnings

    root = make_image_folder(tmp_path / "imgs", {"cat": 6, "dog": 6})
    shutil.copy(root / "cat" / "0.png", root / "cat" / "0-copy.png")
    shutil.copy(root / "dog" / "1.png", root / "dog" / "1-again.png")
    rows = [f"{c}/{i}.png,{c},{'train' if i < 4 else 'val' if i == 4 else 'test'}"
            for c in ("cat", "dog") for i in range(6)]
    rows += ["cat/0-copy.png,cat,test", "dog/1-again.png,dog,train"]  # one leak; one copy within train
    with pytest.warns(VLPromptWarning, match=r"1 image\(s\) have byte-identical copies in another split"):
        load_dataset(f"csv:{write_csv(root, rows)}")
    clean = [r for r in rows if "copy" not in r]
    with warnings.catch_warnings():
        warnings.simplefilter("error", VLPromptWarning)
        load_dataset(f"csv:{write_csv(root, clean, 'clean.csv')}")


def test_class2_a_tripled_csv_without_splits_cannot_leak_test_images(images):
    rows = [r.rsplit(",", 1)[0] for r in split_rows(images)]
    path = write_csv(images, rows * 3, "tripled.csv")
    with pytest.warns(VLPromptWarning, match="removed 36 repeated"):
        data = load_dataset(f"csv:{path}")
    train, test = {i.path for i in data.train}, {i.path for i in data.test}
    assert len(data.train) + len(data.val) + len(data.test) == 18 and not train & test


@pytest.mark.parametrize("extra, match", [
    ("cat/0.png,dog,train", "under two labels"),          # one path, two labels
    ("cat/../cat/0.png,dog,train", None),                  # `..` is refused before (round one)
    ("cat/0.png,cat,test", "in two splits"),              # train/test overlap
    ("./cat/1.png,cat,val", "in two splits"),             # another spelling of the same path
])
def test_class2_one_image_under_two_labels_or_in_two_splits_is_an_error(images, extra, match):
    path = write_csv(images, split_rows(images) + [extra], "clash.csv")
    with pytest.raises(DatasetError, match=match or "may not"):
        load_dataset(f"csv:{path}")


def test_class2_a_symlink_into_another_class_folder_is_the_same_image(tmp_path):
    root = make_image_folder(tmp_path / "f", {"cat": 3, "dog": 3})
    (root / "dog" / "sneaky.png").symlink_to(root / "cat" / "0.png")
    with pytest.raises(DatasetError, match="under two labels"):
        load_dataset(f"folder:{root}")


def test_class2_split_folders_sharing_a_file_are_refused(tmp_path):
    for split in ("train", "test"):
        make_image_folder(tmp_path / "s" / split, {"a": 2, "b": 2})
    (tmp_path / "s" / "test" / "a" / "0.png").unlink()
    (tmp_path / "s" / "test" / "a" / "0.png").symlink_to(tmp_path / "s" / "train" / "a" / "0.png")
    with pytest.raises(DatasetError, match="in two splits"):
        load_dataset(f"folder:{tmp_path / 's'}")


def test_class2_shortfall_and_empty_class_warn_without_verbose_and_are_recorded(capsys, backbone, images,
                                                                                  tmp_path):
    rows = [r for r in split_rows(images) if not (r.startswith("red_fox") and r.endswith("train"))]
    path = write_csv(images, rows, "empty_class.csv")
    code, out, err = cli(capsys, "train", "--method", "coop", "--backbone", backbone, "--dataset", f"csv:{path}",
                         "--shots", 8, "--out", tmp_path / "run", "--set", "train.epochs=1",
                         "--set", "method.n_ctx=2", "--quiet", "--json")
    assert code == 0, err
    assert "warning: " in err and "fewer than 8 train images" in err and "'red fox' (0)" in err
    assert "1 of 3 classes have no train images ('red fox')" in err
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["fewshot"]["short_classes"] == [[0, "cat", 4], [1, "dog", 4], [2, "red fox", 0]]
    assert any("no train images" in w for w in record["data_warnings"])


def test_class2_one_class_is_an_error_for_training_and_a_warning_for_zeroshot(capsys, backbone, tmp_path):
    root = make_image_folder(tmp_path / "one", {"cat": 6})
    line = one_line_error(*cli(capsys, *train_argv(backbone, root, tmp_path / "run"))[::2])
    assert "1 class ('cat')" in line and "add classes" in line
    code, out, err = cli(capsys, "zeroshot", "--backbone", backbone, "--data", root, "--quiet", "--json")
    assert code == 0 and "warning: " in err and "at least two" in err
    assert "at least two" in json.loads(out.splitlines()[-1])["data_warnings"][0]


def test_class2_numeric_labels_warn_and_the_cli_takes_a_class_name_mapping(capsys, backbone, images, tmp_path):
    path = write_csv(images, split_rows(images, labels=("0", "1", "2")), "numeric.csv")
    code, out, err = cli(capsys, "zeroshot", "--backbone", backbone, "--dataset", f"csv:{path}", "--quiet")
    assert code == 0 and "'a photo of a 0.'" in err and "--classnames" in err
    mapping = tmp_path / "names.json"
    mapping.write_text(json.dumps({"0": "cat", "1": "dog", "2": "red fox"}))
    code, out, err = cli(capsys, *train_argv(backbone, images, tmp_path / "run")[:5], "--dataset", f"csv:{path}",
                         "--classnames", mapping, *train_argv(backbone, images, tmp_path / "run")[7:])
    assert code == 0 and "warning" not in err, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["classnames"] == ["cat", "dog", "red fox"]
    code, out, err = cli(capsys, "eval", "--run", tmp_path / "run", "--quiet", "--json")  # reloads the mapping
    assert code == 0 and "warning" not in err, err
    line = one_line_error(*cli(capsys, "zeroshot", "--backbone", backbone, "--dataset", "synthetic:shapes",
                               "--classnames", mapping, "--quiet")[::2])
    assert "--classnames applies to your own data" in line


# ---------------------------------------------------------------- class 3: one line, not a traceback


@pytest.mark.parametrize("device, needle", [
    ("foo", "unknown device 'foo'"),
    ("cuda:x", "unknown device"),
    ("", "--device is empty"),
    ("xla", "not supported"),
    ("cuda", "no CUDA GPU"),
    ("cuda:7", "no CUDA GPU"),
])
def test_class3_bad_devices_are_one_line_before_any_work(capsys, backbone, images, tmp_path, device, needle):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for argv in (["zeroshot", "--backbone", backbone, "--data", images, "--quiet"],
                 train_argv(backbone, images, tmp_path / "run"),
                 ["run", "fewshot", "--methods", "zeroshot", "--backbone", backbone, "--datasets",
                  f"folder:{images}", "--shots", 1, "--db", tmp_path / "r.db", "--quiet"]):
        line = one_line_error(*cli(capsys, *argv, "--device", device)[::2])
        assert needle in line
    assert not (tmp_path / "run").exists() and not (tmp_path / "r.db").exists()


def test_class3_negative_seeds_are_one_line(capsys, backbone, images, tmp_path):
    line = one_line_error(*cli(capsys, *train_argv(backbone, images, tmp_path / "run"), "--seed", -1)[::2])
    assert "--seed must be 0 or more" in line
    line = one_line_error(*cli(capsys, "run", "fewshot", "--methods", "coop", "--backbone", backbone,
                               "--datasets", f"folder:{images}", "--seeds", "1,-2", "--db", tmp_path / "r.db")[::2])
    assert "--seeds" in line and "0 or more" in line
    from vlprompt.data import sample_fewshot

    with pytest.raises(DatasetError, match="0 or more"):
        sample_fewshot(load_dataset(f"folder:{images}"), 1, seed=-1, use_manifest=False)


def test_class3_weights_of_another_architecture_with_the_same_keys(capsys, images, tmp_path, model_configs):
    from safetensors.torch import save_file

    from vlprompt.backbones import load_backbone

    config = json.loads(Path(model_configs["vit"]).read_text())
    config["vision_cfg"]["width"] = 32  # same tensor names, other shapes
    other = tmp_path / "vlp-test-narrow.json"
    other.write_text(json.dumps(config))
    state = load_backbone(f"openclip:{other}").model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "narrow.safetensors"))
    spec = f"openclip:{model_configs['vit']}@{tmp_path / 'narrow.safetensors'}"
    line = one_line_error(*cli(capsys, "zeroshot", "--backbone", spec, "--data", images, "--quiet")[::2])
    assert "does not fit architecture" in line and "other shapes" in line and "narrow.safetensors" in line


def _fail_writes(monkeypatch, under: Path, code: int, text: str) -> None:
    """Make every atomic write below `under` fail as the OS would (tests may run as root)."""
    import tempfile

    from vlprompt.utils import io

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kw):
        if dir is not None and Path(dir).resolve().is_relative_to(under.resolve()):
            raise OSError(code, text, str(dir))
        return real(*args, dir=dir, **kw)

    monkeypatch.setattr(io.tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("code, text, needle", [
    (13, "Permission denied", "permission denied for"),
    (30, "Read-only file system", "read-only file system"),
    (28, "No space left on device", "no space left"),
])
def test_class3_unwritable_output_is_one_line_naming_the_path(capsys, monkeypatch, backbone, images, tmp_path,
                                                              code, text, needle):
    locked = tmp_path / "locked"
    locked.mkdir()
    _fail_writes(monkeypatch, locked, code, text)
    line = one_line_error(*cli(capsys, *train_argv(backbone, images, locked / "run"))[::2])
    assert needle in line and str(locked / "run") in line
    # zeroshot --out: the computed result is printed before the write fails
    code_, out, err = cli(capsys, "zeroshot", "--backbone", backbone, "--data", images, "--quiet", "--json",
                          "--out", locked / "zs.json")
    assert "top1" in json.loads(out.splitlines()[-1])
    line = one_line_error(code_, err)
    assert needle in line and str(locked) in line
    db = tmp_path / "grid.db"
    assert cli(capsys, "run", "fewshot", "--methods", "zeroshot", "--backbone", backbone, "--datasets",
               f"folder:{images}", "--shots", 1, "--seeds", 1, "--db", db, "--quiet")[0] == 0
    line = one_line_error(*cli(capsys, "report", "--db", db, "--out", locked / "report", "--no-plots")[::2])
    assert needle in line


def test_class3_a_full_disk_under_the_results_database_is_named(capsys, monkeypatch, backbone, images, tmp_path):
    import sqlite3

    from vlprompt.results import store

    real = sqlite3.connect

    def small_disk(*args, **kw):
        conn = real(*args, **kw)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {max(pages, 8)}")
        return conn

    monkeypatch.setattr(store.sqlite3, "connect", small_disk)
    line = one_line_error(*cli(capsys, "run", "fewshot", "--methods", "zeroshot", "--backbone", backbone,
                               "--datasets", f"folder:{images}", "--shots", 1, "--seeds", "1,2,3", "--db",
                               tmp_path / "full.db", "--quiet")[::2])
    assert "the disk is full" in line and "full.db" in line and "not a usable" not in line


def test_class3_three_identical_grids_at_once_share_the_work(backbone, tmp_path):
    import os
    import subprocess
    import sys

    from reliability_support import subprocess_env
    from vlprompt.results.store import ResultStore

    db = tmp_path / "same.db"
    argv = [sys.executable, "-m", "vlprompt", "run", "fewshot", "--methods", "zeroshot,coop", "--backbone", backbone,
            "--datasets", "synthetic:counting", "--shots", "1", "--seeds", "1,2", "--epochs", "2", "--db", str(db),
            "--quiet"]
    env = subprocess_env(tmp_path / "cache")
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    assert not any("Traceback" in e for e in errs), errs
    with ResultStore(db) as store:
        rows = store.records()
        assert not store.failures()
    assert len(rows) == 4 and len({r["run_hash"] for r in rows}) == 4
    leftovers = [p for p in (tmp_path / "same-runs").rglob("*.tmp")]
    assert not leftovers and os.path.isdir(tmp_path / "same-runs")


# ---------------------------------------------------------------- class 4: foreign files


def test_class4_train_refuses_a_folder_with_the_users_files(capsys, backbone, images, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    line = one_line_error(*cli(capsys, *train_argv(backbone, images, out))[::2])
    assert "did not write (e.g. config.json)" in line and "--force" in line
    assert json.loads((out / "config.json").read_text()) == {"mine": True}
    code, _, err = cli(capsys, *train_argv(backbone, images, out), "--force")
    assert code == 0, err
    code, _, err = cli(capsys, *train_argv(backbone, images, out), "--resume")  # now vlprompt's own folder
    assert code == 0, err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(capsys, *train_argv(backbone, images, empty))[0] == 0
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_line_error(*cli(capsys, *train_argv(backbone, images, tmp_path / "file"))[::2])


def test_class4_ddp_train_refuses_a_folder_with_the_users_files(capsys, backbone, images, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = one_line_error(*cli(capsys, "ddp-train", "--method", "coop", "--backbone", backbone, "--dataset",
                               f"folder:{images}", "--shots", "1", "--out", out)[::2])
    assert "did not write (e.g. notes.txt)" in line and "--force" in line
    assert (out / "notes.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_class4_report_refuses_foreign_folders_and_drops_stale_plots(capsys, backbone, images, tmp_path):
    from vlprompt.results import plots

    db = tmp_path / "grid.db"
    assert cli(capsys, "run", "fewshot", "--methods", "zeroshot", "--backbone", backbone, "--datasets",
               f"folder:{images}", "--shots", 1, "--seeds", 1, "--db", db, "--quiet")[0] == 0
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<p>my page</p>")
    line = one_line_error(*cli(capsys, "report", "--db", db, "--out", site)[::2])
    assert "index.html" in line and "--force" in line
    assert (site / "index.html").read_text() == "<p>my page</p>"
    out = tmp_path / "report"
    assert cli(capsys, "report", "--db", db, "--out", out)[0] == 0
    if plots.available():
        assert list((out / "plots").iterdir())
    (out / "csv" / "old-table.csv").write_text("stale")
    assert cli(capsys, "report", "--db", db, "--out", out, "--no-plots")[0] == 0
    assert not list((out / "plots").glob("*")) if (out / "plots").exists() else True
    assert not (out / "csv" / "old-table.csv").exists()
    legacy = tmp_path / "legacy"  # written before the marker existed
    legacy.mkdir()
    for name in ("tables.md", "records.json", "index.html"):
        (legacy / name).write_text("old")
    assert cli(capsys, "report", "--db", db, "--out", legacy, "--no-plots")[0] == 0


# ---------------------------------------------------------------- class 5: reproducible files


def test_class5_safetensors_bytes_do_not_depend_on_hash_order():
    import torch
    from safetensors import safe_open

    from vlprompt.utils.tensorfile import save_tensors

    tensors = {"b": torch.arange(6.0).view(2, 3), "a": torch.ones(3, dtype=torch.float16), "c": torch.zeros(1)}
    metadata = {f"key{i}": f"value {i}" for i in range(12)}
    blobs = {save_tensors(tensors, metadata) for _ in range(20)}
    assert len(blobs) == 1
    blob = blobs.pop()
    size = int.from_bytes(blob[:8], "little")
    assert size % 8 == 0 and json.loads(blob[8:8 + size])["__metadata__"] == metadata
    from safetensors.torch import load

    loaded = load(blob)
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())
    path = Path(__import__("tempfile").mkdtemp()) / "x.safetensors"
    path.write_bytes(blob)
    with safe_open(str(path), framework="pt") as fh:
        assert fh.metadata() == metadata


def test_class5_identical_runs_write_identical_files(capsys, backbone, images, tmp_path):
    for name in ("a", "b"):
        code, _, err = cli(capsys, *train_argv(backbone, images, tmp_path / name))
        assert code == 0, err
        assert cli(capsys, "export", "--run", tmp_path / name, "--out", tmp_path / f"{name}.safetensors")[0] == 0
    # run.json and the checkpoint record timings, so only these are compared
    for rel in ("weights.safetensors", "config.json"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


# ---------------------------------------------------------------- class 1: threads


def test_class1_every_computing_command_takes_threads():
    from vlprompt.cli.common import computing_parsers
    from vlprompt.cli.main import build_parser

    parsers = list(computing_parsers(build_parser()))
    names = {p.prog.split(" ", 1)[1] for p in parsers}
    assert {"zeroshot", "train", "eval", "predict", "export", "interpret", "demo", "run fewshot", "run base2new",
            "replicate", "ddp-train"} <= names, names
    for p in parsers:
        assert any(a.dest == "threads" for a in p._actions), p.prog


def test_class1_threads_are_chosen_applied_and_recorded(capsys, backbone, images, tmp_path):
    import torch

    from vlprompt.utils import runtime

    before = torch.get_num_threads()
    code, _, err = cli(capsys, *train_argv(backbone, images, tmp_path / "auto"))  # default: auto
    assert code == 0, err
    env = json.loads((tmp_path / "auto" / "run.json").read_text())["environment"]
    assert env["threads"] == 1 and "auto: 1 thread" in env["threads_choice"]  # a tiny backbone
    code, _, err = cli(capsys, *train_argv(backbone, images, tmp_path / "one"), "--threads", 1)
    assert code == 0, err
    env = json.loads((tmp_path / "one" / "run.json").read_text())["environment"]
    assert env["threads"] == 1 and env["threads_choice"] == "--threads 1"
    assert torch.get_num_threads() == before  # the CLI leaves an in-process caller's setting alone
    for bad in ("0x", "-1", "many"):
        assert "--threads" in one_line_error(*cli(capsys, "zeroshot", "--backbone", backbone, "--data", images,
                                                  "--threads", bad)[::2])
    try:
        runtime.set_threads("auto")
        assert torch.get_num_threads() == runtime.available_cores()
        runtime.fit_threads_to_model(runtime.SMALL_MODEL_PARAMS + 1)
        assert torch.get_num_threads() == runtime.available_cores()
        runtime.fit_threads_to_model(1000)
        assert torch.get_num_threads() == 1
    finally:
        runtime.set_threads(None)
        torch.set_num_threads(before)


# ---------------------------------------------------------------- class 6: small things


def test_class6_predict_skips_bad_images_when_asked(capsys, backbone, images, tmp_path):
    assert cli(capsys, *train_argv(backbone, images, tmp_path / "run"))[0] == 0
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.png").write_bytes((images / "cat" / "0.png").read_bytes())
    (folder / "bad.png").write_bytes(b"not an image")
    line = one_line_error(*cli(capsys, "predict", "--run", tmp_path / "run", folder)[::2])
    assert "bad.png" in line and "--skip-bad-images" in line
    code, out, err = cli(capsys, "predict", "--run", tmp_path / "run", folder, "--skip-bad-images", "--json")
    assert code == 0 and "left out 1 unreadable image" in err
    result = json.loads(out.splitlines()[-1])
    assert [Path(r["path"]).name for r in result["predictions"]] == ["good.png"]
    assert [Path(s["path"]).name for s in result["skipped_images"]] == ["bad.png"]


def test_class6_interrupt_says_how_to_resume(capsys, monkeypatch, backbone, images, tmp_path):
    from vlprompt import api

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "train", interrupted)  # the CLI imports the API when a command runs
    code, _, err = cli(capsys, *train_argv(backbone, images, tmp_path / "run"))
    assert code == 130 and "--resume" in err
    monkeypatch.setattr(api, "run_protocol", interrupted)
    code, _, err = cli(capsys, "run", "fewshot", "--methods", "zeroshot", "--backbone", backbone, "--datasets",
                       f"folder:{images}", "--shots", 1, "--db", tmp_path / "r.db", "--quiet")
    assert code == 130 and "rerun the same command" in err


@pytest.mark.parametrize("ensemble", ["foo", "select7+foo", "dataset+"])
def test_class6_unknown_ensemble_names_the_sets(capsys, backbone, images, ensemble):
    line = one_line_error(*cli(capsys, "zeroshot", "--backbone", backbone, "--data", images,
                               "--ensemble", ensemble, "--quiet")[::2])
    assert "unknown template set" in line and "select7" in line and "--template" in line


def test_class6_written_files_respect_the_umask(tmp_path):
    import os

    from vlprompt.utils.io import atomic_write_text

    for mask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        old = os.umask(mask)
        try:
            atomic_write_text(tmp_path / f"f{mask:o}.json", "{}")
        finally:
            os.umask(old)
        assert (tmp_path / f"f{mask:o}.json").stat().st_mode & 0o777 == mode


def test_class6_top5_only_for_more_than_five_classes(capsys, backbone, images, tmp_path):
    code, out, _ = cli(capsys, "zeroshot", "--backbone", backbone, "--data", images, "--quiet")
    assert code == 0 and "top-1" in out and "top-5" not in out
    code, out, _ = cli(capsys, *train_argv(backbone, images, tmp_path / "run")[:-1])  # without --json
    assert code == 0 and "top-1" in out and "top-5" not in out
    code, out, _ = cli(capsys, "eval", "--run", tmp_path / "run", "--quiet")
    assert code == 0 and "top-1" in out and "top-5" not in out
    many = make_image_folder(tmp_path / "many", {f"class{i}": 3 for i in range(6)})
    code, out, _ = cli(capsys, "zeroshot", "--backbone", backbone, "--data", many, "--quiet")
    assert code == 0 and "top-5" in out


def test_class6_projection_stars_take_their_class_colours():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from vlprompt.results import plots
    from vlprompt.results.tables import Panel, Series

    classes = [Series(f"c{i}", [i, i + 0.1], [0, 1], style="scatter") for i in range(3)]
    for extra in ([], [Series("lonely", [9], [9], style="scatter")]):  # aligned with the classes, or not
        stars = Series("class text features", [0, 1, 2], [2, 2, 2], style="marker")
        fig, ax = plt.subplots()
        plots._draw(ax, Panel("p", [*classes, *extra, stars], kind="scatter"))
        colors = [tuple(c) for c in ax.collections[-1].get_facecolors()]
        assert len(set(colors)) == 3
        if not extra:
            assert colors == [tuple(c.get_facecolors()[0]) for c in ax.collections[:3]]
        plt.close(fig)


def test_class6_report_tables_scroll_and_figure_titles_are_not_repeated(capsys, backbone, images, tmp_path):
    import re

    db = tmp_path / "grid.db"
    assert cli(capsys, "run", "fewshot", "--methods", "zeroshot", "--backbone", backbone, "--datasets",
               f"folder:{images}", "--shots", 1, "--seeds", 1, "--db", db, "--quiet")[0] == 0
    assert cli(capsys, "report", "--db", db, "--out", tmp_path / "report")[0] == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<figcaption" not in page
    wrapped = re.findall(r"<div class='tw'>(?:(?!</div>).)*?<table", page, flags=re.S)
    assert page.count("<table") >= 1 and len(wrapped) == page.count("<table")
    assert ".tw{max-width:100%;overflow-x:auto}" in page and "overflow-wrap:anywhere" in page


def test_class4_the_python_api_refuses_a_folder_with_the_users_files(backbone, images, tmp_path):
    from vlprompt.api import claim_run_dir, train
    from vlprompt.utils.io import ForeignFolderError

    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    kw = dict(shots=1, out=out, overrides=["train.epochs=1"], runtime=Runtime(progress=False))
    with pytest.raises(ForeignFolderError, match="config.json"):
        train("coop", backbone, f"folder:{images}", **kw)
    assert json.loads((out / "config.json").read_text()) == {"mine": True}
    claim_run_dir(out, force=True)  # what --force does before training
    train("coop", backbone, f"folder:{images}", **kw)
    assert (out / ".vlprompt").is_file()
