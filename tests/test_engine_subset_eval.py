"""A per-class head scored on a labelled subset of its classes (ImageNet-A/R for ImageNet)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from vlprompt.data.classsplit import SUBSET_LABELS, labels_within
from vlprompt.data.registry import load_dataset
from vlprompt.engine.evaluation import method_logits
from vlprompt.engine.runner import evaluate_run, train
from vlprompt.engine.runs import WEIGHTS, load_method
from vlprompt.errors import ConfigError
from vlprompt.utils.runtime import Runtime

DATA = "synthetic:counting"  # 4 classes


def _subset(data, labels):
    """`data`'s test images of `labels`, relabelled 0.., declaring where they came from."""
    where = {old: new for new, old in enumerate(labels)}
    test = [replace(it, label=where[it.label]) for it in data.test if it.label in where]
    return replace(data, name="subset", classnames=[data.classnames[i] for i in labels],
                   train=[], val=[], test=test, info={SUBSET_LABELS: list(labels)})


def test_labels_within_needs_the_mapping_and_matching_names():
    data = load_dataset(DATA)
    sub = _subset(data, [3, 1])
    assert labels_within(sub, data.classnames) == [3, 1]
    assert labels_within(replace(sub, info={}), data.classnames) is None
    assert labels_within(replace(sub, info={SUBSET_LABELS: [3, 9]}), data.classnames) is None
    assert labels_within(replace(sub, info={SUBSET_LABELS: [2, 1]}), data.classnames) is None  # names differ


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory, tiny_vit):
    out = tmp_path_factory.mktemp("probe")
    train("linear-probe", tiny_vit, DATA, shots=4, seed=1, out=out,
          overrides=["method.max_iter=50", "method.search_steps=0"], runtime=Runtime(progress=False))
    return out


def test_linear_probe_is_scored_on_its_logits_for_the_subset(probe_run, tiny_vit):
    data = load_dataset(DATA)
    labels = [3, 1]
    sub = _subset(data, labels)
    model = load_method(probe_run / WEIGHTS, backbone=tiny_vit)
    got = evaluate_run(probe_run, dataset=sub, backbone=tiny_vit, runtime=Runtime(progress=False))
    assert got["n_classes"] == 2 and got["scored_classes"] == "2 of the method's 4"
    logits = method_logits(model, items=sub.test, transform=model.backbone.preprocess(train=False))
    y = torch.tensor([it.label for it in sub.test])
    expected = float((logits[:, labels].argmax(-1) == y).float().mean())
    assert got["top1"] == pytest.approx(expected)
    # where the 4-way head puts an image of class 3 or 1 in class 0 or 2, the subset score differs
    four_way = float((logits.argmax(-1) == torch.tensor([labels[i] for i in y])).float().mean())
    assert got["top1"] >= four_way
    # without the mapping the probe still refuses other class names
    with pytest.raises(ConfigError, match="other class names"):
        evaluate_run(probe_run, dataset=replace(sub, info={}), backbone=tiny_vit, runtime=Runtime(progress=False))
