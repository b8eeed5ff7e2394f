"""The `vlprompt` command, called in-process: output, JSON, exit codes, bad input."""

from __future__ import annotations

import json
import re

import pytest

from vlprompt.cli.main import main
from vlprompt.utils.runtime import Runtime


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


#: The subcommands, in `vlprompt --help` order (written out: a subcommand lost from the parser fails).
SUBCOMMANDS = ["demo", "zeroshot", "train", "eval", "predict", "export", "interpret", "list", "pretrain-tiny",
               "run", "report", "results", "analyze", "replicate", "ddp-train"]
NESTED = {"run": ["fewshot", "base2new", "domain-generalization", "cross-dataset"],
          "results": ["merge", "export", "failures"], "analyze": ["variance", "words", "projection"]}
#: Options the README and docs/ use, per subcommand (each must exist and be shown by --help).
DOCUMENTED = {
    "demo": ["--out", "--backbone", "--datasets", "--methods", "--shots", "--seeds", "--epochs", "--json"],
    "zeroshot": ["--backbone", "--dataset", "--data", "--root", "--split", "--template", "--ensemble", "--json",
                 "--quiet", "--out", "--skip-bad-images"],
    "train": ["--method", "--backbone", "--dataset", "--data", "--root", "--shots", "--seed", "--out", "--epochs",
              "--set", "--resume", "--json", "--quiet", "--protocol"],
    "eval": ["--run", "--prompt", "--backbone", "--dataset", "--json", "--quiet"],
    "predict": ["--run", "--prompt", "--top-k", "--json"],
    "export": ["--run", "--prompt", "--out", "--json"],
    "interpret": ["--run", "--prompt", "--top", "--json"],
    "list": ["--root", "--options"],
    "run fewshot": ["--methods", "--datasets", "--shots", "--seeds", "--epochs", "--backbone", "--root", "--db",
                    "--set", "--shard", "--preset", "--dry-run"],
    "report": ["--db", "--out", "--no-plots"],
    "results merge": ["--into"],
    "ddp-train": ["--method", "--dataset", "--root", "--shots", "--out", "--device", "--resume"],
}


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def _subparsers(parser):
    import argparse

    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0] if actions else None


def test_help_lists_subcommands(capsys):
    from vlprompt.cli.main import build_parser

    assert list(_subparsers(build_parser()).choices) == SUBCOMMANDS
    out = _help(capsys)
    listed = [m[1] for m in (re.match(r"^    (\S+)", line) for line in out.splitlines()) if m]
    assert listed == SUBCOMMANDS  # each at the start of its own line of the help
    # no subcommand: the same help, exit code 0
    assert main([]) == 0 and capsys.readouterr().out == out
    for command, nested in NESTED.items():
        assert list(_subparsers(build_parser()._subparsers._group_actions[0].choices[command]).choices) == nested


def _every_command():
    from vlprompt.cli.main import build_parser

    def walk(parser, path):
        yield path, parser
        sub = _subparsers(parser)
        for name, child in (sub.choices.items() if sub else ()):
            yield from walk(child, [*path, name])

    return [(path, parser) for path, parser in walk(build_parser(), []) if path]


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in _every_command()])
def test_every_subcommand_help_shows_each_of_its_options(capsys, path):
    """`vlprompt <cmd> --help` shows every option and positional of the parser, and the
    parser has the options the docs use."""
    import argparse

    parser = dict((" ".join(p), parser) for p, parser in _every_command())[path]
    out = _help(capsys, *path.split())
    assert out.startswith(f"usage: vlprompt {path}")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            assert set(action.choices) == set(NESTED[path])
            assert all(name in out for name in action.choices)
            continue
        assert action.help != argparse.SUPPRESS, f"{path} {action.dest}: hidden from --help"
        for name in action.option_strings or [action.metavar or action.dest]:
            assert name in out, f"vlprompt {path} --help does not show {name}"
    options = {o for action in parser._actions for o in action.option_strings}
    assert set(DOCUMENTED.get(path, [])) <= options


def _documented_commands():
    """The `vlprompt ...` command lines of the README's and docs/'s code blocks (fenced or
    indented; `\\` continuations joined, leading `VAR=value` settings and `[...]` brackets dropped)."""
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        fenced = False
        for line in doc.read_text().replace("\\\n", " ").splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
                continue
            if not (fenced or line.startswith("    ")):
                continue
            command = re.match(r"^\s*(?:\$ )?(?:[A-Z_]+=\S* )*vlprompt (.*)$", line)
            if command:
                found.append((doc.name, shlex.split(re.sub(r"\[([^\]]*)\]", r"\1", command[1]), comments=True)))
    return found


def test_documented_commands_parse():
    """Every command the README and docs/ show is accepted by the parser as written."""
    from vlprompt.cli.main import build_parser

    commands = _documented_commands()
    assert len(commands) >= 20 and {doc for doc, _ in commands} >= {"README.md", "protocols.md"}
    assert {argv[0] for _, argv in commands} >= {"demo", "zeroshot", "train", "eval", "predict", "run", "report"}
    for doc, argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"{doc}: `vlprompt {' '.join(argv)}` does not parse")


def test_zeroshot_json_last_line(capsys, model_configs, image_folder, tmp_path):
    out_file = tmp_path / "result.json"
    code, out, err = run(capsys, "zeroshot", "--backbone", f"openclip:{model_configs['vit']}",
                         "--data", str(image_folder), "--split", "all", "--json", "--quiet",
                         "--out", str(out_file))
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert {"top1", "top5", "n_images", "n_classes"} <= set(result)
    assert result["n_images"] == 12 and result["n_classes"] == 3
    # the number is the library's, for the backbone and folder given on the command line
    from vlprompt.api import zeroshot_evaluate

    expected = zeroshot_evaluate(f"openclip:{model_configs['vit']}", f"folder:{image_folder}", split="all", runtime=Runtime(progress=False))
    assert result["top1"] == pytest.approx(expected["top1"]) and result["top5"] == pytest.approx(expected["top5"])
    assert json.loads(out_file.read_text())["top1"] == result["top1"]


def test_zeroshot_ensemble_and_template(capsys, model_configs, image_folder):
    for extra in (["--ensemble", "select7"], ["--template", "a {} texture."]):
        code, out, err = run(capsys, "zeroshot", "--backbone", f"openclip:{model_configs['vit']}",
                             "--data", str(image_folder), "--json", "--quiet", *extra)
        assert code == 0, err
        n = len(json.loads(out.strip().splitlines()[-1])["templates"])
        assert n == (7 if extra[0] == "--ensemble" else 1)


def _assert_one_line_error(code, out, err, needle):
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_missing_path(capsys, tmp_path, model_configs):
    code, out, err = run(capsys, "zeroshot", "--backbone", f"openclip:{model_configs['vit']}",
                         "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r.json"))
    _assert_one_line_error(code, out, err, "does not exist")
    assert not (tmp_path / "r.json").exists()


def test_unreadable_image(capsys, image_folder, model_configs, tmp_path):
    (image_folder / "cat" / "broken.png").write_bytes(b"not an image at all")
    code, out, err = run(capsys, "zeroshot", "--backbone", f"openclip:{model_configs['vit']}",
                         "--data", str(image_folder), "--split", "all", "--quiet",
                         "--out", str(tmp_path / "r.json"))
    _assert_one_line_error(code, out, err, "broken.png")
    assert not (tmp_path / "r.json").exists()


def test_unknown_backbone(capsys, image_folder):
    code, out, err = run(capsys, "zeroshot", "--backbone", "openclip:NoSuchNet", "--data", str(image_folder))
    _assert_one_line_error(code, out, err, "unknown open_clip architecture")


def test_class_folder_without_images(capsys, image_folder, model_configs):
    (image_folder / "empty_class").mkdir()
    code, out, err = run(capsys, "zeroshot", "--backbone", f"openclip:{model_configs['vit']}",
                         "--data", str(image_folder))
    _assert_one_line_error(code, out, err, "empty_class")


def test_bad_template(capsys, image_folder, model_configs):
    code, out, err = run(capsys, "zeroshot", "--backbone", f"openclip:{model_configs['vit']}",
                         "--data", str(image_folder), "--template", "no slot")
    _assert_one_line_error(code, out, err, "{}")


def test_list(capsys):
    code, out, _ = run(capsys, "list", "backbones")
    assert code == 0 and "openclip:ViT-B-16@openai" in out and "tiny" in out
    code, out, _ = run(capsys, "list", "templates")
    assert code == 0 and "imagenet80" in out and "select7" in out


def test_strict_shots_fails_on_a_short_class(capsys, image_folder, model_configs, tmp_path):
    # 4 images per class cut 50/20/30 leaves 2 for training: 4 shots cannot be met
    code, out, err = run(capsys, "train", "--method", "linear-probe", "--backbone",
                         f"openclip:{model_configs['vit']}", "--data", str(image_folder), "--shots", "4",
                         "--strict-shots", "--out", str(tmp_path / "run"), "--quiet")
    _assert_one_line_error(code, out, err, "4")
    assert not (tmp_path / "run").exists()


def test_every_option_of_every_subcommand_has_help():
    import argparse

    from vlprompt.cli.main import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        if "%%" in parser.format_help():  # a description is printed as written, not %-formatted
            missing.append(f"{path}: '%%' in its help")

    walk(build_parser(), "vlprompt")
    assert not missing, missing


def test_verbose_is_accepted_after_the_command_too(capsys):
    from vlprompt.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["list", "methods", "-v"]).verbose is True
    assert parser.parse_args(["-v", "list", "methods"]).verbose is True
    assert parser.parse_args(["list", "methods"]).verbose is False
    assert parser.parse_args(["results", "failures", "--db", "x.db", "--verbose"]).verbose is True
