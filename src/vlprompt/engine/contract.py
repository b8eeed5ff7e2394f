"""The contract every method keeps for the engine, as one function that tests of any method
can call. It lives with the engine because saving and loading a method is part of it.

vlprompt's own test runs it over the registry; a method written elsewhere (a plugin, see
docs/new-method.md) can run it in its own tests:

    from vlprompt.engine.contract import check_method_contract
    check_method_contract("my-method", load_backbone("tiny"), tmp_path, my_option=2)

It raises `ContractError` naming the first property that does not hold.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..backbones.base import VLBackbone
from ..errors import ConfigError
from ..methods.base import Batch
from ..methods.registry import create_method

NAMES = ("cat", "dog", "red_fox")
NEW_NAMES = ("tree", "house", "blue car", "boat")


class ContractError(AssertionError):
    """A method breaks the contract the engine relies on."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


def check_method_contract(name: str, backbone: VLBackbone, workdir: str | Path, **config) -> None:
    """Build `name` with `config` on `backbone` (small settings keep it fast) and check:

    - the trainable parameters are exactly `method.learned`'s, and the backbone has none;
    - logits have shape (B, K) and are finite;
    - every learned parameter changes after one step (sgd) or a fit (closed-form), and a
      method that fits nothing learns nothing;
    - the backbone is bit-identical afterwards;
    - a save/load round trip (into `workdir`) gives identical logits;
    - `set_classnames` moves the method to other classes and back when its spec says it can,
      and is a `ConfigError` when it cannot.
    """
    from .runs import load_method, save_method

    size = backbone.image_size
    x = torch.randn(6, 3, size, size, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    backbone_before = {k: v.clone() for k, v in backbone.state_dict().items()}
    method = create_method(name, backbone, list(NAMES), generator=torch.Generator().manual_seed(0), **config)

    trainable = {n for n, p in method.named_parameters() if p.requires_grad}
    declared = {f"learned.{n}" for n, _ in method.learned.named_parameters()}
    _require(trainable == declared, f"{name}: trainable parameters {sorted(trainable)} are not the learned "
                                    f"ones {sorted(declared)}")
    _require(all(not p.requires_grad for p in backbone.parameters()), f"{name}: the backbone has trainable weights")

    logits = method(x)
    _require(logits.shape == (6, len(NAMES)) and bool(torch.isfinite(logits).all()),
             f"{name}: logits of shape {tuple(logits.shape)} (finite: {bool(torch.isfinite(logits).all())}), "
             f"expected (6, {len(NAMES)})")

    features = backbone.encode_images(x)
    if method.spec.fit != "none" and method.prepares_fit():  # as the trainer does, before any fit
        method.prepare_fit(features[None], y)
    before = {k: v.clone() for k, v in method.learned_state().items()}
    if method.spec.fit == "sgd":
        opt = torch.optim.SGD(method.trainable_parameters(), lr=0.01)
        method.train()
        # methods that prompt the image tower train on images, the others on cached features
        batch = Batch(labels=y, features=features) if method.spec.frozen_image_features else Batch(labels=y, images=x)
        out = method.training_step(batch)
        method.backward(out)
        opt.step()
        method.finish_fit((features.detach(), y))
    elif method.spec.fit == "closed-form":
        method.fit_closed_form((features, y), (features, y))
    else:
        _require(not trainable, f"{name} fits nothing but has trainable parameters {sorted(trainable)}")
    after = method.learned_state()
    for key, _ in method.learned.named_parameters():
        _require(not torch.equal(before[key], after[key]), f"{name}: learned.{key} did not change after a step")

    for key, value in backbone.state_dict().items():
        _require(torch.equal(value, backbone_before[key]), f"{name}: the backbone's {key} changed")

    method.eval()
    run = Path(workdir) / f"contract-{name}"
    save_method(method, run)
    loaded = load_method(run, backbone=backbone)
    with torch.no_grad():
        _require(torch.equal(method(x), loaded(x)), f"{name}: logits differ after a save/load round trip")

    if method.spec.can_change_classes:
        loaded.set_classnames(list(NEW_NAMES))
        with torch.no_grad():
            shape = tuple(loaded(x).shape)
        _require(shape == (6, len(NEW_NAMES)), f"{name}: logits of shape {shape} after set_classnames")
        loaded.set_classnames(list(NAMES))
        with torch.no_grad():
            _require(torch.allclose(method(x), loaded(x), atol=1e-5),
                     f"{name}: logits differ after moving to other classes and back")
    else:
        try:
            loaded.set_classnames(list(NEW_NAMES))
        except ConfigError:
            return
        raise ContractError(f"{name} says it cannot change classes, but set_classnames did not refuse")
