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
from vlprompt.engine.distributed import shard_indices
from vlprompt.utils.runtime import Runtime

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_shard_indices():
    batch = torch.tensor([7, 3, 9, 0, 4])
    local, fraction = shard_indices(batch, 1, 2)
    assert local.tolist() == [3, 0] and fraction == pytest.approx(2 / 5)
    local, fraction = shard_indices(batch, 0, 2)
    assert local.tolist() == [7, 9, 4] and fraction == pytest.approx(3 / 5)
    local, fraction = shard_indices(torch.tensor([7]), 1, 2)  # fewer examples than ranks
    assert local.tolist() == [7] and fraction == 0.5


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
@pytest.mark.slow
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
    single = train("coop", spec, data, shots=3, out=tmp_path / "one",
                   overrides=["train.epochs=3", "train.lr=0.5", "train.views=3"], runtime=Runtime(progress=False, cache_dir=tmp_path / "one-features"))
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


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
@pytest.mark.slow
def test_two_process_ddp_shares_image_path_evaluation(tmp_path, model_configs, monkeypatch):
    """VPT evaluates on images: each rank scores its share of the test split (9 images: 5 and
    4) and the gathered logits give the one-process accuracy, class by class."""
    spec = fixed_backbone(tmp_path, model_configs["vit"])
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))
    data = "folder:" + str(make_image_folder(tmp_path / "imgs", {"cat": 9, "dog": 9, "red_fox": 9}))
    overrides = ["train.batch_size=6", "method.n_tokens=2"]
    single = train("vpt", spec, data, shots=2, out=tmp_path / "one", overrides=["train.epochs=2", *overrides],
                   runtime=Runtime(progress=False))
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "vlprompt", "ddp-train",
                           "--method", "vpt", "--backbone", spec, "--dataset", data, "--shots", "2", "--epochs", "2",
                           *[a for o in overrides for a in ("--set", o)], "--out", str(tmp_path / "two"), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "run.json").read_text())["metrics"]["test"]
    two = json.loads((tmp_path / "two" / "run.json").read_text())["metrics"]["test"]
    assert two["n_images"] == one["n_images"] == 9
    assert two["top1"] == pytest.approx(single["top1"]) and two["per_class"] == pytest.approx(one["per_class"])
    a = load_file(str(tmp_path / "one" / "weights.safetensors"))
    b = load_file(str(tmp_path / "two" / "weights.safetensors"))
    assert all((a[k] - b[k]).abs().max() < 1e-4 for k in a)


def test_image_path_evaluation_share_is_every_world_th_image(tiny_vit, image_folder, monkeypatch):
    """Rank 1 of 2 scores test images 1, 3, 5, ... and hands them to the gather."""
    from vlprompt.data.registry import load_dataset
    from vlprompt.engine import distributed
    from vlprompt.engine.evaluation import method_logits
    from vlprompt.engine.options import TrainConfig
    from vlprompt.methods.registry import create_method

    data = load_dataset(f"folder:{make_image_folder(image_folder / 'more', {'a': 9, 'b': 9})}")
    method = create_method("vpt", tiny_vit, data.classnames, n_tokens=2)
    trainer = distributed.DistributedTrainer(method, TrainConfig(), seed=0, progress=False)
    assert trainer.distribute_evaluation() is None  # one process: nothing to share
    trainer.rank, trainer.size = 1, 2
    full = method_logits(method, items=data.test, transform=tiny_vit.preprocess())
    seen = []

    def gather(local, n, rank, size):
        seen.append((n, rank, size))
        assert torch.allclose(local, full[1::2], atol=1e-5)
        return full

    monkeypatch.setattr(distributed, "gather_rows", gather)
    metrics = trainer.evaluate(data.test)
    assert seen == [(len(data.test), 1, 2)] and metrics["n_images"] == len(data.test)
