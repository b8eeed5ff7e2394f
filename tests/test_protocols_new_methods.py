"""The adapters, linear probes started from text, IVLP and PromptSRC in all four protocols.

One cheap grid per protocol (a tiny ViT, 1 shot, 1 seed, 1 epoch, short searches): every
method gets its records, and those that learn one weight per class or a cache of the
support set (they cannot move to new classes) get only the records of the classes they
were trained on.
"""

from __future__ import annotations

import pytest

from protocol_support import fixed_backbone
from vlprompt.api import Grid, run_protocol
from vlprompt.methods.registry import get_method_class
from vlprompt.results.store import load_records
from vlprompt.utils.runtime import Runtime

NEW_METHODS = ["clip-adapter", "tip-adapter", "tip-adapter-f", "taskres", "zs-lp", "clap", "lp++",
               "cross-modal-lp", "ivlp", "promptsrc"]
CHEAP = ["tip-adapter:method.beta_steps=8", "tip-adapter:method.alpha_steps=4",
         "tip-adapter-f:method.beta_steps=8", "tip-adapter-f:method.alpha_steps=4",
         "lp++:method.iterations=20", "train.views=1"]
#: protocol -> (source, targets): four classes and a few images each (shapes has ten classes,
#: but it is the domain-generalization source whose shifted copies keep its classes)
SETTINGS = {"fewshot": ("synthetic:counting", None), "base2new": ("synthetic:counting", None),
            "domain-generalization": ("synthetic:shapes", ["synthetic:shapes_noise"]),
            "cross-dataset": ("synthetic:counting", ["synthetic:position"])}


@pytest.fixture(scope="module")
def grids(tmp_path_factory, model_configs):
    folder = tmp_path_factory.mktemp("new_methods")
    spec = fixed_backbone(folder, model_configs["vit"])
    runtime = Runtime(progress=False, cache_dir=folder / "features")
    out = {}
    for protocol, (source, targets) in SETTINGS.items():
        grid = Grid(methods=NEW_METHODS, backbone=spec, datasets=[source], shots=[1], seeds=[1], epochs=1,
                    targets=targets, overrides=CHEAP)
        result = run_protocol(protocol, grid, db=folder / f"{protocol}.db", runtime=runtime)
        out[protocol] = (result, load_records([folder / f"{protocol}.db"]))
    return out


@pytest.mark.parametrize("protocol", list(SETTINGS))
def test_every_new_method_runs_in_the_protocol(grids, protocol):
    result, records = grids[protocol]
    assert result["failed"] == [] and result["ran"] == len(NEW_METHODS)
    source, targets = SETTINGS[protocol]
    got = {(r["method"], r["target"]) for r in records}
    for method in NEW_METHODS:
        movable = get_method_class(method).SPEC.can_change_classes
        if protocol == "fewshot":
            expected = {"test"}
        elif protocol == "base2new":
            expected = {"base", "new"} if movable else {"base"}
        elif protocol == "domain-generalization":
            expected = {source, *targets}  # the same classes: every method reaches the shifted copies
        else:
            expected = {source, *targets} if movable else {source}
        assert {t for m, t in got if m == method} == expected, method
    assert all(0.0 <= r["top1"] <= 1.0 for r in records)
