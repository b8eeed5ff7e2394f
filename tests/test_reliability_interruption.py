"""Interruption: runs killed with SIGKILL resume to the same prompt and metrics as an uninterrupted run.

Two complementary tests. The first kills a real `vlprompt train` process twice at
timing-dependent points (each epoch is slowed so the kill can land anywhere in it) and
finishes with `--resume`. The second is exhaustive over the write points of a run: a
forked copy of the test process is killed with SIGKILL just before (and just after) each
atomic rename the run performs (manifest, feature cache, checkpoints, weights, config,
run record), then the run is resumed and compared bitwise.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from protocol_support import fixed_backbone
from reliability_support import checkpoint_epoch, cli, slow_cli_command, subprocess_env, train_argv
from vlprompt.engine.runner import train
from vlprompt.errors import ConfigError
from vlprompt.utils.runtime import Runtime

EPOCHS = 6


@pytest.fixture(scope="module")
def backbone(tmp_path_factory, model_configs) -> str:
    return fixed_backbone(tmp_path_factory.mktemp("bb"), model_configs["vit"])


def _same_run(a: Path, b: Path) -> None:
    """Bitwise-equal learned weights, equal test metrics and loss history."""
    wa, wb = load_file(str(a / "weights.safetensors")), load_file(str(b / "weights.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ra, rb = (json.loads((d / "run.json").read_text()) for d in (a, b))
    assert ra["metrics"] == rb["metrics"]
    assert [(h["epoch"], h["loss"], h["acc"]) for h in ra["history"]] == \
        [(h["epoch"], h["loss"], h["acc"]) for h in rb["history"]]


def _epoch_or(run: Path, default: int) -> int:
    epoch = checkpoint_epoch(run)
    return default if epoch is None else epoch


@pytest.mark.slow
def test_sigkill_twice_then_resume_equals_uninterrupted(tmp_path, backbone, image_folder, capsys, monkeypatch):
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache-full"))
    code, _, err = cli(capsys, *train_argv(backbone, image_folder, tmp_path / "full", "--epochs", EPOCHS))
    assert code == 0, err

    run = tmp_path / "killed"
    env = subprocess_env(tmp_path / "cache-killed", epoch_sleep=0.3)
    rng = random.Random(8)
    kills = []
    for after_epoch, extra in ((1, []), (3, ["--resume"])):
        argv = ["-v", *train_argv(backbone, image_folder, run, "--epochs", EPOCHS, *extra)]
        proc = subprocess.Popen(slow_cli_command(*argv), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 180
        while _epoch_or(run, -1) < after_epoch and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))  # anywhere in the next epoch: sleeping, training or writing
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {err[-2000:]}"
        assert not (run / "run.json").exists()
        kills.append(checkpoint_epoch(run))
        assert kills[-1] is not None and after_epoch <= kills[-1] < EPOCHS - 1
        if extra:
            assert f"resuming after epoch {kills[0] + 1}" in err, err[-2000:]

    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache-killed"))
    code, out, err = cli(capsys, *train_argv(backbone, image_folder, run, "--epochs", EPOCHS, "--resume"))
    assert code == 0, err
    assert json.loads((run / "run.json").read_text())["resumed_from_epoch"] == kills[-1]
    _same_run(tmp_path / "full", run)


def _killed_at_rename(n: int, when: str, job) -> bool:
    """Run `job` in a forked child that SIGKILLs itself just before/after its n-th os.replace;
    True when it was killed, False when the job finished first."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            real, calls = os.replace, [0]

            def replace(src, dst, **kw):
                calls[0] += 1
                if calls[0] == n and when == "before":
                    os.kill(os.getpid(), signal.SIGKILL)
                real(src, dst, **kw)
                if calls[0] == n and when == "after":
                    os.kill(os.getpid(), signal.SIGKILL)

            os.replace = replace
            job()
        except BaseException:  # noqa: BLE001
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the job failed in the child"
    return False


@pytest.mark.slow
def test_sigkill_at_every_write_point_resumes_bitwise(tmp_path, tiny_vit, image_folder, monkeypatch):
    args = dict(shots=2, seed=1,
                overrides=["train.epochs=2", "train.batch_size=2", "method.n_ctx=2", "train.views=1"], runtime=Runtime(progress=False))
    dataset = f"folder:{image_folder}"
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache-ref"))
    train("coop", tiny_vit, dataset, out=tmp_path / "ref", **args)

    survived = 0
    for n in range(1, 50):
        results = []
        for when in ("before", "after"):
            case = tmp_path / f"{n}-{when}"
            monkeypatch.setenv("VLPROMPT_CACHE", str(case / "cache"))
            killed = _killed_at_rename(n, when, lambda case=case: train("coop", tiny_vit, dataset,
                                                                          out=case / "run", **args))
            results.append(killed)
            if not killed:
                continue
            train("coop", tiny_vit, dataset, out=case / "run", resume=True, **args)
            _same_run(tmp_path / "ref", case / "run")
            assert not list((case / "run").glob("**/.*.tmp"))  # a killed writer's temporary files are gone
            survived += 1
        if not any(results):
            break
    print(f"kill points survived: {survived} ({n - 1} renames)")
    assert n > 6 and survived == 2 * (n - 1), (n, survived)  # every rename of the run was a kill point


def test_damaged_or_foreign_checkpoint_is_refused_by_name(tmp_path, tiny_vit, image_folder, monkeypatch):
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))
    args = dict(shots=1, seed=1, overrides=["train.epochs=1", "method.n_ctx=2", "train.views=1"], runtime=Runtime(progress=False))
    dataset = f"folder:{image_folder}"
    run = tmp_path / "run"
    train("coop", tiny_vit, dataset, out=run, **args)
    state = run / "checkpoint" / "state.safetensors"
    (run / "checkpoint" / ".state.safetensors.x1.tmp").write_bytes(b"half a file")  # a killed writer's
    with pytest.raises(ConfigError, match=r"different configuration \(train.lr differ\)"):
        train("coop", tiny_vit, dataset, out=run, resume=True, **{**args, "overrides": args["overrides"]
                                                                 + ["train.lr=0.5"]})
    assert not list((run / "checkpoint").glob(".*.tmp"))  # the stray temporary file was removed
    state.write_bytes(state.read_bytes()[:-7])  # bit rot / a truncating copy
    with pytest.raises(ConfigError, match="damaged"):
        train("coop", tiny_vit, dataset, out=run, resume=True, **args)


@pytest.mark.parametrize("method", ["variational", "upt"])  # own noise generator; dropout on the global one
def test_resume_is_exact_for_methods_that_draw_random_numbers(tmp_path, tiny_vit, image_folder, monkeypatch,
                                                              method):
    from vlprompt.engine.trainer import Trainer

    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))
    args = dict(shots=2, seed=1, overrides=["train.epochs=3", "train.batch_size=2", "train.views=1"], runtime=Runtime(progress=False))
    dataset = f"folder:{image_folder}"
    torch.manual_seed(123)  # whatever ran before must not matter
    train(method, tiny_vit, dataset, out=tmp_path / "full", **args)
    original = Trainer._epoch

    def stop_at_epoch_2(self, epoch, *a, **kw):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, *a, **kw)

    monkeypatch.setattr(Trainer, "_epoch", stop_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(method, tiny_vit, dataset, out=tmp_path / "resumed", **args)
    monkeypatch.setattr(Trainer, "_epoch", original)
    torch.manual_seed(456)
    train(method, tiny_vit, dataset, out=tmp_path / "resumed", resume=True, **args)
    _same_run(tmp_path / "full", tmp_path / "resumed")
