"""Training curves (`--log tensorboard|wandb`): mirrors of the run record's history, read back."""

from __future__ import annotations

import json
import sys
import types

import pytest

from vlprompt.errors import ConfigError
from vlprompt.utils.runtime import Runtime

DATA = "synthetic:counting"  # 4 classes: the cheapest task


def test_runtime_names_the_loggers():
    assert Runtime(device="cpu", log="tensorboard, wandb").log == ("tensorboard", "wandb")
    assert Runtime(device="cpu", log=["wandb", "wandb"]).log == ("wandb",)
    assert Runtime(device="cpu").log == ()
    with pytest.raises(ConfigError, match="'tensorbord'"):
        Runtime(device="cpu", log=["tensorbord"])


def test_log_option_only_on_commands_that_train():
    from vlprompt.cli.common import runtime_from_args
    from vlprompt.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--method", "coop", "--dataset", DATA, "--shots", "1", "--out", "x",
                              "--device", "cpu", "--log", "tensorboard", "--log", "wandb"])
    assert runtime_from_args(args).log == ("tensorboard", "wandb")
    args = parser.parse_args(["run", "fewshot", "--methods", "coop", "--log", "tensorboard,wandb"])
    assert runtime_from_args(args).log == ("tensorboard", "wandb")
    with pytest.raises(SystemExit):
        parser.parse_args(["zeroshot", "--dataset", DATA, "--log", "tensorboard"])


@pytest.fixture(scope="module")
def tiny():
    from vlprompt.backbones import load_backbone

    return load_backbone("tiny", device="cpu")


def _train(tiny, out, rt):
    from vlprompt.api import train

    return train("coop", tiny, DATA, shots=1, seed=1, overrides=["train.epochs=3", "train.eval_every=1"],
                 out=out, runtime=rt)


def test_tensorboard_events_mirror_the_history_and_change_nothing(tiny, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rt = Runtime(device="cpu", progress=False, cache_dir=tmp_path / "features")
    plain = _train(tiny, tmp_path / "plain", rt)
    logged = _train(tiny, tmp_path / "tb", rt.but(log=("tensorboard",)))
    assert logged["top1"] == plain["top1"]
    history = json.loads((tmp_path / "tb" / "run.json").read_text())["history"]
    assert not (tmp_path / "plain" / "tb").exists()
    events = EventAccumulator(str(tmp_path / "tb" / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/total", "train/acc", "lr", "time/epoch_seconds", "val/top1"} <= tags
    for tag, key in (("loss/total", "loss"), ("lr", "lr"), ("val/top1", "val_top1")):
        read = events.Scalars(tag)
        assert [e.step for e in read] == [1, 2, 3]
        assert [e.value for e in read] == pytest.approx([row[key] for row in history], rel=1e-6)


def test_wandb_runs_offline_unless_configured(tiny, tmp_path, monkeypatch):
    calls: dict = {"log": [], "finish": 0}

    class FakeRun:
        def log(self, data, step=None):
            calls["log"].append((step, data))

        def finish(self):
            calls["finish"] += 1

    def init(**kw):
        calls["init"] = kw
        return FakeRun()

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    rt = Runtime(device="cpu", progress=False, cache_dir=tmp_path / "features", log=("wandb",))
    _train(tiny, tmp_path / "w", rt)
    history = json.loads((tmp_path / "w" / "run.json").read_text())["history"]
    assert calls["init"]["mode"] == "offline" and calls["init"]["dir"] == str(tmp_path / "w")
    assert calls["init"]["config"]["method"] == "coop" and calls["finish"] == 1
    assert [s for s, _ in calls["log"]] == [1, 2, 3]
    assert [d["loss/total"] for _, d in calls["log"]] == [row["loss"] for row in history]
    monkeypatch.setenv("WANDB_MODE", "online")
    from vlprompt.engine.loggers import open_loggers

    open_loggers(["wandb"], tmp_path / "o", {})
    assert calls["init"]["mode"] == "online"


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    from vlprompt.engine.loggers import open_loggers

    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ConfigError, match=r"vlprompt\[wandb\]"):
        open_loggers(["wandb"], tmp_path, {})
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"vlprompt\[tb\]"):
        open_loggers(["tensorboard"], tmp_path, {})


def test_on_epoch_hook_sees_each_history_row(tiny):
    from vlprompt.data import load_dataset, sample_fewshot
    from vlprompt.engine.options import TrainConfig
    from vlprompt.engine.trainer import Trainer
    from vlprompt.methods.registry import create_method

    data = sample_fewshot(load_dataset(DATA), 1, seed=1, use_manifest=False)
    rows = []
    trainer = Trainer(create_method("coop", tiny, data.classnames), TrainConfig(epochs=2), seed=1,
                      progress=False, on_epoch=rows.append)
    fit = trainer.fit(data.train, data.val)
    assert rows == fit.history and len(rows) == 2
