"""The one registry helper: registration, order, aliases, and a helpful unknown-name error."""

from __future__ import annotations

import pytest

from vlprompt.errors import ConfigError
from vlprompt.methods.registry import get_method_class
from vlprompt.protocols import get_protocol
from vlprompt.utils.registry import Registry


def test_register_list_alias_and_twice():
    reg: Registry[int] = Registry("widget", "(see docs/widgets.md)")
    reg.register("alpha", 1)
    reg.register("beta", 2, aliases=("b",))
    assert reg.names() == ["alpha", "beta"] and len(reg) == 2
    assert reg.get("b") == 2 and reg["alpha"] == 1 and "b" in reg and "gamma" not in reg
    reg.register("alpha", 1)  # the same entry again is harmless
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("alpha", 3)
    copy = reg.copy()
    copy.register("gamma", 3)
    assert "gamma" not in reg


def test_unknown_names_suggest_the_closest():
    reg: Registry[int] = Registry("widget", "(see docs/widgets.md)")
    reg.register("linear-probe", 1)
    with pytest.raises(ConfigError, match=r"unknown widget 'linear-prob' \(did you mean 'linear-probe'\?\); "
                                          r"known: linear-probe \(see docs/widgets.md\)"):
        reg.get("linear-prob")
    with pytest.raises(ConfigError, match=r"unknown widget 'zzz'; known"):
        reg.get("zzz")


def test_methods_and_protocols_use_it():
    with pytest.raises(ConfigError, match=r"did you mean 'cocoop'"):
        get_method_class("cocop")
    with pytest.raises(ConfigError, match=r"unknown protocol 'basetonew'.*did you mean"):
        get_protocol("basetonew")
    assert get_protocol("dg").name == "domain-generalization"


def test_datasets_and_their_prefixes_use_it(tmp_path):
    from vlprompt.data import dataset_status, load_dataset
    from vlprompt.data.registry import DatasetError

    with pytest.raises(DatasetError, match=r"^unknown dataset 'eurost' \(did you mean 'eurosat'\?\); known: "
                                           r"caltech101, .*see `vlprompt list datasets`"):
        load_dataset("eurost", root=tmp_path)
    with pytest.raises(DatasetError, match=r"unknown dataset 'Caltech-101' \(did you mean 'caltech101'\?\)"):
        dataset_status("Caltech-101", tmp_path)
    with pytest.raises(DatasetError, match=r"unknown dataset 'foldr:/x' \(did you mean 'folder:'\?\); "
                                           r"known: .*folder:"):
        load_dataset("foldr:/x")
    with pytest.raises(DatasetError, match=r"unknown synthetic task 'shape' \(did you mean 'shapes'\?\)"):
        load_dataset("synthetic:shape")
    assert dataset_status("EuroSAT", None) == "missing"  # plain names stay case-insensitive


def test_backbone_specs_use_it():
    from vlprompt.backbones import load_backbone
    from vlprompt.backbones.base import BackboneError

    with pytest.raises(BackboneError, match=r"^unknown backbone 'openclp:ViT-B-16@openai' "
                                            r"\(did you mean 'openclip:'\?\); known: tiny, openclip:, hf: "):
        load_backbone("openclp:ViT-B-16@openai")
    with pytest.raises(BackboneError, match=r"unknown backbone 'tiyn' \(did you mean 'tiny'\?\)"):
        load_backbone("tiyn")
    with pytest.raises(BackboneError, match=r"names no model after hf:"):
        load_backbone("hf:")
