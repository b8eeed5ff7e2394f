"""The training loop: cached vs. image training, determinism, resume, schedule, selection."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vlprompt.data.registry import load_dataset
from vlprompt.engine.feature_cache import FeatureCache
from vlprompt.engine.options import TrainConfig
from vlprompt.engine.runner import evaluate_run, train
from vlprompt.engine.schedule import lr_at
from vlprompt.engine.trainer import Trainer
from vlprompt.errors import ConfigError
from vlprompt.methods.registry import create_method
from vlprompt.utils.runtime import Runtime


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def data(image_folder):
    return load_dataset(f"folder:{image_folder}")


def _fit(tiny_vit, data, cfg: TrainConfig, seed=1, method="coop", **method_cfg):
    m = create_method(method, tiny_vit, data.classnames, generator=torch.Generator().manual_seed(0),
                      **({"n_ctx": 2} if method == "coop" else {}), **method_cfg)
    trainer = Trainer(m, cfg, seed=seed, progress=False)
    result = trainer.fit(data.train + data.val, [])
    return m, result


def test_cached_features_train_like_images(tiny_vit, data):
    """Augmentation off: the cache path and the image path give the same loss trajectory."""
    common = dict(epochs=3, batch_size=2, augment=False, lr=0.01, warmup_epochs=1)
    m1, r1 = _fit(tiny_vit, data, TrainConfig(cache_features=True, **common))
    m2, r2 = _fit(tiny_vit, data, TrainConfig(cache_features=False, **common))
    losses1 = [h["loss"] for h in r1.history]
    losses2 = [h["loss"] for h in r2.history]
    assert len(losses1) == 3 and r1.history[0]["steps"] == len(data.train + data.val) // 2
    assert losses1 == pytest.approx(losses2, rel=1e-5, abs=1e-6)
    assert torch.allclose(m1.learned.ctx, m2.learned.ctx, atol=1e-5)


def test_same_seed_same_numbers(tiny_vit, data):
    cfg = TrainConfig(epochs=2, batch_size=2, views=2)
    m1, r1 = _fit(tiny_vit, data, cfg, seed=3)
    m2, r2 = _fit(tiny_vit, data, cfg, seed=3)
    m3, r3 = _fit(tiny_vit, data, cfg, seed=4)
    assert [h["loss"] for h in r1.history] == [h["loss"] for h in r2.history]
    assert torch.equal(m1.learned.ctx, m2.learned.ctx)
    assert not torch.equal(m1.learned.ctx, m3.learned.ctx)


def test_image_path_with_augmentation_is_deterministic(tiny_vit, data):
    cfg = TrainConfig(epochs=1, batch_size=3, warmup_epochs=0, cache_features=False, augment=True)
    m1, _ = _fit(tiny_vit, data, cfg)
    m2, _ = _fit(tiny_vit, data, cfg)
    assert torch.equal(m1.learned.ctx, m2.learned.ctx)


def test_resume_equals_uninterrupted_run(tiny_vit, image_folder, tmp_path, monkeypatch):
    args = dict(shots=2, seed=1, overrides=["train.epochs=4", "train.batch_size=2", "method.n_ctx=2", "train.views=2"], runtime=Runtime(progress=False))
    dataset = f"folder:{image_folder}"
    full = train("coop", tiny_vit, dataset, out=tmp_path / "full", **args)

    original = Trainer._epoch
    def stop_at_epoch_2(self, epoch, *a, **kw):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, *a, **kw)

    monkeypatch.setattr(Trainer, "_epoch", stop_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train("coop", tiny_vit, dataset, out=tmp_path / "resumed", **args)
    monkeypatch.setattr(Trainer, "_epoch", original)
    with pytest.raises(ConfigError, match="--resume"):
        train("coop", tiny_vit, dataset, out=tmp_path / "resumed", **args)
    resumed = train("coop", tiny_vit, dataset, out=tmp_path / "resumed", resume=True, **args)

    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "full" / "weights.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "weights.safetensors"))
    assert torch.equal(a["ctx"], b["ctx"])
    assert resumed["top1"] == full["top1"]
    import json

    record = json.loads((tmp_path / "resumed" / "run.json").read_text())
    assert record["resumed_from_epoch"] == 1
    assert [h["loss"] for h in record["history"]] == \
        [h["loss"] for h in json.loads((tmp_path / "full" / "run.json").read_text())["history"]]
    # a resume with a different configuration is refused
    with pytest.raises(ConfigError, match="different configuration"):
        train("coop", tiny_vit, dataset, out=tmp_path / "resumed", resume=True,
              **{**args, "overrides": args["overrides"] + ["train.lr=0.1"]})


def test_schedule_is_dassl_constant_warmup_then_cosine():
    """Dassl's ConstantWarmupScheduler: the cosine successor (T_max = epochs) is not stepped
    during the warm-up, so epoch e >= w runs at 0.5 lr (1 + cos(pi (e - w) / E))."""
    cfg = TrainConfig(epochs=10, lr=0.002, warmup_epochs=1, warmup_lr=1e-5)
    assert lr_at(0, cfg) == 1e-5
    assert lr_at(1, cfg) == pytest.approx(0.002)  # the first epoch after warm-up: full rate
    assert lr_at(2, cfg) == pytest.approx(0.001 * (1 + math.cos(math.pi / 10)))
    assert lr_at(6, cfg) == pytest.approx(0.001)
    # CoCoOp's 10 epochs: the last runs at 1.91e-4 (the old e/E formula gave 4.9e-5)
    assert lr_at(9, cfg) == pytest.approx(0.001 * (1 + math.cos(math.pi * 8 / 10)))
    assert lr_at(9, cfg) == pytest.approx(1.9098e-4, rel=1e-4)
    assert all(lr_at(e, cfg) > lr_at(e + 1, cfg) for e in range(1, 9))
    two = TrainConfig(epochs=5, lr=0.1, warmup_epochs=2, warmup_lr=1e-5)
    assert [lr_at(e, two) for e in range(5)] == pytest.approx(
        [1e-5, 1e-5] + [0.05 * (1 + math.cos(math.pi * k / 5)) for k in range(3)])


def test_schedule_equals_dassl_scheduler_stepped_per_epoch():
    """The same rates as Dassl's construction: a CosineAnnealingLR(T_max=E) that is stepped
    only once the constant warm-up epoch is over (written here with torch's scheduler)."""
    epochs, warmup = 7, 1
    cfg = TrainConfig(epochs=epochs, lr=0.002, warmup_epochs=warmup, warmup_lr=1e-5)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.002)
    successor = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    rates = []
    for epoch in range(epochs):
        rates.append(1e-5 if epoch < warmup else successor.get_last_lr()[0])
        opt.step()
        if epoch >= warmup:  # Dassl steps the successor at the end of each later epoch
            successor.step()
    assert [lr_at(e, cfg) for e in range(epochs)] == pytest.approx(rates)


def test_adamw_grad_clip_and_val_selection(tiny_vit, data):
    cfg = TrainConfig(epochs=3, batch_size=2, optimizer="adamw", grad_clip=0.1, select="val", views=1)
    m = create_method("classifier-ft", tiny_vit, data.classnames)
    backbone_before = {k: v.clone() for k, v in tiny_vit.state_dict().items()}
    trainer = Trainer(m, cfg, seed=1, progress=False)
    result = trainer.fit(data.train, data.val)
    assert all(torch.equal(v, backbone_before[k]) for k, v in tiny_vit.state_dict().items())
    scores = [h["val_top1"] for h in result.history]
    assert len(scores) == 3
    assert result.selected_epoch == max(range(3), key=lambda e: (scores[e], -e))
    with pytest.raises(ConfigError, match="validation"):
        Trainer(m, cfg, seed=1, progress=False).fit(data.train, [])


def test_closed_form_and_no_fit_paths(tiny_vit, data):
    lp = create_method("linear-probe", tiny_vit, data.classnames, max_iter=20, search_steps=1)
    result = Trainer(lp, TrainConfig(augment=False), seed=1, progress=False).fit(data.train, data.val)
    assert "C" in result.info and lp.learned.weight.abs().sum() > 0
    zs = create_method("zeroshot", tiny_vit, data.classnames)
    assert Trainer(zs, TrainConfig(), seed=1, progress=False).fit(data.train).history == []


def test_feature_cache_reused_across_methods(tiny_vit, data, tmp_path):
    cache = FeatureCache(tmp_path / "fc")
    cfg = TrainConfig(epochs=2, batch_size=2, views=2)
    for name in ("coop", "classifier-ft"):
        m = create_method(name, tiny_vit, data.classnames)
        Trainer(m, cfg, seed=1, cache=cache, progress=False).fit(data.train)
    assert cache.misses == 2 and cache.hits == 2  # two views computed once, reused by the second method


def test_a_run_of_e_epochs_encodes_only_min_v_e_views(tiny_vit, data, tmp_path):
    """One view is drawn per image and epoch, so E < V epochs never read more than E views:
    only those are encoded; a longer run later reuses them and encodes the rest."""
    cache = FeatureCache(tmp_path / "fc")
    m = create_method("coop", tiny_vit, data.classnames)
    short = Trainer(m, TrainConfig(epochs=2, batch_size=2, views=4), seed=1, cache=cache, progress=False)
    assert short.train_features(data.train, epochs=2).shape[0] == 2
    assert (cache.misses, cache.hits) == (2, 0)
    long = Trainer(m, TrainConfig(epochs=6, batch_size=2, views=4), seed=1, cache=cache, progress=False)
    assert long.train_features(data.train, epochs=6).shape[0] == 4  # min(V, E) = V
    assert (cache.misses, cache.hits) == (4, 2)  # views 0 and 1 from the short run
    history = short.fit(data.train).history
    assert len(history) == 2 and (cache.misses, cache.hits) == (4, 4)


def test_data_that_forbids_augmentation_trains_on_plain_images(tiny_vit, data, tmp_path):
    """The synthetic suite declares `augment_ok=False` (crops cut its small objects away):
    its runs encode one unaugmented view even though `train.augment` is on by default."""
    suite = load_dataset("synthetic:counting")
    assert not suite.augment_ok and data.augment_ok
    assert TrainConfig().augment and TrainConfig().views > 1
    run = train("coop", tiny_vit, suite, shots=1, seed=1, out=tmp_path / "run", overrides=["train.epochs=1"], runtime=Runtime(progress=False, cache_dir=tmp_path / "features"))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["augmentation"] == {"used": False, "flip": False, "dataset_allows": False}
    assert record["feature_cache"]["misses"] == 2  # one train view, the test split
    # the test accuracy from the cached features is the one from the images
    assert run["n_test"] == len(suite.test)
    assert evaluate_run(run["run_dir"], backbone=tiny_vit, runtime=Runtime(progress=False))["top1"] == pytest.approx(run["top1"])
    folder = train("coop", tiny_vit, data, shots=1, seed=1, out=tmp_path / "folder",
                   overrides=["train.epochs=3", "train.views=3"], runtime=Runtime(progress=False, cache_dir=tmp_path / "features"))
    record = json.loads((tmp_path / "folder" / "run.json").read_text())
    assert record["augmentation"]["used"] and record["feature_cache"]["misses"] == 3 + 1
    assert evaluate_run(folder["run_dir"], backbone=tiny_vit, runtime=Runtime(progress=False))["top1"] == pytest.approx(folder["top1"])
    m = create_method("coop", tiny_vit, suite.classnames, n_ctx=2)
    assert Trainer(m, TrainConfig(), seed=1, augment=False, progress=False).train_features(suite.train[:3]).shape[0] == 1
