"""Pretraining the tiny CLIP: held-out pairs stay out, a seed fixes the weights, the result is plain open_clip."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from vlprompt.backbones import load_backbone
from vlprompt.backbones.openclip import load_openclip
from vlprompt.data.synthetic import world
from vlprompt.pretrain.tiny import CONFIG_JSON, PretrainConfig, WorldStream, pretrain


def _stream(pair_rate: float, n: int):
    bb = load_openclip(str(CONFIG_JSON), None, "test")
    it = iter(WorldStream(3, bb.preprocess(train=False), bb.tokenize, pair_rate))
    return [next(it) for _ in range(n)]


def test_stream_never_shows_held_out_pairs_and_pairs_differ_in_shape_only():
    colors = list(world.COLORS)
    banned = {(world.SHAPES.index(s), colors.index(c)) for s, c in world.held_out_combos()}
    samples = _stream(pair_rate=1.0, n=120)
    labels = torch.stack([lab for _, _, lab in samples])  # (N, attributes) in Scene.as_labels order
    keys = list(world.ATTRIBUTE_SIZES)
    shape, color = keys.index("shape"), keys.index("color")
    assert not {(int(r[shape]), int(r[color])) for r in labels} & banned
    # with pair_rate 1 the stream comes in pairs that differ in shape and nothing else
    pairs = labels.view(-1, 2, labels.shape[1])
    assert (pairs[:, 0, shape] != pairs[:, 1, shape]).all()
    others = [i for i, k in enumerate(keys) if k != "shape"]
    assert (pairs[:, 0, others] == pairs[:, 1, others]).all()
    image, ids, _ = samples[0]
    assert image.shape == (3, 64, 64) and ids.dtype == torch.long


def _pretrain(out, seed=0):
    cfg = PretrainConfig(steps=3, batch_size=8, warmup=1, workers=0, threads=1, eval_every=1000, seed=seed)
    threads = torch.get_num_threads()
    try:
        return pretrain(cfg, out)
    finally:
        torch.set_num_threads(threads)  # pretraining sets the process's thread count


@pytest.mark.slow
def test_same_seed_same_weights_and_an_ordinary_open_clip(tmp_path):
    a = _pretrain(tmp_path / "a")
    b = _pretrain(tmp_path / "b")
    c = _pretrain(tmp_path / "c", seed=1)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]
    provenance = json.loads((tmp_path / "a" / "provenance.json").read_text())
    assert provenance["sha256"] == digest[0] and provenance["config"]["seed"] == 0
    assert provenance["command"] == ("vlprompt pretrain-tiny --steps 3 --batch-size 8 --warmup 1 --workers 0 "
                                     f"--threads 1 --eval-every 1000 --out {tmp_path / 'a'}")
    log = [json.loads(line) for line in (tmp_path / "a" / "pretrain_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 2] and all(r["loss"] > r["clip_loss"] > 0 for r in log)
    assert "zs_shape" in log[0]  # the zero-shot probe at the first and last step
    # the auxiliary heads are dropped: the file holds exactly an open_clip CLIP, in fp16
    state = load_file(str(a))
    reference = load_openclip(str(CONFIG_JSON), None, "ref").model.state_dict()
    assert set(state) == set(reference)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    trained = load_backbone(f"openclip:{CONFIG_JSON}@{a}")
    assert trained.checksum() != load_backbone("tiny").checksum()
