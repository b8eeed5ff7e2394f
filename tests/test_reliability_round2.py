"""Reliability, round two (issue 16): each test names the class of defect it covers.

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
