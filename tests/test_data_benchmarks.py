"""Miniature copies of every benchmark layout: class names, splits, labels, templates, status."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from vlprompt.data import DatasetError, dataset_status, list_datasets, load_dataset
from vlprompt.data.classsplit import labels_within
from vlprompt.data.datasets.imagenet import subset_wnids

BENCHMARKS = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
              "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101", "imagenet_v2", "imagenet_sketch",
              "imagenet_a", "imagenet_r"]


def img(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value % 256, 40, 90)).save(path)
    return path


def write_split_file(path: Path, image_dir: Path, rows: dict[str, list[tuple[str, int, str]]]) -> None:
    """A reference split file, and an image for every listed path."""
    for entries in rows.values():
        for rel, label, _ in entries:
            img(image_dir / rel, label)
    path.write_text(json.dumps({s: [list(r) for r in entries] for s, entries in rows.items()}))


def split_rows(classes: list[tuple[str, str]], counts=(2, 1, 1)) -> dict[str, list[tuple[str, int, str]]]:
    """(folder, classname) per label -> rows with `counts` images per class in train/val/test."""
    rows: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, (folder, name) in enumerate(classes):
        i = 0
        for split, n in zip(rows, counts, strict=True):
            for _ in range(n):
                rows[split].append((f"{folder}/{folder}_{i}.jpg", label, name))
                i += 1
    return rows


def sizes(data) -> tuple[int, int, int]:
    return len(data.train), len(data.val), len(data.test)


def labels_ok(data) -> None:
    """Every label is in range and every item file exists."""
    for split in (data.train, data.val, data.test):
        for item in split:
            assert 0 <= item.label < data.num_classes
            assert item.path.is_file(), item.path


# ----------------------------------------------------------------------------- registry


def test_every_benchmark_is_registered():
    names = list_datasets()
    for name in BENCHMARKS:
        assert name in names


def test_status_of_an_empty_root(tmp_path):
    for name in BENCHMARKS:
        assert dataset_status(name, tmp_path) == "missing"
    # reliability, small things (docs/reliability.md, round two): a root that does not exist is named, not reported as N missing datasets
    status = dataset_status("caltech101", tmp_path / "nowhere")
    assert status.startswith("missing") and f"{tmp_path / 'nowhere'} does not exist" in status


def test_unknown_name_and_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("caltech-999", root=tmp_path)
    with pytest.raises(DatasetError, match="needs --root"):
        load_dataset("caltech101")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("caltech101", root=tmp_path)


# ----------------------------------------------------------------------------- split files


SPLIT_FILE_CASES = {
    # name: (folder, image dir, split file, classes, template)
    "caltech101": ("caltech-101", "101_ObjectCategories", "split_zhou_Caltech101.json",
                   [("accordion", "accordion"), ("Faces", "face")], "a photo of a {}."),
    "oxford_pets": ("oxford_pets", "images", "split_zhou_OxfordPets.json",
                    [("abyssinian", "abyssinian"), ("bulldog", "american_bulldog")],
                    "a photo of a {}, a type of pet."),
    "stanford_cars": ("stanford_cars", "", "split_zhou_StanfordCars.json",
                      [("cars_train", "2012 Acura RL Sedan"), ("cars_test", "2000 AM General Hummer SUV")],
                      "a photo of a {}."),
    "oxford_flowers": ("oxford_flowers", "jpg", "split_zhou_OxfordFlowers.json",
                       [("a", "pink primrose"), ("b", "globe thistle")], "a photo of a {}, a type of flower."),
    "food101": ("food-101", "images", "split_zhou_Food101.json",
                [("apple_pie", "apple_pie"), ("ramen", "ramen")], "a photo of {}, a type of food."),
    "sun397": ("sun397", "SUN397", "split_zhou_SUN397.json",
               [("a/abbey", "abbey"), ("c/church/indoor", "indoor church")], "a photo of a {}."),
    "dtd": ("dtd", "images", "split_zhou_DescribableTextures.json",
            [("banded", "banded"), ("zigzagged", "zigzagged")], "{} texture."),
    "eurosat": ("eurosat", "2750", "split_zhou_EuroSAT.json",
                [("AnnualCrop", "Annual Crop Land"), ("SeaLake", "Sea or Lake")],
                "a centered satellite photo of {}."),
    "ucf101": ("ucf101", "UCF-101-midframes", "split_zhou_UCF101.json",
               [("Apply_Eye_Makeup", "Apply_Eye_Makeup"), ("Yo_Yo", "Yo_Yo")],
               "a photo of a person doing {}."),
}


@pytest.mark.parametrize("name", sorted(SPLIT_FILE_CASES))
def test_split_file_gives_names_splits_and_template(tmp_path, name):
    folder, image_dir, split_file, classes, template = SPLIT_FILE_CASES[name]
    write_split_file(tmp_path / folder / split_file, tmp_path / folder / image_dir,
                     split_rows(classes, counts=(3, 2, 1)))
    assert dataset_status(name, tmp_path) == "present"
    data = load_dataset(name, root=tmp_path)
    assert data.name == name
    assert data.classnames == [c.replace("_", " ") for _, c in classes]
    assert data.templates == [template]
    assert sizes(data) == (6, 4, 2)
    assert [it.label for it in data.train] == [0, 0, 0, 1, 1, 1]
    assert data.info["split_source"] == "file"
    labels_ok(data)


def test_split_file_paths_may_not_leave_the_data_root(tmp_path):
    image_dir = tmp_path / "dtd" / "images"
    rows = split_rows([("banded", "banded")])
    write_split_file(tmp_path / "dtd" / "split_zhou_DescribableTextures.json", image_dir, rows)
    for bad in ("../../secret.jpg", "/etc/passwd", "banded/../../x.jpg", "C:\\x.jpg"):
        rows["test"] = [(bad, 0, "banded")]
        (tmp_path / "dtd" / "split_zhou_DescribableTextures.json").write_text(json.dumps(rows))
        with pytest.raises(DatasetError, match="must not contain"):
            load_dataset("dtd", root=tmp_path)
        assert dataset_status("dtd", tmp_path).startswith("incomplete")


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot be read"),
    (json.dumps({"train": []}), "must hold"),
    (json.dumps({"train": [["a.jpg", 0]], "val": [], "test": []}), "expected"),
    (json.dumps({"train": [["a.jpg", 0, "x"], ["b.jpg", 0, "y"]], "val": [], "test": []}), "named both"),
    (json.dumps({"train": [["a.jpg", 0, "x"], ["b.jpg", 2, "y"]], "val": [], "test": []}), "0..n-1"),
])
def test_malformed_split_files_name_the_file(tmp_path, content, message):
    img(tmp_path / "dtd" / "images" / "a.jpg")
    (tmp_path / "dtd" / "split_zhou_DescribableTextures.json").write_text(content)
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset("dtd", root=tmp_path)
    assert "split_zhou_DescribableTextures.json" in str(err.value)


def test_status_reports_files_missing_from_the_split(tmp_path):
    rows = split_rows([("banded", "banded"), ("dotted", "dotted")])
    write_split_file(tmp_path / "dtd" / "split_zhou_DescribableTextures.json", tmp_path / "dtd" / "images", rows)
    (tmp_path / "dtd" / "images" / rows["test"][-1][0]).unlink()
    status = dataset_status("dtd", tmp_path)
    assert status.startswith("incomplete:") and "missing" in status


# ----------------------------------------------------------------------------- no split file


def class_folders(base: Path, names: list[str], n: int = 10) -> None:
    for c, name in enumerate(names):
        for i in range(n):
            img(base / name / f"{name}_{i:04d}.jpg", c)


def test_caltech101_folders_renaming_and_50_20_30(tmp_path):
    base = tmp_path / "caltech-101" / "101_ObjectCategories"
    class_folders(base, ["BACKGROUND_Google", "Faces", "Faces_easy", "Leopards", "Motorbikes",
                         "accordion", "airplanes"])
    data = load_dataset("caltech101", root=tmp_path)
    assert data.classnames == ["face", "leopard", "motorbike", "accordion", "airplane"]
    assert sizes(data) == (25, 10, 15)
    assert data.info["split_source"].startswith("derived")
    assert not (tmp_path / "caltech-101" / "split_zhou_Caltech101.json").exists()
    assert all("BACKGROUND" not in str(it.path) and "Faces_easy" not in str(it.path)
               for it in data.train + data.val + data.test)
    labels_ok(data)
    # the cut is seeded: a second load gives the same splits
    assert load_dataset("caltech101", root=tmp_path).train == data.train


def test_write_split_saves_a_reference_split_file(tmp_path):
    class_folders(tmp_path / "caltech-101" / "101_ObjectCategories", ["Faces", "accordion"])
    first = load_dataset("caltech101", root=tmp_path, write_split=True)
    split_file = tmp_path / "caltech-101" / "split_zhou_Caltech101.json"
    rows = json.loads(split_file.read_text())
    assert rows["train"][0][0].count("/") == 1 and rows["train"][0][2] in ("face", "accordion")
    again = load_dataset("caltech101", root=tmp_path)
    assert again.info["split_source"] == "file"
    assert (again.train, again.val, again.test) == (first.train, first.val, first.test)
    assert again.classnames == first.classnames


def test_eurosat_food_dtd_folder_names(tmp_path):
    class_folders(tmp_path / "eurosat" / "2750", ["AnnualCrop", "Forest", "HerbaceousVegetation", "SeaLake"])
    assert load_dataset("eurosat", root=tmp_path).classnames == [
        "Annual Crop Land", "Forest", "Herbaceous Vegetation Land", "Sea or Lake"]
    class_folders(tmp_path / "food-101" / "images", ["apple_pie", "baby_back_ribs"])
    food = load_dataset("food101", root=tmp_path)
    assert food.classnames == ["apple pie", "baby back ribs"]
    assert sizes(food) == (10, 4, 6)
    class_folders(tmp_path / "dtd" / "images", ["banded", "zigzagged"])
    assert load_dataset("dtd", root=tmp_path).classnames == ["banded", "zigzagged"]


def test_oxford_pets_from_the_official_lists(tmp_path):
    base = tmp_path / "oxford_pets"
    lines = {"trainval.txt": [], "test.txt": []}
    for c, breed in enumerate(["Abyssinian", "american_bulldog"], 1):
        for i in range(7):
            name = f"{breed}_{i}"
            img(base / "images" / f"{name}.jpg", c)
            lines["trainval.txt" if i < 5 else "test.txt"].append(f"{name} {c} {c} 1")
    (base / "annotations").mkdir()
    for fname, rows in lines.items():
        (base / "annotations" / fname).write_text("#Image CLASS-ID SPECIES BREED ID\n" + "\n".join(rows))
    assert dataset_status("oxford_pets", tmp_path) == "present"
    data = load_dataset("oxford_pets", root=tmp_path)
    assert data.classnames == ["abyssinian", "american bulldog"]
    assert sizes(data) == (8, 2, 4)  # 80/20 of trainval per class, official test
    labels_ok(data)


def test_oxford_pets_without_split_or_lists_is_incomplete(tmp_path):
    img(tmp_path / "oxford_pets" / "images" / "a_1.jpg")
    assert dataset_status("oxford_pets", tmp_path).startswith("incomplete: needs split_zhou_OxfordPets.json")
    with pytest.raises(DatasetError, match="trainval.txt"):
        load_dataset("oxford_pets", root=tmp_path)


def _struct(rows: list[tuple[str, int]]) -> np.ndarray:
    out = np.zeros((1, len(rows)), dtype=[("fname", "O"), ("class", "O")])
    for i, (fname, label) in enumerate(rows):
        out[0, i] = (fname, np.array([[label]], dtype=np.uint8))
    return out


def test_stanford_cars_from_the_devkit(tmp_path):
    base = tmp_path / "stanford_cars"
    (base / "devkit").mkdir(parents=True)
    names = np.array(["AM General Hummer SUV 2000", "Acura RL Sedan 2012"], dtype=object)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": names.reshape(1, -1)})
    train = [(f"{i:05d}.jpg", 1 + i % 2) for i in range(10)]
    test = [(f"{i:05d}.jpg", 1 + i % 2) for i in range(4)]
    for fname, label in train:
        img(base / "cars_train" / fname, label)
    for fname, label in test:
        img(base / "cars_test" / fname, label)
    savemat(base / "devkit" / "cars_train_annos.mat", {"annotations": _struct(train)})
    savemat(base / "cars_test_annos_withlabels.mat", {"annotations": _struct(test)})
    assert dataset_status("stanford_cars", tmp_path) == "present"
    data = load_dataset("stanford_cars", root=tmp_path)
    assert data.classnames == ["2000 AM General Hummer SUV", "2012 Acura RL Sedan"]
    assert sizes(data) == (8, 2, 4)
    assert data.templates == ["a photo of a {}."]
    assert {it.path.parent.name for it in data.test} == {"cars_test"}
    labels_ok(data)


def test_oxford_flowers_from_imagelabels_mat(tmp_path):
    base = tmp_path / "oxford_flowers"
    labels = [1] * 10 + [2] * 10 + [1]
    for i, label in enumerate(labels, 1):
        img(base / "jpg" / f"image_{i:05d}.jpg", label)
    savemat(base / "imagelabels.mat", {"labels": np.array([labels])})
    (base / "cat_to_name.json").write_text(json.dumps({"1": "pink primrose", "2": "globe thistle"}))
    data = load_dataset("oxford_flowers", root=tmp_path)
    assert data.classnames == ["pink primrose", "globe thistle"]
    assert sizes(data) == (11, 4, 6)
    assert sum(it.label == 0 for it in data.train + data.val + data.test) == 11
    labels_ok(data)


def test_fgvc_aircraft_official_lists(tmp_path):
    base = tmp_path / "fgvc_aircraft"
    variants = ["707-320", "Boeing 717", "A300B4"]
    (base).mkdir()
    (base / "variants.txt").write_text("\n".join(variants) + "\n")
    n = 0
    for split, per_class in (("train", 3), ("val", 2), ("test", 2)):
        rows = []
        for v in variants:
            for _ in range(per_class):
                n += 1
                img(base / "images" / f"{1000000 + n}.jpg")
                rows.append(f"{1000000 + n} {v}")
        (base / f"images_variant_{split}.txt").write_text("\n".join(rows))
    assert dataset_status("fgvc_aircraft", tmp_path) == "present"
    data = load_dataset("fgvc_aircraft", root=tmp_path)
    assert data.classnames == variants
    assert sizes(data) == (9, 6, 6)
    assert data.templates == ["a photo of a {}, a type of aircraft."]
    assert [it.label for it in data.val] == [0, 0, 1, 1, 2, 2]
    labels_ok(data)
    (base / "images_variant_test.txt").write_text("1000001 Concorde\n")
    with pytest.raises(DatasetError, match="Concorde"):
        load_dataset("fgvc_aircraft", root=tmp_path)


def test_sun397_from_the_first_partition(tmp_path):
    base = tmp_path / "sun397"
    categories = ["/a/abbey", "/c/church/indoor", "/f/forest_path"]
    base.mkdir()
    (base / "ClassName.txt").write_text("\n".join(categories))
    for fname, n in (("Training_01.txt", 5), ("Testing_01.txt", 2)):
        rows = [f"{c}/sun_{fname[:4]}{i}.jpg" for c in categories for i in range(n)]
        for r in rows:
            img(base / "SUN397" / r.lstrip("/"))
        (base / fname).write_text("\n".join(rows))
    data = load_dataset("sun397", root=tmp_path)
    assert data.classnames == ["abbey", "indoor church", "forest path"]
    assert sizes(data) == (12, 3, 6)
    labels_ok(data)


def test_ucf101_from_the_official_lists(tmp_path):
    base = tmp_path / "ucf101"
    (base / "ucfTrainTestlist").mkdir(parents=True)
    (base / "ucfTrainTestlist" / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 YoYo\n")
    train, test = [], []
    for c, (action, folder) in enumerate([("ApplyEyeMakeup", "Apply_Eye_Makeup"), ("YoYo", "Yo_Yo")], 1):
        for g in range(6):
            video = f"{action}/v_{action}_g{g:02d}_c01.avi"
            img(base / "UCF-101-midframes" / folder / f"v_{action}_g{g:02d}_c01.jpg")
            (train if g < 5 else test).append(f"{video} {c}" if g < 5 else video)
    (base / "ucfTrainTestlist" / "trainlist01.txt").write_text("\n".join(train))
    (base / "ucfTrainTestlist" / "testlist01.txt").write_text("\n".join(test))
    data = load_dataset("ucf101", root=tmp_path)
    assert data.classnames == ["Apply Eye Makeup", "Yo Yo"]
    assert sizes(data) == (8, 2, 2)
    labels_ok(data)


# ----------------------------------------------------------------------------- ImageNet family


def write_classnames(path: Path, wnids: list[str], names: dict[str, str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{w} {(names or {}).get(w, 'thing ' + w)}\n" for w in wnids))


def test_imagenet_holds_out_val_from_train_and_keeps_duplicate_names(tmp_path):
    wnids = ["n00000001", "n00000002", "n00000003"]
    write_classnames(tmp_path / "imagenet" / "classnames.txt", wnids,
                     {"n00000001": "missile", "n00000002": "great_white shark", "n00000003": "missile"})
    for c, w in enumerate(wnids):
        for i in range(10):
            img(tmp_path / "imagenet" / "images" / "train" / w / f"{w}_{i}.JPEG", c)
        for i in range(3):
            img(tmp_path / "imagenet" / "images" / "val" / w / f"val_{c}_{i}.JPEG", c)
    assert dataset_status("imagenet", tmp_path) == "present"
    data = load_dataset("imagenet", root=tmp_path)
    assert data.classnames == ["missile", "great white shark", "missile"]
    assert sizes(data) == (24, 6, 9)
    assert {it.label for it in data.test if it.path.parent.name == "n00000003"} == {2}
    assert all("/val/" in it.path.as_posix() for it in data.test)
    assert data.templates == ["a photo of a {}."]
    labels_ok(data)
    img(tmp_path / "imagenet" / "images" / "train" / "n99999999" / "x.JPEG")
    assert dataset_status("imagenet", tmp_path).startswith("incomplete")
    with pytest.raises(DatasetError, match="n99999999"):
        load_dataset("imagenet", root=tmp_path)


def test_shipped_wnid_lists_have_200_imagenet_wnids():
    for name in ("imagenet_a", "imagenet_r"):
        wnids = subset_wnids(name)
        assert len(wnids) == 200 == len(set(wnids))
        assert all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in wnids)
    assert "n01498041" in subset_wnids("imagenet_a")  # stingray
    assert "n01443537" in subset_wnids("imagenet_r")  # goldfish


@pytest.fixture
def imagenet_names(tmp_path) -> list[str]:
    """A stand-in ImageNet classnames.txt holding every A/R wnid plus two others, sorted."""
    wnids = sorted(set(subset_wnids("imagenet_a")) | set(subset_wnids("imagenet_r"))
                   | {"n00000001", "n15075141"})
    write_classnames(tmp_path / "imagenet" / "classnames.txt", wnids)
    return wnids


@pytest.mark.parametrize("name, folder", [("imagenet_a", "imagenet-adversarial/imagenet-a"),
                                          ("imagenet_r", "imagenet-rendition/imagenet-r")])
def test_imagenet_a_r_map_200_classes_onto_imagenet(tmp_path, imagenet_names, name, folder):
    subset = subset_wnids(name)
    image_dir = tmp_path / folder
    chosen = [subset[0], subset[57], subset[-1]]
    for w in chosen:
        for i in range(2):
            img(image_dir / w / f"{i}.jpg")
    (image_dir / "README.txt").write_text("not a class")
    assert dataset_status(name, tmp_path).startswith("incomplete: 3 of 200")
    data = load_dataset(name, root=tmp_path)
    assert data.num_classes == 200 and sizes(data) == (0, 0, 6)
    assert data.classnames[57] == f"thing {subset[57]}"
    assert sorted({it.label for it in data.test}) == [0, 57, 199]
    mapping = data.info["imagenet_labels"]
    assert [imagenet_names[mapping[i]] for i in (0, 57, 199)] == chosen
    assert mapping == sorted(mapping)
    # so a 1000-way ImageNet head can be scored on these 200 classes (engine.runner.evaluate_run)
    assert labels_within(data, [f"thing {w}" for w in imagenet_names]) == mapping
    assert len(data.info["missing_classes"]) == 197
    img(image_dir / "n00000001" / "0.jpg")  # an ImageNet class outside the subset
    with pytest.raises(DatasetError, match="n00000001"):
        load_dataset(name, root=tmp_path)


def test_imagenet_a_complete_and_own_classnames(tmp_path):
    subset = subset_wnids("imagenet_a")
    base = tmp_path / "imagenet-adversarial"
    write_classnames(base / "classnames.txt", ["n00000001", *subset], {subset[3]: "my_name"})
    for w in subset:
        img(base / "imagenet-a" / w / "0.jpg")
    assert dataset_status("imagenet_a", tmp_path) == "present"
    data = load_dataset("imagenet_a", root=tmp_path)
    assert data.classnames[3] == "my name" and len(data.test) == 200
    assert data.info["imagenet_labels"][:2] == [1, 2]


def test_imagenet_a_needs_names_for_every_class(tmp_path):
    write_classnames(tmp_path / "imagenet" / "classnames.txt", ["n00000001"])
    img(tmp_path / "imagenet-adversarial" / "imagenet-a" / subset_wnids("imagenet_a")[0] / "0.jpg")
    with pytest.raises(DatasetError, match="must list all ImageNet classes"):
        load_dataset("imagenet_a", root=tmp_path)
    (tmp_path / "imagenet" / "classnames.txt").unlink()
    with pytest.raises(DatasetError, match="classnames.txt"):
        load_dataset("imagenet_a", root=tmp_path)


def test_imagenet_v2_and_sketch(tmp_path):
    wnids = ["n00000001", "n00000002", "n00000003"]
    write_classnames(tmp_path / "imagenet" / "classnames.txt", wnids)
    v2 = tmp_path / "imagenetv2" / "imagenetv2-matched-frequency-format-val"
    for label in range(3):
        for i in range(2):
            img(v2 / str(label) / f"{i}.jpeg")
    assert dataset_status("imagenet_v2", tmp_path) == "present"
    data = load_dataset("imagenet_v2", root=tmp_path)
    assert data.classnames == [f"thing {w}" for w in wnids]
    assert sizes(data) == (0, 0, 6) and [it.label for it in data.test] == [0, 0, 1, 1, 2, 2]
    img(v2 / "7" / "0.jpeg")
    with pytest.raises(DatasetError, match="not ImageNet labels"):
        load_dataset("imagenet_v2", root=tmp_path)

    for c, w in enumerate(wnids[:2]):
        img(tmp_path / "imagenet-sketch" / "images" / w / "0.JPEG", c)
    assert dataset_status("imagenet_sketch", tmp_path).startswith("incomplete: 2 of 3")
    sketch = load_dataset("imagenet_sketch", root=tmp_path)
    assert sketch.num_classes == 3 and [it.label for it in sketch.test] == [0, 1]
