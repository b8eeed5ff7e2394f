"""Presets equal the reference runs' settings (values written here from the reference configs
and scripts, not read from our tables), resolve by (protocol, dataset, shots), are recorded in
run.json and yield to --set."""

from __future__ import annotations

import json

import pytest

from vlprompt.engine.runner import resolve_config, train
from vlprompt.errors import ConfigError
from vlprompt.methods.registry import get_method_class, list_methods
from vlprompt.utils.runtime import Runtime


def _resolved(method: str, protocol: str = "fewshot", dataset: str | None = None, shots: int = 16):
    mcfg, tcfg = resolve_config(method, shots, protocol=protocol, dataset=dataset)
    return mcfg, tcfg


@pytest.mark.parametrize("shots, epochs", [(1, 50), (2, 100), (4, 100), (8, 200), (16, 200)])
@pytest.mark.parametrize("method", ["coop", "prograd", "classifier-ft", "upt"])
def test_coop_schedule_by_shots_and_imagenet_50(method, shots, epochs):
    """CoOp's COOP.md: rn50_ep50 for 1 shot, rn50_ep100 for 2/4, rn50 (200) for 8/16;
    ImageNet *_ep50 at every shot count. SGD lr 0.002, batch 32, one warm-up epoch at 1e-5."""
    _, t = _resolved(method, dataset="dtd", shots=shots)
    assert (t.epochs, t.lr, t.batch_size, t.warmup_epochs, t.warmup_lr) == (epochs, 0.002, 32, 1, 1e-5)
    assert (t.momentum, t.weight_decay, t.optimizer, t.schedule) == (0.9, 5e-4, "sgd", "cosine")
    assert _resolved(method, dataset="imagenet", shots=shots)[1].epochs == 50


@pytest.mark.parametrize("dataset, template", [
    ("oxford_pets", "a type of pet, a photo of a {}."),
    ("oxford_flowers", "a type of flower, a photo of a {}."),
    ("fgvc_aircraft", "a type of aircraft, a photo of a {}."),
    ("food101", "a type of food, a photo of {}."),
    ("dtd", "a texture of {}."),
    ("eurosat", "dataset"),  # the same as CoOp's: the dataset's own template
    ("stanford_cars", "dataset"),
    ("synthetic:shapes", "dataset"),
])
def test_prograd_teacher_and_context_use_prograds_template_table(dataset, template):
    m, _ = _resolved("prograd", dataset=dataset)
    assert m.teacher_template == template
    assert m.ctx_from_template and m.n_ctx == 16 and m.temperature == 1.0


@pytest.mark.parametrize("dataset, shots, lam", [
    ("oxford_flowers", 16, 0.8), ("dtd", 8, 0.8), ("eurosat", 16, 0.8),
    ("dtd", 4, 1.0), ("eurosat", 1, 1.0), ("oxford_pets", 16, 1.0), ("imagenet", 16, 1.0),
])
def test_prograd_lambda_from_its_readme(dataset, shots, lam):
    assert _resolved("prograd", dataset=dataset, shots=shots)[0].grad_lambda == lam


def test_prograd_base_to_new_script():
    """scripts/base2new_train_prograd.sh: rn50_ep100 (ImageNet: rn50_ep50), NCTX 16, LAMBDA 1.0."""
    m, t = _resolved("prograd", "base2new", "dtd")
    assert (t.epochs, m.n_ctx, m.grad_lambda) == (100, 16, 1.0)
    assert _resolved("prograd", "base2new", "imagenet")[1].epochs == 50


def test_kgcoop_preset_and_its_dtd_template():
    m, t = _resolved("kgcoop", dataset="dtd")
    assert m.template == "a photo of a {}, a type of texture."
    assert (m.n_ctx, m.ctx_init, m.weight) == (4, "a photo of a", 8.0)
    assert (t.epochs, t.batch_size, t.lr) == (100, 128, 0.002)
    assert _resolved("kgcoop", dataset="oxford_pets")[0].template == "dataset"
    assert _resolved("kgcoop", "base2new", "dtd")[1].epochs == 100


@pytest.mark.parametrize("protocol", ["fewshot", "domain-generalization"])
def test_vpt_few_shot_and_dg_use_upts_setting(protocol):
    """UPT's VPT_deep configs: 4 tokens, lr 0.002, batch 32, CoOp's epochs, normal(0, 0.02)."""
    m, t = _resolved("vpt", protocol, "imagenet" if protocol != "fewshot" else "dtd", shots=2)
    assert (m.n_tokens, m.deep, m.depth, m.init, m.init_std) == (4, True, 0, "normal", 0.02)
    assert (t.lr, t.batch_size) == (0.002, 32)
    assert t.epochs == (100 if protocol == "fewshot" else 50)


@pytest.mark.parametrize("protocol", ["base2new", "cross-dataset"])
def test_vpt_base_to_new_uses_maples_setting(protocol):
    """MaPLe repo configs/trainers/VPT/vit_b16_c2_ep5_batch4_4.yaml: 8 tokens in all 12 layers,
    lr 0.0025, batch 4, 5 epochs, text prompt 'a photo of a {}.'."""
    m, t = _resolved("vpt", protocol, "dtd")
    assert (m.n_tokens, m.deep, m.init, m.template) == (8, True, "normal", "a photo of a {}.")
    assert (t.lr, t.batch_size, t.epochs) == (0.0025, 4, 5)


@pytest.mark.parametrize("protocol, depth, lr, epochs", [
    ("base2new", 9, 0.0035, 5), ("fewshot", 9, 0.0035, 5),
    ("cross-dataset", 3, 0.0026, 2), ("domain-generalization", 3, 0.0026, 2),
])
def test_maple_configs(protocol, depth, lr, epochs):
    m, t = _resolved("maple", protocol, "imagenet")
    assert (m.depth, m.n_ctx, m.ctx_init) == (depth, 2, "a photo of a")
    assert (t.lr, t.batch_size, t.epochs) == (lr, 4, epochs)


@pytest.mark.parametrize("dataset, samples, epochs", [
    ("caltech101", 20, 20), ("oxford_pets", 40, 20), ("stanford_cars", 20, 40), ("oxford_flowers", 10, 40),
    ("food101", 20, 20), ("fgvc_aircraft", 10, 10), ("sun397", 20, 10), ("dtd", 40, 10),
    ("eurosat", 20, 60), ("ucf101", 5, 20), ("imagenet", 10, 10),
])
def test_variational_l_and_epochs_per_dataset(dataset, samples, epochs):
    """Bayesian-Prompt-Learning VPT.md: `--l L --epochs E` per dataset; batch 1, lr 0.002."""
    m, t = _resolved("variational", "base2new", dataset)
    assert (m.samples, t.epochs, t.batch_size, t.lr) == (samples, epochs, 1, 0.002)
    assert (m.kl_reduction, m.beta, m.conditional, m.init_log_var, m.test_noise) == \
        ("mean", 0.001, False, None, "per_image")
    m, t = _resolved("variational", "cross-dataset", dataset)
    assert (m.samples, t.epochs) == (10, 10)


def test_cocoop_and_upt_base_to_new():
    m, t = _resolved("cocoop", "base2new", "dtd")
    assert (m.n_ctx, m.ctx_init, t.batch_size, t.epochs, t.lr) == (4, "a photo of a", 1, 10, 0.002)
    assert _resolved("upt", "base2new", "dtd")[1].epochs == 200
    assert _resolved("upt", "base2new", "imagenet")[1].epochs == 50
    assert _resolved("upt", "base2new", "caltech101")[1].epochs == 10
    m, t = _resolved("coop", "base2new", "dtd")
    assert (m.n_ctx, m.ctx_init, t.epochs) == (4, "a photo of a", 200)


def test_base_new_parts_keep_their_datasets_preset():
    assert _resolved("kgcoop", dataset="dtd[base]")[0].template == "a photo of a {}, a type of texture."


def test_set_beats_preset_and_unknown_protocol_is_refused():
    m, t = resolve_config("prograd", 16, dataset="dtd", overrides=["method.grad_lambda=0.5", "train.epochs=3"])
    assert (m.grad_lambda, t.epochs) == (0.5, 3)
    with pytest.raises(ConfigError, match="unknown protocol"):
        resolve_config("coop", 16, protocol="fewshots")


def test_every_option_names_the_source_of_its_default(capsys):
    from vlprompt.cli.main import main

    assert main(["list", "methods", "--options"]) == 0
    out = capsys.readouterr().out
    options = [line for line in out.splitlines() if line.strip().startswith(("method.", "train."))]
    assert len(options) > 60
    assert all("[default from: " in line for line in options)
    rules = [line for line in out.splitlines() if line.strip().startswith("[")]
    assert any("[protocol domain-generalization/cross-dataset] method.depth=3" in r for r in rules)
    # every trained method cites a reference for its first option and has a preset table
    blocks = {b.split("\t", 1)[0]: b for b in ("\n" + out).split("\n") if "\t" in b}
    assert set(blocks) == set(list_methods())
    for name in ("coop", "cocoop", "prograd", "kgcoop", "vpt", "upt", "variational", "maple"):
        section = out.split(f"{name}\t", 1)[1].split("\n")
        assert "[default from: vlprompt]" not in section[1], name
        assert any(line.strip().startswith("preset") for line in section[:40]), name


def test_run_records_its_preset_with_sources(tiny_vit, tmp_path, image_folder):
    train("kgcoop", tiny_vit, f"folder:{image_folder}", shots=2, out=tmp_path / "run",
          overrides=["train.epochs=1", "train.batch_size=4"], runtime=Runtime(progress=False))
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    preset = record["config"]["preset"]
    assert preset["protocol"] == "fewshot"
    assert preset["train"]["batch_size"] == 128 and record["config"]["train"]["batch_size"] == 4
    assert preset["sources"]["train.batch_size"].startswith("KgCoOp configs/trainers/KgCoOp/")
    assert get_method_class("kgcoop").Config().weight == 8.0


def test_plugin_tables_and_inherited_tables():
    from vlprompt.methods import presets
    from vlprompt.methods.coop import CoOp

    class Child(CoOp):
        name = "child-of-coop-for-presets-test"

    assert presets.resolve_preset(Child, shots=1).train["epochs"] == 50  # CoOp's schedule, inherited
    try:
        presets.register_presets(Child.name, [presets.Rule("a test's own table", train={"epochs": 7})])
        resolved = presets.resolve_preset(Child, shots=1)
        assert resolved.train == {"epochs": 7} and resolved.sources["train.epochs"] == "a test's own table"
    finally:
        presets.PRESETS.pop(Child.name, None)
    with pytest.raises(ValueError, match="unknown protocol"):
        presets.Rule("x", protocols=("few-shot",))
