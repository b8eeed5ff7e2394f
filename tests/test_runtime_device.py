"""GPU-first defaults: `--device auto` everywhere (CUDA, then MPS, then the CPU), precision
`auto` by what the GPU runs, and the run record says what ran."""

from __future__ import annotations

import json

import pytest
import torch

from vlprompt.cli.common import computing_parsers
from vlprompt.cli.main import build_parser
from vlprompt.engine.trainer import amp_dtype_for
from vlprompt.utils.runtime import Runtime, auto_device, check_device


def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    assert auto_device() == "cpu" and check_device("auto") == "cpu" and Runtime().device == "cpu"
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: True)
        assert auto_device() == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_device() == "cuda" and Runtime(device="AUTO").device == "cuda"


def test_every_computing_command_defaults_to_auto():
    parsers = list(computing_parsers(build_parser()))
    assert len(parsers) >= 12
    for parser in parsers:
        device = next(a for a in parser._actions if a.dest == "device")
        assert device.default == "auto", parser.prog
        assert "auto" in device.help


def test_auto_precision_follows_what_the_gpu_runs(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype_for("auto", cuda) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp_dtype_for("auto", cuda) == torch.float16  # trained with the loss scaler
    assert amp_dtype_for("auto", torch.device("cpu")) is None
    assert amp_dtype_for("fp32", cuda) is None


def test_the_run_record_says_what_ran(tiny_vit, image_folder, tmp_path):
    from vlprompt.api import train

    train("coop", tiny_vit, f"folder:{image_folder}", shots=1, out=tmp_path / "run",
          overrides=["train.epochs=1", "train.views=1"], runtime=Runtime(progress=False))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["ran_on"] == {"device": "cpu", "autocast": "none (fp32)", "feature_encoding": "float32",
                                "text_encoding": "causal: each prompt cut after its last end-of-text token (exact)"}


def test_unknown_devices_still_name_auto():
    from vlprompt.errors import ConfigError

    with pytest.raises(ConfigError, match="use auto, cpu"):
        check_device("tpu9")


@pytest.mark.slow
def test_gpu_check_dry_run_runs_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.py, scaled down: every method in fp32 and the automatic precision
    (on a CPU both are fp32, so the logits agree exactly), throughput and the memory entry."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, str(script), "--dry-run", "--device", "cpu", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert set(report["methods"]) == {"coop", "cocoop", "vpt", "maple"}
    for row in report["methods"].values():
        assert row["max_abs_logit_diff"] == 0.0 and row["top1_agreement"] == 1.0
        assert row["steps_per_s_fp32"] > 0
    assert report["auto_precision"] == "fp32" and report["encode_images_per_s"]["fp32"] > 0
    assert report["coop_50_classes_peak_gib"] is None  # GPU memory only on a GPU


def test_workers_default_to_none_on_cpus_and_a_few_with_a_gpu(monkeypatch):
    from vlprompt.utils import runtime

    assert Runtime(device="cpu").workers == 0 and Runtime(device="cpu", workers=3).workers == 3
    monkeypatch.setattr(runtime, "available_cores", lambda: 16)
    assert runtime.default_workers("cpu") == 0 and runtime.default_workers("cuda:1") == runtime.GPU_WORKERS
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    assert runtime.default_workers("cuda") == 1  # one core stays with the main process
