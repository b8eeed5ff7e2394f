"""IVLP and PromptSRC against numbers computed here from the papers' and references' formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vlprompt.data.templates import IMAGENET_TEMPLATES
from vlprompt.errors import ConfigError
from vlprompt.methods.base import Batch
from vlprompt.methods.promptsrc import gpa_weights, kl_to_frozen
from vlprompt.methods.registry import create_method

NAMES = ["cat", "dog", "red fox"]
#: IVLP/PromptSRC reduced to the frozen model's text side: one text layer initialised with the
#: whole template phrase and no visual prompts.
PLAIN = {"text_depth": 1, "vision_depth": 0, "n_ctx_vision": 0, "n_ctx_text": 4, "ctx_init": "a photo of a"}


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(7)
    return torch.randn(4, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 0])


def _make(name, backbone, names=NAMES, **cfg):
    return create_method(name, backbone, names, generator=torch.Generator().manual_seed(0), **cfg)


# ---------------------------------------------------------------------- IVLP
def test_ivlp_init_follows_the_reference(tiny_vit):
    """Context = the first 2 tokens of 'a photo of a' ('of a' stays text); deep text and visual
    prompts ~ N(0, 0.02) at every layer of both towers (depth 12 capped at 2)."""
    m = _make("ivlp", tiny_vit)
    phrase = tiny_vit.embed_tokens(tiny_vit.tokenize(["a photo"]))[0, 1:3]
    assert m.prefix == "of a" and torch.allclose(m.learned.ctx, phrase)
    assert m.text_depth == 2 and m.vision_depth == 2
    assert m.learned.deep_text.shape == (1, 2, tiny_vit.text_tower.width)
    assert m.learned.visual.shape == (2, 2, tiny_vit.vision_tower.width)
    random = torch.cat([m.learned.deep_text.flatten(), m.learned.visual.flatten()]).detach()
    assert 0.015 < float(random.std()) < 0.025 and abs(float(random.mean())) < 0.005


def test_ivlp_prompts_enter_every_layer_of_their_own_tower_only(tiny_vit, images):
    """Each layer's text prompts move only the class weights, each layer's visual prompts only
    the image features (no coupling, unlike MaPLe)."""
    x, _ = images
    m = _make("ivlp", tiny_vit)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        text0, image0 = m.class_weights(), m.encode_images(x)
        for name, rows in (("ctx", None), ("deep_text", 0), ("visual", 0), ("visual", 1)):
            p = getattr(m.learned, name)
            target = p if rows is None else p[rows]
            saved = target.clone()
            target.add_(torch.randn(target.shape, generator=g))  # not a constant: layer norms remove those
            text_moved = not torch.allclose(m.class_weights(), text0)
            image_moved = not torch.allclose(m.encode_images(x), image0)
            target.copy_(saved)
            assert (text_moved, image_moved) == (name != "visual", name == "visual"), (name, rows)


def test_ivlp_with_depth_one_and_no_visual_prompts_is_coop(tiny_vit, images):
    """The reference's language-only setting at depth 1 is CoOp: same logits for the same context."""
    x, _ = images
    ivlp = _make("ivlp", tiny_vit, **PLAIN)
    coop = _make("coop", tiny_vit, ctx_init="a photo of a")
    assert "visual" not in dict(ivlp.learned.named_parameters()) and ivlp.prompts().visual is None
    ctx = torch.randn(4, tiny_vit.text_tower.width, generator=torch.Generator().manual_seed(1)) * 0.05
    with torch.no_grad():
        for method in (ivlp, coop):
            method.learned.ctx.copy_(ctx)
        assert torch.allclose(ivlp(x), coop(x), atol=1e-5)


@pytest.mark.parametrize("cfg", [{"vision_depth": 0}, {"n_ctx_vision": 0}, {"text_depth": 0},
                                 {"n_ctx_text": 0}, {"init_std": 0.0}])
def test_ivlp_refuses_inconsistent_depths(tiny_vit, cfg):
    with pytest.raises(ConfigError):
        _make("ivlp", tiny_vit, **cfg)


# ---------------------------------------------------------------------- PromptSRC losses
def test_kl_is_frozen_to_prompted_at_temperature_one_over_all_logits():
    """Hand numbers: p = (1/4, 3/4), p0 = (1/2, 1/2); KL(p0 || p) = ln(4/3) / 2, divided by B*K = 2."""
    logits = torch.tensor([[0.0, math.log(3.0)]])
    frozen = torch.tensor([[0.0, 0.0]])
    assert float(kl_to_frozen(logits, frozen)) == pytest.approx(0.5 * math.log(4 / 3) / 2, rel=1e-6)
    reverse = (0.25 * math.log(0.5) + 0.75 * math.log(1.5)) / 2  # KL(p || p0): the other direction
    assert float(kl_to_frozen(frozen, logits)) == pytest.approx(reverse, rel=1e-6)
    # temperature 1: scaling the logits changes the value (no division by a temperature)
    assert float(kl_to_frozen(2 * logits, frozen)) != pytest.approx(float(kl_to_frozen(logits, frozen)))


def test_frozen_text_features_average_raw_features_over_the_reference_templates(tiny_vit):
    m = _make("promptsrc", tiny_vit)
    assert m.frozen_templates == list(IMAGENET_TEMPLATES[:60])
    assert "a photo of a {}." in m.frozen_templates and "itap of a {}." not in m.frozen_templates
    raw = torch.stack([tiny_vit.encode_texts([t.format(n) for n in NAMES]) for t in m.frozen_templates])
    assert torch.allclose(m.frozen_text_features(), F.normalize(raw.mean(0), dim=-1), atol=1e-5)


def test_step_losses_equal_the_formulas(tiny_vit, images):
    """CE + 25 * mean|t - t0| + 10 * mean|f - f0| + KL(p0 || p) / (B K), all features unit-norm."""
    x, y = images
    m = _make("promptsrc", tiny_vit, templates="select7")
    with torch.no_grad():
        out = m.training_step(Batch(labels=y, images=x))
        f = F.normalize(m.encode_images(x), dim=-1).double()
        t = m.class_weights().double()
        f0 = F.normalize(tiny_vit.encode_images(x), dim=-1).double()
        raw = torch.stack([tiny_vit.encode_texts([tmpl.format(n) for n in NAMES]) for tmpl in m.frozen_templates])
        t0 = F.normalize(raw.mean(0), dim=-1).double()
    scale = float(tiny_vit.logit_scale)
    logits, frozen = scale * f @ t.T, scale * f0 @ t0.T
    p, p0 = logits.softmax(-1), frozen.softmax(-1)
    expected = {
        "ce": F.cross_entropy(logits, y),
        "scl_text": 25 * (t - t0).abs().mean(),
        "scl_image": 10 * (f - f0).abs().mean(),
        "scl_logits": (p0 * (p0 / p).log()).sum() / p.numel(),
    }
    for key, value in expected.items():
        assert float(out.parts[key]) == pytest.approx(float(value), rel=1e-4, abs=1e-6), key
        assert float(value) > 0
    assert float(out.loss) == pytest.approx(sum(float(v) for v in expected.values()), rel=1e-4)


def test_agreement_terms_vanish_when_the_prompted_model_is_the_frozen_one(tiny_vit, images):
    """With the template as the (text-only, depth-1) prompt and one template for t0, the prompted
    model is the frozen one: every regulariser is 0. At the reference's init they are not (its
    deep prompts are random), which the default checks."""
    x, y = images
    plain = _make("promptsrc", tiny_vit, templates="a photo of a {}.", **PLAIN)
    with torch.no_grad():
        parts = plain.training_step(Batch(labels=y, images=x)).parts
        default = _make("promptsrc", tiny_vit).training_step(Batch(labels=y, images=x)).parts
    for key in ("scl_text", "scl_image", "scl_logits"):
        assert float(parts[key]) == pytest.approx(0.0, abs=1e-5), key
    assert all(float(default[k]) > 1e-4 for k in ("scl_text", "scl_image", "scl_logits"))


def test_only_the_prompts_learn_and_the_frozen_features_move_with_the_classes(tiny_vit, images):
    x, y = images
    m = _make("promptsrc", tiny_vit, templates="select7")
    m.training_step(Batch(labels=y, images=x)).loss.backward()
    grads = {n for n, p in m.named_parameters() if p.grad is not None}
    assert grads == {"learned.ctx", "learned.deep_text", "learned.visual"}
    assert m.frozen_text_features().shape[0] == 3
    m.set_classnames(["tree", "house"])
    assert m.frozen_text_features().shape[0] == 2


@pytest.mark.parametrize("cfg", [{"text_loss_weight": -1.0}, {"gpa_std": 0.0}, {"templates": "no slot"}])
def test_promptsrc_refuses_bad_options(tiny_vit, cfg):
    with pytest.raises(ConfigError):
        _make("promptsrc", tiny_vit, **cfg)


# ---------------------------------------------------------------------- GPA
@pytest.mark.parametrize("epochs,mean,std", [(20, 15.0, 1.0), (50, 30.0, 30.0), (20, 6.0, 10.0), (5, 2.5, 0.7)])
def test_gpa_weights_are_the_normalised_gaussian_over_epochs_one_to_e(epochs, mean, std):
    def gauss(e: int) -> float:
        return math.exp(-0.5 * ((e - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))

    total = sum(gauss(e) for e in range(1, epochs + 1))
    expected = [gauss(e) / total for e in range(1, epochs + 1)]
    assert gpa_weights(epochs, mean, std).tolist() == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_gpa_weights_stay_finite_far_from_the_mean():
    """A short run with the 50-epoch mean (45, std 5... or 1): the reference's weights would be
    0 / 0 at std 1; here the epoch closest to the mean takes (almost) all the weight."""
    w = gpa_weights(5, 45.0, 1.0)
    assert torch.isfinite(w).all() and float(w.sum()) == pytest.approx(1.0) and float(w[-1]) > 0.99


def test_gpa_gives_the_weighted_sum_of_the_epoch_snapshots(tiny_vit, image_folder, tmp_path, monkeypatch):
    """Through the engine: the hook sees every epoch, and the final prompts are
    sum_e w_e * (prompts after epoch e), not the last epoch's."""
    from vlprompt.data.registry import load_dataset
    from vlprompt.engine.options import TrainConfig
    from vlprompt.engine.trainer import Trainer

    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))
    data = load_dataset(f"folder:{image_folder}")
    m = _make("promptsrc", tiny_vit, data.classnames, templates="select7", gpa_mean=2.0, gpa_std=1.0)
    snapshots, calls = [], []
    hook = m.end_epoch

    def spy(epoch, epochs):
        calls.append((epoch, epochs))
        snapshots.append({n: p.detach().clone() for n, p in m.learned.named_parameters()})
        hook(epoch, epochs)

    monkeypatch.setattr(m, "end_epoch", spy)
    cfg = TrainConfig(epochs=3, batch_size=4, warmup_epochs=0, lr=0.05, views=1)
    Trainer(m, cfg, seed=1, progress=False).fit(data.train, [])
    assert calls == [(0, 3), (1, 3), (2, 3)]
    w = gpa_weights(3, 2.0, 1.0)
    for name, p in m.learned.named_parameters():
        expected = sum(float(w[e]) * snapshots[e][name] for e in range(3))
        assert torch.allclose(p.detach(), expected, atol=1e-6), name
        assert not torch.allclose(p.detach(), snapshots[-1][name], atol=1e-6), name


def test_gpa_off_keeps_the_last_epoch_and_a_resumed_run_aggregates_the_same(tiny_vit, image_folder, tmp_path,
                                                                            monkeypatch):
    """The running sum lives in the checkpoint: a run stopped after epoch 2 of 3 and resumed ends
    with the uninterrupted run's prompts."""
    from vlprompt.data.registry import load_dataset
    from vlprompt.engine.options import TrainConfig
    from vlprompt.engine.trainer import Trainer

    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))
    data = load_dataset(f"folder:{image_folder}")
    cfg = TrainConfig(epochs=3, batch_size=4, warmup_epochs=0, lr=0.05, views=1)
    opts = {"templates": "a photo of a {}.", "text_depth": 2, "vision_depth": 1, "gpa_mean": 2.0, "gpa_std": 1.0}

    def run(out, resume=False, **extra):
        m = _make("promptsrc", tiny_vit, data.classnames, **{**opts, **extra})
        result = Trainer(m, cfg, seed=1, out_dir=out, progress=False).fit(data.train, [], resume=resume)
        return m.learned_state(), result.resumed_from

    whole, _ = run(tmp_path / "whole")
    original = Trainer._epoch

    def stop_at_third(self, epoch, *args):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, *args)

    monkeypatch.setattr(Trainer, "_epoch", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "stopped")
    monkeypatch.setattr(Trainer, "_epoch", original)
    resumed, resumed_from = run(tmp_path / "stopped", resume=True)
    assert resumed_from == 1  # it continued after epoch 2 (0-based 1), with the sum of epochs 1 and 2
    assert whole.keys() == resumed.keys() and all(torch.allclose(whole[k], resumed[k], atol=1e-6) for k in whole)

    last, _ = run(tmp_path / "off", gpa=False)
    assert "gpa_ctx" not in last and not torch.allclose(last["ctx"], whole["ctx"], atol=1e-6)


# ---------------------------------------------------------------------- presets
@pytest.mark.parametrize("protocol,dataset,method,epochs", [
    ("base2new", "dtd", {}, 20),  # the defaults are the base-to-new config's (mean 15, std 1, depth 9)
    ("fewshot", "caltech101", {"gpa_mean": 30.0, "gpa_std": 30.0}, 50),
    ("fewshot", "dtd", {"gpa_mean": 45.0, "gpa_std": 5.0}, 50),
    ("cross-dataset", "imagenet", {"text_depth": 3, "vision_depth": 3, "gpa_mean": 6.0, "gpa_std": 10.0}, 20),
])
def test_promptsrc_presets_follow_its_configs(protocol, dataset, method, epochs):
    from vlprompt.methods.presets import resolve_preset
    from vlprompt.methods.promptsrc import PromptSRC

    preset = resolve_preset(PromptSRC, protocol=protocol, dataset=dataset, shots=16)
    assert preset.method == method
    assert preset.train == {"lr": 0.0025, "batch_size": 4, "epochs": epochs}
    cfg = PromptSRC.Config()
    assert (cfg.n_ctx_text, cfg.n_ctx_vision, cfg.text_depth, cfg.vision_depth) == (4, 4, 9, 9)
    assert (cfg.text_loss_weight, cfg.image_loss_weight, cfg.gpa_mean, cfg.gpa_std) == (25, 10, 15, 1)


def test_ivlp_preset_is_the_maple_repos_2_plus_2_config():
    from vlprompt.methods.ivlp import IVLP
    from vlprompt.methods.presets import resolve_preset

    for protocol in ("fewshot", "base2new", "cross-dataset"):
        preset = resolve_preset(IVLP, protocol=protocol)
        assert preset.method == {} and preset.train == {"lr": 0.0035, "batch_size": 4, "epochs": 5}
    cfg = IVLP.Config()
    assert (cfg.n_ctx_text, cfg.n_ctx_vision, cfg.text_depth, cfg.vision_depth) == (2, 2, 12, 12)
