"""VPT, UPT and MaPLe against direct computations on the tiny ViT."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vlprompt.backbones.base import NeedsViTError
from vlprompt.errors import ConfigError
from vlprompt.methods.base import Batch
from vlprompt.methods.components.generators import AuthorsPromptLayer, UnifiedPromptLayer
from vlprompt.methods.registry import create_method

NAMES = ["cat", "dog", "red fox"]


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(5)
    return torch.randn(3, 3, 32, 32, generator=g), torch.tensor([0, 1, 2])


def _make(name, backbone, **cfg):
    return create_method(name, backbone, NAMES, generator=torch.Generator().manual_seed(0), **cfg)


def _block_inputs(transformer) -> tuple[list[torch.Tensor], list]:
    """Forward pre-hooks recording each block's input (B, L, W), batch-first either way."""
    seen: list[torch.Tensor] = []
    batch_first = getattr(transformer, "batch_first", True)

    def hook(module, args):
        x = args[0]
        seen.append((x if batch_first else x.transpose(0, 1)).detach().clone())

    handles = [b.register_forward_pre_hook(hook) for b in transformer.resblocks]
    return seen, handles


def direct_image_features(backbone, images: torch.Tensor, layer_prompts: list[torch.Tensor]) -> torch.Tensor:
    """Deep-prompted image features with open_clip's modules: prompts[i] replace at layer i."""
    visual = backbone.model.visual
    n = layer_prompts[0].shape[0]
    x = visual.conv1(images).flatten(2).transpose(1, 2)  # (B, g*g, W)
    cls = visual.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls, x], dim=1) + visual.positional_embedding
    x = torch.cat([x[:, :1], layer_prompts[0].expand(x.shape[0], -1, -1), x[:, 1:]], dim=1)
    x = visual.ln_pre(x)
    for i, block in enumerate(visual.transformer.resblocks):
        if 1 <= i < len(layer_prompts):
            x = torch.cat([x[:, :1], layer_prompts[i].expand(x.shape[0], -1, -1), x[:, 1 + n:]], dim=1)
        x = block(x) if visual.transformer.batch_first else block(x.transpose(0, 1)).transpose(0, 1)
    return visual.ln_post(x[:, 0]) @ visual.proj


# ---------------------------------------------------------------------- VPT
@pytest.mark.parametrize("deep", [False, True], ids=["shallow", "deep"])
def test_vpt_without_tokens_equals_zeroshot(tiny_vit, images, deep):
    x, _ = images
    vpt = _make("vpt", tiny_vit, n_tokens=0, deep=deep)
    zs = _make("zeroshot", tiny_vit)
    with torch.no_grad():
        assert torch.allclose(vpt(x), zs(x), atol=1e-5)


def test_vpt_text_classifier_is_a_fixed_buffer(tiny_vit):
    vpt = _make("vpt", tiny_vit, n_tokens=2)
    assert torch.equal(vpt.text_classifier, _make("zeroshot", tiny_vit).weights)
    assert "text_classifier" not in vpt.learned_state()
    assert not vpt.spec.frozen_image_features


def test_vpt_deep_tokens_are_the_layer_parameters(tiny_vit, images):
    x, _ = images
    vpt = _make("vpt", tiny_vit, n_tokens=3, deep=True, init="normal", init_std=0.5)
    prompts = vpt.learned.prompts.detach()  # (depth, n, W)
    visual = tiny_vit.model.visual
    assert prompts.shape == (tiny_vit.vision_tower.depth, 3, tiny_vit.vision_tower.width)
    seen, handles = _block_inputs(visual.transformer)
    try:
        with torch.no_grad():
            got = vpt.encode_images(x)
    finally:
        for h in handles:
            h.remove()
    assert len(seen) == tiny_vit.vision_tower.depth
    with torch.no_grad():
        assert torch.allclose(seen[0][:, 1:4], visual.ln_pre(prompts[0]).expand(3, -1, -1), atol=1e-6)
        outputs = [visual.transformer.resblocks[i](seen[i]) for i in range(len(seen) - 1)]
    for i in range(1, len(seen)):
        assert torch.equal(seen[i][:, 1:4], prompts[i].expand(3, -1, -1))  # the layer-i parameters
        assert not torch.allclose(seen[i][:, 1:4], outputs[i - 1][:, 1:4])  # not layer i-1's outputs
        assert torch.equal(seen[i][:, 4:], outputs[i - 1][:, 4:])  # class and patch tokens flow on
        assert torch.equal(seen[i][:, :1], outputs[i - 1][:, :1])
    with torch.no_grad():
        expected = direct_image_features(tiny_vit, x, list(prompts))
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("name,cfg", [("vpt", {"n_tokens": 2, "deep": True}), ("upt", {"deep": True}),
                                      ("upt", {"variant": "joint"}), ("maple", {})],
                         ids=["vpt-deep", "upt-deep", "upt-joint", "maple"])
def test_only_prompts_and_generator_get_gradient(tiny_vit, images, name, cfg):
    x, y = images
    before = {k: v.clone() for k, v in tiny_vit.state_dict().items()}
    method = _make(name, tiny_vit, **cfg)
    method.train()
    opt = torch.optim.SGD(method.trainable_parameters(), lr=0.1)
    out = method.training_step(Batch(labels=y, images=x))
    method.backward(out)
    for key, p in method.learned.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, key
    assert all(p.grad is None for p in tiny_vit.parameters())
    opt.step()
    for key, value in tiny_vit.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("name", ["vpt", "upt", "maple"])
def test_resnet_backbone_is_a_clear_error(tiny_rn, name):
    with pytest.raises(NeedsViTError, match=f"{name}.*ViT"):
        create_method(name, tiny_rn, NAMES)


@pytest.fixture(scope="module")
def tiny_rn(model_configs):
    from vlprompt.backbones import load_backbone

    torch.manual_seed(0)
    return load_backbone(f"openclip:{model_configs['rn']}")


def test_methods_need_images_not_cached_features(tiny_vit, images):
    from vlprompt.errors import ConfigError

    x, y = images
    with pytest.raises(ConfigError, match="images"):
        _make("vpt", tiny_vit, n_tokens=1).training_step(Batch(labels=y, features=tiny_vit.encode_images(x)))


# ---------------------------------------------------------------------- UPT
def _set_linear(layer: torch.nn.Linear, weight: torch.Tensor) -> None:
    layer.weight.copy_(weight)
    layer.bias.zero_()


@torch.no_grad()
def test_upt_layer_matches_eq5_hand_computed():
    """d = 2, identity projections: every number below was worked out by hand.

    U = [[1, 0], [0, 2]]. Scores U U^T / sqrt(2) = [[0.7071, 0], [0, 2.8284]];
    softmax rows [0.66976, 0.33024] and [0.05581, 0.94419]; SA(U) = A U =
    [[0.66976, 0.66048], [0.05581, 1.88839]]. LN of a 2-vector (a, b) is (+-1, -+1), so
    LN(U) = [[1, -1], [-1, 1]], U' = [[1.66976, -0.33952], [-0.94419, 2.88839]],
    LN(U') = [[1, -1], [-1, 1]], FFN = GELU (GELU(1) = 0.84134, GELU(-1) = -0.15866),
    U_hat = GELU(LN(U')) + LN(U') = [[1.84134, -1.15866], [-1.15866, 1.84134]].
    """
    layer = UnifiedPromptLayer(2, heads=1, dropout=0.0).eval()
    eye = torch.eye(2)
    layer.attn.in_proj_weight.copy_(torch.cat([eye, eye, eye]))
    layer.attn.in_proj_bias.zero_()
    _set_linear(layer.attn.out_proj, eye)
    _set_linear(layer.ffn[0], eye)
    _set_linear(layer.ffn[3], eye)
    u = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    expected = torch.tensor([[[1.84134, -1.15866], [-1.15866, 1.84134]]])
    assert torch.allclose(layer(u), expected, atol=1e-4)


def _layer_norm(v: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    return (v - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


@torch.no_grad()
def test_upt_layer_matches_eq5_written_out():
    """Random weights, d = 4, n = 3: SA reads the raw U and each branch adds the LN'd input."""
    g = torch.Generator().manual_seed(0)
    layer = UnifiedPromptLayer(4, heads=1, dropout=0.0, generator=g).eval()
    for ln in (layer.ln_1, layer.ln_2):
        ln.weight.copy_(torch.rand(4, generator=g) + 0.5)
        ln.bias.copy_(torch.randn(4, generator=g))
    u = torch.randn(2, 3, 4, generator=g)
    wq, wk, wv = layer.attn.in_proj_weight.chunk(3)
    bq, bk, bv = layer.attn.in_proj_bias.chunk(3)
    q, k, v = u @ wq.T + bq, u @ wk.T + bk, u @ wv.T + bv
    attn = torch.softmax(q @ k.transpose(1, 2) / 2.0, dim=-1) @ v  # sqrt(d) = 2
    sa = layer.attn.out_proj(attn)
    u1 = sa + _layer_norm(u, layer.ln_1)
    v1 = _layer_norm(u1, layer.ln_2)
    lin1, lin2 = layer.ffn[0], layer.ffn[3]
    expected = lin2(F.gelu(lin1(v1))) + v1
    assert torch.allclose(layer(u), expected, atol=1e-5)


@torch.no_grad()
def test_upt_authors_layer_written_out_and_tokens_never_attend():
    """generator_code=authors, from the released code: a post-norm attention block over
    length-1 sequences (softmax over one key is 1, so SA(x) = out_proj(v_proj(x)) for each
    token on its own), then a pre-norm ReLU FFN block."""
    g = torch.Generator().manual_seed(3)
    layer = AuthorsPromptLayer(4, heads=1, dropout=0.1, generator=g).eval()
    for ln in (layer.norm1, layer.norm2):
        ln.weight.copy_(torch.rand(4, generator=g) + 0.5)
        ln.bias.copy_(torch.randn(4, generator=g))
    u = torch.randn(2, 3, 4, generator=g)  # two prompted layers of three tokens
    _, _, wv = layer.attn.in_proj_weight.chunk(3)
    _, _, bv = layer.attn.in_proj_bias.chunk(3)
    sa = layer.attn.out_proj(u @ wv.T + bv)
    x = _layer_norm(u + sa, layer.norm1)
    expected = x + layer.linear2(F.relu(layer.linear1(_layer_norm(x, layer.norm2))))
    assert torch.allclose(layer(u), expected, atol=1e-5)
    # no token sees another: changing one token changes only its own output
    moved = u.clone()
    moved[1, 2] += 5.0
    diff = (layer(moved) - layer(u)).abs().sum(-1)
    assert diff[1, 2] > 0.1 and diff.flatten()[:5].max() == 0
    # Eq. 5's layer, by contrast, mixes the tokens of a layer
    paper = UnifiedPromptLayer(4, heads=1, dropout=0.0, generator=g).eval()
    assert (paper(moved) - paper(u))[1, :2].abs().max() > 0


def test_upt_authors_generator_option(tiny_vit):
    upt = create_method("upt", tiny_vit, ["a", "b"], generator_code="authors")
    assert isinstance(upt.learned.generator, AuthorsPromptLayer)
    assert create_method("upt", tiny_vit, ["a", "b"]).config.generator_code == "paper"
    text, visual = upt.generate()
    assert text.shape[1] == upt.config.n_text and visual.shape[1] == upt.config.n_visual
    upt.train()  # two generator passes, as released: the dropout masks differ between towers
    torch.manual_seed(0)
    t1, v1 = upt.generate()
    torch.manual_seed(0)
    full = upt.learned.generator(upt.learned.unified)
    assert torch.equal(t1, full[:, :upt.config.n_text])
    with pytest.raises(ConfigError, match="generator_code=authors"):
        create_method("upt", tiny_vit, ["a", "b"], variant="joint", generator_code="authors")


def test_upt_split_sends_first_tokens_to_text_rest_to_vision(tiny_vit, images):
    x, _ = images
    upt = _make("upt", tiny_vit, n_text=2, n_visual=3)
    with torch.no_grad():
        u_hat = upt.learned.generator(upt.learned.unified)  # (1, 5, d), eval: no dropout
        p = upt.prompts()
        assert torch.equal(p.text_ctx, u_hat[0, :2])  # d = text width: no text projection
        assert torch.equal(p.visual, upt.learned.visual_proj(u_hat[0, 2:]))
        assert p.deep_text is None and p.deep_visual is None
        coop = _make("coop", tiny_vit, n_ctx=2)
        coop.learned.ctx.copy_(u_hat[0, :2])
        assert torch.allclose(upt.class_weights(), coop.class_weights(), atol=1e-6)
        f = tiny_vit.encode_images(x, visual_prompts=upt.learned.visual_proj(u_hat[0, 2:]))
        assert torch.allclose(upt(x), coop.cosine_logits(f, coop.class_weights()), atol=1e-4)


def test_upt_widths_come_from_the_towers(tiny_vit):
    vision, text = tiny_vit.vision_tower, tiny_vit.text_tower
    upt = _make("upt", tiny_vit, dim=24, deep=True)
    assert upt.learned.unified.shape == (min(vision.depth, text.depth), 8, 24)
    p = upt.prompts()
    assert p.text_ctx.shape == (4, text.width) and p.visual.shape == (4, vision.width)
    assert len(p.deep_text) == len(p.deep_visual) == min(vision.depth, text.depth) - 1


def test_upt_ablations(tiny_vit):
    shared = _make("upt", tiny_vit, variant="shared")
    with torch.no_grad():
        p = shared.prompts()
        assert torch.equal(p.text_ctx, shared.learned.unified[0])
        assert torch.equal(p.visual, shared.learned.visual_proj(shared.learned.unified[0]))
    assert not hasattr(shared.learned, "generator")
    joint = _make("upt", tiny_vit, variant="joint")
    p = joint.prompts()
    assert p.text_ctx is joint.learned.ctx and p.deep_text is None
    assert joint.learned.visual.shape[0] == tiny_vit.vision_tower.depth  # VPT-deep
    assert torch.equal(torch.stack([p.visual, *p.deep_visual]), joint.learned.visual)
    mlp = _make("upt", tiny_vit, generator_type="mlp")
    assert not any("attn" in n for n, _ in mlp.learned.named_parameters())


# ---------------------------------------------------------------------- MaPLe
def test_maple_prompt_keeps_the_rest_of_the_init_phrase(tiny_vit):
    maple = _make("maple", tiny_vit)
    assert maple.prefix == "of a" and maple.learned.ctx.shape == (2, tiny_vit.text_tower.width)
    ids = maple.class_prompts.name_ids[0].tolist()
    assert ids[:5] == tiny_vit.tokenize(["of a cat."])[0, :5].tolist()
    phrase = tiny_vit.embed_tokens(tiny_vit.tokenize(["a photo of a"]))[0, 1:3]
    assert torch.allclose(maple.learned.ctx, phrase)


def test_maple_deep_prompts_and_couplings_per_layer(tiny_vit, images):
    x, _ = images
    maple = _make("maple", tiny_vit)
    j = maple.depth
    assert j == min(9, tiny_vit.text_tower.depth, tiny_vit.vision_tower.depth)
    learned = maple.learned
    text_seen, th = _block_inputs(tiny_vit.model.transformer)
    vis_seen, vh = _block_inputs(tiny_vit.model.visual.transformer)
    try:
        with torch.no_grad():
            maple(x)
    finally:
        for h in th + vh:
            h.remove()
    with torch.no_grad():
        text_layers = [learned.ctx, *learned.deep_text]
        couple = [text_layers[i] @ learned.coupling_weight[i] + learned.coupling_bias[i] for i in range(j)]
        assert torch.allclose(vis_seen[0][:, 1:3], tiny_vit.model.visual.ln_pre(couple[0]).expand(3, -1, -1),
                              atol=1e-6)
    for i in range(1, j):
        assert torch.equal(text_seen[i][:, 1:3], text_layers[i].expand(len(NAMES), -1, -1))
        assert torch.allclose(vis_seen[i][:, 1:3], couple[i].expand(3, -1, -1), atol=1e-6)


# ---------------------------------------------------------------------- through the engine
@pytest.mark.parametrize("name,cfg", [("vpt", {"n_tokens": 2, "deep": True}), ("upt", {}), ("maple", {}),
                                      ("variational", {"samples": 2, "conditional": True})])
def test_one_epoch_with_the_engine(tiny_vit, image_folder, tmp_path, monkeypatch, name, cfg):
    """Prompted-image methods read images (no feature cache); the variational one uses the cache."""
    from vlprompt.data.registry import load_dataset
    from vlprompt.engine.options import TrainConfig
    from vlprompt.engine.trainer import Trainer

    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))
    data = load_dataset(f"folder:{image_folder}")
    method = create_method(name, tiny_vit, data.classnames, generator=torch.Generator().manual_seed(0), **cfg)
    before = {k: v.clone() for k, v in method.learned_state().items()}
    trainer = Trainer(method, TrainConfig(epochs=1, batch_size=4, warmup_epochs=0, lr=0.01, views=1),
                      seed=1, progress=False)
    assert trainer.use_features == (name == "variational")
    result = trainer.fit(data.train, [])
    assert len(result.history) == 1 and math.isfinite(result.history[0]["loss"])
    assert any(not torch.equal(before[k], v) for k, v in method.learned_state().items())
    metrics = trainer.evaluate(data.train)
    # the engine's evaluation (cached features for the variational method) scores the
    # method's own forward pass on the images
    from vlprompt.engine.evaluation import evaluate

    method.eval()
    forward = evaluate(method, data.train, tiny_vit.preprocess(train=False), data.num_classes, progress=False)
    assert metrics["n_images"] == len(data.train) and metrics["top1"] == pytest.approx(forward["top1"])
    assert metrics["per_class"] == pytest.approx(forward["per_class"])  # the same images right


@pytest.mark.parametrize("name,cfg", [("vpt", {"n_tokens": 2, "deep": True}), ("upt", {"deep": True}),
                                      ("maple", {})])
def test_hugging_face_backbone(hf_clip_dir, name, cfg):
    """Widths and depths come from the adapter's towers, not from ViT-B constants."""
    from vlprompt.backbones import load_backbone

    backbone = load_backbone(f"hf:{hf_clip_dir}")
    method = _make(name, backbone, **cfg)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    method.train()
    out = method.training_step(Batch(labels=y, images=x))
    method.backward(out)
    assert out.logits.shape == (2, 3) and torch.isfinite(out.loss)
    assert all(p.grad is not None for p in method.learned.parameters())


def test_maple_deeper_couplings_start_as_copies_of_one_init(model_configs, tmp_path):
    """The reference clones one Linear for the couplings of layers 2..J (copy.deepcopy), while
    the first layer's coupling has its own draw."""
    import json

    from vlprompt.backbones import load_backbone

    config = json.loads(open(model_configs["vit"]).read())
    config["vision_cfg"]["layers"] = config["text_cfg"]["layers"] = 3
    path = tmp_path / "three_layers.json"
    path.write_text(json.dumps(config))
    backbone = load_backbone(f"openclip:{path}")
    maple = create_method("maple", backbone, ["a", "b"], depth=3, generator=torch.Generator().manual_seed(0))
    w, b = maple.learned.coupling_weight.detach(), maple.learned.coupling_bias.detach()
    assert w.shape[0] == 3
    assert torch.equal(w[1], w[2]) and torch.equal(b[1], b[2])
    assert not torch.allclose(w[0], w[1])
    bound = 1.0 / w.shape[1] ** 0.5  # nn.Linear's default range
    assert w.abs().max() <= bound and w.std() > bound / 3
