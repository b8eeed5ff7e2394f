"""`--config FILE` (JSON or YAML, the keys of --set) for `train` and `run`, with --set on top;
the Runtime options shared by every computing command."""

from __future__ import annotations

import json

import pytest

from vlprompt.cli.main import build_parser, main
from vlprompt.config import config_to_overrides, read_config_file
from vlprompt.errors import ConfigError


def _train(capsys, model_configs, image_folder, out, *extra):
    code = main(["train", "--method", "coop", "--backbone", f"openclip:{model_configs['vit']}", "--data",
                 str(image_folder), "--shots", "1", "--out", str(out), "--quiet", *map(str, extra)])
    return code, capsys.readouterr()


def test_train_takes_a_json_or_yaml_config_and_set_wins(capsys, model_configs, image_folder, tmp_path):
    js = tmp_path / "run.json5.json"
    js.write_text(json.dumps({"method": {"n_ctx": 3}, "train": {"epochs": 1, "lr": 0.01, "views": 1}}))
    code, (_, err) = _train(capsys, model_configs, image_folder, tmp_path / "a", "--config", js,
                            "--set", "train.lr=0.02")
    assert code == 0, err
    config = json.loads((tmp_path / "a" / "run.json").read_text())["config"]
    assert config["method_config"]["n_ctx"] == 3 and config["train"]["epochs"] == 1
    assert config["train"]["lr"] == 0.02  # --set applies on top of the file
    yml = tmp_path / "run.yaml"
    yml.write_text("method:\n  n_ctx: 2\ntrain:\n  epochs: 1\n  views: 1\n")
    code, (_, err) = _train(capsys, model_configs, image_folder, tmp_path / "b", "--config", yml)
    assert code == 0, err
    config = json.loads((tmp_path / "b" / "run.json").read_text())["config"]
    assert config["method_config"]["n_ctx"] == 2 and config["train"]["lr"] == 0.002  # the preset's


@pytest.mark.parametrize("text, name, words", [
    ("{\"optim\": {\"lr\": 1}}", "x.json", "must hold the sections method, train and/or data"),
    ("{\"train\": {\"lr\": ", "x.json", "not valid JSON"),
    ("train: [1, 2", "x.yaml", "not valid YAML"),
    ("{\"train\": {\"nope\": 1}}", "x.json", "unknown option"),
    ("{\"train\": {\"epochs\": \"many\"}}", "x.json", "train.epochs"),
])
def test_bad_config_files_are_one_line_errors(capsys, model_configs, image_folder, tmp_path, text, name, words):
    path = tmp_path / name
    path.write_text(text)
    code, (out, err) = _train(capsys, model_configs, image_folder, tmp_path / "run", "--config", path)
    lines = [line for line in err.splitlines() if line.startswith("vlprompt: error")]
    assert code == 2 and len(lines) == 1 and words in lines[0], err
    assert not (tmp_path / "run").exists()  # a run that never started leaves no folder
    code, (_, err) = _train(capsys, model_configs, image_folder, tmp_path / "run", "--config", tmp_path / "missing.json")
    assert code == 2 and "cannot read it" in err


def test_run_takes_a_config_for_every_run(capsys, model_configs, image_folder, tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("train:\n  epochs: 1\n  views: 1\nmethod:\n  n_ctx: 2\n")
    code = main(["run", "fewshot", "--methods", "coop", "--backbone", f"openclip:{model_configs['vit']}",
                 "--datasets", f"folder:{image_folder}", "--shots", "1", "--seeds", "1", "--db",
                 str(tmp_path / "r.db"), "--config", str(path), "--set", "train.lr=0.03", "--quiet", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    from vlprompt.results.store import load_records

    record = load_records([tmp_path / "r.db"])[0]
    assert record["config"]["train"]["epochs"] == 1 and record["config"]["train"]["lr"] == 0.03
    assert record["config"]["method_config"]["n_ctx"] == 2


def test_a_config_file_holds_the_protocol_and_the_data_section(capsys, model_configs, image_folder, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("protocol: base2new\ntrain:\n  epochs: 1\n  views: 1\ndata:\n  skip_bad_images: true\n")
    code, (_, err) = _train(capsys, model_configs, image_folder, tmp_path / "a", "--config", path)
    assert code == 0, err
    config = json.loads((tmp_path / "a" / "run.json").read_text())["config"]
    assert config["preset"]["protocol"] == "base2new" and config["data"] == {"strict_shots": False,
                                                                            "skip_bad_images": True,
                                                                            "validation": "fewshot"}
    # the command line's flags apply on top of the file
    code, (_, err) = _train(capsys, model_configs, image_folder, tmp_path / "b", "--config", path,
                            "--protocol", "fewshot", "--strict-shots")
    assert code == 0, err
    config = json.loads((tmp_path / "b" / "run.json").read_text())["config"]
    assert config["preset"]["protocol"] == "fewshot" and config["data"]["strict_shots"] is True
    path.write_text("protocol: [base2new]\n")
    code, (_, err) = _train(capsys, model_configs, image_folder, tmp_path / "c", "--config", path)
    assert code == 2 and "protocol must be a name" in err
    code, (_, err) = _train(capsys, model_configs, image_folder, tmp_path / "c", "--set", "data.nope=1")
    assert code == 2 and "unknown option data.nope" in err


def test_config_file_helpers():
    assert config_to_overrides({"train": {"lr": 0.1, "augment": False}, "method": {"ctx_init": None},
                                "protocol": "fewshot"}) == \
        ["train.lr=0.1", "train.augment=false", "method.ctx_init=none"]
    with pytest.raises(ConfigError, match="cannot read"):
        read_config_file("/nonexistent/config.json")


def test_every_computing_command_takes_the_shared_runtime_options():
    parser = build_parser()
    for argv in (["train", "--method", "coop", "--dataset", "x", "--shots", "1", "--out", "o"],
                 ["zeroshot", "--dataset", "x"], ["eval", "--run", "r"], ["run", "fewshot", "--methods", "coop"],
                 ["ddp-train", "--method", "coop", "--dataset", "x", "--shots", "1", "--out", "o"],
                 ["demo"], ["replicate"]):
        args = parser.parse_args([*argv, "--device", "cpu", "--workers", "2", "--cache-dir", "feat", "--quiet"])
        from vlprompt.cli.common import runtime_from_args

        rt = runtime_from_args(args)
        assert (rt.device, rt.workers, str(rt.cache_dir), rt.progress) == ("cpu", 2, "feat", False), argv


def test_ddp_train_takes_every_option_of_train():
    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices

    def options(name: str) -> set[str]:
        return {o for a in sub[name]._actions for o in a.option_strings}

    assert options("train") <= options("ddp-train")
    assert {"--data", "--workers", "--write-split", "--strict-shots", "--skip-bad-images", "--config",
            "--classnames", "--protocol"} <= options("ddp-train")
