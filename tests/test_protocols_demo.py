"""`vlprompt demo` end to end on a tiny model with small settings, then a rerun that reuses it."""

from __future__ import annotations

import json

import pytest

from protocol_support import fixed_backbone
from vlprompt.api import StudyGrid, demo
from vlprompt.cli.main import main
from vlprompt.utils.runtime import Runtime


def test_demo_end_to_end_and_rerun(tmp_path, model_configs, capsys):
    pytest.importorskip("matplotlib")
    spec = fixed_backbone(tmp_path, model_configs["vit"])
    argv = ["demo", "--out", str(tmp_path / "demo"), "--backbone", spec, "--datasets", "synthetic:counting",
            "--methods", "zeroshot,coop", "--shots", "1", "--b2n-shots", "1", "--seeds", "1,2", "--epochs", "1",
            "--quiet", "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert "Few-shot, 1-shot" in out and "HM (harmonic mean)" in out
    assert result["runs"] == {"fewshot": {"ran": 4, "skipped": 0}, "base2new": {"ran": 4, "skipped": 0}}
    page = (tmp_path / "demo" / "report" / "index.html").read_text()
    for section in ("fewshot", "base2new", "Optimisation time", "Variance analysis", "Nearest words",
                    "Feature projections"):
        assert section in page
    assert (tmp_path / "demo" / "report" / "plots" / "projection_0.svg").exists()
    grid = StudyGrid(backbone=spec, datasets=["synthetic:counting"], methods=["zeroshot", "coop"],
                     shots=[1], b2n_shots=[1], seeds=[1, 2], epochs=1)
    again = demo(tmp_path / "demo", grid, analyses=False, plots=False,
                 echo=lambda _: None, runtime=Runtime(progress=False))
    assert again["runs"] == {"fewshot": {"ran": 0, "skipped": 4}, "base2new": {"ran": 0, "skipped": 4}}


def test_demo_without_weights_fails_in_one_line(tmp_path, capsys, model_configs):
    assert main(["demo", "--out", str(tmp_path), "--backbone", f"openclip:{model_configs['vit']}@{tmp_path}/no.pt"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "no.pt" in err[0]
