"""Methods from outside the package: $VLPROMPT_METHODS and entry points (docs/new-method.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vlprompt.cli.main import main
from vlprompt.engine.contract import check_method_contract
from vlprompt.errors import ConfigError
from vlprompt.methods import registry

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry that loads again, with its built-ins, and forgets what the test added."""
    monkeypatch.setattr(registry, "_METHODS", registry._METHODS.copy())
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield
    sys.modules.pop("anchored_coop", None)


def test_docs_example_method_runs_from_the_cli(fresh_registry, monkeypatch, capsys, tmp_path, tiny_vit,
                                                image_folder, model_configs):
    monkeypatch.setenv(registry.PLUGINS_ENV, "anchored_coop")
    monkeypatch.setenv("VLPROMPT_CACHE", str(tmp_path / "cache"))
    assert "anchored-coop" in registry.list_methods() and "coop" in registry.list_methods()
    check_method_contract("anchored-coop", tiny_vit, tmp_path, n_ctx=2, ctx_init="")  # what every method keeps
    method = registry.create_method("anchored-coop", tiny_vit, ["cat", "dog"], anchor_weight=2.0)
    assert [n for n, p in method.named_parameters() if p.requires_grad] == ["learned.ctx"]
    from vlprompt.methods.base import Batch

    with torch.no_grad():
        method.learned.ctx.add_(0.1)
    out = method.training_step(Batch(labels=torch.tensor([0, 1]), features=torch.randn(2, tiny_vit.embed_dim)))
    assert float(out.parts["anchor"].detach()) == pytest.approx(0.01 * method.learned.ctx.numel(), rel=1e-4)
    assert torch.allclose(out.loss, out.parts["ce"] + 2.0 * out.parts["anchor"])
    # the whole CLI path: train, save, evaluate again
    weights = tmp_path / "w.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tiny_vit.model.state_dict().items()}, str(weights))
    backbone = f"openclip:{model_configs['vit']}@{weights}"
    assert main(["train", "--method", "anchored-coop", "--backbone", backbone, "--data", str(image_folder),
                 "--shots", "2", "--out", str(tmp_path / "run"), "--epochs", "2", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(load_file(str(tmp_path / "run" / "weights.safetensors"))) == ["ctx"]
    assert main(["eval", "--run", str(tmp_path / "run"), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["top1"] == pytest.approx(result["top1"])


def test_a_plugin_that_fails_to_import_is_one_clear_error(fresh_registry, monkeypatch):
    monkeypatch.setenv(registry.PLUGINS_ENV, "no_such_module_for_vlprompt")
    with pytest.raises(ConfigError, match="method plugin 'no_such_module_for_vlprompt'.*failed to import"):
        registry.list_methods()


def test_entry_points_are_loaded(fresh_registry, monkeypatch):
    class EntryPoint:
        name, value = "anchored", "anchored_coop"

        def load(self):
            import importlib

            return importlib.import_module(self.value)

    seen = []
    monkeypatch.setattr(registry, "entry_points", lambda group: seen.append(group) or [EntryPoint()])
    assert "anchored-coop" in registry.list_methods()
    assert seen == [registry.ENTRY_POINT_GROUP]


def test_unknown_method_names_the_plugin_route(fresh_registry):
    with pytest.raises(ConfigError, match=r"unknown method 'nope'.*\$VLPROMPT_METHODS"):
        registry.get_method_class("nope")
