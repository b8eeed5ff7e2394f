"""DDP through torchrun on the CPU (gloo, two processes) gives the single-process result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import make_image_folder
from protocol_support import fixed_backbone
from vlprompt.api import train
from vlprompt.methods.base import Batch
from vlprompt.protocols.distributed import shard_batch

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_shard_batch():
    batch = Batch(labels=torch.arange(5), features=torch.arange(10.0).reshape(5, 2))
    assert shard_batch(batch, 1, 2).labels.tolist() == [1, 3]
    assert shard_batch(batch, 0, 2).features.tolist() == [[0, 1], [4, 5], [8, 9]]
    assert shard_batch(Batch(labels=torch.tensor([7])), 1, 2).labels.tolist() == [7]


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_ddp_matches_one_process(tmp_path, model_configs, monkeypatch):
    spec = fixed_backbone(tmp_path, model_configs["vit"])
    cache = tmp_path / "cache"  # a fresh cache: both runs encode their features
    monkeypatch.setenv("VLPROMPT_CACHE", str(cache))
    # a folder dataset: augmented views (the synthetic suite trains without augmentation);
    # 3 shots x 3 classes and 9 test images, so the ranks' shares of the batches (5 and 4) and
    # of the feature encoding differ in size
    data = "folder:" + str(make_image_folder(tmp_path / "imgs", {"cat": 9, "dog": 9, "red_fox": 9}))
    common = ["--method", "coop", "--backbone", spec, "--dataset", data, "--shots", "3",
              "--epochs", "3", "--set", "train.lr=0.5", "--set", "train.views=3"]
    single = train("coop", spec, data, shots=3, epochs=3, out=tmp_path / "one", progress=False,
                   overrides=["train.lr=0.5", "train.views=3"], cache_dir=tmp_path / "one-features")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "vlprompt", "ddp-train", *common,
                           "--out", str(tmp_path / "two"), "--quiet"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "over 2 process(es)" in proc.stdout
    one, two = load_file(str(tmp_path / "one" / "weights.safetensors")), load_file(str(tmp_path / "two" / "weights.safetensors"))
    other_rank = load_file(str(tmp_path / "two" / ".rank1" / "weights.safetensors"))
    assert (one["ctx"] - two["ctx"]).abs().max() < 1e-4
    assert (two["ctx"] - other_rank["ctx"]).abs().max() == 0  # the ranks stay in step
    record = json.loads((tmp_path / "two" / "run.json").read_text())
    assert record["metrics"]["test"]["top1"] == pytest.approx(single["top1"])
    # each rank encoded half of the images (augmented views included) and the halves were
    # gathered: the cache holds the one-process features, file for file
    ours = {p.name: p for p in (tmp_path / "one-features").glob("*.safetensors")}
    theirs = {p.name: p for p in (cache / "features").glob("*.safetensors")}
    assert len(ours) == 3 + 1 and set(ours) == set(theirs)  # 3 augmented train views, test
    for name, path in ours.items():
        a, b = load_file(str(path))["features"], load_file(str(theirs[name]))["features"]
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5), name
    assert record["feature_cache"]["misses"] == 4
