"""`vlprompt train/eval/predict/export/interpret/list methods`, called in-process."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from vlprompt.cli.main import main
from vlprompt.utils.runtime import Runtime


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def fixed_backbone(model_configs, tiny_vit, tmp_path_factory) -> str:
    """A spec that loads the test ViT's weights from a file: the checkpoint path users take."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("weights") / "tiny_vit.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_vit.model.state_dict().items()}, str(path))
    return f"openclip:{model_configs['vit']}@{path}"


@pytest.fixture
def trained(capsys, fixed_backbone, image_folder, tmp_path):
    backbone = fixed_backbone
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "--method", "coop", "--backbone", backbone, "--data", image_folder,
                            "--shots", 2, "--seed", 1, "--out", out, "--epochs", 2, "--set", "method.n_ctx=4",
                            "--set", "train.batch_size=2", "--set", "train.views=2", "--json", "--quiet")
    assert code == 0, err
    return backbone, out, json.loads(stdout.strip().splitlines()[-1])


def test_train_json_and_saved_files(trained, image_folder, tmp_path):
    backbone, out, result = trained
    assert result["run_dir"] == str(out)
    # the command's run is the library's run with the same options: the same test accuracy
    from vlprompt.api import train

    same = train("coop", backbone, f"folder:{image_folder}", shots=2, seed=1, out=tmp_path / "api",
                 overrides=["train.epochs=2", "method.n_ctx=4", "train.batch_size=2", "train.views=2"], runtime=Runtime(progress=False))
    assert result["top1"] == pytest.approx(same["top1"]) and result["n_test"] == same["n_test"]
    assert torch.equal(load_file(str(out / "weights.safetensors"))["ctx"],
                       load_file(same["weights"])["ctx"])  # the same training, step for step
    weights = load_file(str(out / "weights.safetensors"))
    assert list(weights) == ["ctx"] and weights["ctx"].shape == (4, 64)
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "coop" and config["config"]["n_ctx"] == 4
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["train"]["epochs"] == 2 and record["config"]["seed"] == 1
    assert {"torch", "open_clip", "vlprompt"} <= set(record["environment"])
    assert record["config"]["backbone_checksum"] and record["metrics"]["test"]["top1"] == result["top1"]
    assert {"features", "train", "test", "total"} <= set(record["seconds"])


def test_eval_run_recomputes_test_accuracy(capsys, trained, image_folder):
    backbone, out, result = trained
    code, stdout, err = run(capsys, "eval", "--run", out, "--json", "--quiet")
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["top1"] == pytest.approx(result["top1"])
    code, stdout, err = run(capsys, "eval", "--prompt", out / "weights.safetensors", "--backbone", backbone,
                            "--dataset", f"folder:{image_folder}", "--json", "--quiet")
    assert code == 0, err
    assert "top1" in json.loads(stdout.strip().splitlines()[-1])


def test_predict_export_interpret(capsys, trained, image_folder, tmp_path):
    _, out, _ = trained
    code, stdout, err = run(capsys, "predict", image_folder / "cat" / "0.png", image_folder / "dog",
                            "--run", out, "--top-k", 2, "--json")
    assert code == 0, err
    preds = json.loads(stdout.strip().splitlines()[-1])["predictions"]
    assert len(preds) == 1 + 4 and all(len(p["top"]) == 2 for p in preds)
    assert all(abs(sum(t["prob"] for t in p["top"])) <= 1.0 + 1e-6 for p in preds)

    code, stdout, err = run(capsys, "export", "--run", out, "--out", tmp_path / "clf.safetensors", "--json")
    assert code == 0, err
    exported = load_file(str(tmp_path / "clf.safetensors"))
    assert exported["weight"].shape == (3, 32)
    assert torch.allclose(exported["weight"].norm(dim=-1), torch.ones(3), atol=1e-5)

    code, stdout, err = run(capsys, "interpret", "--run", out, "--top", 2, "--json")
    assert code == 0, err
    nearest = json.loads(stdout.strip().splitlines()[-1])["nearest"]
    assert len(nearest) == 4 and all(len(row) == 2 for row in nearest)


def test_list_methods(capsys):
    """One line per registered method, in the registry's order, saying what it trains and how it
    fits; with --options, under each method, every field of its Config."""
    import dataclasses
    import re

    from vlprompt.methods.registry import get_method_class, list_methods

    code, stdout, _ = run(capsys, "list", "methods")
    assert code == 0
    lines = stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == list_methods()
    for line, name in zip(lines, list_methods(), strict=True):
        spec = get_method_class(name).SPEC
        assert f"trains: {spec.trains}" in line and f"fit: {spec.fit}" in line
    code, stdout, _ = run(capsys, "list", "methods", "--options")
    assert code == 0
    blocks = re.split(r"^(?=\S)", stdout, flags=re.M)
    methods = {b.split("\t")[0]: b for b in blocks if b.strip() and "\t" in b.splitlines()[0]}
    assert list(methods) == list_methods()
    for name, block in methods.items():
        shown = re.findall(r"^\s+method\.(\w+):", block, flags=re.M)
        assert shown == [f.name for f in dataclasses.fields(get_method_class(name).Config)], name
    from vlprompt.engine.options import TrainConfig

    shown = re.findall(r"^\s+train\.(\w+):", stdout, flags=re.M)  # the training options, once
    assert shown == [f.name for f in dataclasses.fields(TrainConfig)]
    assert re.search(r"^\s+\[.*\] .*train\.epochs=200", methods["coop"], flags=re.M)  # coop's preset rules


@pytest.mark.parametrize("extra,needle", [
    (["--set", "method.nctx=4"], "unknown option method.nctx"),
    (["--set", "method.n_ctx=four"], "method.n_ctx"),
    (["--set", "n_ctx=4"], "section.key=value"),
    (["--method", "nope"], "unknown method"),
])
def test_bad_options_are_one_line_errors(capsys, model_configs, image_folder, tmp_path, extra, needle):
    argv = ["train", "--method", "coop", "--backbone", f"openclip:{model_configs['vit']}", "--data", image_folder,
            "--shots", 1, "--out", tmp_path / "r", "--quiet", *extra]
    code, _, err = run(capsys, *argv)
    lines = [line for line in err.strip().splitlines() if line]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err


def test_export_refuses_image_conditional_method(capsys, model_configs, image_folder, tmp_path):
    code, _, err = run(capsys, "train", "--method", "cocoop", "--backbone", f"openclip:{model_configs['vit']}",
                       "--data", image_folder, "--shots", 1, "--out", tmp_path / "c", "--epochs", 1, "--quiet")
    assert code == 0, err
    code, _, err = run(capsys, "export", "--run", tmp_path / "c", "--out", tmp_path / "x.safetensors")
    assert code == 2 and "cannot be exported" in err


def test_exported_classifier_reproduces_logits_with_open_clip_alone(trained, tiny_vit, tmp_path):
    """The loader of docs/export.md: open_clip image features + the exported weights only."""
    from vlprompt.engine.inference import export_classifier
    from vlprompt.engine.runs import load_method

    _, out, _ = trained
    method = load_method(out, backbone=tiny_vit)
    export_classifier(method, tmp_path / "clf.safetensors")
    exported = load_file(str(tmp_path / "clf.safetensors"))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        f = tiny_vit.model.encode_image(images)
        f = f / f.norm(dim=-1, keepdim=True)
        assert torch.allclose(exported["logit_scale"] * f @ exported["weight"].T, method(images), atol=1e-4)
