"""Bad configuration through the CLI: one clear line, exit code 2, before any training starts.

Unknown `--set` keys, unparsable values and unknown methods are covered in test_engine_cli,
shots larger than a class with --strict-shots in test_cli; this file adds the rest of the list.
"""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file, save_file

from conftest import OPENCLIP_TEST_CONFIGS, make_image_folder
from protocol_support import fixed_backbone
from reliability_support import cli, one_line_error, train_argv


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, model_configs) -> str:
    return fixed_backbone(tmp_path_factory.mktemp("bb"), model_configs["vit"])


@pytest.fixture(scope="module")
def other_backbone(backbone, model_configs, tmp_path_factory) -> str:
    """The same architecture with other weights."""
    state = load_file(backbone.rsplit("@", 1)[1])
    state["text_projection"] = state["text_projection"] + 0.01
    path = tmp_path_factory.mktemp("other") / "other.safetensors"
    save_file(state, str(path))
    return f"openclip:{model_configs['vit']}@{path}"


@pytest.mark.parametrize("extra, needle", [
    (["--set", "train.lr=nan"], "train.lr"),
    (["--set", "train.lr=inf"], "train.lr"),
    (["--set", "train.lr=-1"], "train.lr must be positive"),
    (["--set", "train.epochs=2.5"], "train.epochs"),
    (["--set", "train.optimizer=rmsprop"], "train.optimizer"),
    (["--set", "train.augment=maybe"], "train.augment"),
    (["--set", "model.n_ctx=2"], "unknown section"),
    (["--set", "train.batch_size=0"], "train.batch_size must be at least 1"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--shots", "0"], "positive"),
    (["--set", "method.n_ctx=100"], "exceeds the text context of 77 tokens"),
    (["--set", "train.precision=fp16"], "needs a GPU"),
])
def test_bad_values_are_one_line_before_training(capsys, backbone, image_folder, tmp_path, extra, needle):
    out = tmp_path / "run"
    line = one_line_error(*cli(capsys, *train_argv(backbone, image_folder, out, "--epochs", 1), *extra)[::2])
    assert needle in line
    assert not (out / "checkpoint").exists() and not (out / "weights.safetensors").exists()


@pytest.mark.parametrize("method", ["vpt", "maple", "upt"])
def test_vit_only_method_on_a_resnet(capsys, model_configs, image_folder, tmp_path, method):
    line = one_line_error(*cli(capsys, "train", "--method", method, "--backbone", f"openclip:{model_configs['rn']}",
                               "--data", image_folder, "--shots", 1, "--out", tmp_path / "run", "--quiet")[::2])
    assert f"{method}' needs a ViT image tower" in line


def test_resume_with_another_backbone_or_class_set(capsys, backbone, other_backbone, image_folder, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli(capsys, *train_argv(backbone, image_folder, run, "--epochs", 1))
    assert code == 0, err
    other = other_backbone
    line = one_line_error(*cli(capsys, *train_argv(other, image_folder, run, "--epochs", 1, "--resume"))[::2])
    assert "different configuration (backbone, backbone_checksum differ)" in line
    make_image_folder(image_folder, {"zebra": 4}, seed=7)  # the class set changed under the run
    line = one_line_error(*cli(capsys, *train_argv(backbone, image_folder, run, "--epochs", 1, "--resume"))[::2])
    assert "(classnames differ)" in line
    line = one_line_error(*cli(capsys, *train_argv(backbone, image_folder, run, "--epochs", 1))[::2])
    assert "already holds a run" in line


def test_saved_prompt_on_an_incompatible_backbone_or_class_set(capsys, backbone, other_backbone, image_folder,
                                                               tmp_path):
    run = tmp_path / "run"
    code, _, err = cli(capsys, *train_argv(backbone, image_folder, run, "--epochs", 1,
                                           "--set", "method.class_specific=true"))
    assert code == 0, err
    narrow = json.loads(json.dumps(OPENCLIP_TEST_CONFIGS["vit"]))
    narrow["text_cfg"]["width"] = 32  # prompts live in the text tower's width
    cfg = tmp_path / "narrow.json"
    cfg.write_text(json.dumps(narrow))
    line = one_line_error(*cli(capsys, "eval", "--run", run, "--backbone", f"openclip:{cfg}", "--quiet")[::2])
    assert "does not fit coop on this backbone: saved ctx has shape (3, 2, 64)" in line and "trained with" in line
    code, _, err = cli(capsys, "eval", "--run", run, "--backbone", other_backbone, "--quiet")
    assert code == 0 and err.startswith("vlprompt: warning:") and "was trained with backbone" in err, err
    two = make_image_folder(tmp_path / "two", {"ant": 3, "bee": 3})
    line = one_line_error(*cli(capsys, "eval", "--run", run, "--dataset", f"folder:{two}", "--quiet")[::2])
    assert "learns one weight per class" in line
